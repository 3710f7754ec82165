"""Fetching pages over HTTP: the only module that imports httpx (and its engine, httpcore).

Failures never raise: each ends as an Outcome on the FetchResult. The exception translation
happens in one place, ``_classify``. Politeness (one request at a time per host, a minimum pause),
retries with backoff and Retry-After, bounded redirects, a body cap enforced while streaming
(decompression included), conditional GET and the SSRF guard are all here.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import random
import select
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import brotli
import h2.exceptions
import httpcore
import httpx

from monitor.clock import SYSTEM, Clock
from monitor.domain import REDACTED, FetchResult, Outcome, Settings, Validators, redact_url

logger = logging.getLogger(__name__)

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
TRANSIENT = frozenset({Outcome.TIMEOUT, Outcome.CONNECT, Outcome.PROTOCOL})
CHALLENGE_HEADERS = ("cf-mitigated", "x-amzn-waf-action", "x-datadome", "x-sucuri-block")
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,application/json;q=0.9,*/*;q=0.8"
MAX_RETRY_AFTER_S = 3600.0


# --- errors raised inside the transport, translated by _classify -----------------------------


class _Refused(Exception):
    """A fetch the policy does not allow (private address, bad scheme)."""


class _DNSFailure(Exception):
    """The host name does not resolve."""


class _TooLarge(Exception):
    """The body exceeds the cap (counted after decompression)."""


class _BadEncoding(Exception):
    """The body's Content-Encoding cannot be decoded."""


# --- the SSRF guard: checked on the address actually connected to -----------------------------


# Addresses that are global by the registries yet serve a cloud's instance metadata or its host agent: a fetch
# there could hand out the monitor's credentials. (169.254.0.0/16 and fd00::/8 are not global anyway.)
METADATA = tuple(ipaddress.ip_network(n) for n in (
    "168.63.129.16/32",  # Azure: wire server and DNS of every VM
    "100.100.100.200/32",  # Alibaba Cloud metadata (inside 100.64/10, named here for the record)
    "192.0.0.192/32",  # Oracle Cloud metadata alias
    "fd00:ec2::254/128",  # AWS IPv6 metadata
))
# IPv6 ranges that carry an IPv4 address inside: the IPv4 address is what is finally reached
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
V4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
V4_COMPATIBLE = ipaddress.ip_network("::/96")
SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, still routed inside some networks


def embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: mapped, translated, compatible, NAT64, 6to4, Teredo."""
    low = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    out = []
    if addr.ipv4_mapped is not None:
        out.append(addr.ipv4_mapped)
    if addr in V4_TRANSLATED or any(addr in n for n in NAT64):
        out.append(low)
    if addr in V4_COMPATIBLE and int(addr) > 1:
        out.append(low)
    if addr.sixtofour is not None:
        out.append(addr.sixtofour)
    if addr.teredo is not None:
        out.extend(addr.teredo)
    return out


def is_public_address(ip: str) -> bool:
    """Whether a fetch may connect to this address: globally routable, not multicast, not a cloud metadata
    service, and for IPv6 none of the IPv4 addresses it carries is otherwise (the SSRF guard)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if not addr.is_global or addr.is_multicast or any(addr in n for n in METADATA):
        return False  # is_global also excludes 100.64/10 (shared address space)
    if isinstance(addr, ipaddress.IPv6Address):
        return addr not in SITE_LOCAL and all(is_public_address(str(v4)) for v4 in embedded_ipv4(addr))
    return True


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _DNSFailure(f"cannot resolve {host}: {exc.strerror or exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _readable(sock: socket.socket | None) -> bool:
    """Whether the server has sent something (on an idle keep-alive connection: that it closed it)."""
    fd = sock.fileno() if sock is not None else -1
    if fd == -1:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _Stream(httpcore.AsyncNetworkStream):
    """A connected stream whose "is_readable" comes from the socket kept at connection time. The connection
    pool asks it of every idle connection on every request, and anyio builds all of a socket's attributes,
    a getpeername() call included, for each ask: a third of the time of a round of unchanged pages."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, refuses non-public addresses, and connects to the checked address,
    so a DNS answer that changes between the check and the connection cannot get around the guard."""

    def __init__(self, resolver: Resolver, *, allow_private: bool,
                 is_public: Callable[[str], bool] = is_public_address) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._resolve = resolver
        self._allow_private = allow_private
        self._is_public = is_public

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port)
        if not self._allow_private:
            public = [a for a in addresses if self._is_public(a)]
            if not public:
                raise _Refused(f"{host} resolves to a non-public address ({', '.join(addresses)}); "
                               "set allow_private = true on the page to allow it")
            addresses = public
        last: Exception | None = None
        for address in addresses:
            try:
                return _Stream(await self._inner.connect_tcp(address, port, timeout=timeout,
                                                              local_address=local_address,
                                                              socket_options=socket_options))
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise _Refused("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# --- bounded decompression -------------------------------------------------------------------


class _Decoder:
    """Decodes a Content-Encoding chain while never producing more than `limit` bytes in total."""

    def __init__(self, encodings: list[str], limit: int) -> None:
        self.limit = limit
        self.produced = 0
        self._stages: list[Any] = []
        for enc in reversed(encodings):  # applied in order, so undone in reverse
            if enc in ("gzip", "x-gzip"):
                self._stages.append(("gz", zlib.decompressobj(16 + zlib.MAX_WBITS)))
            elif enc == "deflate":
                self._stages.append(("deflate", None))
            elif enc == "br":
                self._stages.append(("br", brotli.Decompressor()))
            elif enc in ("identity", ""):
                continue
            else:
                raise _BadEncoding(f"unsupported Content-Encoding {enc!r}")

    def _room(self) -> int:
        return self.limit - self.produced + 1

    def _stage(self, index: int, data: bytes) -> bytes:
        kind, obj = self._stages[index]
        out = []
        if kind == "deflate":  # raw deflate or zlib-wrapped: decide on the first bytes
            wbits = zlib.MAX_WBITS if data[:1] and (data[0] & 0x0F) == 8 else -zlib.MAX_WBITS
            obj = zlib.decompressobj(wbits)
            self._stages[index] = ("z", obj)
            kind = "z"
        try:
            if kind == "gz":  # gzip allows several members one after another: each is decoded, all count
                while data:
                    if obj.eof:  # the member before ended: this is the next one, or trailing padding
                        if not data.strip(b"\0"):
                            break
                        obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
                        self._stages[index] = (kind, obj)
                    out.append(obj.decompress(data, self._room()))
                    while obj.unconsumed_tail:
                        if sum(map(len, out)) > self.limit:
                            raise _TooLarge()
                        out.append(obj.decompress(obj.unconsumed_tail, self._room()))
                    if sum(map(len, out)) > self.limit:
                        raise _TooLarge()
                    data = obj.unused_data if obj.eof else b""
            elif kind == "z":
                chunk = obj.decompress(data, self._room())
                out.append(chunk)
                while obj.unconsumed_tail:
                    if sum(map(len, out)) > self.limit:
                        raise _TooLarge()
                    out.append(obj.decompress(obj.unconsumed_tail, self._room()))
            else:
                out.append(obj.process(data, output_buffer_limit=self._room()))
                while not obj.can_accept_more_data():
                    if sum(map(len, out)) > self.limit:
                        raise _TooLarge()
                    out.append(obj.process(b"", output_buffer_limit=self._room()))
        except (zlib.error, brotli.error) as exc:
            raise _BadEncoding(f"corrupt compressed body: {exc}") from exc
        return b"".join(out)

    def feed(self, data: bytes) -> bytes:
        for i in range(len(self._stages)):
            data = self._stage(i, data)
        self.produced += len(data)
        if self.produced > self.limit:
            raise _TooLarge()
        return data


# --- per-host politeness ---------------------------------------------------------------------


class HostGate(Protocol):
    """Who may start a request to a host, and when: this process's (below), or the fleet's (monitor.fleet)."""

    def slot(self, host: str) -> AbstractAsyncContextManager[None]: ...

    def defer(self, host: str, seconds: float) -> None: ...


class _HostGate:
    """At most `concurrency` requests at a time to one host, starting at least `delay_s` apart."""

    def __init__(self, concurrency: int, delay_s: float, clock: Clock) -> None:
        self.concurrency = concurrency
        self.delay_s = delay_s
        self.clock = clock
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._next_start: dict[str, float] = {}
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Hold one of the host's slots, from the politeness pause to the end of the request. The slot is given
        back on every path: a timeout or a cancellation during the pause included (holding it for ever would
        leave every later request to the host waiting for a slot that never comes)."""
        sem = self._slots.setdefault(host, asyncio.Semaphore(self.concurrency))
        await sem.acquire()
        started, start, reserved = False, 0.0, None
        try:
            async with self._lock:
                now = self.clock.monotonic()
                start = max(now, self._next_start.get(host, 0.0))
                self._next_start[host] = reserved = start + self.delay_s
            if start > now:
                await self.clock.sleep_until(start)
            started = True
            yield
        finally:
            if not started and self._next_start.get(host) == reserved:  # the turn was never taken: give it back
                self._next_start[host] = start
            sem.release()

    def defer(self, host: str, seconds: float) -> None:
        """A server asked us to wait (Retry-After): nobody starts a request to it before then."""
        self._next_start[host] = max(self._next_start.get(host, 0.0), self.clock.monotonic() + seconds)


# --- the fetcher -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Hop:
    """The outcome of one HTTP request (no redirects followed)."""

    outcome: Outcome
    status: int | None = None
    headers: Mapping[str, str] | None = None
    body: bytes | None = None
    http_version: str = ""
    tls_expires_at: datetime | None = None
    error: str = ""


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_S)


def _cert_expiry(response: httpx.Response) -> datetime | None:
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    ssl_object = stream.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    if not cert or "notAfter" not in cert:
        return None
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC)


def _classify(exc: BaseException) -> tuple[Outcome, str]:
    """The one place where foreign exceptions become outcome classes."""
    if isinstance(exc, _Refused):
        return Outcome.BLOCKED, str(exc)
    if isinstance(exc, _DNSFailure):
        return Outcome.DNS, str(exc)
    if isinstance(exc, _TooLarge):
        return Outcome.TOO_LARGE, "body exceeds max_body_bytes"
    if isinstance(exc, _BadEncoding):
        return Outcome.PROTOCOL, str(exc)
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return Outcome.TIMEOUT, f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return Outcome.BLOCKED, f"unsupported scheme: {exc}"
    if isinstance(exc, httpx.ConnectError):
        chain = [exc, exc.__cause__, exc.__context__]
        if any(isinstance(e, ssl.SSLError) for e in chain) or "SSL" in str(exc) or "certificate" in str(exc):
            return Outcome.TLS, f"TLS: {exc}"
        return Outcome.CONNECT, f"cannot connect: {exc}"
    if isinstance(exc, ssl.SSLError):
        return Outcome.TLS, f"TLS: {exc}"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError | httpx.DecodingError
                  | httpx.LocalProtocolError | h2.exceptions.H2Error):
        return Outcome.PROTOCOL, f"{type(exc).__name__}: {exc}"
    if isinstance(exc, httpx.TransportError | OSError):
        return Outcome.CONNECT, f"{type(exc).__name__}: {exc}"
    return Outcome.ERROR, f"{type(exc).__name__}: {exc}"


class Fetcher:
    """One shared pair of HTTP clients (guarded and, for allowed pages, unguarded) for every check."""

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
        clock: Clock = SYSTEM,
        transport: httpx.AsyncBaseTransport | None = None,
        is_public: Callable[[str], bool] = is_public_address,
        gate: HostGate | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._gate: HostGate = gate or _HostGate(settings.per_host_concurrency, settings.per_host_delay_s, clock)
        resolve = resolver or system_resolve
        timeout = httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s)
        headers = {"User-Agent": settings.user_agent, "Accept": ACCEPT, "Accept-Language": "uk,en;q=0.8,ru;q=0.5",
                   "Accept-Encoding": "gzip, deflate, br"}
        limits = httpx.Limits(max_connections=max(settings.concurrency * 2, 10), max_keepalive_connections=20,
                              keepalive_expiry=30)
        self._clients: dict[bool, httpx.AsyncClient] = {}
        for allow in (False, True):
            if transport is not None:
                t: httpx.AsyncBaseTransport = transport
            else:
                ht = httpx.AsyncHTTPTransport(http2=True, verify=verify, limits=limits, retries=0)
                ht._pool = httpcore.AsyncConnectionPool(  # our backend: the SSRF guard and our resolver
                    ssl_context=ht._pool._ssl_context, max_connections=limits.max_connections,
                    max_keepalive_connections=limits.max_keepalive_connections,
                    keepalive_expiry=limits.keepalive_expiry, http1=True, http2=True, retries=0,
                    network_backend=_GuardedBackend(resolve, allow_private=allow, is_public=is_public),
                )
                t = ht
            self._clients[allow] = httpx.AsyncClient(transport=t, timeout=timeout, headers=headers,
                                                     follow_redirects=False, trust_env=False)

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def fetch(
        self,
        url: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        timeout_s: float | None = None,
        validators: Validators | None = None,
        allow_private: bool = False,
        probe: bool = False,
        forward_headers: bool = False,
    ) -> FetchResult:
        """Fetch `url` (following redirects, retrying transient failures) within one total deadline. A probe
        (link checks) asks only whether the address answers: HEAD, or a GET whose body is not read. The given
        headers are dropped when a redirect leads to another origin, unless `forward_headers`."""
        headers = tuple(headers)
        clock = self.clock
        started_at = clock.now()
        t0 = clock.monotonic()
        total_s = timeout_s or self.settings.timeout_s
        deadline = t0 + total_s
        attempts = 0
        while True:
            attempts += 1
            try:
                async with asyncio.timeout(max(0.001, deadline - clock.monotonic())):
                    result = await self._follow(url, headers, validators, allow_private, deadline, probe,
                                                forward_headers)
            except TimeoutError:
                result = _Result(final_url=url, hop=_Hop(outcome=Outcome.TIMEOUT,
                                                         error=f"no complete response within {total_s:g}s"))
            hop = result.hop
            retry_after = parse_retry_after((hop.headers or {}).get("retry-after"), clock.now())
            transient = hop.outcome in TRANSIENT or (
                hop.outcome is Outcome.HTTP_STATUS and hop.status in RETRY_STATUSES)
            if retry_after is not None:
                self._gate.defer(host_key(result.final_url), retry_after)
            if not transient or attempts > self.settings.retries:
                break
            backoff = retry_after if retry_after is not None else random.uniform(0, min(30.0, 0.5 * 2 ** attempts))
            if clock.monotonic() + backoff >= deadline:
                break  # no time left for another attempt: report what we have
            logger.debug("retrying %s in %.1fs after %s", url, backoff, hop.outcome)
            await clock.sleep(backoff)
        hdrs = hop.headers or {}
        content_type = hdrs.get("content-type", "")
        charset = None
        for param in content_type.split(";")[1:]:
            k, _, v = param.partition("=")
            if k.strip().lower() == "charset":
                charset = v.strip().strip("'\"").lower() or None
        return FetchResult(
            url=url,
            final_url=result.final_url,
            outcome=hop.outcome,
            started_at=started_at,
            elapsed_s=clock.monotonic() - t0,
            status=hop.status,
            body=hop.body if hop.outcome.success else None,
            content_type=content_type.split(";")[0].strip().lower(),
            charset=charset,
            etag=hdrs.get("etag"),
            last_modified=hdrs.get("last-modified"),
            redirects=result.redirects,
            http_version=hop.http_version,
            tls_expires_at=hop.tls_expires_at,
            retry_after_s=retry_after,
            attempts=attempts,
            error=_scrub(hop.error, headers),
            challenge=any(h in hdrs for h in CHALLENGE_HEADERS),
        )

    async def _follow(self, url: str, headers: Iterable[tuple[str, str]], validators: Validators | None,
                      allow_private: bool, deadline: float, probe: bool = False,
                      forward_headers: bool = False) -> _Result:
        current = url
        seen = {url}
        redirects = 0
        extra = dict(headers)
        while True:
            req_headers = dict(extra)
            if validators is not None and current == url:
                if validators.etag:
                    req_headers["If-None-Match"] = validators.etag
                if validators.last_modified:
                    req_headers["If-Modified-Since"] = validators.last_modified
            hop = await self._request(current, req_headers, allow_private, probe)
            if hop.status in REDIRECT_CODES and hop.headers is not None and hop.headers.get("location"):
                target = urljoin(current, hop.headers["location"].strip())
                if urlsplit(target).scheme not in ("http", "https"):
                    return _Result(final_url=current, redirects=redirects,
                                   hop=_Hop(outcome=Outcome.REDIRECTS, status=hop.status,
                                            error=f"redirect to a non-http location {redact_url(target)[:200]!r}"))
                if target in seen:
                    return _Result(final_url=current, redirects=redirects,
                                   hop=_Hop(outcome=Outcome.REDIRECTS, status=hop.status,
                                            error=f"redirect loop back to {redact_url(target)[:200]}"))
                redirects += 1
                if redirects > self.settings.max_redirects:
                    return _Result(final_url=current, redirects=redirects,
                                   hop=_Hop(outcome=Outcome.REDIRECTS, status=hop.status,
                                            error=f"more than {self.settings.max_redirects} redirects"))
                if _origin(target) != _origin(current) and not forward_headers:
                    extra = {}  # an API key or a token is for the site it was configured for, not where it sends us
                seen.add(target)
                current = target
                continue
            return _Result(final_url=current, redirects=redirects, hop=hop)

    async def _request(self, url: str, headers: dict[str, str], allow_private: bool, probe: bool = False) -> _Hop:
        async with self._gate.slot(host_key(url)):
            return await self._send(url, headers, allow_private, probe)

    async def _send(self, url: str, headers: dict[str, str], allow_private: bool, probe: bool) -> _Hop:
        try:
            client = self._clients[allow_private]
            try:
                response = await client.send(client.build_request("HEAD" if probe else "GET", url, headers=headers),
                                             stream=True)
                if probe and response.status_code >= 400:  # many servers refuse or mishandle HEAD: ask with GET
                    await response.aclose()
                    response = await client.send(client.build_request("GET", url, headers=headers), stream=True)
            except httpx.InvalidURL as exc:  # httpx builds the redirect request even when not following it
                return _Hop(outcome=Outcome.REDIRECTS, error=f"unusable redirect Location: {exc}")
            try:
                status = response.status_code
                resp_headers = {k.lower(): v for k, v in response.headers.items()}
                version = response.http_version
                tls = _cert_expiry(response)
                if status in REDIRECT_CODES or status == 304 or status >= 300:
                    outcome = (Outcome.NOT_MODIFIED if status == 304
                               else Outcome.HTTP_STATUS if status >= 400 or status not in REDIRECT_CODES
                               else Outcome.OK)
                    return _Hop(outcome=outcome, status=status, headers=resp_headers, http_version=version,
                                tls_expires_at=tls, error=f"HTTP {status}" if outcome is Outcome.HTTP_STATUS else "")
                if probe:  # the answer is enough; the body is never read
                    return _Hop(outcome=Outcome.OK, status=status, headers=resp_headers, body=b"",
                                http_version=version, tls_expires_at=tls)
                encoding = resp_headers.get("content-encoding", "")
                encodings = [e.strip().lower() for e in encoding.split(",") if e.strip()]
                limit = self.settings.max_body_bytes
                declared = resp_headers.get("content-length", "")
                if declared.isdigit() and not encodings and int(declared) > limit:
                    raise _TooLarge()
                decoder = _Decoder(encodings, limit)
                chunks: list[bytes] = []
                raw_total = 0
                async for raw in response.aiter_raw():
                    raw_total += len(raw)
                    if raw_total > limit:
                        raise _TooLarge()
                    chunks.append(decoder.feed(raw))
                return _Hop(outcome=Outcome.OK, status=status, headers=resp_headers, body=b"".join(chunks),
                            http_version=version, tls_expires_at=tls)
            finally:
                await response.aclose()
        except Exception as exc:  # translated into an outcome, never raised
            outcome, error = _classify(exc)
            if outcome is Outcome.ERROR:
                logger.exception("unexpected failure fetching %s", url)
            return _Hop(outcome=outcome, error=error)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Result:
    final_url: str
    hop: _Hop
    redirects: int = 0


def _scrub(error: str, headers: Iterable[tuple[str, str]]) -> str:
    """An error text without the values of the headers sent (a library may quote a refused header whole)."""
    for _name, value in headers:
        for form in {value, value.strip(), repr(value.encode("utf-8", "replace"))[2:-1]}:
            if len(form) >= 4 and form in error:
                error = error.replace(form, REDACTED)
    return error


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def host_key(url: str) -> str:
    """What politeness is kept per: the host and its port."""
    parts = urlsplit(url)
    return f"{(parts.hostname or '').lower()}:{parts.port or ''}"
