"""A local OpenAI-compatible server for tests: a real HTTP server in a thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Server:
    """An OpenAI-compatible server in a thread: answers with ``reply(path, body)`` and keeps
    every request it got (path, headers, JSON body)."""

    def __init__(self, reply: Callable[[str, dict[str, Any]], tuple[int, Any]]):
        self.reply = reply
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append((self.path, dict(self.headers), body))
                status, payload = server.reply(self.path, body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def openai_reply(text: str) -> Callable[[str, dict[str, Any]], tuple[int, Any]]:
    """A server that writes ``text`` for every prompt, in the format of the endpoint asked."""

    def reply(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if path.endswith("/chat/completions"):
            return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
        return 200, {"choices": [{"index": 0, "text": text}]}

    return reply
