"""The SQL store: the only place that imports SQLAlchemy. One engine, one object per interface of
monitor.ports (catalogue, checks, noise, reports, health, and the read models)."""

from __future__ import annotations

from sqlalchemy import Engine

from monitor.store.catalogue import SqlCatalogue
from monitor.store.checks import SqlChecks
from monitor.store.engine import ensure_current, is_sqlite, make_engine
from monitor.store.fleet import SqlFleet
from monitor.store.maintenance import SqlMaintenance
from monitor.store.noise import SqlNoise
from monitor.store.reads import SqlAudit, SqlFaults, SqlHealth, SqlHistory, SqlMetrics
from monitor.store.reports import SqlReports
from monitor.store.web import SqlWeb


class Store:
    """The monitor's database behind its interfaces; the composition root hands each part what it needs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.catalogue = SqlCatalogue(engine)
        self.checks = SqlChecks(engine)
        self.noise = SqlNoise(engine)
        self.reports = SqlReports(engine)
        self.health = SqlHealth(engine)
        self.metrics = SqlMetrics(engine)  # also the StatusReader
        self.audit = SqlAudit(engine)
        self.history = SqlHistory(engine)
        self.faults = SqlFaults(engine)
        self.maintenance = SqlMaintenance(engine)
        self.web = SqlWeb(engine)
        self.fleet = SqlFleet(engine)  # the procrastinate engine's (PostgreSQL only)

    @classmethod
    def open(cls, url: str, *, auto_upgrade: bool | None = None) -> Store:
        """Connect, and upgrade the schema (SQLite by default) or refuse an outdated one."""
        engine = make_engine(url)
        ensure_current(engine, auto_upgrade=is_sqlite(engine) if auto_upgrade is None else auto_upgrade)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()


__all__ = ["Store"]
