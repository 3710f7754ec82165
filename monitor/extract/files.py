"""Documents -> Content: PDF (text per page), DOCX and ODT (paragraphs and tables), XLSX, XLS and ODS (cell
values per sheet and row, so a spreadsheet re-saved with the same values is not a change), CSV. Readers are
well-kept libraries; what cannot be read (corrupted, encrypted, not what it claims) is UNREADABLE with the
reason. Sizes are bounded: at most MAX_CELLS cells and MAX_PAGES pages are read."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from monitor.domain import Block, Content, Quality
from monitor.extract.decode import decode
from monitor.extract.normalize import normalise

MAX_CELLS = 200_000
MAX_PAGES = 500
ZIP_MAX_UNCOMPRESSED = 200 * 1024 * 1024  # a zip bomb disguised as a spreadsheet stops here


def sniff(body: bytes, content_type: str = "", url: str = "") -> str:
    """pdf, docx, xlsx, odt, ods, xls, csv or '' (unknown) from the bytes first, then the type and the name."""
    if body.startswith(b"%PDF") or b"%PDF-" in body[:1024]:
        return "pdf"
    if body.startswith(b"\xd0\xcf\x11\xe0"):
        return "xls"
    if body.startswith(b"PK"):
        try:
            with zipfile.ZipFile(io.BytesIO(body)) as z:
                names = set(z.namelist())
                if "word/document.xml" in names:
                    return "docx"
                if "xl/workbook.xml" in names:
                    return "xlsx"
                if "mimetype" in names:
                    mime = z.read("mimetype")[:100]
                    return "ods" if b"spreadsheet" in mime else "odt" if b"text" in mime else ""
        except zipfile.BadZipFile:
            return ""
        return ""
    lowered = (content_type + " " + url.rsplit("?", 1)[0]).lower()
    if "csv" in lowered or lowered.endswith(".csv"):
        return "csv"
    return ""


def _lines(text: str) -> Iterator[str]:
    for line in text.splitlines():
        clean = normalise(line)
        if clean:
            yield clean


def _pdf(body: bytes) -> Content:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(body), strict=False)
        if reader.is_encrypted:
            try:
                if not reader.decrypt(""):
                    return Content(quality=Quality.UNREADABLE, quality_reason="an encrypted PDF (a password is needed)")
            except Exception as exc:
                return Content(quality=Quality.UNREADABLE, quality_reason=f"an encrypted PDF: {exc}")
        blocks = []
        for number, page in enumerate(reader.pages[:MAX_PAGES], start=1):
            for i, line in enumerate(_lines(page.extract_text() or ""), start=1):
                blocks.append(Block(path=f"page/{number}/{i}", text=line))
        declared = None
        info = reader.metadata
        if info is not None and info.modification_date is not None:
            declared = info.modification_date
            declared = declared if declared.tzinfo else declared.replace(tzinfo=UTC)
        title = str(info.get("/Title") or "") if info is not None else ""
        return Content(blocks=tuple(blocks), declared_at=declared, title=title)
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, IndexError, RecursionError) as exc:
        return Content(quality=Quality.UNREADABLE, quality_reason=f"a corrupted PDF: {type(exc).__name__}: {exc}"[:300])


def _check_zip(body: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            total = sum(i.file_size for i in z.infolist())
    except zipfile.BadZipFile as exc:
        return f"a damaged zip container: {exc}"
    return f"unpacks to {total} bytes, more than allowed" if total > ZIP_MAX_UNCOMPRESSED else None


def _docx(body: bytes) -> Content:
    import docx

    doc = docx.Document(io.BytesIO(body))
    blocks = [Block(path=f"p/{i}", text=normalise(p.text)) for i, p in enumerate(doc.paragraphs, start=1)
              if normalise(p.text)]
    for t, table in enumerate(doc.tables, start=1):
        for r, row in enumerate(table.rows, start=1):
            cells = [normalise(c.text) for c in row.cells]
            if any(cells):
                blocks.append(Block(path=f"table/{t}/{r}", text=" | ".join(cells)))
    for part in doc.part.package.iter_parts():  # pictures count too: a replaced scan is a changed document
        # the package thumbnail (docProps/) is redrawn by every save: it is not content
        if str(part.content_type).startswith("image/") and not str(part.partname).startswith("/docProps/"):
            digest = hashlib.sha256(part.blob).hexdigest()[:16]
            name = str(part.partname).rsplit("/", 1)[-1]
            blocks.append(Block(path=f"image{part.partname}", text=f"image {name} {digest}"))
    modified = doc.core_properties.modified
    declared = modified.replace(tzinfo=UTC) if modified and modified.tzinfo is None else modified
    return Content(blocks=tuple(blocks), declared_at=declared, title=doc.core_properties.title or "")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return normalise(str(value))


def _rows_to_blocks(sheet: str, rows: Iterator[list[Any]], budget: list[int]) -> Iterator[Block]:
    for r, row in enumerate(rows, start=1):
        cells = [_cell(v) for v in row]
        budget[0] -= len(cells)
        if budget[0] < 0:
            yield Block(path=f"{sheet}/…", text="… the rest of the sheet is not read (too many cells)")
            return
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            yield Block(path=f"{sheet}/{r}", text=f"{sheet}!{r}: " + " | ".join(cells))


def _xlsx(body: bytes) -> Content:
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(body), read_only=True, data_only=True)
    budget = [MAX_CELLS]
    blocks: list[Block] = []
    for ws in wb.worksheets:
        blocks.extend(_rows_to_blocks(ws.title, (list(r) for r in ws.iter_rows(values_only=True)), budget))
    modified = wb.properties.modified
    wb.close()
    declared = modified.replace(tzinfo=UTC) if modified and modified.tzinfo is None else modified
    return Content(blocks=tuple(blocks), declared_at=declared, mask=False)


def _xls(body: bytes) -> Content:
    import xlrd

    book = xlrd.open_workbook(file_contents=body, on_demand=True)
    budget = [MAX_CELLS]
    blocks: list[Block] = []
    for sheet in book.sheets():
        rows = (sheet.row_values(i) for i in range(sheet.nrows))
        blocks.extend(_rows_to_blocks(sheet.name, rows, budget))
    return Content(blocks=tuple(blocks), mask=False)


def _odf(body: bytes, spreadsheet: bool) -> Content:
    from odf import table, teletype, text
    from odf.opendocument import load

    doc = load(io.BytesIO(body))
    blocks: list[Block] = []
    if spreadsheet:
        budget = [MAX_CELLS]
        for sheet in doc.spreadsheet.getElementsByType(table.Table):
            name = str(sheet.getAttribute("name"))

            def rows(sheet: Any = sheet) -> Iterator[list[Any]]:
                for row in sheet.getElementsByType(table.TableRow):
                    repeat = int(row.getAttribute("numberrowsrepeated") or 1)
                    cells = []
                    for cell in row.getElementsByType(table.TableCell):
                        times = min(int(cell.getAttribute("numbercolumnsrepeated") or 1), 1000)
                        cells.extend([teletype.extractText(cell)] * times)
                    for _ in range(min(repeat, 1000) if any(c.strip() for c in cells) else 1):
                        yield cells

            blocks.extend(_rows_to_blocks(name, rows(), budget))
        return Content(blocks=tuple(blocks), mask=False)
    for i, p in enumerate(doc.text.getElementsByType(text.P), start=1):
        line = normalise(teletype.extractText(p))
        if line:
            blocks.append(Block(path=f"p/{i}", text=line))
    return Content(blocks=tuple(blocks))


def _csv(body: bytes, charset: str | None) -> Content:
    text, _codec = decode(body, charset)
    first = text.split("\n", 1)[0]
    dialect = ";" if first.count(";") > first.count(",") else ","
    budget = [MAX_CELLS]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=dialect)
    try:
        blocks = list(_rows_to_blocks("csv", (row for row in reader), budget))
    except csv.Error as exc:
        return Content(quality=Quality.UNREADABLE, quality_reason=f"a malformed CSV: {exc}")
    return Content(blocks=tuple(blocks), mask=False)


def extract_file(body: bytes, *, url: str = "", content_type: str = "", charset: str | None = None) -> Content:
    kind = sniff(body, content_type, url)
    if not kind:
        return Content(quality=Quality.UNREADABLE,
                       quality_reason=f"not a document this monitor reads (PDF, DOCX, ODT, XLSX, XLS, ODS, CSV); "
                                      f"content type {content_type or 'unknown'}")
    if kind in ("docx", "xlsx", "ods", "odt") and (problem := _check_zip(body)):
        return Content(quality=Quality.UNREADABLE, quality_reason=problem)
    try:
        if kind == "pdf":
            return _pdf(body)
        if kind == "docx":
            return _docx(body)
        if kind == "xlsx":
            return _xlsx(body)
        if kind == "xls":
            return _xls(body)
        if kind in ("ods", "odt"):
            return _odf(body, spreadsheet=kind == "ods")
        return _csv(body, charset)
    except Exception as exc:  # third-party readers raise anything on damaged files
        return Content(quality=Quality.UNREADABLE, quality_reason=f"a damaged {kind.upper()}: {type(exc).__name__}: "
                                                                  f"{str(exc)[:200]}")
