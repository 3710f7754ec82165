"""Small builders shared by the tests."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.clock import VirtualClock as Clock
from monitor.config import parse_catalogue
from monitor.core import capture_of
from monitor.domain import Catalogue, FetchResult, Outcome, Validators
from monitor.store import Store
from monitor.store.engine import make_engine, upgrade

__all__ = ["Clock", "StubFetcher", "capture", "catalogue", "html", "open_store", "run_bounded"]


def catalogue(text: str) -> Catalogue:
    return parse_catalogue(tomllib.loads(text), environ={})


def open_store(url: str) -> Store:
    """A store whose schema the migrations built (as `monitor db upgrade` does)."""
    engine = make_engine(url)
    upgrade(engine)
    return Store(engine)


def capture(body: bytes, *, url: str = "https://city.example/uk", at: datetime | None = None) -> FetchResult:
    """A capture with this body (a live check's, or an archived one taken at `at`)."""
    return capture_of(body, url=url, content_type="text/html", charset="utf-8",
                      at=at or datetime(2026, 11, 2, 9, tzinfo=UTC))


def run_bounded(script: str, timeout_s: float, what: str) -> Any:
    """Run a Python script in a child process and return the JSON it prints. For the tests that prove a
    hostile input cannot stall the monitor: a regression fails at the timeout instead of hanging the suite."""
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout_s,
                              cwd=Path(__file__).resolve().parents[1], check=True)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{what} did not finish in {timeout_s:g} s") from None
    return json.loads(done.stdout)


@dataclass
class StubFetcher:
    """Serves scripted responses by URL, stamped with the injected clock (no network)."""

    clock: Clock
    pages: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    failures: dict[str, Outcome] = field(default_factory=dict)
    calls: list[tuple[str, Validators | None]] = field(default_factory=list)

    async def fetch(self, url: str, *, headers: tuple[tuple[str, str], ...] = (), timeout_s: float | None = None,
                    validators: Validators | None = None, allow_private: bool = False,
                    probe: bool = False, forward_headers: bool = False) -> FetchResult:
        self.calls.append((url, validators))
        if url in self.failures:
            return FetchResult(url=url, final_url=url, outcome=self.failures[url], started_at=self.clock.now(),
                               elapsed_s=0.01, error=f"scripted {self.failures[url].value}")
        status, body = self.pages.get(url, (404, b""))
        outcome = Outcome.OK if status == 200 else Outcome.HTTP_STATUS
        return FetchResult(url=url, final_url=url, outcome=outcome, started_at=self.clock.now(), elapsed_s=0.01,
                           status=status, body=body if status == 200 else None, content_type="text/html",
                           charset="utf-8")


def html(*items: str, title: str = "Новини Покровська", extra: str = "") -> bytes:
    """A portal-like page: header, nav, a main list of news items, a sidebar and a footer."""
    lis = "".join(f"<li><a href='/uk/articles/item/{i}'>{t}</a></li>" for i, t in enumerate(items, start=1))
    return (f"<!doctype html><html lang='uk'><head><meta charset='utf-8'><title>{title}</title></head><body>"
            "<header><a href='/uk'>Покровська міська рада</a><nav><a href='/uk/page/about'>Про місто</a>"
            "<a href='/uk/page/contacts'>Контакти</a></nav></header>"
            f"<main><h1>Новини міста</h1><ul class='news'>{lis}</ul>{extra}</main>"
            "<aside class='sidebar'><h3>Опитування</h3><p>Так — 51%</p></aside>"
            "<footer>© 2026 Покровська міська рада</footer></body></html>").encode()


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1 (for servers the tests start: uvicorn, pywb, Prometheus)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
