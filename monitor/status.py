"""Where each service stands: one computation shared by `monitor status`, the metrics and the reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from monitor.domain import Catalogue, Grade, Record, Regulation
from monitor.ports import ServiceAggregate
from monitor.regulation import parse_frequency, standing


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


def service_statuses(catalogue: Catalogue, aggregates: Mapping[str, ServiceAggregate],
                     now: datetime) -> list[ServiceStatus]:
    """Every service of the catalogue graded at `now` from its SQL aggregates (StatusReader.service_aggregates)."""
    tz = catalogue.settings.timezone
    country = catalogue.settings.working_days_holidays
    out = []
    for svc in catalogue.services:
        agg = aggregates.get(svc.id) or ServiceAggregate(
            service_id=svc.id, pages=0, checked=0, failing=0, last_check_at=None, last_success_at=None,
            last_real_change_at=None, last_change_at=None, first_success_at=None)
        failing = agg.failing
        last_real = agg.last_real_change_at
        since = agg.first_success_at
        std = standing(svc.regulation, last_real or since, now, tz=tz, working_days=svc.working_days,
                       country=country)
        if not svc.pages:
            state = State.UNMONITORED
        elif svc.suspended:
            state = State.SUSPENDED
        elif not agg.checked:
            state = State.PENDING
        elif failing >= agg.pages:
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
            last_check_at=agg.last_check_at, last_success_at=agg.last_success_at,
            last_real_update_at=last_real, last_change_at=agg.last_change_at,
            monitoring_since=since, deadline=std.deadline, age_s=std.age_s, cycles_late=std.cycles_late,
            responsible=svc.responsible, contact=svc.contact,
        ))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetStatus:
    """A dataset of an open-data catalogue, judged against its own declared update frequency."""

    key: str
    title: str
    frequency: str
    regulation: Regulation | None
    modified_at: datetime | None
    deadline: datetime | None
    grade: Grade


def dataset_statuses(records: Sequence[Record], now: datetime, *, tz: str = "Europe/Kyiv") -> list[DatasetStatus]:
    out = []
    for r in records:
        reg = parse_frequency(r.frequency)
        if reg is None or r.modified_at is None:
            out.append(DatasetStatus(key=r.key, title=r.title, frequency=r.frequency, regulation=reg,
                                     modified_at=r.modified_at, deadline=None, grade=Grade.UNKNOWN))
            continue
        std = standing(reg, r.modified_at, now, tz=tz)
        out.append(DatasetStatus(key=r.key, title=r.title, frequency=r.frequency, regulation=reg,
                                 modified_at=r.modified_at, deadline=std.deadline, grade=std.grade))
    return out
