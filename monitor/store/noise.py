"""NoiseStore over SQLAlchemy: learned (or operator-written) rules masking a page's own noise."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from monitor.ports import NoiseRuleRow
from monitor.store import models as m
from monitor.store.common import translate, unpack, utc


class SqlNoise:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def noise_paths(self, page_ids: Iterable[int]) -> dict[int, list[str]]:
        """Active or confirmed noise rules: block paths masked in the fingerprints."""
        ids = list(page_ids)
        out: dict[int, list[str]] = {}
        if not ids:
            return out
        R = m.NoiseRule
        with Session(self.engine) as s:
            for pid, path in s.execute(select(R.page_id, R.path).where(R.page_id.in_(ids),
                                                                        R.status.in_(("active", "confirmed")))):
                out.setdefault(pid, []).append(path)
        return out

    def add_noise_rules(self, page_id: int, rules: Iterable[tuple[str, str]], *, source: str,
                        now: datetime) -> list[str]:
        """Store learned rules (path, evidence) that the page does not have yet in any status; returns the
        paths added. A rule an operator dropped is never learned again."""
        added = []
        with translate("cannot store noise rules"), Session(self.engine) as s, s.begin():
            have = set(s.scalars(select(m.NoiseRule.path).where(m.NoiseRule.page_id == page_id)))
            for path, evidence in rules:
                if path in have:
                    continue
                s.add(m.NoiseRule(page_id=page_id, path=path, source=source, status="active",
                                  evidence=evidence[:2000], hits=0, created_at=now, updated_at=now))
                have.add(path)
                added.append(path)
        return added

    def noise_rules(self, service_id: str | None = None) -> list[NoiseRuleRow]:
        R, P = m.NoiseRule, m.Page
        q = (select(R.id, P.service_id, P.position.label("page"), P.url, R.path, R.source, R.status, R.evidence,
                    R.created_at).join(P, P.id == R.page_id).order_by(R.id))
        if service_id:
            q = q.where(P.service_id == service_id)
        with Session(self.engine) as s:
            return [NoiseRuleRow(**row._asdict()) for row in s.execute(q)]

    def set_noise_status(self, rule_id: int, status: str, now: datetime) -> bool:
        with translate("cannot change a noise rule"), Session(self.engine) as s, s.begin():
            rule = s.get(m.NoiseRule, rule_id)
            if rule is None:
                return False
            rule.status, rule.updated_at = status, now
            return True

    def calibrated(self, page_ids: Iterable[int]) -> dict[int, datetime | None]:
        ids = list(page_ids)
        with Session(self.engine) as s:
            return {pid: utc(at) for pid, at in s.execute(select(m.Page.id, m.Page.calibrated_at)
                                                          .where(m.Page.id.in_(ids)))}

    def mark_calibrated(self, page_id: int, now: datetime) -> None:
        with translate("cannot record a calibration"), Session(self.engine) as s, s.begin():
            s.execute(update(m.Page).where(m.Page.id == page_id).values(calibrated_at=now))

    def recent_contents(self, page_id: int, limit: int) -> list[bytes]:
        """The serialised Content of the page's `limit` newest versions, oldest first."""
        with Session(self.engine) as s:
            rows = s.execute(select(m.Blob.codec, m.Blob.data).join(m.Version, m.Version.content_sha == m.Blob.sha256)
                             .where(m.Version.page_id == page_id)
                             .order_by(m.Version.first_seen_at.desc(), m.Version.id.desc()).limit(limit)).all()
        return [unpack(codec, data) for codec, data in reversed(rows)]

    def newest_contents(self, page_ids: Iterable[int]) -> dict[int, tuple[str, bytes]]:
        ids = list(page_ids)
        if not ids:
            return {}
        V = m.Version
        newest = (select(V.page_id, V.content_sha, func.row_number().over(
            partition_by=V.page_id, order_by=(V.first_seen_at.desc(), V.id.desc())).label("rn"))
            .where(V.page_id.in_(ids)).subquery())
        with Session(self.engine) as s:
            rows = s.execute(select(newest.c.page_id, m.Blob.sha256, m.Blob.codec, m.Blob.data)
                             .join(m.Blob, m.Blob.sha256 == newest.c.content_sha).where(newest.c.rn == 1)).all()
        return {pid: (sha, unpack(codec, data)) for pid, sha, codec, data in rows}
