"""HostPace over PostgreSQL: the fleet's politeness. Every worker asks before a request to a host; the answer
comes from rows locked for the moment of the question, on the database's clock (one clock for every machine).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from monitor.ports import LastCheck
from monitor.store import models as m
from monitor.store.common import table, translate, utc


class SqlFleet:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def take_turn(self, host: str, holder: str, *, concurrency: int, delay_s: float, lease_s: float) -> float:
        """0 and a lease held by `holder` when a request to the host may start now; otherwise the seconds to
        wait before asking again (the pause still to run, or a short while when every slot is taken)."""
        P, L = table(m.HostPace), table(m.HostLease)
        with translate("cannot take a turn at the host"), self.engine.begin() as conn:
            conn.execute(pg_insert(P).values(host=host, next_start=func.clock_timestamp())
                         .on_conflict_do_nothing(index_elements=["host"]))
            next_start = conn.execute(select(P.c.next_start).where(P.c.host == host).with_for_update()).scalar_one()
            now = conn.execute(select(func.clock_timestamp())).scalar_one()
            busy = conn.execute(select(func.count()).select_from(L).where(L.c.host == host,
                                                                         L.c.expires_at > now)).scalar_one()
            if busy >= concurrency:
                return max(0.05, min(delay_s, 0.5))
            wait = float((next_start - now).total_seconds())
            if wait > 0:
                return wait
            conn.execute(delete(L).where(L.c.host == host, L.c.expires_at <= now))  # left by killed workers
            conn.execute(pg_insert(L).values(holder=holder, host=host, expires_at=now + timedelta(seconds=lease_s)))
            conn.execute(update(P).where(P.c.host == host).values(next_start=now + timedelta(seconds=delay_s)))
            return 0.0

    def give_back(self, host: str, holder: str, *, delay_s: float) -> None:
        """The request is over: its slot is free, and the next request to the host starts `delay_s` after this
        moment at the earliest (a pause between requests as the server sees them, whatever their length)."""
        P, L = table(m.HostPace), table(m.HostLease)
        with translate("cannot give the turn back"), self.engine.begin() as conn:
            later = func.clock_timestamp() + timedelta(seconds=delay_s)
            conn.execute(update(P).where(P.c.host == host).values(next_start=func.greatest(P.c.next_start, later)))
            conn.execute(delete(L).where(L.c.holder == holder))

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
