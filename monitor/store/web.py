"""WebStore over SQLAlchemy: the web interface's accounts, and what people did through it (chained)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine, insert, select, update

from monitor.ports import ActionRow, UserRow
from monitor.store import chain
from monitor.store import models as m
from monitor.store.common import table, translate, utc


class SqlWeb:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put_user(self, name: str, *, role: str, password_hash: str, now: datetime) -> bool:
        """Add the account, or set its role and password (enabling it). Returns True when it is new."""
        U = table(m.User)
        with translate("cannot store the account"), self.engine.begin() as conn:
            found = conn.execute(update(U).where(U.c.name == name).values(
                role=role, password_hash=password_hash, disabled=False)).rowcount
            if not found:
                conn.execute(insert(U).values(name=name, role=role, password_hash=password_hash, created_at=now,
                                              disabled=False))
            return not found

    def disable_user(self, name: str) -> bool:
        U = table(m.User)
        with translate("cannot disable the account"), self.engine.begin() as conn:
            return bool(conn.execute(update(U).where(U.c.name == name).values(disabled=True)).rowcount)

    def user(self, name: str) -> UserRow | None:
        U = table(m.User)
        with self.engine.connect() as conn:
            row = conn.execute(select(U.c.name, U.c.role, U.c.password_hash, U.c.disabled)
                               .where(U.c.name == name)).first()
        return UserRow(**row._asdict()) if row else None

    def users(self) -> list[UserRow]:
        U = table(m.User)
        with self.engine.connect() as conn:
            rows = conn.execute(select(U.c.name, U.c.role, U.c.password_hash, U.c.disabled).order_by(U.c.name))
            return [UserRow(**r._asdict()) for r in rows]

    def add_action(self, *, who: str, action: str, target: str, detail: str, now: datetime) -> None:
        rows = [dict(at=now, who=who[:64], action=action[:32], target=target[:64], detail=detail)]
        with translate("cannot record the action"), self.engine.begin() as conn:
            chain.stamp(conn, "web_actions", rows)
            conn.execute(insert(table(m.WebAction)), rows)

    def actions(self, *, targets: Iterable[str] | None = None, limit: int = 200) -> list[ActionRow]:
        A = table(m.WebAction)
        q = select(A.c.id, A.c.at, A.c.who, A.c.action, A.c.target, A.c.detail).order_by(A.c.id.desc()).limit(limit)
        if targets is not None:
            q = q.where(A.c.target.in_(list(targets)))
        with self.engine.connect() as conn:
            return [ActionRow(**{**r._asdict(), "at": utc(r.at)}) for r in conn.execute(q)]
