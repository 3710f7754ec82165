"""The technical-faults list of the order (item 1.4): per service, what went wrong with its pages in a range —
downtime periods (runs of failed checks), error classes, slow responses, TLS failures and certificates near
expiry, broken same-site links, and captures that were not the content (soft 404s, bot walls, error pages).

Pure: `find_faults` works on the rows a FaultsReader hands it; `fault_views` lays them out for every output format.
Days whose check rows were pruned contribute their daily summaries (coverage_days) instead of periods."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from monitor.auditing import Code, View, local_time
from monitor.domain import Catalogue, Outcome
from monitor.ports import CheckRow, DayRow, FaultsReader, LinkRow

CERT_WARN = timedelta(days=30)  # a certificate expiring this soon after the range is listed
NOT_DOWN = {Outcome.OK.value, Outcome.NOT_MODIFIED.value, Outcome.BAD_CAPTURE.value, Outcome.BLOCKED.value}
KINDS = ("downtime", "errors", "slow", "tls", "certificate", "broken_link", "bad_capture", "daily_summary")


@dataclass(frozen=True, slots=True)
class Fault:
    service_id: str
    page: str
    kind: str  # one of KINDS
    start: datetime
    end: datetime | None  # None: still going at the end of the range
    count: int  # the checks (or link checks) it is made of
    detail: str


@dataclass(slots=True)
class ServiceFaults:
    service_id: str
    checks: int = 0
    failed: int = 0
    downtime_s: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    slow: int = 0
    broken_links: int = 0
    bad_captures: int = 0
    cert_expires_at: datetime | None = None
    faults: list[Fault] = field(default_factory=list)


def error_class(outcome: str, status: int | None) -> str:
    return f"http {status}" if outcome == Outcome.HTTP_STATUS.value and status else outcome


def _runs(rows: Sequence[CheckRow]) -> list[Fault]:
    """Downtime periods of one page: from the first failed check to the next successful one."""
    out: list[Fault] = []
    run: list[CheckRow] = []

    def close(end: datetime | None) -> None:
        classes = Counter(error_class(r.outcome, r.status) for r in run)
        last_error = next((r.error for r in reversed(run) if r.error), "")
        detail = ", ".join(f"{k} ×{n}" for k, n in classes.most_common())
        out.append(Fault(run[0].service_id, run[0].url, "downtime", run[0].started_at, end, len(run),
                         f"{detail}; {last_error[:160]}" if last_error else detail))
        run.clear()

    for r in rows:
        if r.outcome in NOT_DOWN:
            if run:
                close(r.started_at)
        else:
            run.append(r)
    if run:
        close(None)
    return out


def find_faults(checks: Iterable[CheckRow], days: Iterable[DayRow], links: Iterable[LinkRow],
                certificates: Iterable[tuple[str, str, datetime | None]], *, services: Iterable[str],
                start: datetime, end: datetime, slow_s: float) -> dict[str, ServiceFaults]:
    """Everything that went wrong, per service. `checks` come ordered by page and time."""
    out = {sid: ServiceFaults(sid) for sid in services}
    by_page: dict[tuple[str, str], list[CheckRow]] = defaultdict(list)
    for c in checks:
        by_page[(c.service_id, c.url)].append(c)
    for (sid, url), rows in by_page.items():
        s = out.setdefault(sid, ServiceFaults(sid))
        s.checks += len(rows)
        for f in _runs(rows):
            s.faults.append(f)
            s.failed += f.count
            s.downtime_s += ((f.end or end) - f.start).total_seconds()
        s.errors.update(error_class(r.outcome, r.status) for r in rows
                        if r.outcome not in (Outcome.OK.value, Outcome.NOT_MODIFIED.value))
        slow = [r for r in rows if r.duration_s > slow_s and r.outcome in NOT_DOWN]
        if slow:
            s.slow += len(slow)
            worst = max(r.duration_s for r in slow)
            s.faults.append(Fault(sid, url, "slow", slow[0].started_at, slow[-1].started_at, len(slow),
                                  f"{len(slow)} of {len(rows)} responses slower than {slow_s:g} s; "
                                  f"worst {worst:.1f} s"))
        tls = [r for r in rows if r.outcome == Outcome.TLS.value]
        if tls:
            s.faults.append(Fault(sid, url, "tls", tls[0].started_at, tls[-1].started_at, len(tls),
                                  tls[-1].error[:200] or "TLS handshake failed"))
        bad: dict[str, list[CheckRow]] = defaultdict(list)
        for r in rows:
            if r.outcome == Outcome.BAD_CAPTURE.value:
                bad[r.quality or "bad_capture"].append(r)
        for quality, rs in bad.items():
            s.bad_captures += len(rs)
            s.faults.append(Fault(sid, url, "bad_capture", rs[0].started_at, rs[-1].started_at, len(rs),
                                  f"{quality} ×{len(rs)}: {rs[-1].error[:160]}".rstrip(": ")))
    for d in days:
        s = out.setdefault(d.service_id, ServiceFaults(d.service_id))
        s.checks += d.checks
        failures = Counter({k: int(v) for k, v in (x.split(":") for x in d.failures.split(",") if x)})
        s.failed += sum(failures.values())
        down = sum(n for k, n in failures.items() if k not in NOT_DOWN)
        s.downtime_s += 86_400 * down / max(1, d.checks)  # the exact periods went with the rows: an estimate
        s.errors.update(failures)
        s.slow += d.slow
        if failures or d.slow:
            day = datetime.fromisoformat(d.day).replace(tzinfo=UTC)  # coverage days are UTC days
            parts = [", ".join(f"{k} ×{n}" for k, n in sorted(failures.items()))] if failures else []
            if d.slow:
                parts.append(f"slow ×{d.slow}")
            s.faults.append(Fault(d.service_id, d.url, "daily_summary", day, day + timedelta(days=1),
                                  sum(failures.values()), f"{'; '.join(parts)} of {d.checks} checks "
                                  "(daily summary: the check rows were pruned)"))
    per_link: dict[tuple[str, str, str], list[LinkRow]] = defaultdict(list)
    for link in links:
        per_link[(link.service_id, link.page, link.url)].append(link)
    for (sid, page, url), checked in per_link.items():
        broken = [r for r in checked if r.outcome != Outcome.OK.value]
        if not broken:
            continue
        s = out.setdefault(sid, ServiceFaults(sid))
        fixed = checked[-1].outcome == Outcome.OK.value
        s.broken_links += 0 if fixed else 1
        what = error_class(broken[-1].outcome, broken[-1].status)
        s.faults.append(Fault(sid, page, "broken_link", broken[0].checked_at, checked[-1].checked_at if fixed else None,
                              len(broken), f"{url} → {what}{' (fixed since)' if fixed else ''}"))
    for sid, url, expires in certificates:
        if expires is not None and expires < end + CERT_WARN and sid in out:
            s = out[sid]
            s.cert_expires_at = min(filter(None, (s.cert_expires_at, expires)))
            left = (expires - end).days
            s.faults.append(Fault(sid, url, "certificate", expires, None, 0,
                                  f"certificate {'expired' if expires <= end else 'expires'} "
                                  f"{expires:%Y-%m-%d}" + (f" ({left} days after the range)" if left >= 0 else "")))
    for s in out.values():
        s.faults.sort(key=lambda f: (f.start, KINDS.index(f.kind), f.page))
    return out


def run_faults(catalogue: Catalogue, store: FaultsReader, *, start: datetime, end: datetime,
               services: Iterable[str] = ()) -> dict[str, ServiceFaults]:
    wanted = set(services)
    ids = [svc.id for svc in catalogue.services if svc.pages and (not wanted or svc.id in wanted)]
    keep = set(ids)
    only = ids if wanted else None  # a few services: asked of the database, not filtered here
    checks = (r for r in store.check_rows(start, end, only) if r.service_id in keep)
    days = (r for r in store.coverage_rows(start, end, only) if r.service_id in keep)
    links = (r for r in store.link_checks(start, end) if r.service_id in keep)
    certificates = [(p.service_id, p.url, p.tls_expires_at) for p in store.pages() if p.service_id in keep]
    return find_faults(checks, days, links, certificates, services=ids, start=start, end=end,
                       slow_s=catalogue.settings.slow_s)


def fault_views(faults: dict[str, ServiceFaults], tz: str) -> dict[str, View]:
    summary, rows = [], []
    for sid, s in faults.items():
        summary.append((sid, s.checks, s.failed, round(s.downtime_s / 3600, 2),
                        ", ".join(f"{k} ×{n}" for k, n in s.errors.most_common()), s.slow, s.broken_links,
                        s.bad_captures, local_time(s.cert_expires_at, tz)))
        for f in s.faults:
            rows.append((sid, f.page, Code(f.kind), local_time(f.start, tz), local_time(f.end, tz) if f.end else "…",
                         f.count, f.detail))
    return {"summary": View("summary", ("service", "checks", "failed", "downtime_h", "errors", "slow",
                                          "broken_links", "bad_captures", "certificate"), summary),
            "faults": View("faults", ("service", "page", "kind", "from", "to", "count", "detail"), rows)}
