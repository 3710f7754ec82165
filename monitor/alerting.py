"""Alert rules for Prometheus and the Alertmanager routing tree, written from the catalogue.

The rules are data here and rendered to YAML (`monitor alerting rules` writes alerts/freshness.rules.yml);
the routing tree follows targets.toml's departments and responsible contacts (`monitor alerting config`),
so routing never drifts from the catalogue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from monitor.domain import Catalogue

NOT_SUSPENDED = "unless on(site) (last_over_time(freshness_site_suspended[1h]) == 1)"
WITH_DEPARTMENT = "* on(site) group_left(department) max by (site, department) (freshness_site_info)"
STALENESS = ("FreshnessServiceDue", "FreshnessServiceOverdue", "FreshnessServiceDelinquent",
             "FreshnessReportsUnconfirmed")
MONITOR_DOWN = ("FreshnessMonitorStalled", "FreshnessExporterAbsent", "FreshnessDatabaseUnreachable",
                "FreshnessNoWorkers")
# The links the committed alerts/freshness.rules.yml carries: an example, regenerated with a city's own addresses.
EXAMPLE_EXTERNAL_URL = "https://freshness.example.org"
EXAMPLE_GRAFANA_URL = "https://grafana.example.org"


def _about(metric: str, then: str, otherwise: str, page: bool = False) -> str:
    """A template that reads one series of the service (or of the page) when the alert is sent: its value or
    a label, or `otherwise` if there is none. Names, deadlines and addresses are read, not carried as alert
    labels: renaming a service or a deadline moving never makes an alert anew."""
    selector = ('printf "%s{site=%%q,page=%%q}" $labels.site $labels.page' if page
                else 'printf "%s{site=%%q}" $labels.site') % metric
    return f"{{{{ with {selector} | query }}}}{{{{ . | first | {then} }}}}{{{{ else }}}}{otherwise}{{{{ end }}}}"


NAME = _about("freshness_site_info", 'label "name"', "{{ $labels.site }}")
DEPARTMENT = _about("freshness_site_info", 'label "department_name"', "{{ $labels.department }}")
REGULATION = _about("freshness_site_info", 'label "regulation_text"', "{{ $labels.regulation }}")
REGULATION_UK = _about("freshness_site_info", 'label "regulation_text_uk"', "{{ $labels.regulation }}")
LAST_UPDATE = _about("freshness_last_real_update_timestamp_seconds", "value | humanizeTimestamp", "none detected")
LAST_UPDATE_UK = _about("freshness_last_real_update_timestamp_seconds", "value | humanizeTimestamp", "не виявлено")
DEADLINE = _about("freshness_deadline_timestamp_seconds", "value | humanizeTimestamp", "none")
PAGE_URL = _about("freshness_page_info", 'label "url"', "page {{ $labels.page }}", page=True)


@dataclass(frozen=True, slots=True)
class Rule:
    alert: str
    expr: str
    for_: str
    severity: str
    team: str  # "department": routed by the department label; "it": the IT sector
    scope: str  # "service", "page" or "monitor": what the alert is about, so which links and facts it carries
    summary: str
    description: str
    summary_uk: str
    description_uk: str
    runbook: str  # what to do, shown at <external_url>/runbooks and in docs/runbooks.md

    @property
    def audience(self) -> str:
        return "IT and the department" if self.scope == "page" else "IT" if self.team == "it" else "the department"

    @property
    def anchor(self) -> str:
        return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", self.alert).lower()

    def render(self, links: Links) -> dict[str, Any]:
        labels = {"severity": self.severity}
        if self.team == "it":
            labels["team"] = "it"
        annotations = {"summary": self.summary, "description": self.description,
                       "summary_uk": self.summary_uk, "description_uk": self.description_uk}
        if self.scope in ("service", "page"):
            annotations.update(service=NAME, department_name=DEPARTMENT)
        if self.alert in STALENESS[:3]:
            annotations.update(regulation=REGULATION, last_real_update=LAST_UPDATE, deadline=DEADLINE)
        if self.scope == "page":
            annotations["page_url"] = PAGE_URL
        annotations["runbook_url"] = f"{links.runbooks}#{self.anchor}"
        annotations["dashboard_url"] = links.dashboard(self.scope != "monitor")
        return {"alert": self.alert, "expr": self.expr, "for": self.for_, "labels": labels,
                "annotations": annotations}


@dataclass(frozen=True, slots=True)
class Links:
    """Where people follow an alert to: the runbooks the web interface serves, and the dashboards (Grafana's
    service dashboard when there is a Grafana, the web interface's service page otherwise). Absolute: a
    notification is read far from the monitor."""

    external_url: str
    grafana_url: str = ""

    def __post_init__(self) -> None:
        for url in (self.external_url, self.grafana_url):
            if url and not re.match(r"https?://[^/\s]+", url):
                raise ValueError(f"{url!r} is not an absolute http(s) address")
        if not self.external_url:
            raise ValueError("alert links must be absolute: set [settings] external_url (the web interface, which "
                             "serves /runbooks) or give --external-url")

    @property
    def runbooks(self) -> str:
        return f"{self.external_url.rstrip('/')}/runbooks"

    def dashboard(self, of_a_service: bool) -> str:
        if self.grafana_url:
            base = self.grafana_url.rstrip("/")
            return f"{base}/d/freshness-service?var-site={{{{ $labels.site }}}}" if of_a_service \
                else f"{base}/d/freshness-overview"
        base = self.external_url.rstrip("/")
        return f"{base}/services/{{{{ $labels.site }}}}" if of_a_service else f"{base}/"


def _grade(level: int) -> str:
    return f"last_over_time(freshness_grade[1h]) >= {level} {NOT_SUSPENDED}"


STALE_RUNBOOK = (
    "The service has no real update within its regulation. `monitor status` shows its grade and deadline, "
    "`monitor history SERVICE` its last changes (a `date_only` bump is not an update), and the web "
    "interface's service page the evidence. The department updates the service; if the service is frozen "
    "on purpose, an operator marks it `suspended = true` in targets.toml. If the page did change and the "
    "monitor did not see it, compare two captures with `monitor compare` and check the page's `content` "
    "selector.")

RULES: tuple[Rule, ...] = (
    Rule("FreshnessServiceDue", _grade(1), "1h", "info", "department", "service",
         f"{NAME}: an update is due",
         f"{NAME} ({DEPARTMENT}) must be updated {REGULATION}; the deadline {DEADLINE} has passed. "
         f"Last real update: {LAST_UPDATE}.",
         f"{NAME}: настав час оновлення",
         f"{NAME} ({DEPARTMENT}) має оновлюватися {REGULATION_UK}; строк {DEADLINE} минув. "
         f"Останнє реальне оновлення: {LAST_UPDATE_UK}.",
         STALE_RUNBOOK),
    Rule("FreshnessServiceOverdue", _grade(2), "1h", "warning", "department", "service",
         f"{NAME} is overdue",
         f"{NAME} ({DEPARTMENT}) must be updated {REGULATION} and is overdue: deadline {DEADLINE}, last real "
         f"update {LAST_UPDATE}.",
         f"{NAME}: оновлення прострочене",
         f"{NAME} ({DEPARTMENT}) має оновлюватися {REGULATION_UK} і прострочив оновлення: строк {DEADLINE}, "
         f"останнє реальне оновлення {LAST_UPDATE_UK}.",
         STALE_RUNBOOK),
    Rule("FreshnessServiceDelinquent", _grade(3), "1h", "critical", "department", "service",
         f"{NAME} is delinquent",
         f"{NAME} ({DEPARTMENT}) must be updated {REGULATION} and has gone far longer without a real update: "
         f"deadline {DEADLINE}, last real update {LAST_UPDATE}.",
         f"{NAME}: тривала відсутність оновлень",
         f"{NAME} ({DEPARTMENT}) має оновлюватися {REGULATION_UK}, але не оновлювався значно довше: строк {DEADLINE}, "
         f"останнє реальне оновлення {LAST_UPDATE_UK}.",
         STALE_RUNBOOK),
    Rule("FreshnessReportsUnconfirmed",
         "((sum by (site) (last_over_time(freshness_self_reports{verdict=~\"unconfirmed|date_only\"}[1h])) >= 3)"
         " and on(site) (sum by (site) (last_over_time(freshness_self_reports{verdict=~\"unconfirmed|date_only\"}[1h]))"
         " / sum by (site) (last_over_time(freshness_self_reports[1h])) >= 0.5)) " + WITH_DEPARTMENT,
         "6h", "warning", "department", "service",
         f"Self-reports of {NAME} keep failing confirmation",
         f"In the last 90 days {{{{ $value }}}} self-reports of {NAME} ({DEPARTMENT}) named updates the monitor did "
         "not see (or saw only a changed date).",
         f"{NAME}: звіти не підтверджуються",
         f"За 90 днів {{{{ $value }}}} звітів щодо {NAME} ({DEPARTMENT}) описують оновлення, яких монітор не виявив "
         "(або виявив лише зміну дати).",
         "The department reports updates the monitor cannot find on the service. Run the audit for the "
         "service (`monitor audit --from DATE --to DATE --service SERVICE`, or the web interface's audit page): each "
         "report's verdict says what was missing. Either the reports describe work that is not on the site, "
         "or the update sits on a page that is not monitored: then add that page to targets.toml."),
    Rule("FreshnessPageDown",
         f"(last_over_time(freshness_page_up[15m]) == 0) {WITH_DEPARTMENT} {NOT_SUSPENDED}",
         "30m", "warning", "it", "page",
         f"{NAME}: {PAGE_URL} is down",
         f"Every check of {PAGE_URL} ({NAME}, {DEPARTMENT}) failed for 30 minutes.",
         f"{NAME}: {PAGE_URL} недоступна",
         f"Усі перевірки {PAGE_URL} ({NAME}, {DEPARTMENT}) не вдаються вже 30 хвилин.",
         "`monitor check SERVICE` shows the outcome class and its reason (`dns`, `connect`, `tls`, `timeout`, "
         "`http_status`, `bad_capture`...), as does the monitor's log (a WARNING per failed check). The "
         "department and IT both receive this alert: the department contacts the service's owner or "
         "host; staleness alerts for the service are silenced meanwhile."),
    Rule("FreshnessChecksFailing",
         "(sum by (site) (increase(freshness_checks_total{outcome!~\"ok|not_modified\"}[2h]))"
         " / sum by (site) (increase(freshness_checks_total[2h])) > 0.5) " + NOT_SUSPENDED +
         # resolved as soon as every page's checks succeed again for 10 minutes, not when the 2-hour ratio falls
         " unless on(site) (min by (site) (min_over_time(freshness_page_up[10m])) == 1)",
         "1h", "warning", "it", "service",
         f"Most checks of {NAME} fail",
         f"More than half of the checks of {NAME} failed in the last 2 hours ({{{{ $value | humanizePercentage }}}}).",
         f"{NAME}: більшість перевірок невдалі",
         f"Понад половину перевірок {NAME} за 2 години завершилися помилкою ({{{{ $value | humanizePercentage }}}}).",
         "Intermittent failures. `freshness_checks_total` by outcome shows which: `429` or `503` mean the "
         "server asks us to slow down (raise `per_host_delay`), `bad_capture` a bot wall or an error page "
         "served with 200, `timeout` a slow server (raise the page's `timeout`)."),
    Rule("FreshnessTLSCertificateExpiring",
         "last_over_time(freshness_tls_cert_expiry_timestamp_seconds[1h]) - time() < 14 * 86400",
         "1h", "warning", "it", "service",
         "The TLS certificate of {{ $labels.host }} expires soon",
         f"The certificate of {{{{ $labels.host }}}} ({NAME}) expires in {{{{ $value | humanizeDuration }}}}.",
         "Сертифікат TLS {{ $labels.host }} скоро закінчиться",
         f"Сертифікат {{{{ $labels.host }}}} ({NAME}) діє ще {{{{ $value | humanizeDuration }}}}.",
         "Tell the host's administrator. After expiry, checks fail with `tls` and the page is down."),
    Rule("FreshnessMonitorStalled",
         "(time() - max(last_over_time(freshness_monitor_last_round_timestamp_seconds[1h]))"
         " > 2 * max(last_over_time(freshness_monitor_max_interval_seconds[1h])))"
         " or (time() - max(last_over_time(freshness_monitor_heartbeat_timestamp_seconds[1h])) > 300)",
         "10m", "critical", "it", "monitor",
         "The freshness monitor has stalled",
         "No complete round of checks in twice the longest interval, or no heartbeat for 5 minutes.",
         "Монітор актуальності зупинився",
         "Немає повного циклу перевірок за подвійний найдовший інтервал або сигналу життя понад 5 хвилин.",
         "`monitor status` shows the last heartbeat. Check the process (`systemctl status freshness-monitor`), "
         "its log, `/healthz` and `freshness_monitor_schedule_lag_seconds`; staleness alerts are silenced "
         "while the monitor is stalled."),
    Rule("FreshnessNoWorkers", "max(last_over_time(freshness_monitor_workers[5m])) == 0", "5m", "critical", "it",
         "monitor",
         "No monitor worker is alive",
         "No process checking pages (`monitor run` or `monitor worker`) has beaten for 5 minutes: nothing is checked.",
         "Жоден робочий процес монітора не працює",
         "Жоден процес перевірок (`monitor run` або `monitor worker`) не подає сигналу життя 5 хвилин: нічого не "
         "перевіряється.",
         "Start the workers (`systemctl start freshness-worker@1` …, or `monitor run` for one machine) and read "
         "their log for why they stopped: a fatal start-up problem says so in one line with exit 1. Staleness "
         "alerts are silenced meanwhile."),
    Rule("FreshnessQueueBacklog",
         "time() - min by (queue) (freshness_queue_oldest_waiting_timestamp_seconds) > 900",
         "15m", "warning", "it", "monitor",
         "Checks wait in the {{ $labels.queue }} queue",
         "The oldest job of the {{ $labels.queue }} queue has waited {{ $value | humanizeDuration }}: the workers "
         "cannot keep up.",
         "Перевірки чекають у черзі {{ $labels.queue }}",
         "Найстаріше завдання черги {{ $labels.queue }} чекає вже {{ $value | humanizeDuration }}: робочі процеси "
         "не встигають.",
         "The procrastinate engine's workers do not keep up with dispatch. `freshness_queue_jobs` shows the "
         "waiting and running jobs, `freshness_worker_jobs_total` each worker's pace. Add workers (any machine, "
         "the same targets.toml), raise their `--concurrency`, or check whether a slow host holds them "
         "(`per_host_concurrency`, `per_host_delay` hold for the whole fleet)."),
    Rule("FreshnessChecksLate",
         "sum by (site) (last_over_time(freshness_pages_late[15m])) > 0 " + NOT_SUSPENDED,
         "30m", "warning", "it", "service",
         f"Checks of {NAME} are late",
         f"{{{{ $value }}}} page(s) of {NAME} have not been checked for twice their interval.",
         f"{NAME}: перевірки запізнюються",
         f"{{{{ $value }}}} сторінок {NAME} не перевірялися вдвічі довше за свій інтервал.",
         "The checking engine is behind: the embedded monitor is overloaded (raise `concurrency`), or the "
         "procrastinate engine has too few workers or a long queue (see FreshnessQueueBacklog). A page that "
         "was never checked since it was added counts as late too: is a worker running?"),
    Rule("FreshnessExporterAbsent", 'absent(up{job="freshness"} == 1)', "10m", "critical", "it", "monitor",
         "The freshness exporter is not scraped",
         "Prometheus has not scraped the job \"freshness\" successfully for 10 minutes.",
         "Експортер метрик актуальності недоступний",
         "Prometheus не може отримати метрики завдання \"freshness\" вже 10 хвилин.",
         "The process is down, or `metrics_listen` is not reachable from Prometheus (a firewall, a loopback "
         "address). `curl http://HOST:9464/healthz` from the Prometheus host tells which."),
    Rule("FreshnessDatabaseUnreachable",
         "last_over_time(freshness_database_up[5m]) == 0 or last_over_time(freshness_database_writable[5m]) == 0",
         "5m", "critical", "it", "monitor",
         "The freshness monitor cannot reach its database",
         "The exporter or the writer could not use the database for 5 minutes; checks are buffered.",
         "Монітор не має доступу до бази даних",
         "Експортер або запис не можуть звернутися до бази даних 5 хвилин; перевірки буферизуються.",
         "Checks go on and wait in a bounded buffer (`freshness_write_buffer_records`); restore the database "
         "(or free its disk) and they are written. `monitor status` names the database error."),
)

RECORDING = (
    {"record": "site:freshness_staleness:ratio",
     "expr": "(time() - max by (site, department, regulation) (freshness_last_real_update_timestamp_seconds"
             " or freshness_monitoring_since_timestamp_seconds)) / on(site, department, regulation)"
             " freshness_max_age_seconds"},
)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def dump(data: Any) -> str:
    return str(yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=120))


def rules_yaml(links: Links) -> str:
    doc = {"groups": [
        {"name": "freshness-recording", "rules": list(RECORDING)},
        {"name": "freshness-staleness", "rules": [r.render(links) for r in RULES if r.team == "department"]},
        {"name": "freshness-monitor", "rules": [r.render(links) for r in RULES if r.team == "it"]},
    ]}
    return ("# Generated by `monitor alerting rules`; edit monitor/alerting.py, not this file. Links point at\n"
            f"# {links.external_url} and {links.grafana_url or 'no Grafana'}: regenerate with your own addresses.\n"
            "# Scrape the monitor as job \"freshness\" (FreshnessExporterAbsent looks for it).\n" + dump(doc))


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingOptions:
    it_email: str = ""
    smtp_smarthost: str = ""
    smtp_from: str = ""
    smtp_auth_username: str = ""
    smtp_auth_password_file: str = ""  # a file Alertmanager reads: the password never enters the config
    smtp_require_tls: bool = True  # STARTTLS; a relay that does not offer it needs False
    webhook_base: str = ""  # every receiver posts to <base>/<receiver> (a chat bridge, or tests)
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "24h"


def receiver_name(kind: str, ident: str) -> str:
    return f"{kind}-{ident}"


def _receiver(name: str, emails: list[str], opts: RoutingOptions, webhook: str = "") -> dict[str, Any]:
    r: dict[str, Any] = {"name": name}
    targets = [e for e in emails if "@" in e]
    if targets and opts.smtp_smarthost:
        r["email_configs"] = [{"to": ", ".join(targets), "send_resolved": True}]
    hooks = [h for h in (webhook, f"{opts.webhook_base.rstrip('/')}/{name}" if opts.webhook_base else "") if h]
    if hooks:
        r["webhook_configs"] = [{"url": h, "send_resolved": True} for h in hooks]
    return r


def alertmanager_config(catalogue: Catalogue, departments: dict[str, dict[str, str]],
                        opts: RoutingOptions) -> dict[str, Any]:
    """The routing tree: IT gets the monitor's own alerts, each department its services' alerts (a page down
    too, beside IT), and a service with a responsible contact (an e-mail address) also reaches that person —
    its department still hears of it."""
    receivers = [_receiver("it", [opts.it_email], opts)]
    routes: list[dict[str, Any]] = [
        {"matchers": ['alertname="FreshnessPageDown"'], "receiver": "it", "continue": True},  # and the department
        {"matchers": ['team="it"', 'alertname!="FreshnessPageDown"'], "receiver": "it"},
    ]
    for dept_id in sorted({s.department_id for s in catalogue.services}):
        dept = departments.get(dept_id, {})
        name = receiver_name("dept", dept_id)
        receivers.append(_receiver(name, [dept.get("email", "")], opts, dept.get("webhook", "")))
        children = []
        for svc in catalogue.services:
            if svc.department_id == dept_id and "@" in svc.contact:
                site = receiver_name("site", svc.id)
                receivers.append(_receiver(site, [svc.contact], opts))
                children.append({"matchers": [f'site="{svc.id}"'], "receiver": site, "continue": True})
        route: dict[str, Any] = {"matchers": [f'department="{dept_id}"'], "receiver": name}
        if children:
            route["routes"] = [*children, {"receiver": name}]  # the person, and the department as well
        routes.append(route)
    config: dict[str, Any] = {}
    if opts.smtp_smarthost:
        smtp: dict[str, Any] = {"smtp_smarthost": opts.smtp_smarthost,
                                "smtp_from": opts.smtp_from or "monitor@localhost",
                                "smtp_require_tls": opts.smtp_require_tls}
        if opts.smtp_auth_username:
            smtp["smtp_auth_username"] = opts.smtp_auth_username
        if opts.smtp_auth_password_file:
            smtp["smtp_auth_password_file"] = opts.smtp_auth_password_file
        config["global"] = smtp
    staleness = "|".join(STALENESS)
    config.update({
        "route": {"receiver": "it", "group_by": ["alertname", "site"], "group_wait": opts.group_wait,
                  "group_interval": opts.group_interval, "repeat_interval": opts.repeat_interval,
                  "routes": routes},
        "receivers": receivers,
        "inhibit_rules": [
            {"source_matchers": [f'alertname=~"{"|".join(MONITOR_DOWN)}"'],
             "target_matchers": [f'alertname=~"{staleness}"']},
            {"source_matchers": ['alertname="FreshnessPageDown"'], "target_matchers": [f'alertname=~"{staleness}"'],
             "equal": ["site"]},
            {"source_matchers": ['alertname="FreshnessServiceDelinquent"'],
             "target_matchers": ['alertname=~"FreshnessServiceDue|FreshnessServiceOverdue"'], "equal": ["site"]},
            {"source_matchers": ['alertname="FreshnessServiceOverdue"'],
             "target_matchers": ['alertname="FreshnessServiceDue"'], "equal": ["site"]},
        ],
    })
    return config


@dataclass(frozen=True, slots=True)
class RouteCase:
    """An alert's labels and the receivers it must reach, checked against a config with `amtool config routes
    test` (`monitor alerting verify`)."""

    labels: tuple[str, ...]
    receivers: tuple[str, ...]


def route_cases(catalogue: Catalogue) -> list[RouteCase]:
    """For every service: its staleness alert reaches its department (and its responsible person, if any), its
    page down reaches IT and the department; the monitor's own alerts reach IT."""
    cases = [RouteCase(("alertname=FreshnessMonitorStalled", "team=it"), ("it",))]
    for svc in catalogue.services:
        dept = receiver_name("dept", svc.department_id)
        where = (f"department={svc.department_id}", f"site={svc.id}")
        person = (receiver_name("site", svc.id),) if "@" in svc.contact else ()
        cases.append(RouteCase(("alertname=FreshnessServiceOverdue", *where), (*person, dept)))
        cases.append(RouteCase(("alertname=FreshnessPageDown", "team=it", *where), ("it", *person, dept)))
    return cases


def undelivered(config: dict[str, Any]) -> list[str]:
    """The receivers that would deliver nowhere: no e-mail that can be sent (none, or no relay), no webhook."""
    out = []
    for r in config["receivers"]:
        if not r.get("email_configs") and not r.get("webhook_configs"):
            out.append(r["name"])
    return out


def alertmanager_yaml(catalogue: Catalogue, departments: dict[str, dict[str, str]], opts: RoutingOptions) -> str:
    return ("# Generated by `monitor alerting config` from targets.toml: routing follows the catalogue.\n"
            + dump(alertmanager_config(catalogue, departments, opts)))


def runbooks_markdown() -> str:
    """docs/runbooks.md: what to do for each alert (the web interface shows the same at /runbooks)."""
    out = ["# Runbooks", "",
           "<!-- Generated from monitor/alerting.py by `monitor alerting runbooks`; edit there, not here. -->", "",
           "What to do when an alert arrives. Every alert links here by its name (`runbook_url`), and to the "
           "service's dashboard (`dashboard_url`). The table in [monitoring.md](monitoring.md) says who "
           "receives which alert.", ""]
    for r in RULES:
        out += [f'<a id="{r.anchor}"></a>', f"## {r.alert}", "",
                f"Severity **{r.severity}**, to **{r.audience}** (after `{r.for_}`).", "", r.runbook, ""]
    return "\n".join(out)
