"""The Alertmanager routing tree written from the catalogue: valid for amtool, routes where it should."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from monitor.cli import main
from monitor.config import load_catalogue
from tests.conftest import which

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    targets = tmp_path_factory.mktemp("am") / "targets.toml"
    text = (ROOT / "targets.toml").read_text(encoding="utf-8")
    text = text.replace('[departments.records-appeals]\nname = "Відділ з питань діловодства, контролю та роботи зі '
                        'зверненнями громадян"',
                        '[departments.records-appeals]\nname = "Відділ з питань діловодства, контролю та роботи зі '
                        'зверненнями громадян"\nemail = "records@example.org"')
    text = text.replace('id = "online-reception"\n', 'id = "online-reception"\ncontact = "reception@example.org"\n')
    targets.write_text(text, encoding="utf-8")
    out = targets.parent / "alertmanager.yml"
    (targets.parent / "smtp-password").write_text("secret\n", encoding="utf-8")
    args = ["-t", str(targets), "alerting", "config", "--it-email", "it@example.org", "--smtp-smarthost",
            "mail.example.org:25", "--smtp-from", "monitor@example.org", "--smtp-auth-username", "monitor",
            "--smtp-auth-password-file", str(targets.parent / "smtp-password"), "--no-smtp-require-tls"]
    refused = CliRunner().invoke(main, [*args, "-o", str(out)])  # eleven departments have no address
    assert refused.exit_code == 2 and "11 receiver(s) would deliver nowhere" in refused.output
    assert "dept-it-sector" in refused.output and not out.exists()
    result = CliRunner().invoke(main, [*args, "--webhook-base", "http://127.0.0.1:9/hooks", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_amtool_accepts_the_generated_config(config: Path) -> None:
    result = subprocess.run([which("amtool"), "check-config", str(config)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    names = {r["name"] for r in doc["receivers"]}
    assert {"it", "dept-records-appeals", "dept-it-sector", "site-online-reception"} <= names
    assert len([n for n in names if n.startswith("dept-")]) == 12  # every department of the order
    (records,) = [r for r in doc["receivers"] if r["name"] == "dept-records-appeals"]
    assert records["email_configs"][0]["to"] == "records@example.org"
    assert all(r.get("email_configs") or r.get("webhook_configs") for r in doc["receivers"])  # none silent
    assert doc["global"]["smtp_require_tls"] is False and doc["global"]["smtp_auth_username"] == "monitor"
    assert "secret" not in config.read_text(encoding="utf-8")  # the password stays in its file


@pytest.mark.parametrize(("labels", "receiver"), [
    (["alertname=FreshnessServiceOverdue", "department=records-appeals", "site=open-data"], "dept-records-appeals"),
    (["alertname=FreshnessServiceOverdue", "department=records-appeals", "site=online-reception"],
     "site-online-reception,dept-records-appeals"),  # the person, and the department as well
    (["alertname=FreshnessServiceDelinquent", "department=municipal-police", "site=safe-city"],
     "dept-municipal-police"),
    (["alertname=FreshnessPageDown", "team=it", "department=it-sector", "site=smart-portal"], "it,dept-it-sector"),
    (["alertname=FreshnessChecksFailing", "team=it", "department=it-sector", "site=smart-portal"], "it"),
    (["alertname=FreshnessMonitorStalled", "team=it"], "it"),
    (["alertname=Unknown"], "it"),
])
def test_routes(config: Path, labels: list[str], receiver: str) -> None:
    result = subprocess.run([which("amtool"), "config", "routes", "test", f"--config.file={config}",
                             f"--verify.receivers={receiver}", *labels], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_verify_checks_every_service_route_with_amtool_and_names_a_wrong_one(config: Path) -> None:
    targets = str(config.parent / "targets.toml")
    amtool = which("amtool")
    ok = CliRunner().invoke(main, ["-t", targets, "alerting", "verify", "--amtool", amtool, str(config)])
    services = len(load_catalogue(targets).services)
    assert ok.exit_code == 0, ok.output
    assert f"valid; {1 + 2 * services} routes reach who they must" in ok.output
    # a hand edit that drops one department's route: its services' alerts would go to IT alone
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    doc["route"]["routes"] = [r for r in doc["route"]["routes"] if r["matchers"] != ['department="education"']]
    broken = config.parent / "broken.yml"
    broken.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    bad = CliRunner().invoke(main, ["-t", targets, "alerting", "verify", "--amtool", amtool, str(broken)])
    assert bad.exit_code == 1
    wrong = [line for line in bad.output.splitlines() if line.startswith("wrong route:")]
    assert wrong and all("department=education" in line for line in wrong)
    assert any("expected dept-education" in line for line in wrong), wrong


def test_inhibitions(config: Path) -> None:
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    rules = doc["inhibit_rules"]
    assert any("FreshnessPageDown" in r["source_matchers"][0] and r.get("equal") == ["site"] for r in rules)
    assert any("FreshnessMonitorStalled" in r["source_matchers"][0] for r in rules)


def test_alert_links_are_absolute_and_the_runbooks_are_written_from_the_rules(tmp_path: Path) -> None:
    from monitor.alerting import RULES, Links, rules_yaml, runbooks_markdown

    assert (ROOT / "docs" / "runbooks.md").read_text(encoding="utf-8") == runbooks_markdown(), (
        "regenerate with `monitor alerting runbooks -o docs/runbooks.md`")
    for bad in ("", "freshness.example.org", "/runbooks", "ftp://x.example"):
        with pytest.raises(ValueError):
            Links(bad)
    # without Grafana, an alert about a service links to its page in the web interface
    rules = {r["alert"]: r for g in yaml.safe_load(rules_yaml(Links("https://m.city.example/")))["groups"]
             for r in g["rules"] if "alert" in r}
    assert set(rules) == {r.alert for r in RULES}
    assert rules["FreshnessServiceOverdue"]["annotations"]["dashboard_url"] == \
        "https://m.city.example/services/{{ $labels.site }}"
    assert rules["FreshnessMonitorStalled"]["annotations"]["dashboard_url"] == "https://m.city.example/"
    assert all(r["annotations"]["runbook_url"].startswith("https://m.city.example/runbooks#") for r in rules.values())
    # the command reads the catalogue's settings, and refuses relative links
    targets = tmp_path / "targets.toml"
    text = (ROOT / "targets.toml").read_text(encoding="utf-8")
    targets.write_text(text, encoding="utf-8")
    refused = CliRunner().invoke(main, ["-t", str(targets), "alerting", "rules"])
    assert refused.exit_code == 2 and "external_url" in refused.output
    targets.write_text(text.replace("[settings]\n", '[settings]\nexternal_url = "https://m.city.example"\n'
                                    'grafana_url = "https://g.city.example"\n', 1), encoding="utf-8")
    done = CliRunner().invoke(main, ["-t", str(targets), "alerting", "rules"])
    assert done.exit_code == 0, done.output
    assert "https://g.city.example/d/freshness-service?var-site={{ $labels.site }}" in done.output
    assert "runbook_url: https://m.city.example/runbooks#freshness-page-down" in done.output
