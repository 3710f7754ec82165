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


NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


def read(name: str, mapping: ReportMapping | None = None):  # type: ignore[no-untyped-def]
    return parse((FORMS / name).read_bytes(), CATALOGUE, mapping or ReportMapping(), source=name, now=NOW)


def test_en_us_export_with_quoted_commas_and_newlines() -> None:
    parsed = read("en-us.csv")
    assert not parsed.rejected and not parsed.file_error and parsed.date_order == "mdy"
    assert [r.service_id for r in parsed.rows] == ["smart-portal", "public-consultations", "smart-portal"]
    first, second, _ = parsed.rows
    assert first.submitted_at == datetime(2026, 11, 2, 9, 15, 2, tzinfo=KYIV)
    assert first.reported_for == datetime(2026, 11, 2, tzinfo=KYIV)
    assert first.what == "Новини: засідання, сесія" and first.email == "info-policy@example.org"
    assert second.what == "Оголошення про\ngromadські слухання".replace("gromadські", "громадські")
    assert second.source == "en-us.csv:3"
    assert parsed.rows[2].source == "en-us.csv:4"  # rows count as the spreadsheet counts them, not as lines


def test_ukrainian_export_with_semicolons_and_bom() -> None:
    parsed = read("uk.csv")
    assert not parsed.rejected
    assert [r.service_id for r in parsed.rows] == ["idp-help-center", "energy-service"]  # annex-2 spellings
    assert parsed.rows[0].submitted_at == datetime(2026, 11, 2, 9, 15, 2, tzinfo=KYIV)
    assert parsed.rows[1].what == "Показники; лічильники"


def test_russian_export_with_time_zone_and_12_hour_clock() -> None:
    parsed = read("ru.csv")
    assert not parsed.rejected
    assert [r.service_id for r in parsed.rows] == ["transparent-budget", "participatory-budget"]
    assert parsed.rows[0].submitted_at == datetime(2026, 11, 2, 14, 35, tzinfo=timezone(timedelta(hours=2)))
    assert parsed.rows[1].submitted_at.astimezone(UTC) == datetime(2026, 11, 3, 7, 5, tzinfo=UTC)


def test_bad_rows_are_listed_with_numbers_and_reasons() -> None:
    parsed = read("bad-rows.csv")
    assert len(parsed.rows) == 1
    reasons = {e.row: e.reason for e in parsed.rejected}
    assert set(reasons) == {3, 4, 5, 6, 7}
    assert "unknown service 'Портал міста Хмельницький'" in reasons[3]
    assert "'вчора' is not a timestamp" in reasons[4]
    assert "'тридцяте' is not a date" in reasons[5]
    assert "after it was submitted" in reasons[6]
    assert "cells where the header has" in reasons[7]


def test_google_forms_api_json_with_question_ids() -> None:
    mapping = ReportMapping().merged({"service": ["1a2b3c4d"], "updated_on": ["5e6f7a8b"], "what": ["9c0d1e2f"]})
    parsed = read("responses-list.json", mapping)
    assert not parsed.rejected
    assert [(r.service_id, r.what) for r in parsed.rows] == [("smart-portal", "Новини міста"), ("open-data", "")]
    assert parsed.rows[0].submitted_at == datetime(2026, 11, 2, 7, 15, 2, 123000, tzinfo=UTC)
    assert parsed.rows[1].reported_for == parsed.rows[1].submitted_at  # no date answered: the submission


def test_answers_of_the_wrong_shape_are_rejected_rows_not_a_crash() -> None:
    data = (b'{"responses": [{"createTime": "2026-11-02T07:15:02Z", "answers": {"q1": "a bare string"}},'
            b' {"createTime": "2026-11-02T08:00:00Z", "answers": {"q1": {"textAnswers": "not a list"}}}]}')
    parsed = parse(data, CATALOGUE, ReportMapping().merged({"service": ["q1"]}), source="api.json")
    assert not parsed.file_error and not parsed.rows and len(parsed.rejected) == 2
    assert all("no service named" in r.reason for r in parsed.rejected)


def test_without_a_claimed_day_a_report_is_still_known_to_the_minute() -> None:
    """A spreadsheet saved again drops the seconds; with no claimed day, the submission stands for it."""
    with_seconds = parse("Timestamp,Назва вебсервісу\n02.11.2026 15:00:31,SMART-ПОРТАЛ\n".encode(), CATALOGUE,
                         ReportMapping(), now=NOW)
    without = parse("Timestamp,Назва вебсервісу\n02.11.2026 15:00,SMART-ПОРТАЛ\n".encode(), CATALOGUE,
                    ReportMapping(), now=NOW)
    assert with_seconds.rows[0].identity == without.rows[0].identity


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


# --- every submitted row accounted for -----------------------------------------------------------------

QUARTER = ("quarter-uk.csv", "quarter-en.csv", "quarter-excel-cp1251.csv")  # one form's responses, three exports
SINCE = ReportMapping(since=datetime(2021, 1, 1).date())


def test_the_same_responses_in_three_exports_are_the_same_reports() -> None:
    """Google Sheets in Ukrainian (30.11.2026 14:35:00), in English (11/30/2026 14:35:00) and the file saved
    again by Excel (windows-1251, ';', no seconds): the same reports, the same rejected rows, row for row."""
    parsed = {name: read(name, SINCE) for name in QUARTER}
    assert {p.date_order for p in parsed.values()} == {"", "mdy"}  # the dotted dates need no decision
    identities = [[r.identity for r in p.rows] for p in parsed.values()]
    assert len(identities[0]) == 10 and identities[0] == identities[1] == identities[2]
    rejected = [[r.identity for r in p.rejected] for p in parsed.values()]
    assert len(rejected[0]) == 3 and rejected[0] == rejected[1] == rejected[2]
    uk, en, excel = (p.rows for p in parsed.values())
    assert [r.reported_for for r in uk] == [r.reported_for for r in en] == [r.reported_for for r in excel]
    assert uk[0].submitted_at == datetime(2021, 1, 4, 18, 2, 11, tzinfo=KYIV)
    assert excel[0].submitted_at == datetime(2021, 1, 4, 18, 2, tzinfo=KYIV)
    assert uk[0].row_hash != en[0].row_hash  # the exact cells differ: only the parsed content is the same
    # today's spelling of the question ("вебсервісу"), the department, the link and the row travel with it
    assert uk[0].service_id == "open-data" and uk[0].link == "https://data.pokrovsk.example/budget"
    assert uk[0].department_text.startswith("Відділ з питань діловодства")
    petition = next(r for r in uk if r.what.startswith("Нова петиція"))
    assert petition.source == "quarter-uk.csv:12" and petition.what == "Нова петиція:\nпро ремонт ліфтів"


def test_rejected_rows_keep_their_reasons_and_what_could_be_read() -> None:
    parsed = read("quarter-uk.csv", SINCE)
    by_row = {r.row: r for r in parsed.rejected}
    assert set(by_row) == {3, 11, 14}
    unknown, early, future = by_row[3], by_row[11], by_row[14]
    assert unknown.reason.startswith("unknown service 'КЦ'") and unknown.service_id is None
    assert unknown.placed_at == datetime(2021, 1, 5, tzinfo=KYIV)  # listed in the audit of that day
    assert "before reports began ([reports] since = 2021-01-01)" in early.reason and early.service_id == "open-data"
    assert "submitted in the future (2030-03-02)" in future.reason
    assert early.placed_at is None and future.placed_at is None  # no usable date: listed in every audit
    assert unknown.cells[2] == "КЦ" and unknown.source == "quarter-uk.csv:3"


@pytest.mark.parametrize(("text", "problem"), [
    # en-GB, every date reads both ways: refused, with the rows that make it so
    ("Timestamp,Назва веб-сервісу,Дата оновлення\n05/01/2021 10:00:00,Опен дата,05/01/2021\n"
     "08/02/2021 11:00:00,Опен дата,07/02/2021\n",
     "every date in the file reads both ways (row 2 '05/01/2021 10:00:00', row 2 '05/01/2021', row 3"),
    ("Timestamp,Назва веб-сервісу\n12/03/2021 10:00:00,Опен дата\n",  # the readings of its own date
     "'12/03/2021 10:00:00': 12 March or 3 December?"),
    # day first here, month first there: two locales pasted together
    ("Timestamp,Назва веб-сервісу\n25/01/2021 10:00:00,Опен дата\n01/26/2021 10:00:00,Опен дата\n",
     "mixes day-first dates (row 2 '25/01/2021 10:00:00') with month-first dates (row 3 '01/26/2021 10:00:00')"),
])
def test_the_date_order_is_decided_for_the_whole_file(text: str, problem: str) -> None:
    parsed = parse(text.encode(), CATALOGUE, ReportMapping(), now=NOW)
    assert problem in parsed.file_error and not parsed.rows


def test_an_en_gb_file_is_read_day_first_when_told_or_when_one_date_tells() -> None:
    ambiguous = ("Timestamp,Назва веб-сервісу,Дата оновлення\n05/01/2021 10:00:00,Опен дата,05/01/2021\n"
                 "08/02/2021 11:00:00,Опен дата,07/02/2021\n")
    told = parse(ambiguous.encode(), CATALOGUE, ReportMapping(date_order="dmy"), now=NOW)
    assert [r.reported_for.date().isoformat() for r in told.rows] == ["2021-01-05", "2021-02-07"]
    telling = parse((ambiguous + "13/02/2021 09:00:00,Опен дата,13/02/2021\n").encode(), CATALOGUE, ReportMapping(),
                    now=NOW)
    assert telling.date_order == "dmy" and not telling.rejected
    assert [r.reported_for.date().isoformat() for r in telling.rows] == ["2021-01-05", "2021-02-07", "2021-02-13"]


def test_the_department_column_is_compared_with_the_services_department() -> None:
    from monitor.reports import department_note, department_of

    rows = {r.service_id: r for r in read("quarter-uk.csv", SINCE).rows}
    service = {s.id: s for s in CATALOGUE.services}
    assert department_note(rows["invest-portal"].department_text, service["invest-portal"], CATALOGUE) == \
        "other_department"  # the IT sector filed the investment portal's report
    assert department_note(rows["roll-call-voting"].department_text, service["roll-call-voting"], CATALOGUE) == \
        "unknown_department"
    assert department_note(rows["open-data"].department_text, service["open-data"], CATALOGUE) == ""
    assert department_note("", service["open-data"], CATALOGUE) == ""
    assert department_of("Управління соціального захисту населення", CATALOGUE) == "social-protection"  # alias
    assert department_of("відділ “контактний центр”", CATALOGUE) == "contact-center-dept"


def _targets(tmp_path: Path) -> tuple[Path, str]:
    """The city's catalogue on a database of the test's, taking reports from 1 January 2021 (the order's own
    date is 12 January)."""
    targets = tmp_path / "targets.toml"
    text = (ROOT / "targets.toml").read_text(encoding="utf-8").replace(
        'database_url = "sqlite:///monitor.db"', f'database_url = "sqlite:///{tmp_path / "m.db"}"').replace(
        'since = "2021-01-12"', 'since = "2021-01-01"')
    targets.write_text(text, encoding="utf-8")
    return targets, text


def test_import_keeps_rejected_rows_and_imports_each_response_once(tmp_path: Path) -> None:
    targets, text = _targets(tmp_path)
    runner = CliRunner()
    refused = runner.invoke(main, ["-t", str(targets), "reports", "import", str(FORMS / QUARTER[0])])
    assert refused.exit_code == 1 and "row 3: unknown service 'КЦ'" in refused.stderr
    assert "nothing imported" in refused.stderr
    first = runner.invoke(main, ["-t", str(targets), "reports", "import", str(FORMS / QUARTER[0]), "--skip-bad"])
    assert first.exit_code == 0, first.output
    assert "10 report(s) read, 10 new, 0 already imported; 3 rejected row(s) kept for the audit (3 new)" in first.stdout
    for name in QUARTER[1:]:
        again = runner.invoke(main, ["-t", str(targets), "reports", "import", str(FORMS / name), "--skip-bad"])
        assert again.exit_code == 0 and "10 report(s) read, 0 new, 10 already imported" in again.stdout, again.output
        assert "(0 new)" in again.stdout
    store = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
    assert len(store.reports.reports()) == 10
    q1 = dict(since=datetime(2021, 1, 1, tzinfo=KYIV), until=datetime(2021, 4, 1, tzinfo=KYIV))
    assert sorted(x.source for x in store.reports.rejected(**q1)) == [
        "quarter-uk.csv:11", "quarter-uk.csv:14", "quarter-uk.csv:3"]
    later = dict(since=datetime(2022, 1, 1, tzinfo=KYIV), until=datetime(2022, 4, 1, tzinfo=KYIV))
    assert sorted(x.source for x in store.reports.rejected(**later)) == ["quarter-uk.csv:11", "quarter-uk.csv:14"]
    assert store.reports.rejected(**q1, service_ids=["e-petitions"])[0].source == "quarter-uk.csv:3"  # unrecognised
    assert store.maintenance.verify().intact
    store.close()
    # the operator adds the alias: the row is a report now, and no longer listed as rejected
    targets.write_text(text.replace('name = "Контакт центр"', 'name = "Контакт центр"\naliases = ["КЦ"]'),
                       encoding="utf-8")
    fixed = runner.invoke(main, ["-t", str(targets), "reports", "import", str(FORMS / QUARTER[0]), "--skip-bad"])
    assert "11 report(s) read, 1 new, 10 already imported" in fixed.stdout, fixed.output
    store = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
    assert sorted(x.source for x in store.reports.rejected(**q1)) == ["quarter-uk.csv:11", "quarter-uk.csv:14"]
    store.close()


def test_an_ambiguous_file_is_refused_until_the_date_order_is_given(tmp_path: Path) -> None:
    targets, _ = _targets(tmp_path)
    gb = tmp_path / "en-gb.csv"
    gb.write_text("Timestamp,Назва веб-сервісу,Дата оновлення\n05/01/2021 10:00:00,Опен дата,05/01/2021\n",
                  encoding="utf-8")
    runner = CliRunner()
    refused = runner.invoke(main, ["-t", str(targets), "reports", "import", str(gb)])
    assert refused.exit_code == 2 and "--date-order" in refused.stderr
    told = runner.invoke(main, ["-t", str(targets), "reports", "import", str(gb), "--date-order", "dmy"])
    assert told.exit_code == 0 and "1 new" in told.stdout and "dates read day first" in told.stdout
    store = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
    assert [r.reported_for.astimezone(KYIV).date().isoformat() for r in store.reports.reports()] == ["2021-01-05"]
    store.close()
