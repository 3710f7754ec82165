"""Serving /metrics and /healthz over HTTP from a background thread (the collectors are monitor.metrics)."""

from __future__ import annotations

import gzip
import json
import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from monitor.metrics import CONTENT_TYPE_LATEST, exposition

logger = logging.getLogger(__name__)

Health = Callable[[], tuple[bool, dict[str, Any]]]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("metrics: " + format, *args)


class MetricsServer:
    """Serves /metrics (gzipped when asked, as Prometheus does) and /healthz."""

    def __init__(self, registry: Any, listen: str, *, health: Health) -> None:
        host, _, port = listen.rpartition(":")

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO")
            if path == "/healthz":
                ok, details = health()
                body = json.dumps({"ok": ok, **details}, default=str).encode()
                start_response("200 OK" if ok else "503 Service Unavailable",
                               [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                return [body]
            if path not in ("/metrics", "/"):
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"/metrics and /healthz only\n"]
            body = exposition(registry)
            headers = [("Content-Type", CONTENT_TYPE_LATEST)]
            if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):  # Prometheus asks for it: 4 MB become 0.3 MB
                body = gzip.compress(body, compresslevel=1)
                headers.append(("Content-Encoding", "gzip"))
            start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
            return [body]

        self._server = make_server(host.strip("[]") or "0.0.0.0", int(port), app, server_class=_Server,
                                   handler_class=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
