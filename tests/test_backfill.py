"""Backfill from a real archive on loopback (pywb serving WARCs written from our fixture pages at 2021 dates:
a real edit, a date-only bump, an unchanged month, a 404), from a WARC that Debian's wget wrote, and back out
as a WARC that pywb replays and that imports to the same versions. Each capture recorded once; a run resumes;
the audit says which verdicts rest on archive captures, and says "unknown" where they are too sparse."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.backfill import url_key
from monitor.cli import main
from tests.archives import Pywb, write_warc
from tests.conftest import which
from tests.siteserver import Site, page

URL = "http://rada.pokrovsk.example/uk/protocols"


def protocols(count: int, updated: str) -> bytes:
    items = "".join(f"<li><a href='/uk/protocols/{i}'>Протокол засідання виконавчого комітету №{i} від "
                    f"{i + 10}.0{1 + i % 3}.2021 про затвердження плану заходів з благоустрою</a></li>"
                    for i in range(1, count + 1))
    return (f"<!doctype html><html lang='uk'><head><meta charset='utf-8'><title>Протоколи засідань</title></head>"
            f"<body><header><a href='/uk'>Покровська міська рада</a></header><main><h1>Протоколи засідань "
            f"виконавчого комітету</h1><p>Оновлено: {updated}</p><ul>{items}</ul></main>"
            "<footer>© 2021 Покровська міська рада</footer></body></html>").encode()


def at(month: int, day: int) -> datetime:
    return datetime(2021, month, day, 9, 30, tzinfo=UTC)


SCRIPT = [(at(1, 5), 200, protocols(3, "04.01.2021")),
          (at(1, 20), 200, protocols(3, "04.01.2021")),  # unchanged
          (at(2, 5), 200, protocols(3, "05.02.2021")),  # only the date moved
          (at(3, 1), 200, protocols(3, "05.02.2021")),
          (at(3, 5), 200, protocols(4, "05.03.2021")),  # a real edit: protocol no. 4
          (at(3, 20), 404, b"<h1>404</h1>"),  # a fortnight of a missing page
          (at(4, 2), 200, protocols(4, "05.03.2021"))]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pywb]:
    folder = tmp_path_factory.mktemp("pywb")
    warc = write_warc(folder / "rada-2021.warc.gz", [(URL, when, status, body) for when, status, body in SCRIPT])
    with Pywb(folder / "archive", {"rada": [warc]}) as pywb:
        yield pywb


def catalogue(tmp_path: Path, url: str = URL, regulation: str = "monthly") -> Path:
    targets = tmp_path / "targets.toml"
    targets.write_text(f"""[settings]
database_url = "sqlite:///{tmp_path / 'm.db'}"
user_agent = "freshness-test (+mailto:it@example.org)"
read_workers = 0

[reports]
since = "2021-01-01"

[departments.secretariat]
name = "Загальний відділ"

[[services]]
id = "protocols"
name = "Протоколи виконкому"
department = "Загальний відділ"
regulation = "{regulation}"
  [[services.pages]]
  url = "{url}"
  allow_private = true
""", encoding="utf-8")
    return targets


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def from_archive(targets: Path, archive: Pywb, *extra: str) -> Result:
    return cli("-t", str(targets), "backfill", "--cdx", archive.cdx("rada"), "--replay", archive.replay("rada"),
               "--allow-private", "--from", "2021-01-01", "--to", "2021-05-01", *extra)


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


def test_a_backfill_from_an_archive_gives_exactly_the_scripted_history(tmp_path: Path, archive: Pywb) -> None:
    targets = catalogue(tmp_path)
    done = from_archive(targets, archive)
    assert done.exit_code == 0, done.output
    assert ("7 capture(s) in the range, 6 recorded, 1 error page(s) recorded, 0 already recorded, "
            "3 not fetched again (same digest)") in done.output
    db = tmp_path / "m.db"
    checks = rows(db, "select substr(started_at, 1, 10), outcome, http_status, source from checks order by started_at")
    assert [(d, o, s) for d, o, s, _ in checks] == [
        ("2021-01-05", "ok", 200), ("2021-01-20", "ok", 200), ("2021-02-05", "ok", 200), ("2021-03-01", "ok", 200),
        ("2021-03-05", "ok", 200), ("2021-03-20", "http_status", 404), ("2021-04-02", "ok", 200)]
    assert {s for *_, s in checks} == {f"127.0.0.1:{archive.port}/rada"}
    changes = rows(db, "select substr(window_start, 1, 10), substr(detected_at, 1, 10), change_class, is_real "
                       "from changes order by detected_at")
    assert changes == [("2021-01-20", "2021-02-05", "date_only", 0), ("2021-03-01", "2021-03-05", "content", 1)]
    assert rows(db, "select count(*) from versions") == [(3,)]
    assert cli("-t", str(targets), "verify").exit_code == 0

    # again: nothing new
    again = from_archive(targets, archive)
    assert again.exit_code == 0 and "0 recorded, 0 error page(s) recorded, 7 already recorded" in again.output
    assert rows(db, "select count(*) from checks") == [(7,)]


def test_an_interrupted_backfill_resumes_to_the_same_history(tmp_path: Path, archive: Pywb) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir()
    parts.mkdir()
    assert from_archive(catalogue(whole), archive).exit_code == 0
    targets = catalogue(parts)
    first = cli("-t", str(targets), "backfill", "--cdx", archive.cdx("rada"), "--replay", archive.replay("rada"),
                "--allow-private", "--from", "2021-01-01", "--to", "2021-03-03")  # stopped half-way
    assert first.exit_code == 0 and "4 recorded" in first.output
    rest = from_archive(targets, archive)
    assert rest.exit_code == 0 and "4 already recorded" in rest.output
    history = "select substr(detected_at, 1, 10), change_class, is_real from changes order by detected_at"
    assert rows(parts / "m.db", history) == rows(whole / "m.db", history)
    assert rows(parts / "m.db", "select count(*) from checks") == [(7,)]


def test_the_audit_of_q1_says_what_archives_can_prove(tmp_path: Path, archive: Pywb) -> None:
    """Captures weeks apart cannot prove a month missed: January and February are unknown, not missed; March's
    edit falls between two captures inside it: compliant, and marked as resting on archive captures. A report
    for 5 March is unverifiable: the captures do not date the edit to that day."""
    targets = catalogue(tmp_path)
    assert from_archive(targets, archive).exit_code == 0
    reports = tmp_path / "reports.csv"
    reports.write_text("Позначка часу,Назва вебсервісу,Дата оновлення,Що оновлено\n"
                       "05.03.2021 15:00:00,Протоколи виконкому,05.03.2021,Протокол №4\n", encoding="utf-8")
    assert cli("-t", str(targets), "reports", "import", str(reports)).exit_code == 0
    out = cli("-t", str(targets), "audit", "--from", "2021-01-01", "--to", "2021-04-01", "--format", "json")
    doc = json.loads(out.stdout)
    periods = {p["period"]: (p["verdict"], p["evidence_from"]) for p in doc["periods"]}
    assert periods == {"2021-01": ("unknown", "archive"), "2021-02": ("unknown", "archive"),
                       "2021-03": ("compliant", "archive")}
    (report,) = doc["reports"]
    assert report["verdict"] == "unverifiable" and report["evidence_from"] == "archive"
    html = cli("-t", str(targets), "audit", "--from", "2021-01-01", "--to", "2021-04-01", "--format", "html")
    assert "(вебархів)" in html.stdout

    # retention summarises the old check rows: the verdicts, and what they rest on, stay
    pruned = cli("-t", str(targets), "db", "prune", "--keep-checks", "30d")
    assert pruned.exit_code == 0, pruned.output
    assert rows(tmp_path / "m.db", "select count(*) from checks") == [(0,)]
    assert cli("-t", str(targets), "verify").exit_code == 0
    after = json.loads(cli("-t", str(targets), "audit", "--from", "2021-01-01", "--to", "2021-04-01",
                           "--format", "json").stdout)
    assert {p["period"]: (p["verdict"], p["evidence_from"]) for p in after["periods"]} == periods
    again = from_archive(targets, archive)  # the check rows are gone: the captures are still known
    assert again.exit_code == 0 and "0 recorded, 0 error page(s) recorded, 7 already recorded" in again.output
    assert rows(tmp_path / "m.db", "select count(*) from changes") == [(2,)]


def test_a_warc_written_by_wget_imports_as_a_live_check_reads_the_page(tmp_path: Path) -> None:
    wget = which("wget")
    body = protocols(4, "05.03.2021")
    with Site() as site:
        site.routes["/uk/protocols"] = page(body)
        site.routes["/uk/protocols/"] = page(body)
        url = site.url("/uk/protocols")
        crawl = subprocess.run([wget, "--quiet", "--no-proxy", f"--warc-file={tmp_path / 'crawl'}", "-O", "/dev/null",
                                url], capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert crawl.returncode == 0, crawl.stderr
        live_dir, warc_dir = tmp_path / "live", tmp_path / "warc"
        live_dir.mkdir()
        warc_dir.mkdir()
        assert cli("-t", str(catalogue(live_dir, url=url)), "check").exit_code == 0
        warc_targets = catalogue(warc_dir, url=url + "/")  # the catalogue spells it with a slash
        done = cli("-t", str(warc_targets), "backfill", "--warc", str(tmp_path / "crawl.warc.gz"),
                   "--from", "2026-01-01")
    assert done.exit_code == 0, done.output
    assert "1 capture(s) in the range, 1 recorded" in done.output
    key = "select key_hash from versions"
    assert rows(warc_dir / "m.db", key) == rows(live_dir / "m.db", key) != []
    assert rows(warc_dir / "m.db", "select source from checks") == [("warc:crawl.warc.gz",)]


def test_exported_evidence_replays_in_pywb_and_imports_to_the_same_versions(tmp_path: Path, archive: Pywb) -> None:
    source = tmp_path / "source"
    source.mkdir()
    targets = catalogue(source)
    assert from_archive(targets, archive).exit_code == 0
    out = tmp_path / "evidence.warc.gz"
    exported = cli("-t", str(targets), "export", "warc", "--from", "2021-01-01", "--to", "2021-05-01", "-o", str(out))
    assert exported.exit_code == 0 and "3 capture(s) written" in exported.output
    assert cli("-t", str(targets), "export", "warc", "-o", str(out)).exit_code == 2  # never overwritten
    with Pywb(tmp_path / "replay", {"evidence": [out]}) as replay, urllib.request.urlopen(
            f"{replay.replay('evidence')}20210305093000id_/{URL}", timeout=10) as got:
        assert got.read() == protocols(4, "05.03.2021")
    again = tmp_path / "again"
    again.mkdir()
    reimported = cli("-t", str(catalogue(again)), "backfill", "--warc", str(out), "--from", "2021-01-01")
    assert reimported.exit_code == 0, reimported.output
    versions = "select key_hash, substr(first_seen_at, 1, 16) from versions order by first_seen_at"
    assert rows(again / "m.db", versions) == rows(source / "m.db", versions)
    changes = "select change_class, is_real from changes order by detected_at"
    assert rows(again / "m.db", changes) == rows(source / "m.db", changes)


def test_damaged_files_and_failing_archives_are_named_and_the_good_records_kept(tmp_path: Path,
                                                                                archive: Pywb) -> None:
    good = write_warc(tmp_path / "good.warc.gz", [(URL, when, status, body) for when, status, body in SCRIPT[:3]])
    data = good.read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[:-150])
    targets = catalogue(tmp_path)
    done = cli("-t", str(targets), "backfill", "--warc", str(cut), "--from", "2021-01-01")
    assert done.exit_code == 1
    assert "2 recorded" in done.output and "cut.warc.gz record at byte" in done.output
    assert rows(tmp_path / "m.db", "select count(*) from checks") == [(2,)]
    with Site() as site:
        site.routes["/down/cdx"] = page("<h1>502 Bad Gateway</h1>", status=502)
        site.routes["/html/cdx"] = page("<!doctype html><h1>Вітаємо в архіві</h1>")
        for name, says in (("down", "http_status 502"), ("html", "is HTML, not a CDX index")):
            failed = cli("-t", str(targets), "backfill", "--cdx", site.url(f"/{name}/cdx"), "--replay",
                         site.url(f"/{name}/"), "--allow-private", "--rate", "10", "--from", "2021-01-01")
            assert failed.exit_code == 1 and says in failed.output, failed.output
    assert cli("-t", str(targets), "backfill", "--cdx", archive.cdx("rada")).exit_code == 2  # --replay too
    assert cli("-t", str(targets), "backfill", "--warc", str(cut), "--cdx", "http://127.0.0.1:1/",
               "--replay", "http://127.0.0.1:1/").exit_code == 2


def test_addresses_are_matched_as_archives_spell_them() -> None:
    assert url_key("https://www.Rada.example:443/uk/protocols/?b=2&a=1#top") == "rada.example/uk/protocols?a=1&b=2"
    assert url_key("http://rada.example/uk/protocols") == url_key("https://rada.example/uk/protocols/")
    assert url_key("http://rada.example:8080/") != url_key("http://rada.example/")
    assert url_key("http://rada.example") == "rada.example/"
    assert url_key("https://київ.укр/новини/") == url_key("http://xn--b1alf1j.xn--j1amh/%D0%BD%D0%BE%D0%B2%D0%B8%D0%BD%D0%B8")
