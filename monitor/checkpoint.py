"""Signed checkpoints: the heads of every hash chain, signed with an Ed25519 key the auditor holds, kept in a
file outside the database. The only module that imports `cryptography`.

A chain proves that no record was changed relative to the others; someone with write access and this code
could still rewrite a whole chain and recompute every hash. A checkpoint closes that: the record at each
signed position must still carry the signed hash, and the chain links every older record to it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from monitor.errors import UsageError
from monitor.ports import ChainBreak, ChainHeadRow

FORMAT = "city-freshness-monitor checkpoint 1"


@dataclass(frozen=True, slots=True)
class KeyPair:
    private_pem: bytes
    public_pem: bytes


def generate() -> KeyPair:
    key = Ed25519PrivateKey.generate()
    return KeyPair(
        private_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()),
        public_pem=key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo))


def _private(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"not a private key in PEM form: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError("the private key is not an Ed25519 key (make one with `monitor checkpoint keygen`)")
    return key


def _public(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"not a public key in PEM form: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError("the public key is not an Ed25519 key")
    return key


def _payload(doc: Mapping[str, object]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def make(heads: Sequence[ChainHeadRow], *, private_pem: bytes, made_at: datetime, note: str = "") -> bytes:
    """A signed checkpoint of the chains' heads (JSON)."""
    key = _private(private_pem)
    raw_public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    doc: dict[str, object] = {
        "format": FORMAT, "made_at": made_at.isoformat(), "note": note,
        "public_key": base64.b64encode(raw_public).decode(),
        "heads": [{"chain": h.name, "seq": h.seq, "hash": h.hash} for h in heads],
    }
    doc["signature"] = base64.b64encode(key.sign(_payload(doc))).decode()
    return (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    made_at: str
    heads: Sequence[ChainHeadRow]


def read(data: bytes, *, public_pem: bytes | None) -> Checkpoint:
    """Parse a checkpoint and check its signature: with the auditor's public key when given (proving who
    signed), else with the key the file names (proving only that the file is whole)."""
    try:
        doc = json.loads(data)
        if doc.get("format") != FORMAT:
            raise ValueError(f"not a checkpoint of this monitor (format {doc.get('format')!r})")
        signature = base64.b64decode(doc["signature"])
        key = (_public(public_pem) if public_pem is not None
               else Ed25519PublicKey.from_public_bytes(base64.b64decode(doc["public_key"])))
        heads = [ChainHeadRow(name=str(h["chain"]), seq=int(h["seq"]), hash=str(h["hash"])) for h in doc["heads"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot read the checkpoint: {exc}") from None
    try:
        key.verify(signature, _payload(doc))
    except InvalidSignature:
        raise UsageError("the checkpoint's signature does not match (the file was altered, or signed with "
                         "another key)") from None
    return Checkpoint(made_at=str(doc.get("made_at", "")), heads=heads)


def compare(checkpoint: Checkpoint, current: Sequence[ChainHeadRow],
            record_at: Callable[[str, int], str | None]) -> list[ChainBreak]:
    """What the database says against what was signed: the record at each signed position must still carry
    the signed hash (records since then may follow; retention may have removed it, if it recorded so)."""
    now = {h.name: h for h in current}
    out = []
    for signed in checkpoint.heads:
        if signed.seq == 0:
            continue  # the chain was empty when signed: anything since is new
        head = now.get(signed.name)
        if head is None or head.seq < signed.seq:
            out.append(ChainBreak(table=signed.name, record_id=0, reason=f"the chain is shorter than at the "
                                  f"checkpoint of {checkpoint.made_at} ({head.seq if head else 0} < {signed.seq})"))
            continue
        if signed.seq <= head.base_seq:
            if signed.seq == head.base_seq and head.base_hash and head.base_hash != signed.hash:
                out.append(ChainBreak(table=signed.name, record_id=0, reason="the record signed at the checkpoint "
                                      "was changed before retention removed it"))
            continue  # removed by retention since, which the retention log recorded (checked by verify)
        stored = record_at(signed.name, signed.seq)
        if stored != signed.hash:
            out.append(ChainBreak(table=signed.name, record_id=signed.seq, reason=f"the record at position "
                                  f"{signed.seq} is not the one signed at the checkpoint of {checkpoint.made_at} "
                                  "(the chain was rewritten)"))
    return out
