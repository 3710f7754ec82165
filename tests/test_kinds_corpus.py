"""Every kind over the real samples of ../shared/corpus/: each is understood or fails with a clear outcome,
never a crash (windows-1251 and KOI8-R feeds, a corrupted and an encrypted PDF, invalid JSON...)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from monitor.compare import read_bytes
from monitor.domain import Kind, Quality, dump_content
from monitor.kinds import extract
from monitor.reports import ReportMapping, parse
from tests.conftest import SHARED

CORPUS = SHARED / "corpus"
RECORDED = Path(__file__).resolve().parent / "fixtures" / "corpus_outputs.json"
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


def _malformed_documents() -> dict[str, list[str]]:
    """html5lib's malformed-HTML test documents, by file."""
    out = {}
    for path in sorted((CORPUS / "malformed").glob("*.dat")):
        data = path.read_bytes().decode("utf-8", errors="replace")
        out[path.name] = [chunk.split("\n#errors", 1)[0] for chunk in data.split("#data\n")[1:]]
    return out


def _digest(*parts: bytes) -> str:
    return hashlib.sha256(b"\x1e".join(parts)).hexdigest()


def outputs() -> dict[str, str]:
    """Per sample of the shared corpus, a digest of everything the core makes of it: the extracted content,
    the layers, the fingerprints, the version key and the quality. Per malformed-HTML file, one digest of
    all its documents' contents. Behaviour-preserving changes leave every digest as it is."""
    out = {}
    for folder, kind in {"pages": Kind.HTML, **KINDS}.items():
        for path in sorted((CORPUS / folder).glob("*")):
            r = read_bytes(path.read_bytes(), url=f"https://sample.example/{path.name}", kind=kind)
            out[f"{folder}/{path.name}"] = _digest(dump_content(r.content), repr(r.layers).encode(),
                                                   repr(r.fingerprints).encode(), r.key.encode(),
                                                   r.quality.value.encode())
    for name, documents in _malformed_documents().items():
        out[f"malformed/{name}"] = _digest(*(dump_content(extract(
            Kind.HTML, html.encode("utf-8", errors="replace"), url="https://x.example/")) for html in documents))
    return out


def test_every_corpus_output_is_as_recorded(shared_corpus: Path) -> None:
    """The blocks, classes and fingerprints of all 211 pages and every other sample are exactly those recorded
    in tests/fixtures/corpus_outputs.json. A change that means to alter them records them anew with
    `python -m tests.test_kinds_corpus` and says why in its commit; any other difference is a regression."""
    recorded = json.loads(RECORDED.read_text(encoding="utf-8"))
    now = outputs()
    assert now.keys() == recorded.keys()
    changed = sorted(k for k in now if now[k] != recorded[k])
    assert not changed, f"{len(changed)} samples read differently: {changed[:20]}"


def test_the_malformed_html_of_html5lib_extracts_deterministically_and_cleanly(shared_corpus: Path) -> None:
    """Every malformed document extracts without an exception, twice the same, into normalised text."""
    documents = 0
    for html in (h for hs in _malformed_documents().values() for h in hs):
        body = html.encode("utf-8", errors="replace")
        content = extract(Kind.HTML, body, url="https://x.example/")
        assert extract(Kind.HTML, body, url="https://x.example/") == content
        assert content.quality in (Quality.OK, Quality.EMPTY, Quality.UNREADABLE)
        assert content.quality is Quality.OK or content.quality_reason
        for block in content.blocks:
            assert block.text and block.text == block.text.strip() and "\x00" not in block.text, block
            assert "  " not in block.text and "\n" not in block.text, block
        documents += 1
    assert documents > 1000


if __name__ == "__main__":  # record the outputs anew: python -m tests.test_kinds_corpus
    RECORDED.write_text(json.dumps(outputs(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"recorded {RECORDED}")
