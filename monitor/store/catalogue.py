"""CatalogueStore over SQLAlchemy: targets.toml mirrored into services and pages, retired never deleted."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.domain import Catalogue, redact_url
from monitor.ports import PageRow, ServiceRow
from monitor.regulation import default_interval_s
from monitor.store import models as m
from monitor.store.common import table, translate


class SqlCatalogue:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def sync_catalogue(self, catalogue: Catalogue, now: datetime) -> dict[str, int]:
        """Mirror targets.toml into the database; removed services and pages are retired, never deleted.

        Returns the page id of every active page, by PageConfig.key.
        """
        with translate("cannot sync the catalogue"):
            for attempt in range(3):
                try:
                    with Session(self.engine) as s, s.begin():
                        return self._sync(s, catalogue, now)
                except IntegrityError:
                    # another monitor starting on the same database inserted the same service or page
                    # between our read and our insert; read again, it is there now
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    @staticmethod
    def _sync(s: Session, catalogue: Catalogue, now: datetime) -> dict[str, int]:
        if s.get_bind().dialect.name == "postgresql":  # workers starting together apply a change once, in turn
            s.execute(text("SELECT pg_advisory_xact_lock(hashtext('monitor.sync_catalogue'))"))
        page_ids: dict[str, int] = {}
        services = {row.id: row for row in s.scalars(select(m.Service))}
        active_ids = set()
        for svc in catalogue.services:
            active_ids.add(svc.id)
            row = services.get(svc.id)
            values = dict(name=svc.name, department=svc.department, department_id=svc.department_id,
                          regulation=svc.regulation.value, suspended=svc.suspended,
                          responsible=svc.responsible, contact=svc.contact, working_days=svc.working_days,
                          real_update_classes=",".join(sorted(c.value for c in svc.real_update_classes)))
            if row is None:
                s.add(m.Service(id=svc.id, created_at=now, updated_at=now, retired_at=None, **values))
            else:
                changed = any(getattr(row, k) != v for k, v in values.items()) or row.retired_at
                for k, v in values.items():
                    setattr(row, k, v)
                row.retired_at = None
                if changed:
                    row.updated_at = now
        for sid, row in services.items():
            if sid not in active_ids and row.retired_at is None:
                row.retired_at = now
        s.flush()

        pages = {(p.service_id, p.url): p for p in s.scalars(select(m.Page))}
        seen = set()
        for svc in catalogue.services:
            for page in svc.pages:
                url = redact_url(page.url)  # a password or a token in an address is never stored
                key = (svc.id, url)
                seen.add(key)
                options = json.dumps({"content": page.content, "exclude": list(page.exclude),
                                      "headers": dict(page.header_templates),
                                      "allow_private": page.allow_private}, sort_keys=True)
                interval = page.interval_s or default_interval_s(svc.regulation)
                prow = pages.get(key)
                if prow is None:
                    prow = m.Page(service_id=svc.id, url=url, position=page.position,
                                  kind=page.kind.value, name=page.name, interval_s=interval,
                                  options=options, created_at=now, consecutive_failures=0)
                    s.add(prow)
                else:
                    prow.position, prow.kind, prow.name = page.position, page.kind.value, page.name
                    prow.interval_s, prow.options, prow.retired_at = interval, options, None
                s.flush()
                page_ids[page.key] = prow.id
        for key, prow in pages.items():
            if key not in seen and prow.retired_at is None:
                prow.retired_at = now
        return page_ids

    def services(self, *, include_retired: bool = False) -> list[ServiceRow]:
        S = table(m.Service)
        q = select(S.c.id, S.c.name, S.c.department, S.c.department_id, S.c.regulation, S.c.suspended,
                   S.c.retired_at).order_by(S.c.id)
        if not include_retired:
            q = q.where(S.c.retired_at.is_(None))
        with self.engine.connect() as conn:
            return [ServiceRow(**row._asdict()) for row in conn.execute(q)]

    def pages(self, *, include_retired: bool = False) -> list[PageRow]:
        return pages(self.engine, include_retired=include_retired)


def pages(engine: Engine, *, include_retired: bool = False, service_id: str | None = None) -> list[PageRow]:
    """Every page (of a service) with the summary of its latest state (shared by the catalogue and the faults
    list)."""
    P = table(m.Page)
    q = select(P.c.id.label("page_id"), P.c.service_id, P.c.position, P.c.url, P.c.kind, P.c.interval_s,
               P.c.last_check_at, P.c.last_success_at, P.c.last_outcome, P.c.last_status, P.c.last_duration_s,
               P.c.first_success_at, P.c.last_change_at, P.c.last_real_change_at, P.c.tls_expires_at,
               P.c.consecutive_failures).order_by(P.c.service_id, P.c.position)
    if not include_retired:
        q = q.where(P.c.retired_at.is_(None))
    if service_id is not None:
        q = q.where(P.c.service_id == service_id)
    with engine.connect() as conn:
        return [PageRow(**row._asdict()) for row in conn.execute(q)]
