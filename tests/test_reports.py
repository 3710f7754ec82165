"""Importing self-reports: every export variant of Google Forms, bad rows, idempotent re-import."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.config import load_catalogue
from monitor.reports import ReportMapping, name_key, parse, parse_timestamp
from monitor.store import Store

ROOT = Path(__file__).resolve().parents[1]
FORMS = Path(__file__).parent / "fixtures" / "forms"
KYIV = ZoneInfo("Europe/Kyiv")
CATALOGUE = load_catalogue(ROOT / "targets.toml", environ={})


def read(name: str, mapping: ReportMapping | None = None):  # type: ignore[no-untyped-def]
    return parse((FORMS / name).read_bytes(), CATALOGUE, mapping or ReportMapping(), source=name)


def test_en_us_export_with_quoted_commas_and_newlines() -> None:
    parsed = read("en-us.csv")
    assert not parsed.errors and not parsed.file_error
    assert [r.service_id for r in parsed.rows] == ["smart-portal", "public-consultations", "smart-portal"]
    first, second, _ = parsed.rows
    assert first.submitted_at == datetime(2026, 11, 2, 9, 15, 2, tzinfo=KYIV)
    assert first.reported_for == datetime(2026, 11, 2, tzinfo=KYIV)
    assert first.what == "Новини: засідання, сесія" and first.email == "info-policy@example.org"
    assert second.what == "Оголошення про\ngromadські слухання".replace("gromadські", "громадські")
    assert second.source == "en-us.csv:3"


def test_ukrainian_export_with_semicolons_and_bom() -> None:
    parsed = read("uk.csv")
    assert not parsed.errors
    assert [r.service_id for r in parsed.rows] == ["idp-help-center", "energy-service"]  # annex-2 spellings
    assert parsed.rows[0].submitted_at == datetime(2026, 11, 2, 9, 15, 2, tzinfo=KYIV)
    assert parsed.rows[1].what == "Показники; лічильники"


def test_russian_export_with_time_zone_and_12_hour_clock() -> None:
    parsed = read("ru.csv")
    assert not parsed.errors
    assert [r.service_id for r in parsed.rows] == ["transparent-budget", "participatory-budget"]
    assert parsed.rows[0].submitted_at == datetime(2026, 11, 2, 14, 35, tzinfo=timezone(timedelta(hours=2)))
    assert parsed.rows[1].submitted_at.astimezone(UTC) == datetime(2026, 11, 3, 7, 5, tzinfo=UTC)


def test_bad_rows_are_listed_with_numbers_and_reasons() -> None:
    parsed = read("bad-rows.csv")
    assert len(parsed.rows) == 1
    reasons = {e.row: e.reason for e in parsed.errors}
    assert set(reasons) == {3, 4, 5, 6, 7}
    assert "unknown service 'Портал міста Хмельницький'" in reasons[3]
    assert "'вчора' is not a timestamp" in reasons[4]
    assert "'тридцяте' is not a date" in reasons[5]
    assert "after it was submitted" in reasons[6]
    assert "cells where the header has" in reasons[7]


def test_google_forms_api_json_with_question_ids() -> None:
    mapping = ReportMapping().merged({"service": ["1a2b3c4d"], "updated_on": ["5e6f7a8b"], "what": ["9c0d1e2f"]})
    parsed = read("responses-list.json", mapping)
    assert not parsed.errors
    assert [(r.service_id, r.what) for r in parsed.rows] == [("smart-portal", "Новини міста"), ("open-data", "")]
    assert parsed.rows[0].submitted_at == datetime(2026, 11, 2, 7, 15, 2, 123000, tzinfo=UTC)
    assert parsed.rows[1].reported_for == parsed.rows[1].submitted_at  # no date answered: the submission


@pytest.mark.parametrize(("data", "error"), [
    (b"", "the file is empty"),
    (b"name,value\nx,1\n", "no timestamp column"),
    (b"Timestamp,Something\n11/2/2026 9:00:00,x\n", "no column names the service"),
    (b"{not json", "not valid JSON"),
    (b'{"items": []}', "not a responses.list document"),
    (b"\xff\xfe\x00\x00garbage\x81\x82", "a binary file, not a CSV export"),
])
def test_bad_files(data: bytes, error: str) -> None:
    parsed = parse(data, CATALOGUE, ReportMapping())
    assert error in parsed.file_error


@pytest.mark.parametrize(("text", "expected"), [
    ("11/30/2026 14:35:00", datetime(2026, 11, 30, 14, 35, tzinfo=KYIV)),
    ("30.11.2026 14:35:00", datetime(2026, 11, 30, 14, 35, tzinfo=KYIV)),
    ("2026/11/30 2:35:00 PM GMT+3", datetime(2026, 11, 30, 14, 35, tzinfo=timezone(timedelta(hours=3)))),
    ("2026/11/30 12:05:00 AM GMT+2", datetime(2026, 11, 30, 0, 5, tzinfo=timezone(timedelta(hours=2)))),
    ("2026-11-30T12:35:00Z", datetime(2026, 11, 30, 12, 35, tzinfo=UTC)),
    ("30/11/2026 14:35:00", datetime(2026, 11, 30, 14, 35, tzinfo=KYIV)),  # day > 12: day first
])
def test_timestamp_forms(text: str, expected: datetime) -> None:
    assert parse_timestamp(text, tz="Europe/Kyiv") == expected


def test_name_matching_is_tolerant_but_exact() -> None:
    assert name_key("AIC Енергосервіс") == name_key("АІС енергосервіс")
    assert name_key("«SMART-портал»") == name_key("SMART-ПОРТАЛ")
    assert name_key("Онлайн приймальня") != name_key("Онлайн-приймальня міста")


def test_cli_import_is_idempotent_and_refuses_bad_files(tmp_path: Path) -> None:
    targets = tmp_path / "targets.toml"
    text = (ROOT / "targets.toml").read_text(encoding="utf-8").replace(
        'database_url = "sqlite:///monitor.db"', f'database_url = "sqlite:///{tmp_path / "m.db"}"')
    targets.write_text(text, encoding="utf-8")
    csv_file = tmp_path / "reports.csv"
    shutil.copy(FORMS / "en-us.csv", csv_file)
    runner = CliRunner()
    first = runner.invoke(main, ["-t", str(targets), "reports", "import", str(csv_file)])
    assert first.exit_code == 0 and "3 report(s) read, 3 new" in first.stdout
    again = runner.invoke(main, ["-t", str(targets), "reports", "import", str(csv_file)])
    assert again.exit_code == 0 and "0 new, 3 already imported" in again.stdout
    bad = runner.invoke(main, ["-t", str(targets), "reports", "import", str(FORMS / "bad-rows.csv")])
    assert bad.exit_code == 1 and "row 3: unknown service" in bad.stderr and "nothing imported" in bad.stderr
    store = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
    assert len(store.reports.reports()) == 3
    store.close()
    skipped = runner.invoke(main, ["-t", str(targets), "reports", "import", str(FORMS / "bad-rows.csv"), "--skip-bad"])
    assert skipped.exit_code == 0 and "1 new" in skipped.stdout
    wrong = runner.invoke(main, ["-t", str(targets), "reports", "import", str(FORMS / "responses-list.json")])
    assert wrong.exit_code == 1 and "no service named" in wrong.stderr  # its question ids are not mapped
