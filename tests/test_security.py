"""Nobody gets in: the SSRF guard checks the address actually connected to; secrets from the environment
never reach logs, metrics, the database or reports; extraction and fingerprinting survive any input."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.cli import main
from monitor.compare import read_bytes as read
from monitor.domain import Outcome, Settings
from monitor.errors import ConfigError
from monitor.fetch import Fetcher, is_public_address
from tests.helpers import html
from tests.siteserver import Request, Site, page, respond

SETTINGS = Settings(user_agent="sec (+mailto:it@example.org)", per_host_delay_s=0.0, retries=0, timeout_s=3)


@pytest.mark.parametrize(("address", "public"), [
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("224.0.0.1", False), ("0.0.0.0", False),
    ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False),
    ("93.184.216.34", True), ("2606:4700::1111", True),
    # IPv6 forms that lead to an IPv4 address inside, and addresses that are global yet must not be reached
    ("64:ff9b::7f00:1", False), ("64:ff9b::a00:1", False), ("64:ff9b:1::c0a8:101", False),  # NAT64
    ("2002:7f00:1::", False), ("2002:a9fe:a9fe::1", False),  # 6to4 around loopback, metadata
    ("::7f00:1", False), ("::ffff:0:7f00:1", False), ("::ffff:0:a00:1", False),  # compatible, translated
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo: the client 127.0.0.1 inside
    ("fec0::1", False), ("168.63.129.16", False), ("192.0.0.192", False),  # site-local; Azure, Oracle metadata
    ("64:ff9b::5db8:d822", True), ("2002:5db8:d822::1", True),  # the same forms around a public address
])
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(address) is public


PRIVATE_V4 = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
              "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4", "0.0.0.0/0"]


def _in(network: str) -> st.SearchStrategy[int]:
    import ipaddress

    net = ipaddress.IPv4Network(network)
    return st.integers(min_value=int(net.network_address), max_value=int(net.broadcast_address))


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(PRIVATE_V4).flatmap(_in))
def test_no_ipv6_form_of_a_private_ipv4_address_is_public(value: int) -> None:
    """Property: whatever IPv4 address, each IPv6 form that leads to it is public only if the IPv4 address is."""
    import ipaddress

    v4 = ipaddress.IPv4Address(value)
    forms = [f"::ffff:{v4}", f"::ffff:0:{v4}", f"64:ff9b::{v4}", f"2002:{value >> 16:x}:{value & 0xFFFF:x}::1"]
    if value > 1:
        forms.append(f"::{v4}")
    if not is_public_address(str(v4)):
        assert not any(is_public_address(f) for f in forms), (v4, [f for f in forms if is_public_address(f)])


def test_the_resolved_address_is_checked_so_dns_cannot_rebind_around_the_guard(site: Site) -> None:
    site.routes["/"] = page(html("Секрет"))
    answers = {"metadata.example": ["169.254.169.254"], "rebind.example": ["127.0.0.1"]}

    async def resolver(host: str, port: int) -> list[str]:
        return answers[host]

    async def go(url: str, allow: bool):  # type: ignore[no-untyped-def]
        async with Fetcher(SETTINGS, resolver=resolver) as f:
            return await f.fetch(url, allow_private=allow)

    r = asyncio.run(go("http://metadata.example/latest/meta-data/", False))
    assert r.outcome is Outcome.BLOCKED and "169.254.169.254" in r.error
    r = asyncio.run(go(f"http://rebind.example:{site.port}/", False))  # a name that resolves to loopback
    assert r.outcome is Outcome.BLOCKED and site.requests == []
    r = asyncio.run(go(f"http://rebind.example:{site.port}/", True))  # the page's explicit allowance
    assert r.outcome is Outcome.OK and len(site.requests) == 1


def test_a_redirect_to_a_private_address_is_blocked(site: Site) -> None:
    """Here 127.0.0.1 plays a public server that redirects to 127.0.0.2, which plays the internal one."""
    site.routes["/"] = page(html("Секрет"))
    with Site() as hop:
        hop.routes["/go"] = page("", status=302, headers={"Location": f"http://127.0.0.2:{site.port}/"})

        async def go():  # type: ignore[no-untyped-def]
            async with Fetcher(SETTINGS, is_public=lambda a: a == "127.0.0.1") as f:
                return await f.fetch(hop.url("/go"), allow_private=False)

        r = asyncio.run(go())
    assert r.outcome is Outcome.BLOCKED and "127.0.0.2" in r.error
    assert len(hop.requests) == 1 and site.requests == []


def test_non_http_schemes_are_refused() -> None:
    async def go():  # type: ignore[no-untyped-def]
        async with Fetcher(SETTINGS) as f:
            return await f.fetch("file:///etc/passwd")

    assert asyncio.run(go()).outcome is Outcome.BLOCKED


SECRET = "s3cr3t-T0KEN-do-not-leak-7b1e"
PASSWORD = "pa55-in-the-url-9c2d"


def redirect_to(location: str) -> Callable[[Request, asyncio.StreamWriter], Awaitable[None]]:
    async def handler(req: Request, w: asyncio.StreamWriter) -> None:
        await respond(w, 302, b"", {"Location": location})

    return handler


@pytest.mark.parametrize("value", ["Bearer abc\n", "Bearer abc\r\nX-Injected: 1", "Bearer \u00e9", " Bearer abc"])
def test_a_header_value_that_cannot_be_sent_is_refused_at_load_without_showing_it(value: str) -> None:
    from monitor.config import parse_catalogue

    data = {"settings": {"user_agent": "t (+mailto:a@b.c)"}, "departments": {"it": {"name": "IT"}},
            "services": [{"id": "portal", "name": "П", "department": "IT", "regulation": "weekly",
                          "pages": [{"url": "https://a.example/", "headers": {"X-Api-Key": value}}]}]}
    with pytest.raises(ConfigError) as bad:
        parse_catalogue(data, environ={})
    assert "header 'X-Api-Key'" in str(bad.value) and "not shown" in str(bad.value)
    assert value.strip() not in str(bad.value)
    data["services"][0]["pages"][0]["headers"] = {"X-Api-Key": "${KEY}"}  # the same from the environment
    with pytest.raises(ConfigError, match="its value from the environment") as bad:
        parse_catalogue(data, environ={"KEY": value})
    assert value.strip() not in str(bad.value)


@pytest.mark.parametrize("forward", [False, True])
def test_configured_headers_stay_with_their_site_on_a_redirect(forward: bool) -> None:
    """Every configured header (an API key, not only Authorization and Cookie) is dropped when a redirect
    leads to another origin — another host on loopback here — unless the page allows it."""
    from dataclasses import replace

    from monitor.domain import Settings
    from monitor.fetch import Fetcher

    with Site() as here, Site(host="127.0.0.2") as there:
        there.routes["/data"] = page(html("Дані"))
        here.routes["/api"] = redirect_to(there.url("/data"))

        async def go() -> Outcome:
            settings = replace(Settings(user_agent="t (+mailto:a@b.c)"), per_host_delay_s=0.0, retries=0)
            async with Fetcher(settings) as fetcher:
                r = await fetcher.fetch(here.url("/api"), headers=(("X-Api-Key", SECRET), ("Authorization", "x")),
                                        allow_private=True, forward_headers=forward)
            return r.outcome

        assert asyncio.run(go()) is Outcome.OK
        assert here.requests[0].headers["x-api-key"] == SECRET
        sent = there.requests[0].headers
        assert ("x-api-key" in sent) is forward and ("authorization" in sent) is forward


def test_secrets_never_reach_logs_metrics_database_or_reports(
        tmp_path: Path, site: Site, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    site.routes["/uk"] = page(html("Новина"))
    site.routes["/private"] = page("denied", status=403)
    monkeypatch.setenv("CITY_TOKEN", SECRET)
    db = tmp_path / "m.db"
    targets = tmp_path / "targets.toml"
    targets.write_text(f"""
[settings]
database_url = "sqlite:///{db}"
user_agent = "sec (+mailto:it@example.org)"
per_host_delay = "0.001s"
retries = 0
[departments.it]
name = "IT"
[[services]]
id = "portal"
name = "Портал"
department = "IT"
regulation = "weekly"
  [[services.pages]]
  url = "{site.url('/uk')}"
  allow_private = true
  headers = {{ Authorization = "Bearer ${{CITY_TOKEN}}" }}
  [[services.pages]]
  url = "{site.url('/private')}?page=2&api_key={PASSWORD}"
  allow_private = true
  [[services.pages]]
  url = "{site.url('/moved').replace('http://', f'http://monitor:{PASSWORD}@')}"
  allow_private = true
""", encoding="utf-8")
    site.routes["/moved"] = redirect_to(site.url(f"/uk?session={PASSWORD}"))
    caplog.set_level(logging.DEBUG)
    cli = CliRunner()
    outputs = [cli.invoke(main, ["-t", str(targets), *args]) for args in (
        ["check", "--json"], ["check"], ["status", "--json"], ["history", "portal"], ["exporter", "--help"],
        ["audit", "--from", "2026-01-01", "--to", "2027-01-01", "--format", "json"], ["targets", "check"])]
    assert site.requests[0].headers["authorization"] == f"Bearer {SECRET}"  # it was sent...
    from monitor.config import load_catalogue
    from monitor.metrics import build_registry, exposition
    from monitor.store import Store

    store = Store.open(f"sqlite:///{db}")
    metrics = exposition(build_registry(load_catalogue(targets), store.metrics)).decode()
    store.close()
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    texts = {"logs": caplog.text, "metrics": metrics, "database": dump,
             **{f"output {i}": o.output for i, o in enumerate(outputs)}}
    for where, text in texts.items():  # ...and nowhere else
        leaks = [line for line in text.splitlines() if SECRET in line or PASSWORD in line]
        assert not leaks, (where, leaks[:3])
    assert "${CITY_TOKEN}" in dump  # the template is what is stored
    assert "api_key=REDACTED" in dump and "monitor:REDACTED@" in dump and "session=REDACTED" in dump
    assert f"api_key={PASSWORD}" in site.requests[1].query or any(PASSWORD in r.query for r in site.requests)


# --- extraction and fingerprinting never raise, are deterministic, and ignore noise ---------------------

html_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=2000)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.one_of(html_text.map(lambda s: s.encode("utf-8", "surrogatepass")), st.binary(max_size=3000)))
def test_extraction_never_raises_and_is_deterministic(body: bytes) -> None:
    first = read(body)
    assert read(body).fingerprints == first.fingerprints


TAGS = st.sampled_from(["p", "div", "li", "span", "b", "td", "h2", "article", "section"])
WORDS = st.text(alphabet="абвгґдеєжзиіїйклмнопрстуфхцчшщьюяАБВГ 0123456789,.", min_size=1, max_size=40)


@st.composite
def pages(draw: st.DrawFn) -> str:
    parts = [f"<{t}>{w}</{t}>" for t, w in draw(st.lists(st.tuples(TAGS, WORDS), min_size=1, max_size=30))]
    return "<html><head><title>Т</title></head><body><main>" + "".join(parts) + "</main></body></html>"


NOISE = [
    lambda h: h.replace("<main>", "<main><!-- rendered in 0.0123 s -->", 1),
    lambda h: h.replace("</body>", "<script>var csrf='a8f3c2e9b1d74f6a9c0e5b2d8f1a3c7e';</script></body>", 1),
    lambda h: h.replace("<head>", "<head><meta name='csrf-token' content='0c7e1f9a2b8d4e6f3a5c9b1d7e2f8a4c'>", 1),
    lambda h: h.replace("</main>", "</main><footer>Переглядів сайту: 98765</footer>", 1),
    lambda h: h.replace("<body>", "<body>\n\n   ", 1),
]


@settings(max_examples=150, deadline=None)
@given(page_html=pages(), noise=st.sampled_from(range(len(NOISE))))
def test_noise_only_edits_do_not_change_the_masked_fingerprint(page_html: str, noise: int) -> None:
    before = read(page_html.encode()).fingerprints
    after = read(NOISE[noise](page_html).encode()).fingerprints
    assert after.main_masked == before.main_masked and after.links == before.links
    assert after.documents == before.documents


def test_a_json_bomb_of_nesting_is_refused() -> None:
    from monitor.domain import Kind, Quality
    from monitor.kinds import extract

    assert extract(Kind.JSON, b"[" * 200_000 + b"]" * 200_000, url="x").quality is Quality.UNREADABLE
    assert json.loads("[1]") == [1]
