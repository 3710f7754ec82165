"""Every kind over the real samples of ../shared/corpus/: each is understood or fails with a clear outcome,
never a crash (windows-1251 and KOI8-R feeds, a corrupted and an encrypted PDF, invalid JSON...)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.domain import Kind, Quality
from monitor.kinds import extract
from monitor.reports import ReportMapping, parse
from tests.conftest import SHARED

CORPUS = SHARED / "corpus"
KINDS = {"feeds": Kind.FEED, "ckan": Kind.CKAN, "arcgis": Kind.GEO, "geojson": Kind.GEO, "documents": Kind.FILE}
# samples that are broken on purpose (SOURCES-KINDS.md, note 4) or not of their folder's kind
EXPECTED_UNREADABLE = {"geotools-arcgis-bicycle-network.geo.json", "geotools-query-error-400.json",
                       "pdfminer-encrypted-aes-256.pdf", "demockan-package_list.json", "geotools-dcat-catalog.json"}
EMPTY_DOCUMENTS = {"python-docx-coreprops.docx"}  # a document with no text and no picture


def samples() -> list[tuple[str, Path]]:
    if not CORPUS.is_dir():
        return []
    out = [(folder, p) for folder in KINDS for p in sorted((CORPUS / folder).glob("*"))]
    out += [("appstore", p) for p in sorted((CORPUS / "appstore").glob("*"))]
    return out


@pytest.mark.parametrize(("folder", "path"), samples(), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_every_sample_is_understood_or_refused_clearly(folder: str, path: Path, shared_corpus: Path) -> None:
    kind = KINDS.get(folder) or (Kind.JSON if path.suffix == ".json" else Kind.HTML)
    content = extract(kind, path.read_bytes(), url=f"https://sample.example/{path.name}")
    if content.quality is Quality.OK:
        assert content.blocks or path.name in EMPTY_DOCUMENTS, f"{path.name}: read but empty"
        assert path.name not in EXPECTED_UNREADABLE, f"{path.name} should have been refused"
    else:
        assert content.quality_reason, f"{path.name}: refused without a reason"
        assert path.name in EXPECTED_UNREADABLE, f"{path.name}: {content.quality_reason}"


def test_form_exports_of_other_surveys_are_refused_with_the_reason(shared_corpus: Path) -> None:
    from monitor.config import load_catalogue

    catalogue = load_catalogue(Path(__file__).resolve().parents[1] / "targets.toml", environ={})
    for path in sorted((shared_corpus / "forms").glob("*.csv")):
        parsed = parse(path.read_bytes(), catalogue, ReportMapping(), source=path.name)
        assert parsed.file_error.startswith("no column names the service"), (path.name, parsed.file_error)


def test_the_malformed_html_of_html5lib_extracts_without_an_exception(shared_corpus: Path) -> None:
    documents = 0
    for path in sorted((shared_corpus / "malformed").glob("*.dat")):
        data = path.read_bytes().decode("utf-8", errors="replace")
        for chunk in data.split("#data\n")[1:]:
            html = chunk.split("\n#errors", 1)[0]
            content = extract(Kind.HTML, html.encode("utf-8", errors="replace"), url="https://x.example/")
            assert content is not None
            documents += 1
    assert documents > 1000
