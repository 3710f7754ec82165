"""Every shell block of the README and of docs/ runs, as a reader would type it, and exits as the block says.

The convention (docs/development.md, "The docs are tested"):

- Every ```sh, ```bash and ```console block runs with ``bash -e -o pipefail`` (a ``console`` block: only its
  ``$ `` lines, with their ``\\`` continuations). The blocks of one file run in order in one scratch checkout,
  so a later block sees what an earlier one made (an account, a key, an imported file).
- An HTML comment on the line before the fence changes that:
  ``<!-- doctest: skip REASON -->``  not run here, for the reason given (installs, systemd, docker...);
  ``<!-- doctest: exit=N -->``       the block is expected to stop with exit status N;
  ``<!-- doctest: stop-after=S -->`` a command that runs until stopped: SIGINT after S seconds, then exit 0;
  ``<!-- doctest: not-fetched -->``  the addresses in the block are written into a file, never contacted.
  Several go in one comment, separated by spaces (``skip`` takes the rest of the comment as its reason).
- The scratch checkout (a temporary directory) links the checkout's `.venv`, `alerts/`, `grafana/`, `deploy/`,
  `migrations/`, `monitor/` and `tests/`, and holds a copy of `targets.toml` whose SMART portal page is a site on
  127.0.0.1 (already checked twice, with one real update between), `metrics_listen` and `web_listen` on free
  ports, and the example files the docs name: `before.html`, `after.html`, `responses.csv`,
  `responses-en.csv`. `PATH` starts with `.venv/bin`; no `MONITOR_*` variable is inherited.
- No block may fetch anything but 127.0.0.1: a runnable block naming another host fails unless it is marked
  ``not-fetched`` (a host given by a shell variable, ``http://$listen/``, is one the block read from the scratch
  catalogue).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import free_port, html
from tests.siteserver import Site, page

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = (".venv", "alerts", "grafana", "deploy", "migrations", "monitor", "tests", "pyproject.toml")
FENCE = re.compile(r"^```(sh|bash|console)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
DIRECTIVE = re.compile(r"<!--\s*doctest:\s*((?:(?!-->).)*?)\s*-->\s*\Z", re.S)
URL = re.compile(r"\b[a-z][a-z0-9+.-]*://(\[[^\]]*\]|[^/\s:'\"`]+)", re.I)
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
BLOCK_LIMIT_S = 180.0


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    code: str
    skip: str | None = None
    exit: int = 0
    stop_after: float | None = None
    not_fetched: bool = False

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def script(self) -> str:
        if self.lang != "console":
            return self.code
        lines, going = [], False
        for line in self.code.splitlines():
            if line.startswith("$ ") or going:
                lines.append(line[2:] if line.startswith("$ ") and not going else line)
                going = line.rstrip().endswith("\\")
        return "\n".join(lines) + "\n"


def parse_directive(text: str, where: str) -> dict[str, object]:
    if text.startswith("skip"):
        reason = text[4:].strip(" :—-")
        assert reason, f"{where}: `doctest: skip` needs its reason"
        return {"skip": reason}
    found: dict[str, object] = {}
    for token in text.split():
        key, _, value = token.partition("=")
        if key == "exit":
            found["exit"] = int(value)
        elif key == "stop-after":
            found["stop_after"] = float(value.removesuffix("s"))
        elif key == "not-fetched":
            found["not_fetched"] = True
        else:
            raise AssertionError(f"{where}: unknown doctest directive {token!r}")
    return found


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        where = f"{path.relative_to(ROOT)}:{line}"
        before = DIRECTIVE.search(text[max(0, m.start() - 400):m.start()])
        options = parse_directive(before.group(1), where) if before else {}
        found.append(Block(path, line, m.group(1), m.group(2), **options))  # type: ignore[arg-type]
    return found


def test_the_convention_is_read() -> None:
    """The parser sees every block of the docs, with its directive; a skip always says why, and skips stay few
    (raise the bound only for a block that truly cannot run here: the ninth starts systemd units of workers)."""
    every = [b for p in DOCS for b in blocks(p)]
    skipped = [f"{b.where}: {b.skip}" for b in every if b.skip]
    assert len(every) - len(skipped) >= 20
    assert all(b.skip is None or len(b.skip) > 10 for b in every)
    assert len(skipped) <= 9, "\n".join(skipped)
    console = Block(ROOT / "README.md", 1, "console", "$ monitor status \\\n    --json\nout\n$ true\n")
    assert console.script() == "monitor status \\\n    --json\ntrue\n"


# --- the scratch checkout -----------------------------------------------------------------------------


def days_ago(n: int) -> datetime:
    return datetime.now() - timedelta(days=n)


def responses_csv() -> str:
    """A Ukrainian Forms export: two reports on the SMART portal, dotted dates (always day first)."""
    rows = ["Позначка часу,Адреса електронної пошти,Назва вебсервісу,Дата оновлення,Що оновлено,Хто оновив"]
    for n, what in ((2, "Новини міста"), (1, "Розклад прийому")):
        t = days_ago(n)
        rows.append(f"{t:%d.%m.%Y} 17:30:00,it@example.org,SMART-ПОРТАЛ,{t:%d.%m.%Y},{what},Петренко О.")
    return "\n".join(rows) + "\n"


def responses_en_csv() -> str:
    """An en-US export whose slashed dates cannot tell their order (every day and month at most 12)."""
    return ("Timestamp,Email Address,Назва вебсервісу,Дата оновлення,Що оновлено,Хто оновив\n"
            "11/2/2026 9:15:02,,SMART-ПОРТАЛ,11/2/2026,Новини,Петренко О.\n"
            "11/9/2026 17:40:11,,SMART-ПОРТАЛ,11/9/2026,Оголошення,Петренко О.\n")


def scratch_catalogue(site_url: str) -> str:
    text = (ROOT / "targets.toml").read_text(encoding="utf-8")
    text = text.replace('url = "https://pokrovsk-rada.gov.ua/uk"', f'url = "{site_url}"\n  allow_private = true')
    assert site_url in text, "targets.toml no longer lists the SMART portal's page as expected"
    settings = (f'metrics_listen = "127.0.0.1:{free_port()}"\nweb_listen = "127.0.0.1:{free_port()}"\n'
                'per_host_delay = "0.01s"\ncalibration_delay = "0.1s"\n')
    text = re.sub(r"^(metrics_listen|web_listen|per_host_delay|calibration_delay) = .*\n", "", text, flags=re.M)
    return text.replace("[settings]\n", "[settings]\n" + settings, 1)


def environ(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_") and k != "VIRTUAL_ENV"}
    env.update(PATH=f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}", HOME=str(home),
               LANG="C.UTF-8", COLUMNS="160", NO_COLOR="1", TERM="dumb")
    return env


@dataclass
class Scratch:
    dir: Path
    env: dict[str, str]
    site: Site

    def run(self, script: str, stop_after: float | None = None) -> tuple[int, str, float]:
        """Run a script in its own session; what it leaves running (a server sent to the background) is killed
        when it ends. Output goes to a file: a process left behind must not hold a pipe open."""
        started = time.monotonic()
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out:
            proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=self.dir, env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            note = ""
            try:
                proc.wait(timeout=stop_after or BLOCK_LIMIT_S)
            except subprocess.TimeoutExpired:
                if stop_after:
                    os.killpg(proc.pid, signal.SIGINT)
                else:
                    note = f"\n[killed: still running after {BLOCK_LIMIT_S:g} s]"
                try:
                    proc.wait(timeout=60 if stop_after else 0.1)
                except subprocess.TimeoutExpired:
                    note = note or "\n[did not stop within 60 s of SIGINT]"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
            out.seek(0)
            return code, out.read() + note, time.monotonic() - started


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scratch]:
    """The scratch checkout as every file starts from it (built once: its two checks cost seconds)."""
    root = tmp_path_factory.mktemp("scratch")
    with Site() as site:
        site.routes["/uk"] = page(html("Сесія міської ради", "Графік прийому громадян"))
        for name in LINKED:
            (root / name).symlink_to(ROOT / name)
        (root / "home").mkdir()
        (root / "targets.toml").write_text(scratch_catalogue(site.url("/uk")), encoding="utf-8")
        (root / "before.html").write_bytes(html("Сесія міської ради", "Графік прийому громадян"))
        (root / "after.html").write_bytes(html("Сесія міської ради", "Графік прийому громадян",
                                               "Оголошено конкурс на посаду директора"))
        (root / "responses.csv").write_text(responses_csv(), encoding="utf-8")
        (root / "responses-en.csv").write_text(responses_en_csv(), encoding="utf-8")
        box = Scratch(root, environ(root / "home"), site)
        # a history to read: a first check, a real update on the page, a second check
        for step in range(2):
            if step:
                site.routes["/uk"] = page(html("Сесія міської ради", "Графік прийому громадян",
                                               "Оголошено конкурс на посаду директора"))
            code, out, _ = box.run("monitor check smart-portal")
            assert code == 0, f"the scratch checkout: `monitor check smart-portal` exited {code}:\n{out}"
        yield box


@pytest.fixture
def scratch(template: Scratch, tmp_path: Path) -> Scratch:
    """A fresh copy of the template for one file's blocks (links stay links; the database is copied)."""
    box = tmp_path / "checkout"
    shutil.copytree(template.dir, box, symlinks=True)
    return Scratch(box, environ(box / "home"), template.site)


@pytest.mark.parametrize("path", [p for p in DOCS if any(not b.skip for b in blocks(p))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shell_block_runs(path: Path, scratch: Scratch) -> None:
    failures = []
    for block in blocks(path):
        if block.skip:
            continue
        if not block.not_fetched:
            hosts = {h for h in URL.findall(block.code) if h.lower() not in LOCAL_HOSTS and not h.startswith("$")}
            if hosts:
                failures.append(f"{block.where}: names {', '.join(sorted(hosts))}: a block may fetch only "
                                "127.0.0.1 (or say `<!-- doctest: not-fetched -->`, or skip with the reason)")
                continue
        code, out, took = scratch.run(block.script(), block.stop_after)
        if code != block.exit:
            failures.append(f"{block.where}: exit {code}, expected {block.exit} ({took:.1f} s)\n"
                            f"--- block ---\n{block.code}--- output ---\n{out[-6000:]}")
    assert not failures, "\n\n".join(failures)
