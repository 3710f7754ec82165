"""Shared fixtures: real databases (SQLite always, PostgreSQL at 127.0.0.1:5432), local sites, catalogues."""

from __future__ import annotations

import os
import shutil
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.siteserver import Site

PG_ADMIN = os.environ.get("MONITOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SHARED = Path(__file__).resolve().parents[2] / "shared"


def require(condition: bool, reason: str) -> None:
    """Skip on a laptop that lacks a component; under CI=true a missing component is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_available() -> bool:
    return _pg_available()


@pytest.fixture
def pg_url(pg_available: bool) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    require(pg_available, f"PostgreSQL is not reachable at {PG_ADMIN}")
    import psycopg

    name = f"monitor_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    yield f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'monitor.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same store tests run on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.db'}"
    return request.getfixturevalue("pg_url")  # type: ignore[no-any-return]


@pytest.fixture
def site() -> Iterator[Site]:
    with Site() as s:
        yield s


def catalogue_toml(pages: list[str], *, db: str = "sqlite:///monitor.db", regulation: str = "weekly",
                   extra_settings: str = "", service_id: str = "portal") -> str:
    page_tables = "".join(
        f'\n  [[services.pages]]\n  url = "{url}"\n  allow_private = true\n' for url in pages)
    return textwrap.dedent(f"""\
        [settings]
        database_url = "{db}"
        user_agent = "test-monitor (+mailto:it@example.org)"
        per_host_delay = "0.001s"
        timeout = "10s"
        retries = 1
        {extra_settings}

        [departments.it-sector]
        name = "Сектор інформаційних технологій та автоматизованих систем"

        [[services]]
        id = "{service_id}"
        name = "SMART-ПОРТАЛ"
        department = "Сектор інформаційних технологій та автоматизованих систем"
        regulation = "{regulation}"
        """) + page_tables


@pytest.fixture
def write_catalogue(tmp_path: Path):  # type: ignore[no-untyped-def]
    def write(text: str, name: str = "targets.toml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    corpus = SHARED / "corpus"
    require(corpus.is_dir(), f"the shared corpus is not at {corpus}")
    return corpus


def which(binary: str) -> str:
    path = shutil.which(binary)
    require(path is not None, f"{binary} is not installed")
    assert path is not None
    return path
