"""What the commands print: tables that fit the terminal (80 and 200 columns; cells wrap, never cut; `--wide` for
every column at full width) and one JSON document from every command that prints results."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import shutil
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from monitor import cli
from monitor.cli import main
from monitor.domain import Outcome
from monitor.render import Column, fit
from tests.conftest import catalogue_toml
from tests.helpers import Clock, StubFetcher, catalogue, html, open_store
from tests.siteserver import Site, page

# ids and addresses long enough that a table made for 120 columns used to cut them
PAGES = {
    "participatory-budget-council": "https://budget.city.example/uk/participatory/projects/2026/voting-results"
                                    "?sort=date&page=1",
    "veterans-help-center": "https://veterans.city.example/uk/news",
    "transparent-budget": "https://city.example/uk/open/budget/transparent/expenses/monthly-report-for-the-quarter",
}
DOWN = "veterans-help-center"  # its page times out for a day: a fault
AUDIT = ["--from", "2026-10-05", "--to", "2026-10-27"]
WIDTHS = [80, 200]
# commands that print no results to read: servers, and the documents and configuration files they write (Markdown,
# YAML) which are their own format
NO_JSON = {"run": "a server", "serve": "a server", "exporter": "a server", "worker": "runs jobs until stopped",
           "targets keys": "Markdown",
           "alerting": "Prometheus and Alertmanager files (YAML) and runbooks (Markdown)"}


def commands(group: click.Group = main, path: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def options(command: click.Command) -> set[str]:
    return {opt for p in command.params if isinstance(p, click.Option) for opt in p.opts}


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three weeks of three services checked every 6 hours (real updates, date bumps, an outage of a day), and
    two self-reports, one of them for a service nobody knows."""
    tmp = tmp_path_factory.mktemp("output")
    db = f"sqlite:///{tmp / 'm.db'}"
    services = "".join(textwrap.dedent(f"""
        [[services]]
        id = "{sid}"
        name = "Сервіс {sid} з довгою назвою для перевірки перенесення"
        department = "Сектор інформаційних технологій та автоматизованих систем"
        regulation = "weekly"
          [[services.pages]]
          url = "{url}"
        """) for sid, url in PAGES.items())
    text = textwrap.dedent(f"""\
        [settings]
        database_url = "{db}"
        user_agent = "test-monitor (+mailto:it@example.org)"

        [departments.it-sector]
        name = "Сектор інформаційних технологій та автоматизованих систем"
        """) + services
    targets = tmp / "targets.toml"
    targets.write_text(text, encoding="utf-8")
    store = open_store(db)
    clock = Clock(datetime(2026, 10, 5, 6, tzinfo=UTC))
    fetcher = StubFetcher(clock)
    from monitor.runner import Runner

    runner = Runner(catalogue(text), store, fetcher, clock=clock)
    runner.prepare()

    async def run() -> None:
        writer = asyncio.create_task(runner.recorder.run())
        for step in range(4 * 21):
            for n, url in enumerate(PAGES.values()):
                items = ["Засідання виконкому", *(f"Новина {k}" for k in range(step // (10 + 7 * n)))]
                fetcher.pages[url] = (200, html(*items, extra=f"<p>Оновлено: {step // 10 + 5:02d}.10.2026</p>"))
            fetcher.failures = {PAGES[DOWN]: Outcome.TIMEOUT} if 30 <= step < 34 else {}
            await runner.round(list(runner.targets.values()))
            clock.advance(hours=6)
        await runner.recorder.drain(10)
        writer.cancel()

    asyncio.run(run())
    store.close()
    reports = tmp / "reports.csv"
    reports.write_text("Timestamp,Назва веб-сервісу,Дата оновлення,Що оновлено\n"
                       "10/10/2026 12:00:00,transparent-budget,10/10/2026,Звіт про видатки бюджету за вересень\n"
                       "10/21/2026 12:00:00,Портал іншого міста з дуже довгою назвою,10/21/2026,Новини\n",
                       encoding="utf-8")
    done = invoke(targets, 120, "reports", "import", str(reports), "--skip-bad", "--json")
    assert done.exit_code == 0, done.output
    imported = json.loads(done.stdout)
    assert imported["read"] == 1 and imported["new"] == 1 and imported["rejected"] == 1
    assert "Портал іншого міста" in imported["rejected_rows"][0] and imported["date_order"] == "mdy"
    return targets


def invoke(targets: Path, width: int, *args: str, stdin: str | None = None) -> Result:
    env = {"COLUMNS": str(width), "FORCE_COLOR": None, "TTY_COMPATIBLE": None}
    return CliRunner().invoke(main, ["-t", str(targets), *args], env=env, input=stdin, catch_exceptions=False)


def table_columns(out: str) -> list[str]:
    """Each column of a printed table, its cells top to bottom run together without spaces: a value wrapped
    over lines reads whole again."""
    columns: list[str] = []
    for line in out.splitlines():
        if line.startswith("│"):
            cells = line[1:].rstrip().removesuffix("│").split("│")
            columns += [""] * (len(cells) - len(columns))
            for i, cell in enumerate(cells):
                columns[i] += re.sub(r"\s+", "", cell)
    return columns


def assert_fits(out: str, width: int, whole: list[str]) -> None:
    assert out.strip(), "nothing printed"
    longest = max(out.splitlines(), key=len)
    assert len(longest) <= width, f"a line of {len(longest)} columns at {width}:\n{out}"
    assert "…" not in out, f"a cell was cut:\n{out}"
    columns = table_columns(out)
    for value in whole:
        assert any(value in column for column in columns), f"{value!r} is not whole in:\n{out}"


# --- tables that fit ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
def test_status_history_and_noise_fit_the_terminal(history: Path, width: int) -> None:
    status = invoke(history, width, "status")
    assert status.exit_code == 0, status.output
    assert_fits(status.stdout, width, list(PAGES))
    changes = invoke(history, width, "history", "participatory-budget-council", "--limit", "5")
    assert changes.exit_code == 0
    assert_fits(changes.stdout, width, [PAGES["participatory-budget-council"]])
    noise = invoke(history, width, "noise", "transparent-budget")
    assert noise.exit_code == 0 and noise.stdout.count("\n") >= 3
    assert len(max(noise.stdout.splitlines(), key=len)) <= width


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("lang", ["uk", "en"])
def test_every_audit_view_fits_the_terminal(history: Path, width: int, lang: str) -> None:
    for view in ("periods", "reports", "updates", "departments"):
        done = invoke(history, width, "audit", *AUDIT, "--view", view, "--lang", lang)
        assert done.exit_code in (0, 1), done.output
        ids = ["it-sector"] if view == "departments" else ["transparent-budget"] if view == "reports" else list(PAGES)
        assert_fits(done.stdout, width, ids)
    reports = invoke(history, width, "audit", *AUDIT, "--view", "reports", "--lang", lang).stdout
    assert_fits(reports, width, ["reports.csv:3", "Порталіншогоміста"])  # the rejected row, and why


@pytest.mark.parametrize("width", WIDTHS)
def test_faults_fit_the_terminal_with_the_page_address_whole(history: Path, width: int) -> None:
    done = invoke(history, width, "faults", *AUDIT)
    assert done.exit_code == 0, done.output
    assert_fits(done.stdout, width, [DOWN, PAGES[DOWN], "timeout"])
    summary = invoke(history, width, "faults", *AUDIT, "--view", "summary", "--lang", "en")
    assert_fits(summary.stdout, width, list(PAGES))


def test_a_narrow_terminal_stacks_columns_and_says_what_it_left_out(history: Path) -> None:
    wide = invoke(history, 200, "audit", *AUDIT, "--view", "departments").stdout
    narrow = invoke(history, 80, "audit", *AUDIT, "--view", "departments").stdout
    assert "Докладно" not in wide and "Докладно" in narrow  # the counts that do not fit, as "name: value" lines
    assert "Без звіту: 15" in narrow
    status = invoke(history, 80, "status").stdout
    assert "left out at this width: name (--wide shows every column)" in status
    summary = invoke(history, 120, "faults", *AUDIT, "--view", "summary").stdout  # no certificate: nothing to stack
    assert "не вміщено за цієї ширини: Сертифікат TLS до (--wide показує всі стовпці)" in summary


@pytest.mark.parametrize("args", [("status",), ("history", "transparent-budget"), ("faults", *AUDIT),
                                  ("audit", *AUDIT, "--view", "updates"), ("audit", *AUDIT, "--view", "reports")],
                         ids=["status", "history", "faults", "audit-updates", "audit-reports"])
def test_wide_prints_every_column_at_full_width_whatever_the_terminal(history: Path, args: tuple[str, ...]) -> None:
    done = invoke(history, 80, *args, "--wide")
    out = done.stdout
    assert "…" not in out and "details" not in out and "Докладно" not in out
    assert len(max(out.splitlines(), key=len)) > 80  # wider than the terminal: its own width
    rows = [line for line in out.splitlines() if line.startswith("│")]
    data = json.loads(invoke(history, 80, *args, "--json").stdout)
    view = args[-1] if "--view" in args else "faults"
    records = data["services"] if args[0] == "status" else data if isinstance(data, list) else data[view]
    assert len(rows) == len(records) > 0, f"not a line a row:\n{out}"  # nothing wrapped
    if args[0] == "status":
        assert all(any(sid in line for line in rows) for sid in PAGES)
        assert "Сервіс transparent-budget з довгою назвою для перевірки перенесення" in out  # the name column too
    if args[0] == "audit":  # every column of the view, not only those a terminal has room for
        assert ("Сторінка" in out and "Доказ (SHA-256)" in out) if "updates" in args else "Що оновлено" in out


def test_check_fits_the_terminal_and_never_cuts_the_reason(site: Site, tmp_path: Path) -> None:
    path = "/uk/news/archive/2026/very/long/path/of/a/page/that/does/not/exist"
    site.routes["/uk"] = page(html("Новина"))
    site.routes[path] = page("нема", status=404)
    cat = tmp_path / "t.toml"
    cat.write_text(catalogue_toml([site.url("/uk"), site.url(path)], db=f"sqlite:///{tmp_path / 'm.db'}",
                                  service_id="participatory-budget-council"), encoding="utf-8")
    for width in WIDTHS:
        done = invoke(cat, width, "check")
        assert done.exit_code == 1
        assert_fits(done.stdout, width, ["participatory-budget-council", site.url(path), "http_status"])


def test_the_layout_never_makes_a_cell_narrower_than_its_unwrappable_value() -> None:
    columns = [Column(header="id"), Column(header="address", wrap=True), Column(header="when", stack=1),
               Column(header="note", wrap=True, stack=0)]
    rows = [["service-with-a-long-id", "https://city.example/" + "a" * 60, "2026-11-02 09:00", "word " * 30]]
    for width in (40, 60, 80, 120, 200):
        layout = fit(columns, rows, width)
        assert layout.total <= width
        shown = dict(zip(layout.shown, layout.widths, strict=True))
        if width >= 60:
            assert shown[0] >= len("service-with-a-long-id")
        if 2 in shown:
            assert shown[2] >= len("2026-11-02 09:00")
    assert fit(columns, rows, 200).stacked == () and fit(columns, rows, 60).stacked == (2, 3)
    full = fit(columns, rows, None)
    assert full.widths == (22, 81, 16, 150)
    blank = [[*rows[0][:3], ""]]  # a column that leaves with nothing in it is left out, not stacked
    assert fit(columns, blank, 60).stacked == (2,) and fit(columns, blank, 60).dropped == (3,)


def test_output_that_is_no_terminal_is_laid_out_for_columns_or_120(history: Path) -> None:
    unset = CliRunner().invoke(main, ["-t", str(history), "faults", *AUDIT, "--view", "summary"],
                               env={"COLUMNS": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None})
    assert_fits(unset.stdout, 120, list(PAGES))
    assert len(max(unset.stdout.splitlines(), key=len)) > 80


# --- JSON -----------------------------------------------------------------------------------------------------


def test_every_command_that_prints_results_has_json_and_every_table_has_wide() -> None:
    """A new command fails here until it has --json (or says above why it prints nothing to read)."""
    found = dict(commands())
    assert {"status", "audit", "faults", "history", "check", "users list", "backfill"} <= set(found)
    for name, command in found.items():
        if name in NO_JSON or name.split()[0] in NO_JSON:
            continue
        assert "--json" in options(command), f"`monitor {name}` has no --json"
        source = inspect.getsource(command.callback)  # type: ignore[arg-type]
        if "print_table(" in source or "_emit(" in source:
            assert "--wide" in options(command), f"`monitor {name}` prints a table without --wide"
    assert inspect.getsource(cli).count("Table(") == 1, "a table printed outside print_table"


def test_json_of_the_reading_commands(history: Path) -> None:
    def doc(*args: str, code: int = 0) -> object:
        done = invoke(history, 80, *args, "--json")
        assert done.exit_code == code, done.output
        return json.loads(done.stdout)

    status = doc("status")
    assert isinstance(status, dict) and {s["id"] for s in status["services"]} == set(PAGES)
    assert all(s["last_check_at"].endswith("+00:00") for s in status["services"])
    changes = doc("history", "transparent-budget")
    assert isinstance(changes, list) and {c["page_url"] for c in changes} == {PAGES["transparent-budget"]}
    newest = changes[0]
    change = doc("diff", "transparent-budget")
    assert isinstance(change, dict) and change["id"] == newest["id"] and change["page_url"] == newest["page_url"]
    assert change["detected_at"] == newest["detected_at"] and change["detected_at"].endswith("+00:00")
    assert change["class"] == newest["class"] and "diff" in change["evidence"]
    audit = doc("audit", *AUDIT)
    same = json.loads(invoke(history, 80, "audit", *AUDIT, "--format", "json").stdout)
    assert isinstance(audit, dict) and {**audit, "generated_at": ""} == {**same, "generated_at": ""}
    assert {p["service"] for p in audit["periods"]} == set(PAGES)
    faults = doc("faults", *AUDIT)
    assert isinstance(faults, dict) and [f["page"] for f in faults["faults"]] == [PAGES[DOWN]]
    assert invoke(history, 80, "faults", *AUDIT, "--json", "--format", "csv").exit_code == 2
    assert doc("noise", "transparent-budget") == [] or isinstance(doc("noise", "transparent-budget"), list)
    assert doc("datasets", "transparent-budget") == []
    checked = doc("targets", "check")
    assert checked == {"file": str(history), "valid": True, "services": 3, "pages": 3, "unmonitored": [],
                       "suspended": []}
    verified = doc("verify")
    assert isinstance(verified, dict) and verified["intact"] is True and verified["breaks"] == []
    assert {c["chain"] for c in verified["chains"]} >= {"changes", "checks"}


def test_json_of_the_writing_commands(history: Path, tmp_path: Path) -> None:
    shutil.copy(history.parent / "m.db", tmp_path / "m.db")  # a copy: the other tests read the history as it was
    targets = tmp_path / "targets.toml"
    targets.write_text(history.read_text(encoding="utf-8").replace(str(history.parent), str(tmp_path)),
                       encoding="utf-8")
    history = targets

    def doc(*args: str, stdin: str | None = None, code: int = 0) -> object:
        done = invoke(history, 80, *args, "--json", stdin=stdin)
        assert done.exit_code == code, done.output
        return json.loads(done.stdout)

    assert doc("users", "add", "olena", "--role", "auditor", "--password-stdin", stdin="a long password\n") == {
        "name": "olena", "role": "auditor", "added": True}
    assert doc("users", "disable", "olena") == {"name": "olena", "disabled": True}
    assert doc("users", "list") == [{"name": "olena", "role": "auditor", "disabled": True}]
    assert invoke(history, 80, "users", "disable", "nobody", "--json").exit_code == 2  # errors: stderr, exit 2
    keys = {"private": str(tmp_path / "k"), "public": str(tmp_path / "k.pub")}
    assert doc("checkpoint", "keygen", "--private", keys["private"], "--public", keys["public"]) == keys
    made = doc("checkpoint", "make", "--key", keys["private"], "-o", str(tmp_path / "c"), "--note", "Q4")
    assert isinstance(made, dict) and made["output"] == str(tmp_path / "c") and made["heads"]
    verified = doc("verify", "--checkpoint", str(tmp_path / "c"), "--public-key", keys["public"])
    assert isinstance(verified, dict) and verified["intact"] and verified["checkpoint"]["heads_compared"]
    warc = tmp_path / "out.warc.gz"
    exported = doc("export", "warc", "--service", "transparent-budget", "-o", str(warc))
    assert isinstance(exported, dict) and exported["output"] == str(warc) and exported["captures"] > 0
    back = doc("backfill", "--service", "transparent-budget", "--warc", str(warc))
    assert isinstance(back, dict) and back["source"] == "warc" and back["found"] == exported["captures"]
    assert back["pages"] == 1 and back["problems"] == []
    assert doc("db", "upgrade") == {"schema": "up_to_date"}
    pruned = doc("db", "prune")
    assert isinstance(pruned, dict) and pruned["vacuumed"] is False and pruned["size_after_bytes"] > 0


def test_a_terminal_is_measured(history: Path) -> None:
    """On a terminal (a pseudo-terminal 90 columns wide here, no COLUMNS) the table fits the terminal."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 90, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR")}
    with subprocess.Popen([sys.executable, "-m", "monitor", "-t", str(history), "faults", *AUDIT], stdin=follower,
                          stdout=follower, stderr=subprocess.DEVNULL, env={**env, "TERM": "xterm"}) as proc:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(timeout=60)
    os.close(leader)
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode()).replace("\r", "")
    assert proc.returncode == 0, out
    assert_fits(out, 90, [DOWN, PAGES[DOWN]])
    assert len(max(out.splitlines(), key=len)) > 80  # the terminal's width, not a default
