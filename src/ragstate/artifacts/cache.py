"""The one place where texts become vectors: each distinct text once per embedding recipe.

Every kind that embeds (document, chunk, token and entity embeddings) calls
``BuildContext.embed``, which lands here. A text is looked up, in order, in

1. this run's memory (texts embedded or read earlier in the run, by any kind or batch,
   and texts another thread is embedding right now: the caller waits for them);
2. the store's embedding cache (``stores/embedding_cache.py``), shared by every process
   and run: a duplicate article, a chunk that moved to another document, a document
   edited and then reverted are served from here. An entry that fails the quality checks
   (dimension, finite, non-zero, unit length when normalising) is not used: the text is
   embedded again and the entry replaced;

and only then fed to the model, at most one forward pass at a time in the process (the
model's threads are its budget; two passes at once would only compete for them). New
entries travel with the batch (``Built.cache_entries``) and are written in its
transaction, with its artifact rows.

The key is the embedding recipe (``embedding_fp``: the embedder's identity, which names
the model, its weights, dimension, input window and normalisation, and the kind of
output, one vector or a token matrix), not a kind's whole recipe: the same text embedded
for a document and for a chunk by the same model is one entry. And the hash
(``hashing.text_hash``) of what the model reads of the text (``compute.embedders.
ModelInput``): the text itself when it fits the model's window, else its opening cut to
the window. So an edit past the window is served from the entry of the text before the
edit (the model would return the very same vector) and the cache holds one entry for
both. Texts of documents found corrupt or holding placeholders are embedded afresh
(``fresh``), never served from a cache.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ragstate.artifacts.token_embeddings import decode_matrix, encode_matrix, matrix_problem
from ragstate.compute.embedders import Embedder, ModelInput, model_inputs
from ragstate.errors import RagstateError
from ragstate.hashing import fingerprint, text_hash
from ragstate.stores import embedding_cache, ledger
from ragstate.stores.base import Session, Store, check_vector
from ragstate.stores.embedding_cache import Entry

#: what an embedding recipe outputs per text: one vector, or one matrix of token vectors
OUTPUTS = ("vector", "tokens")

#: one forward pass at a time in this process: torch's threads are process-wide
_MODEL_LOCK = threading.Lock()


def embedding_fp(identity: dict[str, Any], output: str) -> str:
    """The embedding recipe's fingerprint: the embedder's identity and its output."""
    assert output in OUTPUTS, output
    return fingerprint({"embedder": identity, "output": output})


@dataclass
class Embedded:
    """What ``embed`` returns: a value per input text, in order, and what it cost."""

    #: float32 vectors (output ``vector``) or matrices (``tokens``), one per input text
    values: list[np.ndarray]
    #: per input text, the hash of what the model read of it (the cache entry's key)
    hashes: list[str] = field(default_factory=list)
    #: distinct texts served without the model (this run's memory or the store's cache)
    hits: int = 0
    #: distinct texts fed to the model
    misses: int = 0
    #: tokens fed to the model (each text's up to the model's window) and texts cut
    tokens: int = 0
    truncated: int = 0
    #: new cache entries, to be written in the batch's transaction
    entries: list[Entry] = field(default_factory=list)
    #: ``(model_fp, text_hash)`` of entries read from the store (their use is recorded)
    touched: list[tuple[str, str]] = field(default_factory=list)


class EmbeddingCache:
    """One apply's view of the embedding cache (thread-safe: kinds share it).

    Args:
        store: the store holding the cache table; None keeps everything in memory.
        enabled: read and fill the store's cache (``cache.enabled``); this run's
            memory deduplicates either way.
        run_id: stamped on new entries.
        memo_bytes: how much this run's memory keeps (least recently used out first).
    """

    def __init__(
        self, store: Store | None, *, enabled: bool = True, run_id: str | None = None, memo_bytes: int = 64 << 20
    ):
        self.store = store
        self.enabled = enabled and store is not None
        self.run_id = run_id
        self.memo_bytes = memo_bytes
        self._lock = threading.Lock()
        self._memo: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._memo_size = 0
        self._inflight: dict[tuple[str, str], threading.Event] = {}
        #: entries this run computed: they travel with every batch served by them, since
        #: the batch that computed one may be rebuilt in parts or set aside (``isolate``)
        self._unsaved: dict[tuple[str, str], Entry] = {}

    # --- the one entry point ------------------------------------------------------------

    def embed(
        self, embedder: Embedder, texts: Sequence[str], *, output: str = "vector", fresh: Collection[str] = ()
    ) -> Embedded:
        """A value for each of ``texts`` (vectors, or token matrices for ``tokens``).

        Args:
            embedder: the model.
            texts: the exact texts to embed (duplicates are embedded once).
            output: ``vector`` or ``tokens``.
            fresh: texts that must be embedded anew (never served from a cache); their
                new entries replace the old ones.
        """
        fp = embedding_fp(embedder.identity(), output)
        reads = model_inputs(embedder, texts)
        hashes = [text_hash(r.text) for r in reads]
        read_of: dict[str, ModelInput] = dict(zip(hashes, reads, strict=True))
        unique: dict[str, str] = {h: r.text for h, r in read_of.items()}
        fresh = set(fresh)
        renew = {h for h, t in zip(hashes, texts, strict=True) if t in fresh}
        out = Embedded(values=[], hashes=hashes)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for h in unique:
                if h not in renew and (v := self._memo.get((fp, h))) is not None:
                    self._memo.move_to_end((fp, h))
                    found[h] = v
                    if (entry := self._unsaved.get((fp, h))) is not None:
                        out.entries.append(entry)  # its first batch may have been set aside
        stored = [h for h in unique if h not in found and h not in renew]
        if stored and self.enabled:
            for h, v in self._read(embedder, fp, output, stored).items():
                found[h] = v
                out.touched.append((fp, h))
                self._remember(fp, h, v)
        out.hits = len(found)
        todo = [h for h in unique if h not in found]
        with self._lock:
            mine = [h for h in todo if h in renew or (fp, h) not in self._inflight]
            theirs = [(h, self._inflight[(fp, h)]) for h in todo if h not in renew and (fp, h) in self._inflight]
            for h in mine:
                self._inflight.setdefault((fp, h), threading.Event())
        try:
            if mine:
                self._compute(embedder, fp, output, [read_of[h] for h in mine], mine, found, out)
        finally:
            with self._lock:
                for h in mine:
                    event = self._inflight.pop((fp, h), None)
                    if event is not None:
                        event.set()
        for h, event in theirs:  # another kind or batch is embedding these now
            event.wait()
            with self._lock:
                v = self._memo.get((fp, h))
            if v is None:  # it failed, or the memory let it go: embed it here
                self._compute(embedder, fp, output, [read_of[h]], [h], found, out)
            else:
                found[h] = v
                out.hits += 1
                with self._lock:
                    if (entry := self._unsaved.get((fp, h))) is not None:
                        out.entries.append(entry)
        out.values = [found[h] for h in hashes]
        return out

    # --- internals --------------------------------------------------------------------

    def _compute(
        self,
        embedder: Embedder,
        fp: str,
        output: str,
        reads: list[ModelInput],
        hashes: list[str],
        found: dict[str, np.ndarray],
        out: Embedded,
    ) -> None:
        # The model is fed what it reads (the texts cut to its window): the same vectors
        # as the whole texts, for less tokenizing.
        texts = [r.text for r in reads]
        # An API embedder (``exclusive = False``) runs requests of several threads at once.
        with _MODEL_LOCK if getattr(embedder, "exclusive", True) else contextlib.nullcontext():
            values = list(embedder.embed(texts)) if output == "vector" else embedder.embed_tokens(texts)
        out.misses += len(texts)
        out.tokens += sum(r.tokens for r in reads)
        out.truncated += sum(1 for r in reads if r.cut)
        for h, text, v in zip(hashes, texts, values, strict=True):
            v = np.asarray(v, dtype=np.float32)
            found[h] = v
            value, n_tokens = _encode(v, output)
            if value_problem(int(v.shape[-1]), n_tokens, bool(embedder.normalize), value, embedder.dimension):
                # A bad value (the isolator sets its document aside) is neither served
                # again nor stored: the text is embedded anew next time.
                continue
            self._remember(fp, h, v)
            if self.enabled:
                entry = embedding_cache.entry(
                    fp,
                    h,
                    text,
                    value,
                    dim=int(v.shape[-1]),
                    n_tokens=n_tokens,
                    normalized=bool(embedder.normalize),
                    run_id=self.run_id,
                )
                out.entries.append(entry)
                with self._lock:
                    self._unsaved[(fp, h)] = entry

    def _read(self, embedder: Embedder, fp: str, output: str, hashes: list[str]) -> dict[str, np.ndarray]:
        """Entries of ``hashes`` in the store that pass the quality checks."""
        assert self.store is not None
        with self.store.session() as s:
            rows = embedding_cache.get(s, fp, hashes)
        good = {}
        for h, dim, n_tokens, value in rows:
            v = _decode(value, dim, n_tokens, output, embedder)
            if v is not None:
                good[h] = v
        return good

    def _remember(self, fp: str, h: str, v: np.ndarray) -> None:
        with self._lock:
            old = self._memo.pop((fp, h), None)
            if old is not None:
                self._memo_size -= old.nbytes
            self._memo[(fp, h)] = v
            self._memo_size += v.nbytes
            while self._memo_size > self.memo_bytes and len(self._memo) > 1:
                key, gone = self._memo.popitem(last=False)
                self._memo_size -= gone.nbytes
                self._unsaved.pop(key, None)


def _encode(v: np.ndarray, output: str) -> tuple[bytes, int | None]:
    if output == "vector":
        return np.ascontiguousarray(v, dtype="<f4").tobytes(), None
    return encode_matrix(v), int(v.shape[0])


def _decode(value: bytes, dim: int, n_tokens: int | None, output: str, embedder: Embedder) -> np.ndarray | None:
    """The stored value as float32, or None when it fails the quality checks."""
    if output == "vector":
        if n_tokens is not None or len(value) != 4 * dim:
            return None
        v = np.frombuffer(value, dtype="<f4").astype(np.float32)
        return v if check_vector(v, embedder.dimension, bool(embedder.normalize)) is None else None
    if n_tokens is None or matrix_problem(value, n_tokens, dim, embedder.dimension, bool(embedder.normalize)):
        return None
    return decode_matrix(value, n_tokens, dim)


def value_problem(
    dim: int, n_tokens: int | None, normalized: bool, value: bytes, expected_dim: int | None = None
) -> str | None:
    """Why a stored entry fails the quality checks (for ``verify``), or None."""
    expected = dim if expected_dim is None else expected_dim
    if n_tokens is None:
        if len(value) != 4 * dim:
            return "unreadable" if len(value) % 4 else f"dimension {len(value) // 4}"
        return check_vector(np.frombuffer(value, dtype="<f4"), expected, normalized)
    return matrix_problem(value, n_tokens, dim, expected, normalized)


def decode_entry(dim: int, n_tokens: int | None, value: bytes) -> np.ndarray:
    """A stored entry's value as float32 (ValueError when unreadable)."""
    if n_tokens is None:
        if len(value) != 4 * dim:
            raise ValueError("size does not match dim")
        return np.frombuffer(value, dtype="<f4").astype(np.float32)
    return decode_matrix(value, n_tokens, dim)


# --- identical values: placeholders or duplicates ----------------------------------------


def placeholders(
    members: Sequence[tuple[str, str, tuple[str, str]]],
    texts: dict[str, str],
    embedder: Embedder | None,
) -> tuple[list[str], list[tuple[str, ...]]]:
    """Split rows with identical values into placeholders and duplicates.

    ``members`` are ``(item, text_hash, group)`` (rows of one group hold one value),
    ``texts`` what the embedding cache holds for their hashes. A group whose texts the
    model reads alike (the same token ids within its window: one article in two formats,
    a case variant for an uncased model) is a group of duplicates; any other group, or
    one whose texts are not all known, holds placeholders (a mock model).

    Returns ``(placeholder items, duplicate groups of items)``, each sorted.
    """
    groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for item, h, group in members:
        groups.setdefault(group, []).append((item, h))
    mock: set[str] = set()
    dupes: list[tuple[str, ...]] = []
    for rows in groups.values():
        hashes = sorted({h for _, h in rows})
        if embedder is not None and all(h in texts for h in hashes):
            keys = {r.key for r in model_inputs(embedder, [texts[h] for h in hashes])}
            if len(keys) == 1:
                dupes.append(tuple(sorted({item for item, _ in rows})))
                continue
        mock.update(item for item, _ in rows)
    return sorted(mock), sorted(dupes)


def identical_rows(
    session: Session, table: str, column: str, embedder: Embedder | None, model_fp: str | None
) -> tuple[list[str], list[tuple[str, ...]]]:
    """``placeholders`` of the rows of ``table`` whose ``column`` values are identical, their
    texts read from the embedding cache under ``model_fp`` (rows stamp the hash of what
    the model read, the key of the text's entry)."""
    members = ledger.identical_values(session, table, column)
    if not members:
        return [], []
    texts = embedding_cache.texts(session, model_fp, [h for _, h, _ in members]) if model_fp else {}
    return placeholders(members, texts, embedder)


# --- bounding the store's cache ---------------------------------------------------------


def evict(store: Store, max_mb: float, *, everything: bool = False) -> tuple[int, int]:
    """Evict entries that no artifact references, least recently used first, until the
    cache holds at most ``max_mb`` MiB (every such entry with ``everything``); return
    ``(entries, bytes)`` removed."""
    with store.session() as s:
        return embedding_cache.evict(store, s, int(max_mb * 2**20), references(store, s), everything=everything)


def references(store: Store, session: Session) -> dict[str, list[str]]:
    """The artifact tables built under each embedding recipe (every generation whose
    table is there, retired ones included: a rollback reads them): the rows whose
    texts' entries eviction keeps."""
    from ragstate.artifacts.registry import get_kind

    refs: dict[str, list[str]] = {}
    for gen in ledger.generations(store, session):
        try:
            kind = get_kind(gen.kind)
        except RagstateError:  # a plugin kind no longer installed
            continue
        fp = kind.embedding_fp(gen.recipe)
        table = kind.table_name(gen.generation)
        if fp is None:
            continue
        columns = store.columns(session, table)
        if columns is not None and "text_hash" in columns:
            refs.setdefault(fp, []).append(table)
    return refs
