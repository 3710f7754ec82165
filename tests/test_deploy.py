"""The compose files of deploy/ start what exists: monitor commands and options the CLI has, MONITOR_* variables
the catalogue accepts, services in the right order, and a Prometheus config that scrapes the ports they serve.

(Docker is not needed: the files are read, the commands parsed by click, the Prometheus config by promtool.
tests/test_dashboards.py checks the Grafana mounts of docker-compose.yml.)"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from monitor.cli import main
from monitor.config import load_catalogue
from monitor.domain import Engine
from tests.conftest import which

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
ONE = "docker-compose.yml"
FLEET = "compose.fleet.yml"
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"


def compose(name: str) -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), f"deploy/{name}: no services"
    return data


def services(name: str) -> dict[str, dict[str, Any]]:
    return compose(name)["services"]  # type: ignore[no-any-return]


def monitor_argv(service: dict[str, Any]) -> list[str] | None:
    """The monitor command line a service runs (after `sh -c "pip install ... && exec monitor ..."`), or None."""
    command = service.get("command")
    if command is None:
        return None
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] == ["sh", "-c"]:
        steps = [shlex.split(step) for step in argv[2].split("&&")]
        argv = next((s for s in steps if s[:1] == ["monitor"] or s[:2] == ["exec", "monitor"]), [])
    argv = argv[1:] if argv[:1] == ["exec"] else argv
    return argv if argv[:1] == ["monitor"] else None


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """A service's bind mounts: the path in the container -> the file on this host (relative to deploy/)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            found[target] = (DEPLOY / source).resolve()
    return found


def prometheus_config(name: str) -> dict[str, Any]:
    config = mounts(services(name)["prometheus"])[PROMETHEUS_CONFIG]
    return yaml.safe_load(config.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def port(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def test_both_compose_files_parse_with_their_services() -> None:
    assert set(services(ONE)) == {"monitor", "prometheus", "alertmanager", "grafana"}
    assert set(services(FLEET)) == {"db", "migrate", "exporter", "worker", "prometheus", "alertmanager", "grafana"}
    for name in (ONE, FLEET):
        declared = set(compose(name).get("volumes", {}))
        for service_name, service in services(name).items():
            assert isinstance(service.get("image"), str), f"deploy/{name}: {service_name} has no image"
            named = {v.split(":")[0] for v in service.get("volumes", []) if not v.startswith((".", "/"))}
            assert named <= declared, f"deploy/{name}: {service_name} uses undeclared volumes {named - declared}"


@pytest.mark.parametrize("name", [ONE, FLEET])
def test_every_monitor_command_exists_with_its_options(name: str) -> None:
    """Each command resolves in the click group and its options parse, as `monitor` would read them."""
    ran = {}
    for service_name, service in services(name).items():
        argv = monitor_argv(service)
        if argv is None:
            continue
        command: click.Command = main
        words: list[str] = []
        rest = argv[1:]
        while isinstance(command, click.Group):
            assert rest and rest[0] in command.commands, (
                f"deploy/{name}: {service_name} runs `{shlex.join(argv)}`: no such command "
                f"(known: {', '.join(sorted(command.commands))})")
            command, words, rest = command.commands[rest[0]], [*words, rest[0]], rest[1:]
        try:
            command.make_context(" ".join(["monitor", *words]), list(rest))
        except click.ClickException as exc:
            raise AssertionError(f"deploy/{name}: {service_name}: {exc.format_message()}") from exc
        ran[service_name] = words
    expected = {ONE: {"monitor": ["run"]},
                FLEET: {"migrate": ["db", "upgrade"], "exporter": ["exporter"], "worker": ["worker"]}}[name]
    assert ran == expected


@pytest.mark.parametrize("name", [ONE, FLEET])
def test_the_monitor_environment_loads_the_catalogue(name: str) -> None:
    """Every MONITOR_* variable is one the catalogue knows (an unknown one is refused at start), with a value it
    accepts: the shipped targets.toml loads with each service's environment."""
    for service_name, service in services(name).items():
        if monitor_argv(service) is None:
            continue
        env = environment(service)
        assert any(k.startswith("MONITOR_") for k in env), f"deploy/{name}: {service_name} sets no MONITOR_*"
        try:
            catalogue = load_catalogue(ROOT / "targets.toml", environ=env)
        except Exception as exc:
            raise AssertionError(f"deploy/{name}: {service_name}: {exc}") from exc
        if name == FLEET:
            assert catalogue.settings.engine is Engine.PROCRASTINATE, service_name
            assert catalogue.settings.database_url.startswith("postgresql+psycopg://")
            assert "@db/" in catalogue.settings.database_url, "the database is the compose service `db`"


def test_the_fleet_starts_in_order() -> None:
    fleet = services(FLEET)
    db = fleet["db"]
    assert db["image"].startswith("postgres:")
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"]), "the database needs its volume"
    assert "pg_isready" in db["healthcheck"]["test"]
    healthy, migrated = {"condition": "service_healthy"}, {"condition": "service_completed_successfully"}
    assert fleet["migrate"]["depends_on"] == {"db": healthy}
    assert "restart" not in fleet["migrate"], "a one-shot: restarted, it would never complete"
    for name in ("exporter", "worker"):
        assert fleet[name]["depends_on"] == {"db": healthy, "migrate": migrated}, name
        # `sh -c "... && monitor ..."` leaves sh as PID 1, which drops SIGTERM: the monitor would be killed
        assert "exec monitor" in fleet[name]["command"], f"{name}: the monitor must get SIGTERM"
    # the monitor processes log in as the database's user, with its password
    db_env, monitor_env = environment(db), environment(fleet["worker"])
    assert f"//{db_env['POSTGRES_USER']}@db/{db_env['POSTGRES_DB']}" in monitor_env["MONITOR_DATABASE_URL"]
    assert monitor_env["PGPASSWORD"] == db_env["POSTGRES_PASSWORD"]


def test_workers_scale_and_stop_as_the_systemd_units_do() -> None:
    worker = services(FLEET)["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert "ports" not in worker, "replicas cannot share a host port; Prometheus reaches them inside the network"
    unit = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8").split("freshness-worker@.service", 1)[1]
    timeout = re.search(r"^TimeoutStopSec=(\S+)$", unit, re.M)
    assert timeout and worker["stop_grace_period"] == timeout.group(1)
    # docs/deployment.md, "What to size": up to 15 connections a worker, about 10 for the exporter
    max_connections = re.search(r"max_connections=(\d+)", services(FLEET)["db"]["command"])
    assert max_connections and int(max_connections.group(1)) >= 15 * worker["deploy"]["replicas"] + 10


def test_the_fleet_shares_the_one_process_stack_for_the_rest() -> None:
    one, fleet = services(ONE), services(FLEET)
    assert fleet["alertmanager"] == one["alertmanager"] and fleet["grafana"] == one["grafana"]
    assert {**mounts(fleet["prometheus"]), PROMETHEUS_CONFIG: None} == {**mounts(one["prometheus"]),
                                                                        PROMETHEUS_CONFIG: None}
    assert prometheus_config(FLEET)["global"] == prometheus_config(ONE)["global"]  # Grafana's step relies on it


@pytest.mark.parametrize("name", [ONE, FLEET])
def test_prometheus_scrapes_the_ports_the_monitor_serves(name: str) -> None:
    stack = services(name)
    jobs = {job["job_name"]: job for job in prometheus_config(name)["scrape_configs"]}
    exporter = "monitor" if name == ONE else "exporter"
    listen = environment(stack[exporter])["MONITOR_METRICS_LISTEN"]
    assert listen.startswith("0.0.0.0:"), "the other containers reach it"
    (targets,) = [c["targets"] for c in jobs["freshness"]["static_configs"]]
    assert targets == [f"{exporter}:{port(listen)}"]
    for am in prometheus_config(name)["alerting"]["alertmanagers"]:
        for target in am["static_configs"][0]["targets"]:
            assert target.split(":")[0] in stack, target
    if name == ONE:
        assert set(jobs) == {"freshness"}
        return
    assert set(jobs) == {"freshness", "freshness-worker"}
    argv = monitor_argv(stack["worker"])
    assert argv is not None
    worker_listen = argv[argv.index("--metrics-listen") + 1]
    assert worker_listen.startswith("0.0.0.0:")
    (sd,) = jobs["freshness-worker"]["dns_sd_configs"]
    assert sd == {**sd, "names": ["worker"], "type": "A", "port": port(worker_listen)}


@pytest.mark.parametrize("name", [ONE, FLEET])
def test_prometheus_config_passes_promtool(name: str, tmp_path: Path) -> None:
    """The config as the container sees it: its rule files are the ones compose mounts there."""
    promtool = which("promtool")
    files = mounts(services(name)["prometheus"])
    config = prometheus_config(name)
    missing = [f for f in config["rule_files"] if f not in files]
    assert not missing, f"deploy/{name}: rule files not mounted into prometheus: {missing}"
    config["rule_files"] = [str(files[f]) for f in config["rule_files"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
