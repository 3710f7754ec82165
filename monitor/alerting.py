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

RUNBOOK = "README.md#runbook"
NOT_SUSPENDED = "unless on(site) (last_over_time(freshness_site_suspended[1h]) == 1)"
WITH_DEPARTMENT = "* on(site) group_left(department) max by (site, department) (freshness_site_info)"
STALENESS = ("FreshnessServiceDue", "FreshnessServiceOverdue", "FreshnessServiceDelinquent",
             "FreshnessReportsUnconfirmed")
MONITOR_DOWN = ("FreshnessMonitorStalled", "FreshnessExporterAbsent", "FreshnessDatabaseUnreachable")


@dataclass(frozen=True, slots=True)
class Rule:
    alert: str
    expr: str
    for_: str
    severity: str
    team: str  # "department": routed by the department label; "it": the IT sector
    summary: str
    description: str
    summary_uk: str
    description_uk: str

    def render(self, runbook_base: str) -> dict[str, Any]:
        labels = {"severity": self.severity}
        if self.team == "it":
            labels["team"] = "it"
        anchor = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", self.alert).lower()
        return {"alert": self.alert, "expr": self.expr, "for": self.for_, "labels": labels,
                "annotations": {"summary": self.summary, "description": self.description,
                                "summary_uk": self.summary_uk, "description_uk": self.description_uk,
                                "runbook_url": f"{runbook_base}-{anchor}"}}


def _grade(level: int) -> str:
    return f"last_over_time(freshness_grade[1h]) >= {level} {NOT_SUSPENDED}"


RULES: tuple[Rule, ...] = (
    Rule("FreshnessServiceDue", _grade(1), "1h", "info", "department",
         "{{ $labels.site }}: an update is due",
         "{{ $labels.site }} ({{ $labels.regulation }}) has not been updated within its regulation; "
         "the deadline has passed.",
         "{{ $labels.site }}: настав час оновлення",
         "Сервіс {{ $labels.site }} (регламент {{ $labels.regulation }}) не оновлювався в межах регламенту; "
         "строк минув."),
    Rule("FreshnessServiceOverdue", _grade(2), "1h", "warning", "department",
         "{{ $labels.site }} is overdue",
         "{{ $labels.site }} ({{ $labels.regulation }}) is overdue: no real update detected well past its "
         "deadline.",
         "{{ $labels.site }}: оновлення прострочене",
         "Сервіс {{ $labels.site }} (регламент {{ $labels.regulation }}) прострочив оновлення: реальних змін "
         "не виявлено значно після строку."),
    Rule("FreshnessServiceDelinquent", _grade(3), "1h", "critical", "department",
         "{{ $labels.site }} is delinquent",
         "{{ $labels.site }} ({{ $labels.regulation }}) has gone without a real update for far longer than "
         "its regulation allows.",
         "{{ $labels.site }}: тривала відсутність оновлень",
         "Сервіс {{ $labels.site }} (регламент {{ $labels.regulation }}) не оновлюється значно довше, ніж "
         "дозволяє регламент."),
    Rule("FreshnessReportsUnconfirmed",
         "((sum by (site) (last_over_time(freshness_self_reports{verdict=~\"unconfirmed|date_only\"}[1h])) >= 3)"
         " and on(site) (sum by (site) (last_over_time(freshness_self_reports{verdict=~\"unconfirmed|date_only\"}[1h]))"
         " / sum by (site) (last_over_time(freshness_self_reports[1h])) >= 0.5)) " + WITH_DEPARTMENT,
         "6h", "warning", "department",
         "Self-reports of {{ $labels.site }} keep failing confirmation",
         "In the last 90 days {{ $value }} self-reports of {{ $labels.site }} named updates the monitor did not see "
         "(or saw only a changed date).",
         "{{ $labels.site }}: звіти не підтверджуються",
         "За 90 днів {{ $value }} звітів щодо {{ $labels.site }} описують оновлення, яких монітор не виявив "
         "(або виявив лише зміну дати)."),
    Rule("FreshnessPageDown",
         f"(last_over_time(freshness_page_up[15m]) == 0) {WITH_DEPARTMENT} {NOT_SUSPENDED}",
         "30m", "warning", "it",
         "{{ $labels.site }} page {{ $labels.page }} is down",
         "The last checks of page {{ $labels.page }} of {{ $labels.site }} failed for 30 minutes.",
         "{{ $labels.site }}: сторінка {{ $labels.page }} недоступна",
         "Перевірки сторінки {{ $labels.page }} сервісу {{ $labels.site }} не вдаються вже 30 хвилин."),
    Rule("FreshnessChecksFailing",
         "(sum by (site) (increase(freshness_checks_total{outcome!~\"ok|not_modified\"}[2h]))"
         " / sum by (site) (increase(freshness_checks_total[2h])) > 0.5) " + NOT_SUSPENDED,
         "1h", "warning", "it",
         "Most checks of {{ $labels.site }} fail",
         "More than half of the checks of {{ $labels.site }} failed in the last 2 hours "
         "({{ $value | humanizePercentage }}).",
         "{{ $labels.site }}: більшість перевірок невдалі",
         "Понад половину перевірок сервісу {{ $labels.site }} за 2 години завершилися помилкою "
         "({{ $value | humanizePercentage }})."),
    Rule("FreshnessTLSCertificateExpiring",
         "last_over_time(freshness_tls_cert_expiry_timestamp_seconds[1h]) - time() < 14 * 86400",
         "1h", "warning", "it",
         "The TLS certificate of {{ $labels.host }} expires soon",
         "The certificate of {{ $labels.host }} expires in {{ $value | humanizeDuration }}.",
         "Сертифікат TLS {{ $labels.host }} скоро закінчиться",
         "Сертифікат {{ $labels.host }} діє ще {{ $value | humanizeDuration }}."),
    Rule("FreshnessMonitorStalled",
         "(time() - max(last_over_time(freshness_monitor_last_round_timestamp_seconds[1h]))"
         " > 2 * max(last_over_time(freshness_monitor_max_interval_seconds[1h])))"
         " or (time() - max(last_over_time(freshness_monitor_heartbeat_timestamp_seconds[1h])) > 300)",
         "10m", "critical", "it",
         "The freshness monitor has stalled",
         "No complete round of checks in twice the longest interval, or no heartbeat for 5 minutes.",
         "Монітор актуальності зупинився",
         "Немає повного циклу перевірок за подвійний найдовший інтервал або сигналу життя понад 5 хвилин."),
    Rule("FreshnessExporterAbsent", 'absent(up{job="freshness"} == 1)', "10m", "critical", "it",
         "The freshness exporter is not scraped",
         "Prometheus has not scraped the job \"freshness\" successfully for 10 minutes.",
         "Експортер метрик актуальності недоступний",
         "Prometheus не може отримати метрики завдання \"freshness\" вже 10 хвилин."),
    Rule("FreshnessDatabaseUnreachable",
         "last_over_time(freshness_database_up[5m]) == 0 or last_over_time(freshness_database_writable[5m]) == 0",
         "5m", "critical", "it",
         "The freshness monitor cannot reach its database",
         "The exporter or the writer could not use the database for 5 minutes; checks are buffered.",
         "Монітор не має доступу до бази даних",
         "Експортер або запис не можуть звернутися до бази даних 5 хвилин; перевірки буферизуються."),
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


def rules_yaml(runbook_base: str = RUNBOOK) -> str:
    doc = {"groups": [
        {"name": "freshness-recording", "rules": list(RECORDING)},
        {"name": "freshness-staleness", "rules": [r.render(runbook_base) for r in RULES if r.team == "department"]},
        {"name": "freshness-monitor", "rules": [r.render(runbook_base) for r in RULES if r.team == "it"]},
    ]}
    return ("# Generated by `monitor alerting rules`; edit monitor/alerting.py, not this file.\n"
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
