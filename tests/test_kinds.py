"""Every probe kind through the whole pipeline against local servers: a CKAN-like API, an ArcGIS-like layer,
feeds, a JSON API, documents and an availability check; bad input of each kind has a clear outcome."""

from __future__ import annotations

import asyncio
import io
import json
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.domain import ChangeClass, Kind, Outcome, Quality
from monitor.extract import ExtractOptions
from monitor.fetch import Fetcher
from monitor.kinds import extract
from monitor.runner import Runner
from monitor.store import Store
from monitor.store.engine import make_engine, upgrade
from tests.helpers import catalogue
from tests.siteserver import Request, Site, page, respond

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def targets(kind: str, url: str, db: str, **options: str) -> str:
    extra = "".join(f"  {k} = {json.dumps(v, ensure_ascii=False)}\n" for k, v in options.items())
    return f"""
[settings]
database_url = "{db}"
user_agent = "kinds (+mailto:it@example.org)"
per_host_delay = "0.001s"
timeout = "20s"
retries = 0
[departments.records-appeals]
name = "Відділ з питань діловодства, контролю та роботи зі зверненнями громадян"
[[services]]
id = "open-data"
name = "Опен дата"
department = "Відділ з питань діловодства, контролю та роботи зі зверненнями громадян"
regulation = "weekly"
  [[services.pages]]
  url = "{url}"
  kind = "{kind}"
  allow_private = true
{extra}"""


async def check_twice(tmp_path: Path, text: str, between=None):  # type: ignore[no-untyped-def]
    """Check the page, let `between` change the source, check again: both records."""
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    store = Store(engine)
    cat = catalogue(text)
    async with Fetcher(cat.settings) as fetcher:
        runner = Runner(cat, store, fetcher)
        runner.prepare()
        writer = asyncio.create_task(runner.recorder.run())
        (target,) = runner.targets.values()
        first = await runner.check(target)
        if between is not None:
            between()
        second = await runner.check(target)
        await runner.recorder.drain(10)
        writer.cancel()
    return first, second, store


# --- CKAN ----------------------------------------------------------------------------------------

def dataset(i: int, modified: str = "2026-11-01T10:00:00", frequency: str = "щотижня") -> dict:  # type: ignore[type-arg]
    return {"id": f"00000000-0000-0000-0000-{i:012d}", "name": f"pokrovsk-dataset-{i:03d}",
            "title": f"Набір даних {i}", "metadata_modified": modified, "update_frequency": frequency,
            "organization": {"name": "pokrovsk-rada"},
            "resources": [{"id": f"r{i}", "name": f"data-{i}.csv", "url": f"https://data.example/r{i}.csv",
                           "last_modified": modified, "size": 1000 + i, "hash": ""}]}


class Ckan:
    def __init__(self, n: int) -> None:
        self.datasets = [dataset(i) for i in range(n)]
        self.calls: list[dict[str, str]] = []

    async def __call__(self, req: Request, w: asyncio.StreamWriter) -> None:
        q = dict(urllib.parse.parse_qsl(req.query))
        self.calls.append(q)
        if q.get("fq") != "organization:pokrovsk-rada":
            body = {"success": False, "error": {"__type": "Not Found Error", "message": "Organization not found"}}
            await respond(w, 200, json.dumps(body).encode(), {"Content-Type": "application/json"})
            return
        start, rows = int(q.get("start", 0)), min(int(q.get("rows", 10)), 100)
        body = {"success": True, "result": {"count": len(self.datasets),
                                            "results": self.datasets[start:start + rows]}}
        await respond(w, 200, json.dumps(body, ensure_ascii=False).encode(), {"Content-Type": "application/json"})


async def test_ckan_organisation_paginated_and_a_modified_dataset(tmp_path: Path, site: Site) -> None:
    api = Ckan(250)
    site.routes["/api/3/action/package_search"] = api

    def modify() -> None:
        api.datasets[7] = dataset(7, modified="2026-11-29T09:00:00")
        api.datasets.append(dataset(999))

    first, second, store = await check_twice(tmp_path, targets("ckan", site.url("/api/3/action/"),
                                                               f"sqlite:///{tmp_path / 'm.db'}",
                                                               organization="pokrovsk-rada"), modify)
    assert first.outcome is Outcome.OK and len(api.calls) == 3 + 3  # 100 + 100 + 50, twice (51 the second time)
    assert [c["start"] for c in api.calls[:3]] == ["0", "100", "200"]
    assert second.verdict is not None and second.verdict.change_class is ChangeClass.CONTENT and second.is_real
    ev = second.verdict.evidence
    assert ev.added == 1 and ev.edited == 1
    assert "pokrovsk-dataset-007" in ev.diff and "2026-11-29T09:00:00" in ev.diff
    (ref,) = store.history.current_contents("open-data")
    blob = store.history.blob(ref.sha)
    assert blob is not None
    from monitor.domain import load_content
    from monitor.status import dataset_statuses

    statuses = dataset_statuses(load_content(blob).records, NOW)
    overdue = {s.key for s in statuses if s.grade.severity >= 2}  # weekly, last modified 1 November
    assert "pokrovsk-dataset-007" not in overdue and "pokrovsk-dataset-000" in overdue
    store.close()


async def test_ckan_datasets_are_graded_by_the_maintenance_job_and_served_by_the_metrics(tmp_path: Path,
                                                                                        site: Site) -> None:
    """Grading ten thousand datasets takes a fraction of a second: the maintenance job does it and keeps the
    counts; a scrape only reads them."""
    from datetime import timedelta

    from monitor.clock import VirtualClock
    from monitor.maintenance import refresh_aggregates
    from monitor.metrics import build_registry

    api = Ckan(12)
    api.datasets[3] = dataset(3, modified="2026-11-29T09:00:00")  # weekly and fresh; the others: overdue
    site.routes["/api/3/action/package_search"] = api
    text = targets("ckan", site.url("/api/3/action/"), f"sqlite:///{tmp_path / 'm.db'}", organization="pokrovsk-rada")
    _first, _second, store = await check_twice(tmp_path, text)
    cat = catalogue(text)
    reg = build_registry(cat, store.metrics, clock=VirtualClock(NOW))

    def grades() -> dict[str, float]:
        return {g: reg.get_sample_value("freshness_datasets", {"site": "open-data", "grade": g}) or 0.0
                for g in ("fresh", "due", "overdue", "delinquent", "unknown")}

    assert sum(grades().values()) == 0  # nothing kept yet: zero series, never a scrape that grades
    refresh_aggregates(cat, store, NOW)
    first = grades()
    assert first["fresh"] == 1 and sum(first.values()) == 12
    refresh_aggregates(cat, store, NOW + timedelta(days=30))  # a month later every weekly dataset is late
    assert grades()["fresh"] == 0 and sum(grades().values()) == 12
    store.close()


async def test_ckan_error_is_a_bad_capture(tmp_path: Path, site: Site) -> None:
    site.routes["/api/3/action/package_search"] = Ckan(3)
    first, _, store = await check_twice(tmp_path, targets("ckan", site.url("/api/3/action/"),
                                                          f"sqlite:///{tmp_path / 'm.db'}", organization="nobody"))
    assert first.outcome is Outcome.BAD_CAPTURE and "Organization not found" in first.fetch.error
    store.close()


# --- ArcGIS and GeoJSON ----------------------------------------------------------------------------

class ArcGis:
    def __init__(self, n: int) -> None:
        self.features = [{"attributes": {"OBJECTID": i, "OWNER": f"ФОП {i}", "TYPE": "кіоск"},
                          "geometry": {"x": 37.18 + i * 1e-4, "y": 48.28}} for i in range(1, n + 1)]

    async def __call__(self, req: Request, w: asyncio.StreamWriter) -> None:
        q = dict(urllib.parse.parse_qsl(req.query))
        if q.get("where") == "bad":
            body = {"error": {"code": 400, "message": "Unable to complete operation.", "details": []}}
        else:
            offset = int(q.get("resultOffset", 0))
            chunk = self.features[offset:offset + 1000]
            body = {"objectIdFieldName": "OBJECTID", "geometryType": "esriGeometryPoint", "features": chunk}
            if offset + 1000 < len(self.features):
                body["exceededTransferLimit"] = True
        await respond(w, 200, json.dumps(body, ensure_ascii=False).encode(), {"Content-Type": "application/json"})


async def test_arcgis_layer_paginated_and_an_edited_feature(tmp_path: Path, site: Site) -> None:
    layer = ArcGis(2500)
    site.routes["/arcgis/rest/services/Kiosks/FeatureServer/0/query"] = layer

    def edit() -> None:
        layer.features[1200]["attributes"]["OWNER"] = "ТОВ Нове"
        layer.features.pop(5)

    url = site.url("/arcgis/rest/services/Kiosks/FeatureServer/0/query?where=1%3D1&outFields=*&f=json")
    first, second, store = await check_twice(tmp_path, targets("geo", url, f"sqlite:///{tmp_path / 'm.db'}"), edit)
    assert first.outcome is Outcome.OK
    assert second.verdict is not None and second.verdict.change_class is ChangeClass.CONTENT
    ev = second.verdict.evidence
    assert ev.removed == 1 and ev.edited >= 2  # the count line and the edited feature
    assert "ТОВ Нове" in ev.diff
    store.close()


def test_geo_reads_geojson_layers_and_errors() -> None:
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "k1", "properties": {"name": "Кіоск 1"}, "geometry": {"type": "Point",
                                                                                        "coordinates": [37.1, 48.2]}}]}
    c = extract(Kind.GEO, json.dumps(fc).encode(), url="https://gis.example/kiosks.geojson")
    assert [b.path for b in c.blocks] == ["count", "feature/k1"]
    moved = json.loads(json.dumps(fc))
    moved["features"][0]["geometry"]["coordinates"] = [37.1 + 1e-9, 48.2]  # re-projection noise
    assert extract(Kind.GEO, json.dumps(moved).encode(), url="x").blocks == c.blocks
    layer = {"name": "Kiosks", "type": "Feature Layer", "fields": [{"name": "OBJECTID"}],
             "editingInfo": {"lastEditDate": 1764495000000}}
    lc = extract(Kind.GEO, json.dumps(layer).encode(), url="x")
    assert lc.declared_at == datetime.fromtimestamp(1764495000, UTC)
    err = extract(Kind.GEO, b'{"error": {"code": 400, "message": "Invalid query"}}', url="x")
    assert err.quality is Quality.UNREADABLE and "400: Invalid query" in err.quality_reason
    assert extract(Kind.GEO, b'{"type": "Topology"}', url="x").quality is Quality.UNREADABLE


# --- feeds -------------------------------------------------------------------------------------------

RSS = """<?xml version="1.0" encoding="windows-1251"?>
<rss version="2.0"><channel><title>Новини Покровська</title>
{items}
</channel></rss>"""
ITEM = "<item><title>{t}</title><link>https://pokrovsk.example/uk/news/{i}</link><guid>n{i}</guid>" \
       "<pubDate>Mon, {d} Nov 2026 10:00:00 +0200</pubDate></item>"


def rss(entries: list[tuple[int, str, int]]) -> bytes:
    return RSS.format(items="".join(ITEM.format(i=i, t=t, d=d) for i, t, d in entries)).encode("cp1251")


def test_feed_entries_added_edited_and_a_bare_date_bump() -> None:
    base = rss([(1, "Засідання виконкому", 2), (2, "Ремонт доріг", 3)])
    from monitor.compare import compare
    from monitor.compare import read_bytes as read

    def cls(after: bytes) -> ChangeClass:
        return compare(read(base, kind=Kind.FEED), read(after, kind=Kind.FEED)).change_class

    added = rss([(1, "Засідання виконкому", 2), (2, "Ремонт доріг", 3), (3, "Нова новина", 4)])
    assert cls(added) is ChangeClass.CONTENT
    assert cls(rss([(1, "Засідання виконкому (оновлено)", 2), (2, "Ремонт доріг", 3)])) is ChangeClass.CONTENT
    assert cls(rss([(1, "Засідання виконкому", 2), (2, "Ремонт доріг", 9)])) is ChangeClass.DATE_ONLY
    c = read(base, kind=Kind.FEED).content
    assert c.title == "Новини Покровська" and c.declared_at == datetime(2026, 11, 3, 8, tzinfo=UTC)


@pytest.mark.parametrize(("name", "body", "reason"), [
    ("malformed", b"<rss><channel><item><title>x</item>", "not a readable feed"),
    ("billion-laughs", b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
                       b"<rss><channel><title>&lol2;</title></channel></rss>", "not a readable feed"),
    ("external-entity", b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                        b"<rss><channel><title>&x;</title></channel></rss>", "not a readable feed"),
    ("not-a-feed", b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>", "not RSS, Atom or a sitemap"),
    ("html", b"<html><body>Hello</body></html>", "not RSS, Atom or a sitemap"),
])
def test_bad_feeds(name: str, body: bytes, reason: str) -> None:
    c = extract(Kind.FEED, body, url="https://x.example/feed")
    assert c.quality is Quality.UNREADABLE and reason in c.quality_reason
    assert "root:" not in c.quality_reason  # /etc/passwd never read


def test_a_huge_feed_is_bounded() -> None:
    body = rss([(i, f"Новина {i}", 1 + i % 28) for i in range(20_000)])
    c = extract(Kind.FEED, body, url="https://x.example/feed")
    assert len(c.blocks) == 5000


def test_sitemap_lastmod() -> None:
    body = (b'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            b"<url><loc>https://pokrovsk.example/uk/page/a</loc><lastmod>2026-11-20</lastmod></url></urlset>")
    c = extract(Kind.FEED, body, url="https://pokrovsk.example/sitemap.xml")
    assert [b.path for b in c.blocks] == ["entry/https://pokrovsk.example/uk/page/a"]
    assert c.declared_at is None  # a date without a zone is not trusted as an instant


# --- JSON ----------------------------------------------------------------------------------------------

APP = {"resultCount": 1, "results": [{"trackName": "Контакт-центр Покровськ", "version": "2.3.1",
                                      "currentVersionReleaseDate": "2026-11-20T10:00:00Z", "userRatingCount": 120,
                                      "releaseNotes": "Виправлено помилки"}]}
SELECT = "results[0].{version: version, released: currentVersionReleaseDate, notes: releaseNotes}"


async def test_app_store_lookup_selection(tmp_path: Path, site: Site) -> None:
    doc = json.loads(json.dumps(APP))
    site.routes["/lookup"] = lambda req, w: respond(w, 200, json.dumps(doc).encode(),
                                                    {"Content-Type": "application/json"})

    def ratings_only() -> None:
        doc["results"][0]["userRatingCount"] = 131  # not selected: not a change

    first, second, store = await check_twice(tmp_path, targets("json", site.url("/lookup?id=1"),
                                                               f"sqlite:///{tmp_path / 'm.db'}", select=SELECT),
                                             ratings_only)
    assert second.verdict is not None and second.verdict.change_class is ChangeClass.COSMETIC  # only raw bytes
    assert not second.is_real
    assert first.declared_at == datetime(2026, 11, 20, 10, tzinfo=UTC)  # the app's own release date
    store.close()
    release = json.loads(json.dumps(APP))
    release["results"][0].update(version="2.4.0", currentVersionReleaseDate="2026-11-29T08:00:00Z")
    from monitor.compare import compare
    from monitor.compare import read_bytes as read

    opts = ExtractOptions(select=SELECT)
    a = read(json.dumps(APP).encode(), kind=Kind.JSON)
    b = read(json.dumps(release).encode(), kind=Kind.JSON)
    assert compare(a, b).change_class is ChangeClass.CONTENT
    assert extract(Kind.JSON, json.dumps(release).encode(), url="x", options=opts).blocks[2].text == (
        '$.version = "2.4.0"')


def test_json_canonical_form_and_bad_input() -> None:
    a = extract(Kind.JSON, b'{"b": 1.0, "a": [1, 2]}', url="x")
    b = extract(Kind.JSON, b'{"a": [1, 2], "b": 1}', url="x")
    assert a.blocks == b.blocks  # key order and 1.0 vs 1 do not matter
    assert extract(Kind.JSON, b"<html>not json</html>", url="x").quality is Quality.UNREADABLE
    ignored = extract(Kind.JSON, b'{"data": 1, "generated_at": "2026-11-30"}', url="x",
                      options=ExtractOptions(ignore=("generated_at",)))
    assert [x.path for x in ignored.blocks] == ["$.data"]
    missing = extract(Kind.JSON, b'{"a": 1}', url="x", options=ExtractOptions(select="results[0]"))
    assert missing.quality is Quality.UNREADABLE and "matched nothing" in missing.quality_reason
    assert extract(Kind.JSON, b"[" * 100_000, url="x").quality is Quality.UNREADABLE


# --- documents -----------------------------------------------------------------------------------------

def xlsx(rows: list[list[object]]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Реєстр"
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


REGISTER = [["№", "Об'єкт", "Адреса", "Площа, м2"], [1, "Нежитлове приміщення", "вул. Центральна, 1", 120.5],
            [2, "Земельна ділянка", "вул. Шмідта, 5", 800]]


def test_spreadsheet_compared_by_values_not_by_container() -> None:
    from monitor.compare import compare
    from monitor.compare import read_bytes as read

    a, again = xlsx(REGISTER), xlsx(REGISTER)
    assert compare(read(a, kind=Kind.FILE), read(again, kind=Kind.FILE)).change_class.rank >= ChangeClass.COSMETIC.rank
    edited = [row[:] for row in REGISTER]
    edited[2][3] = 850
    verdict = compare(read(a, kind=Kind.FILE), read(xlsx(edited), kind=Kind.FILE))
    assert verdict.change_class is ChangeClass.CONTENT and "850" in verdict.evidence.diff


def test_docx_and_pdf_and_csv_and_ods() -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("Рішення виконавчого комітету № 512")
    document.add_paragraph("Про затвердження плану ремонту доріг")
    buf = io.BytesIO()
    document.save(buf)
    c = extract(Kind.FILE, buf.getvalue(), url="https://x.example/r.docx")
    assert [b.text for b in c.blocks] == ["Рішення виконавчого комітету № 512", "Про затвердження плану ремонту доріг"]
    pdf = minimal_pdf("Rishennia 512")
    p = extract(Kind.FILE, pdf, url="https://x.example/r.pdf")
    assert p.quality is Quality.OK and p.blocks[0].text == "Rishennia 512"
    csv_doc = extract(Kind.FILE, "№;Назва\n1;Сквер\n".encode("cp1251"), url="https://x.example/a.csv",
                      content_type="text/csv")
    assert [b.text for b in csv_doc.blocks] == ["csv!1: № | Назва", "csv!2: 1 | Сквер"]
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    ods = OpenDocumentSpreadsheet()
    sheet = Table(name="Аркуш1")
    row = TableRow()
    for value in ("Проєкт", "Сума"):
        cell = TableCell()
        cell.addElement(P(text=value))
        row.addElement(cell)
    sheet.addElement(row)
    ods.spreadsheet.addElement(sheet)
    buf = io.BytesIO()
    ods.save(buf)
    assert [b.text for b in extract(Kind.FILE, buf.getvalue(), url="x.ods").blocks] == ["Аркуш1!1: Проєкт | Сума"]


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with one line of text, written by hand (objects, xref, trailer)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
               b"/Contents 5 0 R >>", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


@pytest.mark.parametrize(("body", "reason"), [
    (b"<html><body>Not a spreadsheet</body></html>", "not a document this monitor reads"),
    (b"PK\x03\x04garbage that is not a zip", "not a document this monitor reads"),
    (b"%PDF-1.4\n1 0 obj garbage", "PDF"),
])
def test_bad_documents(body: bytes, reason: str) -> None:
    c = extract(Kind.FILE, body, url="https://x.example/register.xlsx")
    assert c.quality is Quality.UNREADABLE or not c.blocks
    if c.quality is Quality.UNREADABLE:
        assert reason in c.quality_reason


async def test_a_spreadsheet_that_is_not_one_is_a_bad_capture(tmp_path: Path, site: Site) -> None:
    site.routes["/register.xlsx"] = page("<html><body>Сторінка входу</body></html>")
    first, _, store = await check_twice(tmp_path, targets("file", site.url("/register.xlsx"),
                                                          f"sqlite:///{tmp_path / 'm.db'}"))
    assert first.outcome is Outcome.BAD_CAPTURE and "not a document" in first.fetch.error
    store.close()


# --- availability -------------------------------------------------------------------------------------

async def test_availability_is_up_or_down_never_a_change(tmp_path: Path, site: Site) -> None:
    login = "<html><body><form><label>Логін</label><button>Увійти</button></form><p>{n}</p></body></html>"
    state = {"n": 1}
    site.routes["/cabinet"] = lambda req, w: respond(w, 200, login.format(n=state["n"]).encode())

    def change() -> None:
        state["n"] = 2

    first, second, store = await check_twice(tmp_path, targets("availability", site.url("/cabinet"),
                                                               f"sqlite:///{tmp_path / 'm.db'}", expect="Увійти"),
                                             change)
    assert first.outcome is Outcome.OK and second.verdict is not None
    assert second.verdict.change_class.rank > ChangeClass.DATE_ONLY.rank and not second.is_real  # bytes only
    assert store.history.changes() == []
    store.close()
    gone = extract(Kind.AVAILABILITY, b"<html>Maintenance</html>", url="x", options=ExtractOptions(expect="Увійти"))
    assert gone.quality is Quality.UNREADABLE and "'Увійти' is not there" in gone.quality_reason


def test_kind_options_are_validated() -> None:
    import tomllib

    from monitor.config import parse_catalogue
    from monitor.errors import ConfigError

    bad = targets("html", "https://x.example/", "sqlite:///x.db", select="a.b") + "\n"
    with pytest.raises(ConfigError) as info:
        parse_catalogue(tomllib.loads(bad), environ={})
    assert "key 'select': only for kind json, not 'html'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse_catalogue(tomllib.loads(targets("ckan", "https://data.example/api/3/action/", "sqlite:///x.db")),
                        environ={})
    assert "needs 'organization'" in str(info.value)


async def test_the_registry_declares_every_kind_once_and_drives_the_catalogue() -> None:
    """Every kind has one entry: its reader, its capture, its options, its gate, its masking; the catalogue
    accepts a kind's own keys only on that kind, and the docs' table of kinds is generated from it."""
    from monitor import kinds
    from monitor.config import parse_catalogue
    from monitor.errors import ConfigError

    assert set(kinds.REGISTRY) == set(Kind)
    assert kinds.kinds_accepting("ignore") == (Kind.JSON, Kind.CKAN, Kind.GEO)
    assert [k for k in Kind if kinds.spec(k).gated] == [Kind.HTML]
    assert [k for k in Kind if kinds.spec(k).link_checks] == [Kind.HTML]
    assert [k for k in Kind if kinds.spec(k).datasets] == [Kind.CKAN]
    for kind in (Kind.JSON, Kind.CKAN, Kind.GEO, Kind.AVAILABILITY):  # data is compared exactly, whatever the reader
        assert kinds.spec(kind).masking is kinds.Masking.EXACT
    assert not extract(Kind.JSON, b'{"a": 1}', url="https://api.example/").mask
    assert extract(Kind.FEED, b"<rss version='2.0'><channel><item><title>T</title></item></channel></rss>",
                   url="https://city.example/rss").mask
    base = '[settings]\nuser_agent = "t (+mailto:a@b.c)"\n[departments.d]\nname = "D"\n[[services]]\nid = "s"\n' \
           'name = "S"\ndepartment = "D"\nregulation = "weekly"\n  [[services.pages]]\n'
    import tomllib

    with pytest.raises(ConfigError) as bad:
        parse_catalogue(tomllib.loads(base + '  url = "https://a.example/"\n  kind = "feed"\n  select = "x"\n'
                                      '  organization = "o"\n'), environ={})
    text = str(bad.value)
    assert "key 'select': only for kind json, not 'feed'" in text
    assert "key 'organization': only for kind ckan, not 'feed'" in text
    with pytest.raises(ConfigError, match="a ckan page needs 'organization'"):
        parse_catalogue(tomllib.loads(base + '  url = "https://data.example/api/3/action/"\n  kind = "ckan"\n'),
                        environ={})


async def test_a_ckan_address_without_an_organisation_is_one_request(site: Site) -> None:
    from monitor.clock import VirtualClock
    from monitor.collect import collect_ckan
    from monitor.domain import PageConfig
    from tests.helpers import StubFetcher

    fetcher = StubFetcher(VirtualClock())
    one = PageConfig(service_id="s", position=1, url="https://data.example/api/3/action/package_show?id=x",
                     kind=Kind.CKAN)
    fetcher.pages[one.url] = (200, b'{"success": true, "result": {"name": "x", "resources": []}}')
    result = await collect_ckan(fetcher, one, None)
    assert result.outcome is Outcome.OK and [url for url, _ in fetcher.calls] == [one.url]


def test_json_with_an_integer_of_thousands_of_digits_is_unreadable_not_a_crash() -> None:
    body = b'{"total": ' + b"9" * 5000 + b"}"
    content = extract(Kind.JSON, body, url="https://api.example/")
    assert content.quality is Quality.UNREADABLE and "not valid JSON" in content.quality_reason
