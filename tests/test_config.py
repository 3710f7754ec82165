"""targets.toml: the catalogue of the order loads exactly; every bad file gets every problem, located."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor.config import keys_reference, load_catalogue, parse_catalogue
from monitor.domain import ChangeClass, Kind, Regulation
from monitor.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

# The order's annexes 1 and 2, as MISSION.md tabulates them: id, name, department, regulation.
ORDER = [
    ("contact-center", "Контакт центр", "Відділ “Контактний центр”", "daily"),
    ("roll-call-voting", "Поіменне голосування", "Відділ забезпечення депутатської діяльності", "monthly"),
    ("invest-portal", "Інвест-портал", "Відділ економічного аналізу та прогнозу", "quarterly"),
    ("open-data", "Опен дата", "Відділ з питань діловодства, контролю та роботи зі зверненнями громадян", "weekly"),
    ("resident-account", "Єдиний кабінет мешканця", "Відділ з питань інформаційної та внутрішньої політики", "monthly"),
    ("smart-portal", "SMART-ПОРТАЛ", "Сектор інформаційних технологій та автоматизованих систем", "weekly"),
    ("property-registry", "Реєстр комунального майна та землі",
     "Департамент фінансово-економічної політики та управління активами", "monthly"),
    ("public-consultations", "Консультації з громадськістю", "Відділ з питань інформаційної та внутрішньої політики",
     "as_needed"),
    ("e-protocol", "Електронний протокол", "Відділ з питань інформаційної та внутрішньої політики", "weekly"),
    ("energy-service", "АІС Енергосервіс: Облік, Контроль, Економія", "Відділ екології, клімату та енергозбереження",
     "daily"),
    ("online-reception", "Онлайн приймальня",
     "Відділ з питань діловодства, контролю та роботи зі зверненнями громадян", "monthly"),
    ("city-info-map", "ІНФОРМАЦІЙНА МАПА МІСТА", "Відділ з питань інформаційної та внутрішньої політики", "quarterly"),
    ("advertising-map", "ГІС МАПА РЕКЛАМНИХ КОНСТРУКЦІЙ", "Відділ містобудування, архітектури та земельних відносин",
     "quarterly"),
    ("kiosk-map", "ГІС мапа МАФів", "Відділ містобудування, архітектури та земельних відносин", "monthly"),
    ("contact-center-app", "Мобільний додаток КЦ для Android та IOS", "Відділ “Контактний центр”", "monthly"),
    ("idp-help-center", "Центр допомоги переселенцям", "УСЗН", "monthly"),
    ("veterans-help-center", "Центр допомоги учасникам АТО", "УСЗН", "monthly"),
    ("kindergarten-queue", "Електронна черга в дитячий садок", "Відділ освіти", "daily"),
    ("quality-rating", "Система оцінки якості", "УСЗН", "monthly"),
    ("participatory-budget", "Бюджет участі", "Департамент фінансово-економічної політики та управління активами",
     "as_needed"),
    ("transparent-budget", "Прозорий бюджет", "Департамент фінансово-економічної політики та управління активами",
     "monthly"),
    ("safe-city", "Безпечне Місто", "КП “Муніципальна поліція”", "weekly"),
    ("e-petitions", "Електронні петиції", "Відділ з питань діловодства, контролю та роботи зі зверненнями громадян",
     "as_needed"),
]


def test_the_catalogue_is_the_order() -> None:
    cat = load_catalogue(ROOT / "targets.toml", environ={})
    got = [(s.id, s.name, s.department, s.regulation.value) for s in cat.services]
    assert got == ORDER
    assert all(s.department_id for s in cat.services)


def test_only_the_confirmed_address_is_monitored() -> None:
    cat = load_catalogue(ROOT / "targets.toml", environ={})
    monitored = {s.id: [p.url for p in s.pages] for s in cat.services if s.pages}
    assert monitored == {"smart-portal": ["https://pokrovsk-rada.gov.ua/uk"]}
    assert cat.settings.timezone == "Europe/Kyiv"


def test_annex_2_spellings_are_aliases() -> None:
    cat = load_catalogue(ROOT / "targets.toml", environ={})
    assert "Центр допомоги Переселенцям" in cat.service("idp-help-center").aliases
    assert "AIC Енергосервіс: Облік, Контроль, Економія" in cat.service("energy-service").aliases


BASE = """
[departments.it]
name = "IT"
"""

SERVICE = """
[[services]]
id = "portal"
name = "Портал"
department = "IT"
regulation = "weekly"
"""

BAD = {
    "toml-syntax": ("[settings\n", ["not valid TOML"]),
    "unknown-top-level": (BASE + "[setings]\nx = 1\n" + SERVICE,
                          ["unknown top-level table 'setings' (did you mean 'settings'?) "
                           "(allowed: settings, departments, services, reports)"]),
    "unknown-settings-key": ("[settings]\nconcurency = 3\n" + BASE + SERVICE,
                             ["[settings]: unknown key 'concurency' (did you mean 'concurrency'?)"]),
    "bad-concurrency": ("[settings]\nconcurrency = 0\n" + BASE + SERVICE,
                        ["[settings] key 'concurrency': 0 is out of range (1..256)"]),
    "ua-without-contact": ('[settings]\nuser_agent = "bot"\n' + BASE + SERVICE,
                           ["[settings] key 'user_agent': must carry a contact"]),
    "bad-timezone": ('[settings]\ntimezone = "Europe/Kiev2"\n' + BASE + SERVICE,
                     ["[settings] key 'timezone': unknown time zone 'Europe/Kiev2'"]),
    "bad-db-url": ('[settings]\ndatabase_url = "mysql://x"\n' + BASE + SERVICE,
                   ["[settings] key 'database_url': 'mysql://x' is not a sqlite:/// or postgresql:// URL"]),
    "missing-keys": (BASE + '[[services]]\nid = "portal"\n',
                     ["service 'portal': missing required key 'name'",
                      "service 'portal': missing required key 'department'",
                      "service 'portal': missing required key 'regulation'"]),
    "bad-id": (BASE + SERVICE.replace('"portal"', '"Portal Site"'),
               ["service 'Portal Site' key 'id': 'Portal Site' is not an id"]),
    "bad-regulation": (BASE + SERVICE.replace('"weekly"', '"weakly"'),
                       ["service 'portal' key 'regulation': unknown value 'weakly' (did you mean 'weekly'?) "
                        "(known: more_than_daily, daily, weekly, monthly, quarterly, half_yearly, yearly, as_needed)"]),
    "unknown-service-key": (BASE + SERVICE + "suspend = true\n",
                            ["service 'portal': unknown key 'suspend' (did you mean 'suspended'?)"]),
    "undeclared-department": (BASE + SERVICE.replace('department = "IT"', 'department = "ІТ відділ"'),
                              ["service 'portal' key 'department': 'ІТ відділ' is not declared in [departments]"]),
    "duplicate-id": (BASE + SERVICE + SERVICE.replace('"Портал"', '"Інший"'),
                     ["service 'portal': duplicate id (services #1 and #2)"]),
    "bad-kind": (BASE + SERVICE + '[[services.pages]]\nurl = "https://a.example/"\nkind = "htlm"\n',
                 ["service 'portal' page 1 key 'kind': unknown value 'htlm' (did you mean 'html'?) (known: "]),
    "bad-url": (BASE + SERVICE + '[[services.pages]]\nurl = "ftp://a.example/"\n',
                ["service 'portal' page 1 key 'url': 'ftp://a.example/' is not an http(s) URL"]),
    "missing-url": (BASE + SERVICE + '[[services.pages]]\nname = "x"\n',
                    ["service 'portal' page 1: missing required key 'url'"]),
    "unknown-page-key": (BASE + SERVICE + '[[services.pages]]\nurl = "https://a.example/"\nexlude = ".x"\n',
                         ["service 'portal' page 1: unknown key 'exlude' (did you mean 'exclude'?)"]),
    "bad-interval": (BASE + SERVICE + '[[services.pages]]\nurl = "https://a.example/"\ninterval = "5 minutes"\n',
                     ["service 'portal' page 1 key 'interval': '5 minutes' is not a duration"]),
    "interval-too-short": (BASE + SERVICE + '[[services.pages]]\nurl = "https://a.example/"\ninterval = "10s"\n',
                           ["service 'portal' page 1 key 'interval': '10s' is out of range (1m..30d)"]),
    "duplicate-url": (BASE + SERVICE + '[[services.pages]]\nurl = "https://a.example/x"\n'
                      '[[services.pages]]\nurl = "https://A.example/x/"\n',
                      ["service 'portal' page 2 key 'url': duplicate URL 'https://A.example/x/' "
                       "(also service 'portal' page 1)"]),
    "unset-secret": (BASE + SERVICE + '[[services.pages]]\nurl = "https://a.example/"\n'
                     'headers = { Authorization = "Bearer ${CITY_TOKEN}" }\n',
                     ["service 'portal' page 1 key 'headers': header 'Authorization' refers to unset environment "
                      "variable(s) CITY_TOKEN"]),
    "bad-classes": (BASE + SERVICE + 'real_update_classes = ["content", "nothing"]\n',
                    ["service 'portal' key 'real_update_classes': unknown value 'nothing'"]),
    "pages-not-array": (BASE + SERVICE + 'pages = "https://a.example/"\n',
                        ["service 'portal' key 'pages': expected an array of tables"]),
}


@pytest.mark.parametrize("case", sorted(BAD), ids=sorted(BAD))
def test_bad_catalogue_reports_every_problem(case: str, tmp_path: Path) -> None:
    text, expected = BAD[case]
    path = tmp_path / "targets.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_catalogue(path, environ={})
    messages = [str(p) for p in info.value.problems]
    for fragment in expected:
        assert any(fragment in m for m in messages), f"{fragment!r} not in {messages}"
    assert len(messages) == len(expected), messages
    assert str(path) in str(info.value)


def test_all_problems_at_once(tmp_path: Path) -> None:
    text = "[settings]\nconcurrency = -1\nfoo = 1\n" + BASE + SERVICE.replace('"weekly"', '"sometimes"') \
        + '[[services.pages]]\nurl = "nope"\nkind = "pdf2"\n'
    with pytest.raises(ConfigError) as info:
        parse_catalogue(__import__("tomllib").loads(text), environ={})
    assert len(info.value.problems) == 5


def test_environment_overrides_settings() -> None:
    data = __import__("tomllib").loads(BASE + SERVICE)
    cat = parse_catalogue(data, environ={"MONITOR_DATABASE_URL": "postgresql://u@db/x", "MONITOR_CONCURRENCY": "3",
                                         "MONITOR_PER_HOST_DELAY": "2s", "MONITOR_TIMEZONE": "UTC"})
    assert cat.settings.database_url == "postgresql://u@db/x"
    assert cat.settings.concurrency == 3
    assert cat.settings.per_host_delay_s == 2.0
    assert cat.settings.timezone == "UTC"


def test_bad_environment_value_is_located() -> None:
    data = __import__("tomllib").loads(BASE + SERVICE)
    with pytest.raises(ConfigError) as info:
        parse_catalogue(data, environ={"MONITOR_CONCURRENCY": "many"})
    assert str(info.value.problems[0]).startswith("environment MONITOR_CONCURRENCY: expected an integer")


def test_a_misspelt_variable_and_an_empty_catalogue_are_errors() -> None:
    data = __import__("tomllib").loads(BASE + SERVICE + textwrap.dedent("""
        [[services.pages]]
        url = "https://a.example/"
        headers = { Authorization = "Bearer ${MONITOR_API_TOKEN}" }
        """))
    with pytest.raises(ConfigError) as info:  # MONITOR_CONCURENCY=4 was ignored silently
        parse_catalogue(data, environ={"MONITOR_CONCURENCY": "4", "MONITOR_API_TOKEN": "t",
                                       "MONITOR_WEB_SECRET": "s", "MONITOR_TARGETS": "x.toml"})
    (problem,) = info.value.problems
    assert str(problem).startswith("environment MONITOR_CONCURENCY: sets nothing (did you mean "
                                   "'MONITOR_CONCURRENCY'?)")
    with pytest.raises(ConfigError) as info:
        parse_catalogue(__import__("tomllib").loads(BASE), environ={})
    assert "no services" in str(info.value.problems[0])


def test_secret_headers_resolve_but_templates_are_kept() -> None:
    text = BASE + SERVICE + textwrap.dedent("""
        [[services.pages]]
        url = "https://a.example/"
        headers = { Authorization = "Bearer ${CITY_TOKEN}", "X-Env" = "static" }
        """)
    cat = parse_catalogue(__import__("tomllib").loads(text), environ={"CITY_TOKEN": "s3cr3t"})
    page = cat.pages[0]
    assert dict(page.headers) == {"Authorization": "Bearer s3cr3t", "X-Env": "static"}
    assert dict(page.header_templates)["Authorization"] == "Bearer ${CITY_TOKEN}"


def test_page_defaults_and_options() -> None:
    text = BASE + SERVICE + 'suspended = true\nreal_update_classes = ["content", "links"]\nregulation_x = 1\n'
    with pytest.raises(ConfigError):
        parse_catalogue(__import__("tomllib").loads(text), environ={})
    text = BASE + SERVICE.replace('"weekly"', '"Щодня"') + textwrap.dedent("""
        suspended = true
        real_update_classes = ["content", "links"]
        [[services.pages]]
        url = "https://a.example/"
        interval = "2h"
        timeout = 15
        content = "#content"
        exclude = [".poll", ".views"]
        """)
    cat = parse_catalogue(__import__("tomllib").loads(text), environ={})
    svc = cat.services[0]
    assert svc.regulation is Regulation.DAILY
    assert svc.suspended
    assert svc.real_update_classes == {ChangeClass.CONTENT, ChangeClass.LINKS}
    page = svc.pages[0]
    assert (page.kind, page.interval_s, page.timeout_s, page.content, page.exclude) == (
        Kind.HTML, 7200, 15.0, "#content", (".poll", ".views"))


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as info:
        load_catalogue("/nonexistent/targets.toml")
    assert "file not found" in str(info.value)


def test_reference_lists_every_key() -> None:
    ref = keys_reference()
    for key in ("database_url", "regulation", "allow_private", "real_update_classes", "exclude"):
        assert f"`{key}`" in ref
