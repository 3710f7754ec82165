"""Where each service stands: one computation shared by `monitor status`, the metrics and the reports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from monitor.domain import Catalogue, Grade, Outcome, Regulation
from monitor.regulation import standing
from monitor.store.repository import PageRow


class State(StrEnum):
    """The operational state of a service, beside its grade."""

    OK = "ok"
    DOWN = "down"  # every page's last check failed
    DEGRADED = "degraded"  # some pages failing
    PENDING = "pending"  # monitored, not checked yet
    UNMONITORED = "unmonitored"  # no known address
    SUSPENDED = "suspended"  # kept and shown, not alerted


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceStatus:
    id: str
    name: str
    department: str
    department_id: str
    regulation: Regulation
    state: State
    grade: Grade
    suspended: bool
    pages: int
    pages_failing: int
    last_check_at: datetime | None
    last_success_at: datetime | None
    last_real_update_at: datetime | None  # detected, real
    last_change_at: datetime | None  # any class from date_only up
    monitoring_since: datetime | None  # first successful check: the baseline before any update is seen
    deadline: datetime | None
    age_s: float | None
    cycles_late: float
    responsible: str = ""
    contact: str = ""

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for key in self.__slots__:
            value = getattr(self, key)
            out[key] = value.isoformat() if isinstance(value, datetime) else (
                value.value if isinstance(value, StrEnum) else value)
        return out


def _max(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _min(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def service_statuses(catalogue: Catalogue, pages: Sequence[PageRow], now: datetime) -> list[ServiceStatus]:
    by_service: dict[str, list[PageRow]] = {}
    for p in pages:
        by_service.setdefault(p.service_id, []).append(p)
    tz = catalogue.settings.timezone
    country = catalogue.settings.working_days_holidays
    out = []
    for svc in catalogue.services:
        rows = by_service.get(svc.id, [])
        failing = sum(1 for r in rows if r.last_outcome is not None and not Outcome(r.last_outcome).success)
        checked = [r for r in rows if r.last_check_at is not None]
        last_real = _max(r.last_real_change_at for r in rows)
        since = _min(r.first_success_at for r in rows)
        std = standing(svc.regulation, last_real or since, now, tz=tz, working_days=svc.working_days,
                       country=country)
        if not svc.pages:
            state = State.UNMONITORED
        elif svc.suspended:
            state = State.SUSPENDED
        elif not checked:
            state = State.PENDING
        elif failing == len(rows):
            state = State.DOWN
        elif failing:
            state = State.DEGRADED
        else:
            state = State.OK
        out.append(ServiceStatus(
            id=svc.id, name=svc.name, department=svc.department, department_id=svc.department_id,
            regulation=svc.regulation, state=state,
            grade=std.grade if svc.pages else Grade.UNKNOWN, suspended=svc.suspended,
            pages=len(svc.pages), pages_failing=failing,
            last_check_at=_max(r.last_check_at for r in rows), last_success_at=_max(r.last_success_at for r in rows),
            last_real_update_at=last_real, last_change_at=_max(r.last_change_at for r in rows),
            monitoring_since=since, deadline=std.deadline, age_s=std.age_s, cycles_late=std.cycles_late,
            responsible=svc.responsible, contact=svc.contact,
        ))
    return out
