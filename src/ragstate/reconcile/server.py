"""The daemon's HTTP endpoints: metrics, health, readiness, and a trigger to run now.

=====================  ====================================================================
``GET /metrics``       the daemon's Prometheus metrics (``reconcile.metrics``)
``GET /healthz``       200 while the daemon's loop runs (503 once it stops); JSON body with
                       its state, cycle, failures in a row and next cycle
``GET /readyz``        200 when every enabled pipeline is Ready (as the latest observation
                       found), else 503; JSON body with each pipeline's readiness
``POST /reconcile``    start a cycle now (202); one that is running finishes first, then
                       the next one starts at once
=====================  ====================================================================

It listens on ``daemon.metrics_host`` (127.0.0.1 by default) in threads of its own.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ragstate.reconcile.metrics import CONTENT_TYPE, Metrics
from ragstate.redact import redact

log = logging.getLogger(__name__)

#: (status code, JSON body)
Answer = tuple[int, dict[str, Any]]


class MetricsServer:
    """Serves the endpoints above until ``close``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        metrics: Metrics,
        health: Callable[[], Answer],
        ready: Callable[[], Answer],
        trigger: Callable[[str], None],
    ):
        handler = _handler(metrics, health, ready, trigger)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="ragstate-metrics", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _handler(
    metrics: Metrics, health: Callable[[], Answer], ready: Callable[[], Answer], trigger: Callable[[str], None]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ragstate"

        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            path = self.path.split("?")[0]
            if path == "/metrics":
                self._send(200, metrics.exposition(), CONTENT_TYPE)
            elif path == "/healthz":
                self._json(*health())
            elif path == "/readyz":
                self._json(*ready())
            else:
                self._json(404, {"error": "not found", "endpoints": ["/metrics", "/healthz", "/readyz", "/reconcile"]})

        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?")[0] == "/reconcile":
                trigger("http")
                self._json(202, {"triggered": True})
            else:
                self._json(404, {"error": "not found"})

        def _json(self, code: int, body: dict[str, Any]) -> None:
            self._send(code, redact(json.dumps(body, default=str)).encode(), "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
            log.debug("metrics server: " + format, *args)

    return Handler
