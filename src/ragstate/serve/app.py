"""The query service: the project's pipelines answering over HTTP.

=====================  ====================================================================
``POST /query``        ``{"pipeline", "text", "k", "readiness"}`` → the ``Retrieval`` as
                       ``ragstate query --json`` prints it (200); 503 with the reasons when
                       the pipeline is not ready (``readiness: fail``), 404 for a pipeline
                       the spec does not enable, 422 for a malformed request, 413 for a
                       body over the limit
``GET /status``        ``ragstate status --json``
``GET /healthz``       200 while the process serves (no store access)
``GET /readyz``        200 when every enabled pipeline is ready, else 503; each pipeline's
                       readiness and reasons
``GET /metrics``       Prometheus metrics (``serve.metrics``)
``GET /openapi.json``  the OpenAPI schema
=====================  ====================================================================

With a token (read from a file or an environment variable, never from the command line),
``/query``, ``/status`` and ``/metrics`` want ``Authorization: Bearer <token>`` (401
otherwise); the probes and the schema stay open. The service only reads the store: it
takes no writer lock and never heals (``readiness`` is ``fail`` or ``warn``), so it runs
beside the daemon or an apply on the same store.

The embedding models are loaded once, before the first request is accepted. Queries are
blocking work (the store, the model): each runs in a worker thread, at most
``workers`` at once, so the event loop keeps accepting requests and answering probes.
"""

import functools
import hmac
import json
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ragstate.compute.embedders import make_embedder
from ragstate.errors import NotReady, QueryError, RagstateError, ServeError, TransientError
from ragstate.pipelines.query import Pipeline
from ragstate.project import Project
from ragstate.redact import redact_data, register_secret, secret_from_file
from ragstate.serve.metrics import CONTENT_TYPE, ServeMetrics

try:
    import anyio
    import uvicorn
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import JSONResponse, Response
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from pydantic import BaseModel, ConfigDict, Field
except ImportError as exc:  # pragma: no cover - the extra is part of dev
    raise ServeError(f"ragstate serve needs the serve extra ({exc.name} is missing): pip install 'ragstate[serve]'")

log = logging.getLogger(__name__)

#: the signals that stop ``serve`` cleanly
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Any]


@dataclass(frozen=True)
class ServeOptions:
    """How the service listens and what it accepts."""

    host: str = "127.0.0.1"
    port: int = 8000
    #: a request body larger than this is refused with 413 before it is read whole
    max_body_bytes: int = 16_384
    #: the longest query text (characters) and the most documents a query may ask for
    max_text_chars: int = 4_000
    max_k: int = 100
    #: queries answered at once (worker threads); more wait their turn
    workers: int = 8
    #: readiness mode when a request gives none (default: the spec's, unless it is heal)
    readiness: str | None = None


def read_token(token_file: Path | None = None, token_env: str | None = None) -> str | None:
    """The bearer token from the first line of ``token_file`` or the variable ``token_env``
    (masked in every log and message from now on), or None when neither is given.

    Raises:
        ServeError: both given, the file unreadable or empty, the variable unset or empty.
    """
    if token_file is not None and token_env:
        raise ServeError("give the token either in a file (--token-file) or a variable (--token-env), not both")
    if token_file is not None:
        try:
            return secret_from_file(token_file)
        except OSError as exc:
            raise ServeError(f"token file {token_file}: cannot read it ({exc.strerror or exc})") from None
        except ValueError:
            raise ServeError(f"token file {token_file}: its first line is empty") from None
    if token_env:
        value = os.environ.get(token_env, "").strip()
        if not value:
            raise ServeError(f"token variable {token_env} is unset or empty")
        register_secret(value)
        return value
    return None


def create_app(project: Project, options: ServeOptions | None = None, *, token: str | None = None) -> FastAPI:
    """The ASGI application answering for ``project``'s enabled pipelines.

    Args:
        project: an open project; the caller closes it after the app stops.
        options: limits and defaults (``ServeOptions()``).
        token: the bearer token requests must carry (``read_token``); None: no token.

    Raises:
        ServeError: ``options.readiness`` is neither fail nor warn.
    """
    from ragstate.version import __version__

    options = options or ServeOptions()
    spec_mode = project.spec.query.readiness
    default_mode = options.readiness or (spec_mode if spec_mode != "heal" else "fail")
    if default_mode not in ("fail", "warn"):
        raise ServeError(f"readiness {default_mode!r}: the service answers with fail or warn (it never heals)")
    pipelines: dict[str, Pipeline] = {name: project.pipeline(name) for name in project.spec.pipelines}
    metrics = ServeMetrics(__version__)
    limiter = anyio.CapacityLimiter(options.workers)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(load_models, project, list(pipelines.values()))
        yield

    app = FastAPI(
        title="ragstate",
        version=__version__,
        summary="Retrieval from reconciled ragstate pipelines, with the readiness guard.",
        lifespan=lifespan,
        docs_url=None,  # the interactive pages load scripts from a CDN; the schema is enough
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, limit=options.max_body_bytes)
    bearer = HTTPBearer(auto_error=False)

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if token is None:
            return
        given = credentials.credentials.encode() if credentials is not None else b""
        if not hmac.compare_digest(given, token.encode()):
            raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})

    class QueryRequest(BaseModel):
        """One query."""

        model_config = ConfigDict(extra="forbid")
        pipeline: str = Field(description="an enabled pipeline: " + ", ".join(pipelines), min_length=1, max_length=64)
        text: str = Field(description="the query", min_length=1, max_length=options.max_text_chars)
        k: int | None = Field(None, ge=1, le=options.max_k, description="documents to return (default query.k)")
        readiness: Literal["fail", "warn"] | None = Field(
            None, description=f"when the pipeline's data is not ready (default {default_mode})"
        )

    refused = {
        401: {"description": "no valid bearer token"},
        404: {"description": "the pipeline is not enabled"},
        413: {"description": "the body is larger than the limit"},
        503: {"description": "the pipeline is not ready (reasons in the body)"},
    }

    @app.post("/query", dependencies=[Depends(authorised)], responses=refused)
    async def query(request: QueryRequest) -> Response:
        """Retrieve the documents that best answer ``text`` from ``pipeline``."""
        pipeline = pipelines.get(request.pipeline)
        if pipeline is None:
            metrics.queries.labels(request.pipeline[:64], "invalid").inc()
            return _json(
                404,
                {"error": f"pipeline '{request.pipeline}' is not enabled", "pipelines": list(pipelines)},
            )
        mode = request.readiness or default_mode
        ask = functools.partial(pipeline.retrieve, request.text, request.k, readiness_mode=mode)
        metrics.in_flight.inc()
        t0 = time.perf_counter()
        try:
            result = await anyio.to_thread.run_sync(ask, limiter=limiter)
        except NotReady as exc:
            metrics.queries.labels(pipeline.name, "not_ready").inc()
            body = {"error": str(exc), "error_type": "NotReady", "pipeline": exc.pipeline, "reasons": exc.reasons}
            return _json(503, body, headers={"Retry-After": "30"})
        except QueryError as exc:
            metrics.queries.labels(pipeline.name, "invalid").inc()
            return _json(422, {"error": str(exc), "error_type": type(exc).__name__})
        except RagstateError as exc:
            metrics.queries.labels(pipeline.name, "failed").inc()
            code = 503 if isinstance(exc, TransientError) else 500
            return _json(code, {"error": str(exc), "error_type": type(exc).__name__})
        finally:
            metrics.in_flight.dec()
        metrics.duration.labels(pipeline.name).observe(time.perf_counter() - t0)
        metrics.queries.labels(pipeline.name, "warned" if result.warnings else "answered").inc()
        return _json(200, result.to_dict())

    @app.get("/status", dependencies=[Depends(authorised)], responses={401: refused[401]})
    async def status() -> Response:
        """Readiness of each pipeline, generations per kind, the last and any running run."""
        report = await anyio.to_thread.run_sync(project.status, limiter=limiter)
        return _json(200, report.to_dict())

    @app.get("/healthz")
    async def healthz() -> Response:
        """200 while the process serves."""
        return _json(200, {"status": "ok", "version": __version__})

    @app.get("/readyz", responses={503: {"description": "some pipeline is not ready"}})
    async def readyz() -> Response:
        """200 when every enabled pipeline is ready; each pipeline's reasons otherwise."""

        def check() -> dict[str, Any]:
            states = {name: p.readiness() for name, p in pipelines.items()}
            return {name: {"ready": s.ready, "reasons": list(s.reasons)} for name, s in states.items()}

        try:
            states = await anyio.to_thread.run_sync(check, limiter=limiter)
        except RagstateError as exc:
            return _json(503, {"ready": False, "error": str(exc), "error_type": type(exc).__name__})
        ready = all(s["ready"] for s in states.values())
        return _json(200 if ready else 503, {"ready": ready, "pipelines": states})

    @app.get("/metrics", dependencies=[Depends(authorised)], responses={401: refused[401]})
    async def prometheus() -> Response:
        """Queries by pipeline and outcome, their durations, and those in flight."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return app


def load_models(project: Project, pipelines: list[Pipeline]) -> None:
    """Load every model the pipelines encode queries with, once for the process (a model
    loads on first use otherwise, and the first query would wait for it)."""
    for name in sorted({d.recipe.model for p in pipelines for d in p.desired.kinds if d.recipe.model}):
        t0 = time.perf_counter()
        make_embedder(name, project.spec.models[name]).load()
        log.info("model %s loaded in %.1fs", name, time.perf_counter() - t0)


def serve(project: Project, options: ServeOptions | None = None, *, token: str | None = None) -> int:
    """Serve ``create_app(project, options, token=token)`` with uvicorn until SIGINT/SIGTERM.

    Returns:
        0 once stopped.
    """
    options = options or ServeOptions()
    app = create_app(project, options, token=token)
    log.info(
        "serving %s on http://%s:%d (%s)",
        ", ".join(project.spec.pipelines),
        options.host,
        options.port,
        "bearer token required" if token else "no token",
    )
    server = uvicorn.Server(uvicorn.Config(app, host=options.host, port=options.port, log_config=None))
    # uvicorn stops on SIGINT/SIGTERM, then raises the signal again for the handler it found
    # installed: with this one the process ends with 0 (a clean stop), as the daemon does
    stops: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _: stops.append(signum)) for sig in STOP_SIGNALS}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped%s", f" by signal {stops[0]}" if stops else "")
    return 0


@contextmanager
def running(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread for the block; yields its URL (port 0: any free
    port). For tests and benchmarks: a real server, real sockets."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, name="ragstate-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ServeError(f"the service did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{bound[0]}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(30)


class BodyLimit:
    """Refuse a request body over ``limit`` bytes with 413: at once when Content-Length says
    so, else as soon as the chunks read add up to more (the rest is never read)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(send)
            return
        received = 0

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # FastAPI passes an HTTPException raised while it reads the body through
                    raise HTTPException(413, self._message)
            return message

        await self.app(scope, limited, send)

    @property
    def _message(self) -> str:
        return f"the request body is larger than {self.limit} bytes"

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"error": self._message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _json(code: int, data: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """``data`` as JSON, every secret masked (as ``ragstate query --json`` prints it)."""
    masked = redact_data(json.loads(json.dumps(data, default=_plain)))
    return JSONResponse(masked, status_code=code, headers=headers)


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers; anything else JSON cannot write as text."""
    return value.item() if hasattr(value, "item") else str(value)
