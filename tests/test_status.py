"""Where each service stands: its operational state and its grade, from the aggregates a StatusReader gives
(a fake here: any implementation of the interface will do)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.domain import Grade, Record
from monitor.ports import ServiceAggregate
from monitor.status import State, dataset_statuses, service_statuses
from tests.helpers import catalogue

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
TOML = """
[settings]
user_agent = "t (+mailto:a@b.c)"
[departments.it]
name = "IT"
""" + "".join(f"""
[[services]]
id = "{sid}"
name = "{sid}"
department = "IT"
regulation = "{regulation}"
{extra}
""" for sid, regulation, extra in (
    ("ok", "weekly", 'pages = [{url = "https://a.example/"}]'),
    ("down", "weekly", 'pages = [{url = "https://b.example/"}]'),
    ("degraded", "weekly", 'pages = [{url = "https://c.example/1"}, {url = "https://c.example/2"}]'),
    ("pending", "weekly", 'pages = [{url = "https://d.example/"}]'),
    ("unmonitored", "monthly", ""),
    ("paused", "daily", 'suspended = true\npages = [{url = "https://e.example/"}]'),
    ("silent", "as_needed", 'pages = [{url = "https://f.example/"}]'),
))


def aggregate(sid: str, pages: int = 1, checked: int = 1, failing: int = 0, real_days_ago: float | None = 1,
              since_days_ago: float = 60) -> ServiceAggregate:
    real = NOW - timedelta(days=real_days_ago) if real_days_ago is not None else None
    return ServiceAggregate(service_id=sid, pages=pages, checked=checked, failing=failing, last_check_at=NOW,
                            last_success_at=NOW, last_real_change_at=real, last_change_at=real,
                            first_success_at=NOW - timedelta(days=since_days_ago))


def test_states_and_grades_of_every_kind_of_service() -> None:
    aggregates = {"ok": aggregate("ok"), "down": aggregate("down", failing=1, real_days_ago=10),
                  "degraded": aggregate("degraded", pages=2, checked=2, failing=1, real_days_ago=16),
                  "pending": aggregate("pending", checked=0, real_days_ago=None, since_days_ago=0),
                  "paused": aggregate("paused", real_days_ago=30), "silent": aggregate("silent", real_days_ago=400)}
    got = {s.id: (s.state, s.grade) for s in service_statuses(catalogue(TOML), aggregates, NOW)}
    assert got == {"ok": (State.OK, Grade.FRESH), "down": (State.DOWN, Grade.DUE),
                   "degraded": (State.DEGRADED, Grade.OVERDUE), "pending": (State.PENDING, Grade.FRESH),
                   "unmonitored": (State.UNMONITORED, Grade.UNKNOWN), "paused": (State.SUSPENDED, Grade.DELINQUENT),
                   "silent": (State.OK, Grade.FRESH)}


def test_before_any_update_the_first_success_is_the_baseline() -> None:
    (weekly,) = [s for s in service_statuses(catalogue(TOML), {"ok": aggregate("ok", real_days_ago=None,
                                                                               since_days_ago=9)}, NOW)
                 if s.id == "ok"]
    assert weekly.last_real_update_at is None and weekly.monitoring_since == NOW - timedelta(days=9)
    assert weekly.grade is Grade.DUE and weekly.deadline == NOW - timedelta(days=2)


def test_datasets_are_graded_against_their_own_frequency() -> None:
    records = [Record(key="fresh", modified_at=NOW - timedelta(days=2), frequency="щотижня"),
               Record(key="late", modified_at=NOW - timedelta(days=40), frequency="щомісяця"),
               Record(key="unknown-frequency", modified_at=NOW, frequency="коли-небудь"),
               Record(key="never-dated", frequency="щодня")]
    grades = {d.key: d.grade for d in dataset_statuses(records, NOW)}
    assert grades == {"fresh": Grade.FRESH, "late": Grade.DUE, "unknown-frequency": Grade.UNKNOWN,
                      "never-dated": Grade.UNKNOWN}
