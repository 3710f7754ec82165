"""A real web archive on loopback for the tests: pywb (its `wayback` server and `wb-manager`), in its own
virtualenv (`make test` puts it in .venv/pywb: its dependencies are not the monitor's), serving collections
built from WARC files the tests write with warcio, as any crawler would."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from tests.conftest import require
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent


def pywb_bin(name: str) -> str:
    """wayback / wb-manager: $MONITOR_PYWB (its bin folder), .venv/pywb/bin, else the PATH."""
    for folder in (os.environ.get("MONITOR_PYWB", ""), str(ROOT / ".venv" / "pywb" / "bin")):
        if folder and (Path(folder) / name).exists():
            return str(Path(folder) / name)
    found = shutil.which(name)
    require(found is not None, f"pywb's {name} is not installed (make test puts it in .venv/pywb)")
    assert found is not None
    return found


def write_warc(path: Path, captures: Iterable[tuple[str, datetime, int, bytes]],
               content_type: str = "text/html; charset=utf-8") -> Path:
    """A gzipped WARC of response records: (url, when, status, body)."""
    with path.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for url, when, status, body in captures:
            reason = {200: "OK", 404: "Not Found", 301: "Moved Permanently", 503: "Service Unavailable"}[status]
            headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            if status == 301:
                headers.append(("Location", url + "/new"))
            record = writer.create_warc_record(
                url, "response", payload=io.BytesIO(body), length=len(body),
                http_headers=StatusAndHeaders(f"{status} {reason}", headers, protocol="HTTP/1.1"),
                warc_headers_dict={"WARC-Date": when.strftime("%Y-%m-%dT%H:%M:%SZ")})
            writer.write_record(record)
    return path



class Pywb:
    """`with Pywb(folder, {"coll": [warc, ...]}) as archive:` — archive.cdx("coll"), archive.replay("coll")."""

    def __init__(self, folder: Path, collections: dict[str, list[Path]]) -> None:
        self.folder, self.collections = folder, collections
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def add(self, collection: str, warc: Path) -> None:
        manager = pywb_bin("wb-manager")
        if not (self.folder / "collections" / collection).exists():
            subprocess.run([manager, "init", collection], cwd=self.folder, check=True, capture_output=True)
        subprocess.run([manager, "add", collection, str(warc)], cwd=self.folder, check=True, capture_output=True)

    def __enter__(self) -> Pywb:
        wayback = pywb_bin("wayback")
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, warcs in self.collections.items():
            for warc in warcs:
                self.add(name, warc)
        self.port = free_port()
        with (self.folder / "pywb.log").open("wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([wayback, "-p", str(self.port), "-b", "127.0.0.1"], cwd=self.folder,
                                         stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2):
                    break
            except OSError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.folder / "pywb.log").read_text()[-2000:]
                    raise RuntimeError(f"pywb did not start: {log}") from exc
                time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def cdx(self, collection: str) -> str:
        return f"http://127.0.0.1:{self.port}/{collection}/cdx"

    def replay(self, collection: str) -> str:
        return f"http://127.0.0.1:{self.port}/{collection}/"
