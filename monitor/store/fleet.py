"""HostPace over PostgreSQL: the fleet's politeness. Every worker asks before a request to a host; the answer
comes from rows locked for the moment of the question, on the database's clock (one clock for every machine).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from monitor.ports import LastCheck
from monitor.store import models as m
from monitor.store.common import table, translate, utc


class SqlFleet:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def take_turn(self, host: str, holder: str, *, concurrency: int, delay_s: float, lease_s: float) -> float:
        """0 and a lease held by `holder` when a request to the host may start now; otherwise the seconds to
        wait before asking again: the pause still to run, or -1 when every slot is out. One round trip
        (`monitor_take_turn`, migration 0010)."""
        with translate("cannot take a turn at the host"), self._autocommit() as conn:
            return float(conn.execute(text("SELECT monitor_take_turn(:host, :holder, :concurrency, :delay, :lease)"),
                                      {"host": host, "holder": holder, "concurrency": concurrency,
                                       "delay": delay_s, "lease": lease_s}).scalar_one())

    def give_back(self, host: str, holder: str, *, delay_s: float) -> None:
        """The request is over: its slot is free, and the next request to the host starts `delay_s` after this
        moment at the earliest (a pause between requests as the server sees them, whatever their length)."""
        with translate("cannot give the turn back"), self._autocommit() as conn:
            conn.execute(text("WITH gone AS (DELETE FROM host_leases WHERE holder = :holder) "
                              "UPDATE host_pace SET next_start = greatest(next_start, clock_timestamp() "
                              "+ make_interval(secs => :delay)) WHERE host = :host"),
                         {"holder": holder, "host": host, "delay": delay_s})

    def host_wait(self, host: str) -> float:
        """Seconds until a request to the host may start (its pause, or a Retry-After); 0 if it may now."""
        with translate("cannot read the host's pace"), self._autocommit() as conn:
            wait = conn.execute(text("SELECT extract(epoch FROM next_start - clock_timestamp()) FROM host_pace "
                                     "WHERE host = :host"), {"host": host}).scalar()
            return max(0.0, float(wait)) if wait is not None else 0.0

    def _autocommit(self) -> Connection:
        """A connection whose every statement is its own transaction: one round trip, no BEGIN and COMMIT."""
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def defer_host(self, host: str, seconds: float) -> None:
        """The server asked us to wait (Retry-After): no worker starts a request to it before then."""
        P = table(m.HostPace)
        with translate("cannot pause the host"), self.engine.begin() as conn:
            later = func.clock_timestamp() + timedelta(seconds=seconds)
            conn.execute(pg_insert(P).values(host=host, next_start=later).on_conflict_do_update(
                index_elements=["host"], set_={"next_start": func.greatest(P.c.next_start, later)}))

    def last_checks(self) -> list[LastCheck]:
        """Each live page's last check (any outcome): what dispatch decides due pages from."""
        P = table(m.Page)
        q = select(P.c.id, P.c.last_check_at).where(P.c.retired_at.is_(None))
        with self.engine.connect() as conn:
            return [LastCheck(page_id=pid, at=utc(at) if at else None) for pid, at in conn.execute(q)]
