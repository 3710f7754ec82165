"""What every part of the SQL store shares: exception translation, blob packing, times and upserts."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Float, FromClause, Table, exists, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError

from monitor.domain import ChangeClass
from monitor.errors import StoreError, StoreReadOnly, StoreUnavailable
from monitor.store import models as m

CHANGE_CLASSES = tuple(c.value for c in ChangeClass if c.is_change)  # what the read models call a change
COMPRESS_LEVEL = 3
READ_ONLY_SIGNS = ("readonly database", "read-only", "disk is full", "disk full", "no space left",
                   "read-only transaction")  # HTML compresses about 5:1 at level 3, at a third of level 6's cost
SUCCESS = ("ok", "not_modified")


def pack(data: bytes) -> tuple[str, bytes]:
    return "zlib", zlib.compress(data, COMPRESS_LEVEL)


def unpack(codec: str, data: bytes) -> bytes:
    if codec == "zlib":
        return zlib.decompress(data)
    if codec == "none":
        return data
    raise StoreError(f"unknown blob codec {codec!r}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def translate(what: str) -> Iterator[None]:
    """SQLAlchemy's exceptions -> StoreUnavailable (worth retrying) or StoreError."""
    try:
        yield
    except (OperationalError, InterfaceError, DisconnectionError) as exc:
        text = str(exc).lower()
        if any(sign in text for sign in READ_ONLY_SIGNS):
            raise StoreReadOnly(f"{what}: the database takes no writes: {str(exc).splitlines()[0][:300]}") from exc
        raise StoreUnavailable(f"{what}: database unreachable: {type(exc).__name__}: {str(exc)[:300]}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"{what}: {type(exc).__name__}: {str(exc)[:300]}") from exc


def utc(value: datetime | str | None) -> datetime | None:
    """Aggregates bypass the column type: SQLite returns naive UTC (or text), PostgreSQL aware."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def epoch(engine: Engine | Connection, column: Any) -> Any:
    """A timestamp column as Unix seconds (a float), computed by the database."""
    if engine.dialect.name == "sqlite":
        # stored as naive UTC text; whole seconds plus the milliseconds (julianday would lose precision)
        return (func.cast(func.strftime("%s", column), Float) + func.cast(func.strftime("%f", column), Float)
                - func.cast(func.strftime("%S", column), Float))
    return func.date_part("epoch", column)  # double precision (extract() gives numeric: slow Decimals)


def table(model: type[m.Base]) -> Table:
    return cast(Table, model.__table__)


def upsert(conn: Connection, tbl: Table) -> Any:
    """INSERT ... ON CONFLICT for the dialect at hand."""
    return pg_insert(tbl) if conn.dialect.name == "postgresql" else sqlite_insert(tbl)


def insert_ignore(conn: Connection, tbl: Table, rows: list[dict[str, Any]], key: list[str]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on SQLite and PostgreSQL."""
    if rows:
        conn.execute(upsert(conn, tbl).on_conflict_do_nothing(index_elements=key), rows)


def current_change(changes: FromClause) -> Any:
    """A change record no later record supersedes (a correction made by a capture found later)."""
    later = changes.alias("later")
    return ~exists().where(later.c.supersedes == changes.c.id)


def blob(conn: Connection, sha: str) -> bytes | None:
    B = table(m.Blob)
    row = conn.execute(B.select().where(B.c.sha256 == sha)).first()
    return unpack(row.codec, row.data) if row else None
