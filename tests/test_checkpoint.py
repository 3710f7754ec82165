"""Signed checkpoints: an auditor's key signs the heads of every chain; a history rewritten since — even
with every hash recomputed by this very code — is found; an altered checkpoint or another key is refused."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor import checkpoint
from monitor.cli import main
from monitor.errors import UsageError
from monitor.ports import ChainHeadRow
from monitor.store.chain import record_hash
from tests.conftest import catalogue_toml
from tests.helpers import html
from tests.siteserver import Site, page


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _history(tmp_path: Path, site: Site) -> Path:
    targets = tmp_path / "targets.toml"
    targets.write_text(catalogue_toml([site.url("/uk")], db=f"sqlite:///{tmp_path / 'm.db'}"), encoding="utf-8")
    for news in (("Перша",), ("Перша", "Друга"), ("Перша", "Друга", "Третя")):
        site.routes["/uk"] = page(html(*news))
        assert _cli("-t", str(targets), "check")[0] == 0
    return targets


def _recompute(db: Path, name: str) -> None:
    """What someone with write access and this code could do: rewrite a chain and every hash after."""
    from sqlalchemy import select, update

    from monitor.store.chain import MODELS
    from monitor.store.engine import make_engine

    engine = make_engine(f"sqlite:///{db}")
    tbl = MODELS[name].__table__
    with engine.begin() as conn:
        prev = ""
        for row in conn.execute(select(tbl).order_by(tbl.c.chain_seq)).mappings().all():
            digest = record_hash(prev, name, row)
            conn.execute(update(tbl).where(tbl.c.id == row["id"]).values(prev_hash=prev, record_hash=digest))
            prev = digest
        conn.execute(update(MODELS["versions"].metadata.tables["chain_heads"]).where(
            MODELS["versions"].metadata.tables["chain_heads"].c.name == name).values(last_hash=prev))
    engine.dispose()


def test_a_checkpoint_finds_a_history_rewritten_with_every_hash_recomputed(tmp_path: Path, site: Site) -> None:
    targets = _history(tmp_path, site)
    keys = (str(tmp_path / "auditor.key"), str(tmp_path / "auditor.pub"))
    assert _cli("checkpoint", "keygen", "--private", keys[0], "--public", keys[1])[0] == 0
    assert os.stat(keys[0]).st_mode & 0o777 == 0o600
    code, out, _ = _cli("-t", str(targets), "checkpoint", "make", "--key", keys[0], "-o", str(tmp_path / "q1.json"),
                        "--note", "Q1 2026 audit")
    assert code == 0 and "changes: 2 " in out
    verify = ["-t", str(targets), "verify", "--checkpoint", str(tmp_path / "q1.json"), "--public-key", keys[1]]
    code, out, _ = _cli(*verify)
    assert code == 0 and "the checkpoint's records are unchanged" in out

    site.routes["/uk"] = page(html("Перша", "Друга", "Третя", "Четверта"))  # history goes on after it
    assert _cli("-t", str(targets), "check")[0] == 0
    assert _cli(*verify)[0] == 0

    db = tmp_path / "m.db"
    with sqlite3.connect(db) as conn:  # the first change is turned into a date bump...
        conn.execute("update changes set change_class = 'date_only', is_real = 0 where chain_seq = 1")
    _recompute(db, "changes")  # ...and the chain recomputed with our own code
    code, out, _ = _cli("-t", str(targets), "verify")
    assert code == 0  # the chain alone cannot tell
    code, _, err = _cli(*verify)
    assert code == 1 and "ALTERED: changes record 2" in err and "the chain was rewritten" in err


def test_an_altered_checkpoint_or_another_key_is_refused(tmp_path: Path, site: Site) -> None:
    targets = _history(tmp_path, site)
    for who in ("auditor", "other"):
        _cli("checkpoint", "keygen", "--private", str(tmp_path / f"{who}.key"), "--public",
             str(tmp_path / f"{who}.pub"))
    cp = tmp_path / "cp.json"
    assert _cli("-t", str(targets), "checkpoint", "make", "--key", str(tmp_path / "auditor.key"), "-o", str(cp))[0] == 0
    code, _, err = _cli("-t", str(targets), "verify", "--checkpoint", str(cp), "--public-key",
                        str(tmp_path / "other.pub"))
    assert code == 1 and "signature does not match" in err
    doc = json.loads(cp.read_text())
    doc["heads"][0]["seq"] -= 1  # someone moves the signed head back
    cp.write_text(json.dumps(doc))
    code, _, err = _cli("-t", str(targets), "verify", "--checkpoint", str(cp), "--public-key",
                        str(tmp_path / "auditor.pub"))
    assert code == 1 and "signature does not match" in err
    code, _, err = _cli("checkpoint", "keygen", "--private", str(tmp_path / "auditor.key"), "--public",
                        str(tmp_path / "x.pub"))
    assert code == 2 and "never overwritten" in err


def test_a_broken_history_is_not_signed(tmp_path: Path, site: Site) -> None:
    targets = _history(tmp_path, site)
    _cli("checkpoint", "keygen", "--private", str(tmp_path / "k"), "--public", str(tmp_path / "p"))
    with sqlite3.connect(tmp_path / "m.db") as conn:
        conn.execute("update checks set outcome = 'timeout' where chain_seq = 1")
    code, _, err = _cli("-t", str(targets), "checkpoint", "make", "--key", str(tmp_path / "k"), "-o",
                        str(tmp_path / "cp.json"))
    assert code == 1 and "not intact" in err and not (tmp_path / "cp.json").exists()


def test_compare_reads_each_signed_position_and_respects_retention() -> None:
    """The module itself: a signed position still carrying its hash passes however far the chain has grown;
    a rewritten record, a shorter chain, and a base changed before retention removed it are each named;
    a position retention removed (and recorded) is not asked for."""
    keys = checkpoint.generate()
    signed = [ChainHeadRow(name="changes", seq=5, hash="h5"), ChainHeadRow(name="checks", seq=9, hash="c9"),
              ChainHeadRow(name="versions", seq=3, hash="v3"), ChainHeadRow(name="reports", seq=0, hash="")]
    made = checkpoint.read(checkpoint.make(signed, private_pem=keys.private_pem,
                                           made_at=datetime(2026, 3, 31, tzinfo=UTC)),
                           public_pem=keys.public_pem)
    assert [h.seq for h in made.heads] == [5, 9, 3, 0] and made.made_at.startswith("2026-03-31")
    stored = {("changes", 5): "h5", ("checks", 9): "REWRITTEN"}
    asked: list[tuple[str, int]] = []

    def record_at(chain: str, seq: int) -> str | None:
        asked.append((chain, seq))
        return stored.get((chain, seq))

    current = [ChainHeadRow(name="changes", seq=40, hash="h40"), ChainHeadRow(name="checks", seq=12, hash="c12"),
               ChainHeadRow(name="versions", seq=8, hash="v8", base_seq=3, base_hash="OTHER"),
               ChainHeadRow(name="reports", seq=0, hash="")]
    breaks = checkpoint.compare(made, current, record_at)
    assert [(b.table, b.record_id) for b in breaks] == [("checks", 9), ("versions", 0)]
    assert "rewritten" in breaks[0].reason and "before retention removed it" in breaks[1].reason
    assert asked == [("changes", 5), ("checks", 9)]  # retention's base and an empty chain are not read
    shorter = checkpoint.compare(made, [ChainHeadRow(name="changes", seq=4, hash="h4")], record_at)
    assert [b.table for b in shorter] == ["changes", "checks", "versions"]
    assert all("shorter" in b.reason for b in shorter)


def test_keys_of_another_kind_or_form_are_refused_clearly() -> None:
    with pytest.raises(UsageError, match="not a private key in PEM form"):
        checkpoint.make([], private_pem=b"not a key", made_at=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(UsageError, match="not a public key in PEM form"):
        checkpoint.read(checkpoint.make([], private_pem=checkpoint.generate().private_pem,
                                        made_at=datetime(2026, 1, 1, tzinfo=UTC)), public_pem=b"nope")
    with pytest.raises(UsageError, match="not a checkpoint of this monitor"):
        checkpoint.read(b'{"format": "something else"}', public_pem=None)
    with pytest.raises(UsageError, match="cannot read the checkpoint"):
        checkpoint.read(b"\x00 not json", public_pem=None)
