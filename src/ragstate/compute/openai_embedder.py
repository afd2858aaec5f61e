"""The ``openai`` embedder: any OpenAI-compatible embedding API (the protocol, not the company).

OpenAI and Azure OpenAI, vLLM, Ollama's ``/v1/embeddings``, Hugging Face
text-embeddings-inference, infinity, a LiteLLM proxy: ``POST {url}/embeddings`` with a
list of texts, one vector per text back, through the official ``openai`` client (async,
on one event-loop thread per embedder, so batches of every kind built at once share the
limits below).

What a call does, in order:

1. each text is cut to ``max_tokens`` the way the model would cut it (by the tokens of
   ``tokenizer``, a local model whose tokenizer the API model shares; without one, at
   about four characters a token); the cache counts the cut texts (``truncated``);
2. the texts are cut into requests of at most ``max_batch_texts`` texts and
   ``max_batch_tokens`` tokens;
3. at most ``max_concurrency`` requests are in flight, paced by ``requests_per_minute``
   and ``tokens_per_minute`` (token buckets);
4. each answer is checked: as many vectors as texts, every ``index`` once, the expected
   size; then normalised when ``normalize`` is set.

Faults are raised, never retried here: ``faults/retry.py`` retries the batch, honouring
the server's ``Retry-After``, behind the embedder's circuit breaker. Vectors of the
requests that did succeed in a failed call are kept for the next call, so a retry does
not pay for them again.

========================  ==============================  ==========================================
answer                    error                           what the engine does
========================  ==============================  ==========================================
429, 408, 409, 5xx,       ``EmbedderUnavailable``         retried (Retry-After or backoff with
timeout, no connection    (transient)                     jitter); the breaker counts it
400, 413, 422             ``EmbedderRejected`` (item)     the batch is split until the document is
                                                          found; it is quarantined
401, 403, no key          ``EmbedderAuthError``           the run stops (exit 1); the message names
                                                          the key's variable or file
wrong count, index or     ``EmbedderResponseError``       the run stops; nothing of it is written
size
404, other statuses       ``ModelError``                  the run stops
========================  ==============================  ==========================================

``load()`` sends one short text first: a wrong URL, model, key or size stops the run
before any document is sent, and a 400 there is the spec's fault, not a document's.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ragstate.compute.embedders import PACKAGED_MODELS, _read_dimensions, load_tokenizer, resolve_model_path
from ragstate.errors import (
    EmbedderAuthError,
    EmbedderRejected,
    EmbedderResponseError,
    EmbedderUnavailable,
    ModelError,
)
from ragstate.redact import api_key, redact
from ragstate.spec.model import ModelSpec

#: the input window of OpenAI's embedding models, the default without a tokenizer
DEFAULT_MAX_TOKENS = 8191
#: characters a token, where no tokenizer is named
CHARS_PER_TOKEN = 4
#: characters of a server's error body quoted in a message
QUOTED = 300
#: the text ``load`` sends to check the endpoint
PROBE = "ragstate"
#: vectors of a failed call's successful requests kept for the next call, at most
MAX_KEPT = 100_000


class OpenAIEmbedder:
    """An OpenAI-compatible embedding endpoint (see the module's docstring)."""

    #: texts a second to estimate with before a run has measured the real rate
    default_rate = 200.0
    #: requests of several threads run at once (no process-wide model lock, ``artifacts/cache.py``)
    exclusive = False

    def __init__(self, spec: ModelSpec, *, name: str = "default"):
        assert spec.url is not None and spec.model is not None and (spec.dimensions or spec.dimension)
        self.spec = spec
        self.field = f"models.{name}"
        self.dimension: int = spec.dimensions or spec.dimension  # type: ignore[assignment]
        self.normalize = spec.normalize
        self.price_per_million_tokens = spec.price_per_million_tokens
        self._tokenizer_path = (
            resolve_model_path(spec.tokenizer, field=f"{self.field}.tokenizer") if spec.tokenizer else None
        )
        window = DEFAULT_MAX_TOKENS
        if self._tokenizer_path is not None:
            window = _read_dimensions(self._tokenizer_path, f"{self.field}.tokenizer")[1]
        self.max_tokens = spec.max_tokens or window
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._slots: asyncio.Semaphore | None = None
        self._buckets: list[_Bucket] = []
        self._headers: dict[str, Any] = {}
        self._key: str | None = None
        #: vectors of requests that succeeded in a call that failed, by cut text
        self._kept: dict[str, np.ndarray] = {}
        #: tokens the API reported using (its ``usage``), for this process
        self.usage_tokens = 0

    # --- identity -----------------------------------------------------------------------

    def endpoint(self) -> str:
        """Host and path of the embeddings endpoint: its identity (no scheme, port, user or key)."""
        parts = urlsplit(self.spec.url or "")
        return f"{parts.hostname or ''}{parts.path.rstrip('/')}/embeddings"

    def identity(self) -> dict[str, Any]:
        tokenizer = self.spec.tokenizer
        if tokenizer is not None and tokenizer not in PACKAGED_MODELS:
            tokenizer = Path(tokenizer).name
        return {
            "provider": "openai",
            "endpoint": self.endpoint(),
            "model": self.spec.model,
            # the output size, whether asked (dimensions) or the model's own (dimension): the same
            # vectors either way, and chunks (tokenizer_identity) ignore it
            "dimension": self.dimension,
            "max_tokens": self.max_tokens,
            "tokenizer": tokenizer,
            "normalize": self.normalize,
        }

    # --- the key ------------------------------------------------------------------------

    def key_source(self) -> str:
        """Where the key comes from, for messages (never the key)."""
        if self.spec.api_key_env is not None:
            return f"the key in environment variable {self.spec.api_key_env} ({self.field}.api_key_env)"
        if self.spec.api_key_file is not None:
            return f"the key in file {self.spec.api_key_file} ({self.field}.api_key_file)"
        return f"no key ({self.field} sets neither api_key_env nor api_key_file)"

    def api_key(self) -> str:
        """The key, registered as a secret; "" when none is configured (a local server)."""
        try:
            return api_key(self.field, self.spec.api_key_env, self.spec.api_key_file) or ""
        except ValueError as exc:
            raise EmbedderAuthError(str(exc)) from None

    # --- tokens -------------------------------------------------------------------------

    def tokenizer(self) -> Any:
        if self._tokenizer is None and self._tokenizer_path is not None:
            self._tokenizer = load_tokenizer(self._tokenizer_path, f"{self.field}.tokenizer")
        return self._tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        tok = self.tokenizer()
        if tok is None:
            return [math.ceil(len(t) / CHARS_PER_TOKEN) for t in texts]
        return [len(e.ids) for e in tok.encode_batch(list(texts))]

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        tok = self.tokenizer()
        if tok is None:
            return [[(i, min(i + CHARS_PER_TOKEN, len(t))) for i in range(0, len(t), CHARS_PER_TOKEN)] for t in texts]
        return [
            [span for span, special in zip(e.offsets, e.special_tokens_mask, strict=True) if not special]
            for e in tok.encode_batch(list(texts))
        ]

    def cut(self, texts: Sequence[str]) -> tuple[list[str], list[int]]:
        """Each text cut to what the model reads (its first ``max_tokens`` tokens, special
        tokens included, as a sentence-transformers model cuts), and its tokens after the cut."""
        tok = self.tokenizer()
        out: list[str] = []
        counts: list[int] = []
        if tok is None:
            room = self.max_tokens * CHARS_PER_TOKEN
            for t in texts:
                out.append(t[:room])
                counts.append(math.ceil(len(out[-1]) / CHARS_PER_TOKEN))
            return out, counts
        for text, e in zip(texts, tok.encode_batch(list(texts)), strict=True):
            if len(e.ids) <= self.max_tokens:
                out.append(text)
                counts.append(len(e.ids))
                continue
            spans = [span for span, special in zip(e.offsets, e.special_tokens_mask, strict=True) if not special]
            keep = max(1, self.max_tokens - (len(e.ids) - len(spans)))
            out.append(text[: spans[keep - 1][1]])
            counts.append(self.max_tokens)
        return out, counts

    # --- embedding ----------------------------------------------------------------------

    def load(self) -> None:
        """Check the endpoint with one short text: URL, model, key and size."""
        try:
            self.embed([PROBE])
        except EmbedderRejected as exc:
            raise ModelError(
                f"{self.field}: the API refused a one-word probe, so the spec is at fault: {exc}"
            ) from None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        cut, counts = self.cut(texts)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        todo: list[int] = []
        with self._lock:
            for i, t in enumerate(cut):
                kept = self._kept.pop(t, None)
                if kept is not None:
                    out[i] = kept
                else:
                    todo.append(i)
        batches = self._batches(todo, counts)
        if batches:
            loop = self._event_loop()
            results = asyncio.run_coroutine_threadsafe(
                self._all([[cut[i] for i in b] for b in batches], [sum(counts[i] for i in b) for b in batches]),
                loop,
            ).result()
            failures: list[BaseException] = []
            for batch, result in zip(batches, results, strict=True):
                if isinstance(result, BaseException):
                    failures.append(result)
                    continue
                out[batch] = result
            if failures:
                with self._lock:  # what was paid for is not paid again on the retry
                    for batch, result in zip(batches, results, strict=True):
                        if not isinstance(result, BaseException) and len(self._kept) + len(batch) <= MAX_KEPT:
                            self._kept.update({cut[i]: result[j] for j, i in enumerate(batch)})
                raise _worst(failures)
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), np.float32(1e-12))
        return out

    def embed_tokens(self, texts: Sequence[str]) -> list[np.ndarray]:
        raise ModelError(
            f"{self.field}: an embedding API returns one vector per text, not per-token vectors; "
            "ColBERT's token_embeddings need a local model (provider sentence-transformers)"
        )

    def _batches(self, todo: list[int], counts: list[int]) -> list[list[int]]:
        """Indexes of ``todo`` cut into requests by ``max_batch_texts`` and ``max_batch_tokens``."""
        batches: list[list[int]] = []
        current: list[int] = []
        tokens = 0
        for i in todo:
            if current and (
                len(current) >= self.spec.max_batch_texts or tokens + counts[i] > self.spec.max_batch_tokens
            ):
                batches.append(current)
                current, tokens = [], 0
            current.append(i)
            tokens += counts[i]
        if current:
            batches.append(current)
        return batches

    # --- the event loop -----------------------------------------------------------------

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        """The embedder's own loop, on a daemon thread, with its client, slots and buckets.

        The key is read on every call (a rotated key is used from the next batch on, in a
        daemon too); a new key gets a new client."""
        with self._lock:
            try:
                import openai
            except ImportError:
                raise ModelError(
                    f"{self.field}.provider openai needs the openai package: pip install 'ragstate[openai]'"
                ) from None
            key = self.api_key()
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name=f"ragstate-{self.field}", daemon=True).start()

                async def limits() -> None:
                    self._slots = asyncio.Semaphore(self.spec.max_concurrency)
                    self._buckets = []
                    if self.spec.requests_per_minute:
                        self._buckets.append(_Bucket(self.spec.requests_per_minute, per_request=True))
                    if self.spec.tokens_per_minute:
                        self._buckets.append(_Bucket(self.spec.tokens_per_minute))

                asyncio.run_coroutine_threadsafe(limits(), loop).result()
                self._loop = loop
            if self._client is None or key != self._key:

                async def client() -> None:
                    # max_retries=0: retries are faults/retry.py's, with the breaker.
                    # admin_api_key="": the client must not pick up a key from the
                    # environment that the spec did not name.
                    self._client = openai.AsyncOpenAI(
                        base_url=self.spec.url,
                        api_key=key,
                        admin_api_key="",
                        max_retries=0,
                        timeout=self.spec.timeout_s,
                    )
                    # No key (a local server): no Authorization header at all.
                    self._headers = {} if key else {"Authorization": openai.Omit()}

                asyncio.run_coroutine_threadsafe(client(), self._loop).result()
                self._key = key
            return self._loop

    async def _all(self, batches: list[list[str]], tokens: list[int]) -> list[Any]:
        jobs = (self._one(b, n) for b, n in zip(batches, tokens, strict=True))
        return await asyncio.gather(*jobs, return_exceptions=True)

    async def _one(self, texts: list[str], tokens: int) -> np.ndarray:
        assert self._slots is not None
        async with self._slots:
            for bucket in self._buckets:
                await bucket.take(tokens)
            return await self._request(texts)

    async def _request(self, texts: list[str]) -> np.ndarray:
        import openai

        kwargs: dict[str, Any] = {"model": self.spec.model, "input": texts, "encoding_format": "float"}
        kwargs["extra_headers"] = self._headers
        if self.spec.dimensions is not None:
            kwargs["dimensions"] = self.spec.dimensions
        where = f"{self.field} ({self.endpoint()})"
        try:
            response = await self._client.embeddings.create(**kwargs)
        except openai.APIStatusError as exc:
            raise self._status_error(exc, where, len(texts)) from None
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise EmbedderUnavailable(f"{where}: cannot reach the server ({redact(str(exc))})") from None
        usage = getattr(response, "usage", None)
        self.usage_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
        return self._vectors(response.data, len(texts), where)

    def _status_error(self, exc: Any, where: str, n: int) -> Exception:
        status = int(exc.status_code)
        detail = redact(_body(exc))
        message = f"{where}: HTTP {status}" + (f": {detail}" if detail else "")
        if status in (408, 409, 429) or status >= 500:
            return EmbedderUnavailable(message, status=status, retry_after=_retry_after(exc.response.headers))
        if status in (401, 403):
            return EmbedderAuthError(f"{message}; the API refused {self.key_source()}")
        if status in (400, 413, 422):
            which = "the input" if n == 1 else f"one of {n} inputs"
            return EmbedderRejected(f"{message} ({which} refused)")
        return ModelError(f"{message} (check {self.field}.url and {self.field}.model)")

    def _vectors(self, data: Any, n: int, where: str) -> np.ndarray:
        if not isinstance(data, list) or len(data) != n:
            got = len(data) if isinstance(data, list) else type(data).__name__
            raise EmbedderResponseError(f"{where}: sent {n} texts, got {got} vectors back; nothing was written")
        order = [getattr(item, "index", None) for item in data]
        if sorted(o for o in order if isinstance(o, int)) != list(range(n)):
            raise EmbedderResponseError(
                f"{where}: the vectors' indexes are {order[:10]}{'...' if n > 10 else ''}, not each of 0..{n - 1} "
                "once; nothing was written"
            )
        out = np.empty((n, self.dimension), dtype=np.float32)
        for item in data:
            vector = item.embedding
            if not isinstance(vector, list) or len(vector) != self.dimension:
                size = len(vector) if isinstance(vector, list) else type(vector).__name__
                raise EmbedderResponseError(
                    f"{where}: a vector has {size} dimensions, {self.field} expects {self.dimension}; "
                    "nothing was written"
                )
            out[item.index] = vector
        return out


class _Bucket:
    """A token bucket of ``per_minute`` units, refilled continuously (used on the embedder's loop only)."""

    def __init__(self, per_minute: int, *, per_request: bool = False):
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self.rate = per_minute / 60.0
        self.per_request = per_request
        self.at = time.monotonic()

    async def take(self, tokens: int) -> None:
        need = 1.0 if self.per_request else min(float(tokens), self.capacity)
        while True:
            now = time.monotonic()
            self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
            self.at = now
            if self.level >= need:
                self.level -= need
                return
            await asyncio.sleep((need - self.level) / self.rate)


def _worst(failures: list[BaseException]) -> BaseException:
    """The failure that decides what happens to the batch: a terminal one stops the run,
    then a refused input (the batch is split), then a transient one (retried)."""
    for kind in (EmbedderAuthError, EmbedderResponseError, ModelError, EmbedderRejected):
        for f in failures:
            if isinstance(f, kind):
                return f
    return failures[0]


def _retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _body(exc: Any) -> str:
    try:
        return exc.response.text[:QUOTED].strip()
    except Exception:  # a response without a readable body
        return str(getattr(exc, "message", ""))[:QUOTED]
