"""Signed checkpoints: an auditor's key signs the heads of every chain; a history rewritten since — even
with every hash recomputed by this very code — is found; an altered checkpoint or another key is refused."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from monitor.cli import main
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
