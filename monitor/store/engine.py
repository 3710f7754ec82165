"""Engines for SQLite (a file, WAL, foreign keys on) and PostgreSQL (psycopg 3), and the migrations."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from monitor.errors import SchemaOutdated, StoreInUse, StoreReadOnly

logger = logging.getLogger(__name__)


def normalise_url(url: str) -> str:
    """postgresql:// means psycopg 3 here (SQLAlchemy's default would be psycopg2)."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = make_url(url).database
        file = sqlite_path(url)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, poolclass=NullPool if not path else None,
                               **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, **kwargs)


def migrations_dir() -> Path:
    """migrations/ in a source checkout, monitor/_migrations in an installed wheel."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "migrations", here / "_migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError("the Alembic migrations folder is missing from this installation")


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision(engine: Engine) -> str:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to `revision` (idempotent)."""
    command.upgrade(alembic_config(engine), revision)


def ensure_current(engine: Engine, *, auto_upgrade: bool) -> None:
    """Upgrade (SQLite, by default) or refuse to run on an outdated schema. Two processes starting on one new
    SQLite file take turns: the second finds the schema the first made."""
    head = head_revision(engine)
    if current_revision(engine) == head:
        return
    with _file_lock(sqlite_path(engine), ".migrate.lock", wait=True):
        current = current_revision(engine)
        if current == head:
            return
        if auto_upgrade:
            logger.info("upgrading database schema from %s to %s", current or "nothing", head)
            upgrade(engine)
            return
    raise SchemaOutdated(current, head)


def sqlite_path(engine: Engine | str) -> Path | None:
    """The file of a SQLite database (None for PostgreSQL or an in-memory database)."""
    url = make_url(engine.url if isinstance(engine, Engine) else normalise_url(engine))
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:"):  # a URI filename (?mode=ro&uri=true): its path, without the scheme
        path = url.database.removeprefix("file:").split("?", 1)[0]
        return None if not path or "mode=memory" in url.database else Path(path)
    return Path(url.database)


def check_writable(url: str) -> None:
    """Raise StoreReadOnly when a SQLite file (or its folder, where SQLite keeps its journal) cannot be written:
    a command that writes would otherwise wait on the database and store nothing."""
    path = sqlite_path(url)
    if path is None:
        return
    folder = path.resolve().parent
    if path.exists() and not os.access(path, os.W_OK):
        raise StoreReadOnly(f"the database file {path} is read-only")
    if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise StoreReadOnly(f"the folder {folder} of the database is read-only (SQLite writes its journal there)")


@contextmanager
def _file_lock(path: Path | None, suffix: str, *, wait: bool) -> Iterator[None]:
    if path is None:
        yield
        return
    lock = path.with_name(path.name + suffix)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise StoreInUse(f"{path} is in use by another `monitor run` ({holder}): one monitor per SQLite file; "
                             "stop it, or use PostgreSQL for several") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def instance_lock(url: str) -> contextlib.AbstractContextManager[None]:
    """Held by `monitor run` for its whole life: a second one on the same SQLite file is refused at once."""
    return _file_lock(sqlite_path(url), ".lock", wait=False)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
