"""The web interface: a public status page for residents (and its JSON and Atom feed), and, behind a login,
service, department, faults and audit pages for the city's staff, with the operators' "check now" and notes
on changes. Server-rendered HTML without any script; page content shown here comes from sites we do not
control and is always escaped, under a Content-Security-Policy that forbids scripts altogether."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape as xml_escape
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import FormData, MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor import __version__
from monitor.alerting import RULES
from monitor.audit import PeriodVerdict, ServiceAudit
from monitor.auditing import CODES, VIEWS, about, audit_evidence, gather, run_audit, views
from monitor.clock import SYSTEM, Clock
from monitor.domain import Catalogue, ChangeClass, ServiceConfig, redact_url
from monitor.faults import ServiceFaults, fault_views, run_faults
from monitor.ports import CheckRow, Stores, WebStore
from monitor.render import audit_meta, evidence_lines, tables_to_html, to_csv, to_html, to_json, to_xlsx
from monitor.reports import department_note
from monitor.status import ServiceStatus, State, service_statuses
from monitor.web.auth import SESSION_COOKIE, SESSION_MAX_AGE_S, RateLimit, Session, Sessions, check_password, csrf_ok

logger = logging.getLogger(__name__)
HERE = Path(__file__).parent
STRIP_DAYS = 90
STRIP_PERIODS = 26  # the squares of the public page: the latest periods of those 90 days (26 days, 13 weeks...)
STRIP_TTL_S = 60.0  # the public page's period strips are recomputed at most once a minute
MAX_SPAN_DAYS = 5 * 366  # what one request may ask of /audit and /faults
LOGIN_COOKIE = "monitor_login"  # the sign-in form's own CSRF token (there is no session yet)
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
CSP_REPORT = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
              "frame-ancestors 'none'; base-uri 'none'")  # the audit report: one file with its own <style>

WORDS = {
    "uk": {
        "title": "Актуальність міських вебсервісів", "service": "Сервіс", "department": "Відповідальний підрозділ",
        "regulation": "Регламент оновлення", "grade": "Стан", "last_update": "Останнє оновлення",
        "last_check": "Остання перевірка", "periods": "Останні періоди", "never": "ще не було",
        "fresh": "актуальний", "due": "наближається строк", "overdue": "прострочено",
        "delinquent": "суттєво прострочено", "unknown": "ще не перевірено", "suspended": "призупинено",
        "unmonitored": "адреса невідома", "down": "недоступний", "other_lang": "English",
        "intro": "Міська рада зобов'язала підрозділи оновлювати ці сервіси за регламентом. Монітор перевіряє їх "
                 "сам і відрізняє справжні оновлення від зміни дати чи лічильника.",
        "login": "Увійти", "logout": "Вийти", "user": "Користувач", "password": "Пароль",
        "bad_login": "Невірне ім'я або пароль.", "too_many": "Забагато спроб. Спробуйте за хвилину.",
        "pages": "Сторінки", "check_now": "Перевірити зараз", "changes": "Зміни", "evidence": "Доказ",
        "reports": "Звіти підрозділу", "faults": "Технічні збої", "checks": "Перевірки", "notes": "Примітки",
        "add_note": "Додати примітку", "our_update": "наше оновлення", "redesign": "зміна дизайну сайту",
        "other": "інше", "deadline": "Строк наступного оновлення", "grafana": "Панель Grafana",
        "departments": "Підрозділи", "audit": "Аудит",
        "runbooks": "Що робити за сповіщенням", "status": "Стан сервісів", "download": "Завантажити",
        "from": "З", "to": "По", "show": "Показати", "none": "немає", "checked": "Перевірено",
        "outcome": "Результат", "class": "Клас", "real": "Справжнє", "detected": "Виявлено", "since": "Після",
        "declared": "Дати на сторінці", "feed": "Стрічка оновлень (Atom)", "json": "JSON",
        "forbidden": "Недостатньо прав для цієї дії.", "not_found": "Не знайдено.", "skip": "До змісту",
        "nav": "Навігація", "signed_in": "Ви увійшли як", "verdict": "Висновок", "claimed": "Заявлено на",
        "what": "Що оновлено", "page": "Сторінка", "kind": "Тип", "period": "Період", "rate": "Забагато перевірок "
        "цієї сторінки: наступна можлива за хвилину.", "legend": "Квадрати: періоди регламенту, найновіший праворуч.",
        "table": "Таблиця (гортається вбік)", "last_before": "остання зміна до", "next_after": "наступна після",
    },
    "en": {
        "title": "Freshness of the city's web services", "service": "Service", "department": "Department",
        "regulation": "Update regulation", "grade": "State", "last_update": "Last update",
        "last_check": "Last check", "periods": "Latest periods", "never": "none yet",
        "fresh": "up to date", "due": "due soon", "overdue": "overdue", "delinquent": "long overdue",
        "unknown": "not checked yet", "suspended": "suspended", "unmonitored": "address unknown",
        "down": "unreachable", "other_lang": "Українською",
        "intro": "The city council ordered its departments to keep these services up to date, each on its own "
                 "regulation. The monitor checks them itself and tells real updates from a changed date or counter.",
        "login": "Sign in", "logout": "Sign out", "user": "User", "password": "Password",
        "bad_login": "Wrong name or password.", "too_many": "Too many attempts. Try again in a minute.",
        "pages": "Pages", "check_now": "Check now", "changes": "Changes", "evidence": "Evidence",
        "reports": "The department's reports", "faults": "Technical faults", "checks": "Checks", "notes": "Notes",
        "add_note": "Add a note", "our_update": "our update", "redesign": "site redesign", "other": "other",
        "deadline": "Next update due", "grafana": "Grafana dashboard", "departments": "Departments",
        "runbooks": "What to do about an alert",
        "audit": "Audit", "status": "Services", "download": "Download", "from": "From", "to": "To",
        "show": "Show", "none": "none", "checked": "Checked", "outcome": "Outcome", "class": "Class",
        "real": "Real", "detected": "Detected", "since": "After", "declared": "Dates on the page",
        "feed": "Updates feed (Atom)", "json": "JSON", "forbidden": "Not allowed for your role.",
        "not_found": "Not found.", "skip": "Skip to content", "nav": "Navigation", "signed_in": "Signed in as",
        "verdict": "Verdict", "claimed": "Claimed for", "what": "What was updated", "page": "Page", "kind": "Kind",
        "period": "Period", "rate": "This page was checked a moment ago: try again in a minute.",
        "legend": "Squares: the regulation's periods, newest on the right.", "table": "Table (scrolls sideways)",
        "last_before": "last change before", "next_after": "next after",
    },
}
NOTE_KINDS = ("our_update", "redesign", "other")


class WebStores(Stores, Protocol):
    @property
    def web(self) -> WebStore: ...


Checker = Callable[[int], Awaitable[str]]  # page id -> the check's outcome


@dataclass
class _Strips:
    at: float = 0.0
    audits: dict[str, ServiceAudit] = field(default_factory=dict)


class Web:
    """The interface's state: the catalogue, the stores, who is signed in, the limits, the caches."""

    def __init__(self, catalogue: Catalogue, stores: WebStores, *, clock: Clock = SYSTEM, secret: str = "",
                 checker: Checker | None = None, metrics: Callable[[], tuple[bytes, str]] | None = None,
                 health: Callable[[], tuple[bool, dict[str, object]]] | None = None) -> None:
        self.catalogue, self.stores, self.clock = catalogue, stores, clock
        self.settings = catalogue.settings
        self.tz = ZoneInfo(self.settings.timezone)
        self.sessions = Sessions(secret or secrets.token_urlsafe(32))
        self.checker, self.metrics, self.health = checker, metrics, health
        self.logins = RateLimit(5, 60.0)  # sign-in attempts a minute, per client address and per account
        self.checks = RateLimit(1, 60.0)  # per page
        self.strips = _Strips()
        self._refreshing = threading.Lock()
        self._faults: dict[str, tuple[float, ServiceFaults | None]] = {}
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                               trim_blocks=True, lstrip_blocks=True)
        self.env.globals.update(local=self.local, day=self.day, quote=quote)
        self.by_id = {s.id: s for s in catalogue.services}

    # --- helpers -------------------------------------------------------------------------------

    def local(self, t: datetime | None) -> str:
        return t.astimezone(self.tz).strftime("%Y-%m-%d %H:%M") if t else ""

    def day(self, t: datetime | date | None) -> str:
        if isinstance(t, datetime):
            return t.astimezone(self.tz).strftime("%Y-%m-%d")
        return t.isoformat() if t else ""

    def session(self, request: Request) -> Session | None:
        header = self.settings.web_user_header
        if header and request.client and request.client.host in self.settings.web_trusted_proxies:
            name = request.headers.get(header, "").strip()
            if name:
                account = self.stores.web.user(name)
                if account is None or account.disabled:
                    return None
                return Session(user=name, role=account.role, csrf=self.sessions.token_for(name))
        return self.sessions.read(request.cookies.get(SESSION_COOKIE), self._account)

    def _account(self, name: str) -> tuple[str, str, bool] | None:
        row = self.stores.web.user(name) if name else None
        return (row.role, row.password_hash, row.disabled) if row else None

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        lang = lang_of(request)
        words = WORDS[lang]
        session = self.session(request)
        body = self.env.get_template(template).render(
            lang=lang, W=words, C=CODES[lang], session=session, path=request.url.path,
            other=_with_lang(request, "en" if lang == "uk" else "uk"), version=__version__, **context)
        return HTMLResponse(body, status_code=status)

    def statuses(self) -> list[ServiceStatus]:
        return service_statuses(self.catalogue, self.stores.metrics.service_aggregates(), self.clock.now())

    def strip_audits(self) -> dict[str, ServiceAudit]:
        """The last 90 days of every service, judged period by period. Computed once, then refreshed in the
        background when older than a minute: a request never waits for it but the very first."""
        if not self.strips.audits:
            with self._refreshing:
                if not self.strips.audits:
                    self._refresh_strips()
        elif time.monotonic() - self.strips.at > STRIP_TTL_S and self._refreshing.acquire(blocking=False):
            def refresh() -> None:
                try:
                    self._refresh_strips()
                except Exception:  # the database away: the strips stay as they were, and say when they were made
                    logger.exception("web: period strips not refreshed")
                finally:
                    self._refreshing.release()

            threading.Thread(target=refresh, name="strips", daemon=True).start()
        return self.strips.audits

    def _refresh_strips(self) -> None:
        now = self.clock.now()
        audits = run_audit(self.catalogue, self.stores.audit, start=now - timedelta(days=STRIP_DAYS), end=now,
                           now=now)
        self.strips = _Strips(at=time.monotonic(), audits={a.service.id: a for a in audits})

    def service_faults(self, service_id: str) -> ServiceFaults | None:
        """A service's faults of the last 30 days (kept for a minute: they read every check of the month)."""
        at, found = self._faults.get(service_id, (0.0, None))
        if time.monotonic() - at > STRIP_TTL_S:
            now = self.clock.now()
            found = run_faults(self.catalogue, self.stores.faults, start=now - timedelta(days=30), end=now,
                               services=[service_id]).get(service_id)
            self._faults[service_id] = (time.monotonic(), found)
        return found

    def message(self, request: Request, status: int, key: str) -> HTMLResponse:
        return self.render(request, "message.html", status, message=WORDS[lang_of(request)][key])

    async def posted(self, request: Request, what: str) -> tuple[Session, FormData] | Response:
        """A form sent by someone allowed `what`, carrying their session's CSRF token; else the refusal."""
        session = self.require(request, what)
        if isinstance(session, Response):
            return session
        form = await request.form()
        if not csrf_ok(session, str(form.get("csrf", ""))):
            return self.message(request, 403, "forbidden")
        return session, form

    def require(self, request: Request, what: str) -> Session | Response:
        session = self.session(request)
        if session is None:
            if request.method == "GET":
                return RedirectResponse("/login?" + urlencode({"next": request.url.path + (
                    "?" + request.url.query if request.url.query else ""), "lang": lang_of(request)}), 303)
            return self.message(request, 401, "forbidden")
        if not session.may(what):
            return self.message(request, 403, "forbidden")
        return session


def lang_of(request: Request) -> str:
    lang = request.query_params.get("lang", "")
    return lang if lang in WORDS else "uk"


def _with_lang(request: Request, lang: str) -> str:
    params = dict(request.query_params)
    params["lang"] = lang
    return f"{request.url.path}?{urlencode(params)}"


def grade_word(status: ServiceStatus) -> str:
    if status.state is State.UNMONITORED:
        return "unmonitored"
    if status.state is State.SUSPENDED:
        return "suspended"
    return status.grade.value


def _strip(audit: ServiceAudit | None) -> list[tuple[str, str]]:
    if audit is None:
        return []
    return [(p.period.label, p.verdict.value) for p in audit.periods][-STRIP_PERIODS:]


# --- pages -----------------------------------------------------------------------------------


def create_app(web: Web) -> Starlette:
    async def status_page(request: Request) -> Response:
        statuses = await asyncio.to_thread(web.statuses)
        strips = await asyncio.to_thread(web.strip_audits)
        names = {d.id: d.name for d in web.catalogue.departments}
        rows = [(s, names.get(s.department_id, s.department), grade_word(s), _strip(strips.get(s.id)))
                for s in statuses]
        return web.render(request, "status.html", rows=rows)

    async def status_json(request: Request) -> Response:
        statuses = await asyncio.to_thread(web.statuses)
        strips = await asyncio.to_thread(web.strip_audits)
        return JSONResponse({"generated_at": web.clock.now().isoformat(), "services": [{
            "id": s.id, "name": s.name, "department": s.department, "regulation": s.regulation.value,
            "grade": grade_word(s), "last_real_update_at": s.last_real_update_at.isoformat()
            if s.last_real_update_at else None, "last_check_at": s.last_check_at.isoformat()
            if s.last_check_at else None, "deadline": s.deadline.isoformat() if s.deadline else None,
            "periods": [{"period": label, "verdict": verdict} for label, verdict in _strip(strips.get(s.id))],
        } for s in statuses]})

    async def updates_atom(request: Request) -> Response:
        now = web.clock.now()
        rows = await asyncio.to_thread(web.stores.history.changes, since=now - timedelta(days=STRIP_DAYS),
                                       limit=200, min_class=ChangeClass.CONTENT)
        base = (web.settings.external_url or str(request.base_url)).rstrip("/")
        entries = []
        for c in rows:
            svc = web.by_id.get(c.service_id)
            if svc is None or not c.is_real:
                continue
            entries.append(
                f"<entry><id>{xml_escape(base)}/services/{quote(svc.id)}#c-{c.id}</id>"
                f"<title>{xml_escape(svc.name)}: оновлення / update</title>"
                f"<updated>{c.detected_at.astimezone(UTC).isoformat()}</updated>"
                f"<link href=\"{xml_escape(base)}/services/{quote(svc.id)}\"/>"
                f"<summary>{xml_escape(svc.name)} — {c.added} +, {c.removed} −, {c.edited} ~</summary></entry>")
        feed = (f"<?xml version=\"1.0\" encoding=\"utf-8\"?><feed xmlns=\"http://www.w3.org/2005/Atom\">"
                f"<id>{xml_escape(base)}/updates.atom</id><title>{xml_escape(WORDS['uk']['title'])}</title>"
                f"<updated>{now.astimezone(UTC).isoformat()}</updated>{''.join(entries)}</feed>")
        return Response(feed, media_type="application/atom+xml; charset=utf-8")

    async def login_form(request: Request) -> Response:
        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
        response = web.render(request, "login.html", next=_safe_next(request.query_params.get("next", "/")),
                              login_token=token)
        response.set_cookie(LOGIN_COOKIE, token, max_age=3600, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    async def login(request: Request) -> Response:
        form = await request.form()
        lang = lang_of(request)
        target = _safe_next(str(form.get("next", "/")))
        client = request.client.host if request.client else "?"
        sent_token, kept = str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")
        if not kept or not hmac.compare_digest(sent_token, kept):  # a sign-in forged by another site
            return web.message(request, 403, "forbidden")
        name, password = str(form.get("user", "")).strip()[:64], str(form.get("password", ""))
        keys = (f"address:{client}", f"user:{name.lower()}")  # a guesser's address, and the account guessed at
        if any(web.logins.full(k) for k in keys):
            return web.render(request, "login.html", 429, next=target, error=WORDS[lang]["too_many"],
                              login_token=kept)
        for k in keys:  # counted before the (slow) password check: many at once cannot all get through
            web.logins.add(k)
        account = await asyncio.to_thread(web.stores.web.user, name) if name else None
        ok = account is not None and not account.disabled and await asyncio.to_thread(
            check_password, password, account.password_hash)
        if not ok or account is None:
            logger.warning("web: failed sign-in for %r from %s", name[:64], client)
            return web.render(request, "login.html", 401, next=target, error=WORDS[lang]["bad_login"],
                              login_token=kept)
        for k in keys:
            web.logins.refund(k)
        response = RedirectResponse(target, 303)
        response.set_cookie(SESSION_COOKIE, web.sessions.issue(account.name, account.password_hash),
                            max_age=SESSION_MAX_AGE_S,
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")
        logger.info("web: %s signed in (%s)", account.name, account.role)
        return response

    async def logout(request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(web.session(request), str(form.get("csrf", ""))):
            return web.message(request, 403, "forbidden")
        response = RedirectResponse("/?" + urlencode({"lang": lang_of(request)}), 303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def service_page(request: Request) -> Response:
        session = web.require(request, "read")
        if isinstance(session, Response):
            return session
        svc = web.by_id.get(request.path_params["id"])
        if svc is None:
            return web.message(request, 404, "not_found")
        context = await asyncio.to_thread(_service_context, web, svc, request.query_params.get("checked"),
                                          lang_of(request))
        return web.render(request, "service.html", **context)

    async def check_now(request: Request) -> Response:
        sent = await web.posted(request, "check")
        if isinstance(sent, Response):
            return sent
        session, lang = sent[0], lang_of(request)
        page_id = int(request.path_params["page"])
        page = next((p for p in await asyncio.to_thread(web.stores.faults.pages) if p.page_id == page_id), None)
        if page is None or web.checker is None:
            return web.message(request, 404, "not_found")
        if not web.checks.allow(str(page_id)):
            return web.message(request, 429, "rate")
        await asyncio.to_thread(web.stores.web.add_action, who=session.user, action="check",
                                target=f"page:{page_id}", detail=redact_url(page.url), now=web.clock.now())
        outcome = await web.checker(page_id)
        return RedirectResponse(f"/services/{quote(page.service_id)}?" + urlencode(
            {"lang": lang, "checked": outcome}), 303)

    async def note(request: Request) -> Response:
        sent = await web.posted(request, "note")
        if isinstance(sent, Response):
            return sent
        (session, form), lang = sent, lang_of(request)
        change_id = int(request.path_params["change"])
        row = await asyncio.to_thread(web.stores.history.change, change_id)
        kind = str(form.get("kind", "other"))
        if row is None or kind not in NOTE_KINDS:
            return web.message(request, 404, "not_found")
        text = str(form.get("text", "")).strip()[:2000]
        await asyncio.to_thread(web.stores.web.add_action, who=session.user, action="note",
                                target=f"change:{change_id}", detail=json.dumps({"kind": kind, "text": text},
                                                                                 ensure_ascii=False),
                                now=web.clock.now())
        return RedirectResponse(f"/services/{quote(row.service_id)}?lang={lang}#c-{change_id}", 303)

    async def department_page(request: Request) -> Response:
        session = web.require(request, "read")
        if isinstance(session, Response):
            return session
        dept = next((d for d in web.catalogue.departments if d.id == request.path_params["id"]), None)
        if dept is None:
            return web.message(request, 404, "not_found")
        statuses = [s for s in await asyncio.to_thread(web.statuses) if s.department_id == dept.id]
        strips = await asyncio.to_thread(web.strip_audits)
        reports = [(s, r) for s in statuses for r in (strips[s.id].reports if s.id in strips else [])]
        return web.render(request, "department.html", dept=dept, rows=[
            (s, grade_word(s), _strip(strips.get(s.id))) for s in statuses], reports=reports)

    async def runbooks_page(request: Request) -> Response:
        return web.render(request, "runbooks.html", rules=RULES)

    async def departments_index(request: Request) -> Response:
        session = web.require(request, "read")
        if isinstance(session, Response):
            return session
        return web.render(request, "departments.html", departments=web.catalogue.departments)

    async def faults_page(request: Request) -> Response:
        session = web.require(request, "read")
        if isinstance(session, Response):
            return session
        start, end = _range(web, request, days=30)
        found = await asyncio.to_thread(run_faults, web.catalogue, web.stores.faults, start=start, end=end)
        html = tables_to_html("faults_title", fault_views(found, web.settings.timezone), lang=lang_of(request),
                              tz=web.settings.timezone, start=start, end=end, generated=web.clock.now())
        return HTMLResponse(html, headers={"Content-Security-Policy": CSP_REPORT})

    async def audit_page(request: Request) -> Response:
        session = web.require(request, "audit")
        if isinstance(session, Response):
            return session
        lang = lang_of(request)
        start, end = _range(web, request, days=92)
        services = [s for s in request.query_params.getlist("service") if s in web.by_id]
        departments = [d for d in request.query_params.getlist("department")
                       if any(x.id == d for x in web.catalogue.departments)]
        fmt = request.query_params.get("format", "html")

        def build() -> tuple[Any, ...]:
            report = gather(web.catalogue, web.stores.audit, start=start, end=end, now=web.clock.now(),
                            services=services, departments=departments, heads=web.stores.maintenance.heads(),
                            version=__version__)
            evidence = audit_evidence(report, web.stores.history) if fmt == "html" else {}
            return report, views(report), about(report), evidence

        report, tables, about_view, evidence = await asyncio.to_thread(build)
        tz = web.settings.timezone
        name = f"audit-{start.date()}-{end.date()}"
        if fmt == "json":
            return Response(to_json(tables, audit_meta(report), tz), media_type="application/json",
                            headers=_download(f"{name}.json"))
        if fmt == "xlsx":
            return Response(to_xlsx(tables, lang, tz, about_view), headers=_download(f"{name}.xlsx"), media_type=(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))
        if fmt == "csv":
            view = request.query_params.get("view", "periods")
            view = view if view in VIEWS else "periods"  # a known name, never the query's text, in a header
            return Response(to_csv(tables[view], lang, tz), media_type="text/csv; charset=utf-8",
                            headers=_download(f"{name}-{view}.csv"))
        html = to_html(report, tables, about_view, lang=lang, evidence=evidence,
                       note=lambda text, svc: department_note(text, svc, web.catalogue))
        headers = {"Content-Security-Policy": CSP_REPORT}
        if fmt == "download":
            headers.update(_download(f"{name}.html"))
        return HTMLResponse(html, headers=headers)

    async def healthz(request: Request) -> Response:
        details: dict[str, object] = {}
        if web.health is None:
            ok = await asyncio.to_thread(web.stores.health.ping)
        else:
            ok, details = web.health()
        return JSONResponse({"ok": ok, **details}, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        if web.metrics is None:
            return PlainTextResponse("no metrics here\n", 404)
        if not request.client or request.client.host not in web.settings.metrics_clients:
            return PlainTextResponse("not for this address ([settings] metrics_clients)\n", 403)
        body, content_type = await asyncio.to_thread(web.metrics)
        return Response(body, media_type=content_type)

    return Starlette(routes=[
        Route("/", status_page), Route("/status.json", status_json), Route("/updates.atom", updates_atom),
        Route("/login", login_form, methods=["GET"]), Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/services/{id}", service_page), Route("/pages/{page:int}/check", check_now, methods=["POST"]),
        Route("/changes/{change:int}/note", note, methods=["POST"]),
        Route("/departments", departments_index),
        Route("/runbooks", runbooks_page), Route("/departments/{id}", department_page),
        Route("/faults", faults_page), Route("/audit", audit_page),
        Route("/healthz", healthz), Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ], middleware=[Middleware(SecurityHeaders)])


class SecurityHeaders:
    """Every answer: no script anywhere (a page's own CSP when it set one), no sniffing, no framing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = CSP
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, with_headers)


def _download(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _safe_next(target: str) -> str:
    """Only a path of this site (never //host or a scheme): no open redirect through the login."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def _range(web: Web, request: Request, *, days: int) -> tuple[datetime, datetime]:
    today = web.clock.now().astimezone(web.tz).date()

    def parse(name: str, default: date) -> datetime:
        try:
            d = date.fromisoformat(request.query_params.get(name, ""))
        except ValueError:
            d = default
        return datetime.combine(d, datetime.min.time(), web.tz)

    start, end = parse("from", today - timedelta(days=days)), parse("to", today + timedelta(days=1))
    first = datetime.combine(date(1996, 1, 1), datetime.min.time(), web.tz)  # the oldest web archives
    end = min(max(end, first + timedelta(days=1)), datetime.combine(today + timedelta(days=366), datetime.min.time(),
                                                                     web.tz))
    start = max(start, first, end - timedelta(days=MAX_SPAN_DAYS))
    return (start, end) if start < end else (end - timedelta(days=days), end)


def _service_context(web: Web, svc: ServiceConfig, checked: str | None, lang: str) -> dict[str, Any]:
    status = next(s for s in web.statuses() if s.id == svc.id)
    pages = web.stores.faults.pages(service_id=svc.id)
    audit = web.strip_audits().get(svc.id)
    changes = web.stores.history.changes(service_id=svc.id, limit=50)
    evidence = {}
    for c in changes[:20]:
        row = web.stores.history.change(c.id)
        if row is not None and row.evidence:
            evidence[c.id] = row.evidence
    notes: dict[int, list[Mapping[str, Any]]] = {}
    for a in web.stores.web.actions(targets=[f"change:{c.id}" for c in changes]):
        try:
            detail = json.loads(a.detail)
        except ValueError:
            detail = {"kind": "other", "text": a.detail}
        notes.setdefault(int(a.target.split(":")[1]), []).append({"at": a.at, "who": a.who, **detail})
    checks: Sequence[CheckRow] = web.stores.faults.latest_checks(svc.id, 50)
    faults = web.service_faults(svc.id)
    grafana = (f"{web.settings.grafana_url.rstrip('/')}/d/freshness-service?var-site={quote(svc.id)}"
               if web.settings.grafana_url else "")
    dept = next((d.name for d in web.catalogue.departments if d.id == svc.department_id), svc.department)
    # a missed period's evidence: the monitor watched it and the page did not change between these two updates
    real = sorted((c for c in changes if c.is_real), key=lambda c: c.detected_at)
    around = {}
    for p in audit.periods if audit else []:
        if p.verdict is PeriodVerdict.MISSED:
            before = next((c.id for c in reversed(real) if c.detected_at < p.period.start), None)
            around[p.period.label] = (before, next((c.id for c in real if c.detected_at >= p.period.end), None))
    return dict(svc=svc, state=status, around=around, evidence=evidence_lines(evidence, lang),
                grade=grade_word(status), dept=dept,
                pages=pages, audit=audit,
                strip=_strip(audit), changes=changes, notes=notes, checks=checks, faults=faults,
                grafana=grafana, checked=checked, redact=redact_url, note_kinds=NOTE_KINDS)
