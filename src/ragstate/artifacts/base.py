"""The contract of an artifact kind: recipe, tables, build, checks.

A kind turns documents into rows of one or more tables per generation (``entities``
keeps its relations in a second table). Every row starts with the stamp columns
(``doc_id, source_hash, recipe_fp, run_id, created_at``) so that the store itself, not
only the ledger, says what each row was built from; ``verify`` cross-checks the two.

Kinds form a DAG (``depends_on``): a dependent kind is built from the rows its upstream
kinds hold in their target generation (``BuildContext.upstream``), and its recipe
fingerprint includes theirs, so an upstream recipe change is recipe drift downstream.

==================  ===================================================================
``recipe(spec)``    everything that determines the rows' content, and its fingerprint;
                    computed without loading a model
``tables(...)``     the tables of one generation (names start ``<kind>_g<generation>``)
``build(docs)``     rows for a batch of documents, with how many rows each document has
``vector_columns``  which vector columns the quality audit reads
``inspect``         set-based consistency checks (offsets, hierarchy, references to the
                    upstream kinds' rows): documents incomplete or corrupt
``recheck``         re-embed a sample of stored items; those that disagree are ``mock``
==================  ===================================================================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from ragstate.compute.embedders import Embedder
from ragstate.errors import RagstateError
from ragstate.hashing import fingerprint
from ragstate.sources.base import Document
from ragstate.spec.model import ModelSpec, Spec
from ragstate.stores.base import Session, Store, cosines
from ragstate.stores.documents import DocRef
from ragstate.stores.schema import TableDef

if TYPE_CHECKING:
    from ragstate.artifacts.cache import Embedded, EmbeddingCache

#: cosine similarity below which a re-embedded sample disagrees with its stored vector
RECHECK_MIN_COSINE = 0.99


@dataclass(frozen=True)
class Recipe:
    """What an artifact kind's rows are made from, and its fingerprint."""

    kind: str
    params: dict[str, Any]
    fingerprint: str
    #: the model (``models`` entry) whose vectors the rows hold, if any
    model: str | None = None
    dimension: int | None = None
    normalized: bool = False
    #: the model's input window, for token estimates (None: no model)
    max_tokens: int | None = None
    #: items per second to estimate with before a run has measured the real rate
    default_rate: float = 1000.0
    #: one line for ``status``: where the rows come from (e.g. which model's token outputs)
    note: str = ""

    @classmethod
    def of(cls, kind: str, params: dict[str, Any], **extra: Any) -> Recipe:
        return cls(kind=kind, params=params, fingerprint=fingerprint({"kind": kind, **params}), **extra)

    @classmethod
    def stored(cls, kind: str, recipe_fp: str, params: dict[str, Any]) -> Recipe:
        """The recipe a generation was built with, as far as its tables' shape needs it
        (names, the vector dimension), from what the generations table records."""
        model = params.get("model")
        identity = model if isinstance(model, dict) else {}
        return cls(
            kind=kind,
            params=params,
            fingerprint=recipe_fp,
            dimension=identity.get("dimension"),
            normalized=bool(identity.get("normalize", False)),
        )


@dataclass(frozen=True)
class Pinned:
    """A recipe built earlier, as ``ArtifactKind.pinned`` reconstructs it, and the spec
    (with the models it was built with) that builds more rows of it."""

    recipe: Recipe
    spec: Spec


@dataclass(frozen=True)
class VectorColumn:
    """A vector column the quality audit reads."""

    column: str
    dimension: int
    normalized: bool
    key: str = "doc_id"
    #: which of the kind's tables holds it (index into ``tables()``)
    table: int = 0


@dataclass
class Built:
    """The result of building one batch: rows, rows per document, and what it cost."""

    #: rows of the kind's first table
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    #: rows of its further tables, in ``tables()`` order (``entities``: relations)
    more: list[list[tuple[Any, ...]]] = field(default_factory=list)
    #: rows per document, over all tables (what the ledger's ``items`` records)
    items: dict[str, int] = field(default_factory=dict)
    #: the content hash each document had when its text was read (what is stamped)
    source_hashes: dict[str, str] = field(default_factory=dict)
    #: distinct texts fed to a model
    embedded: int = 0
    #: items whose stored vectors were kept because their text did not change
    reused: int = 0
    tokens: int = 0
    truncated: int = 0
    #: distinct texts served from the embedding cache (this run's memory or the store's)
    cache_hits: int = 0
    #: new embedding-cache entries, written in the batch's transaction
    cache_entries: list[tuple[Any, ...]] = field(default_factory=list)
    #: ``(model_fp, text_hash)`` of cache entries read from the store, marked used
    cache_touched: list[tuple[str, str]] = field(default_factory=list)

    def count(self, embedded: Embedded) -> None:
        """Add what one ``BuildContext.embed`` call cost."""
        self.embedded += embedded.misses
        self.cache_hits += embedded.hits
        self.tokens += embedded.tokens
        self.truncated += embedded.truncated
        self.cache_entries.extend(embedded.entries)
        self.cache_touched.extend(embedded.touched)

    def table_rows(self, n_tables: int) -> list[list[tuple[Any, ...]]]:
        """Rows per table, one list for each of the kind's ``n_tables`` tables."""
        return [self.rows] + [self.more[i] if i < len(self.more) else [] for i in range(n_tables - 1)]


@dataclass(frozen=True)
class BuildContext:
    """What a build may use: embedders by spec name, the store, the upstream kinds' rows.

    ``tables`` holds the target generation's tables of this kind and of every kind it
    depends on (upstream kinds are applied first, so their rows are complete). ``fresh``
    names the documents whose stored items must not be reused (they were found corrupt
    or placeholders): their texts are embedded afresh, never served from a cache.
    ``embed`` is the one way a kind turns texts into vectors (``artifacts/cache.py``).
    """

    spec: Spec
    embedder: Callable[[str], Embedder]
    encode_vector: Callable[[np.ndarray], Any]
    run_id: str
    now: float
    store: Store | None = None
    tables: Mapping[str, tuple[TableDef, ...]] = field(default_factory=dict)
    kinds: Mapping[str, ArtifactKind] = field(default_factory=dict)
    fresh: frozenset[str] = frozenset()
    cache: EmbeddingCache | None = None

    def embed(
        self, model: str, texts: Sequence[str], *, output: str = "vector", fresh: Collection[str] = ()
    ) -> Embedded:
        """Values of ``texts`` by ``models.<model>``: vectors, or token matrices for
        ``output="tokens"``; each distinct text is embedded once per embedding recipe,
        whatever kind, batch or run asks (``artifacts/cache.py``); ``fresh`` texts are
        embedded anew."""
        from ragstate.artifacts.cache import EmbeddingCache

        cache = self.cache if self.cache is not None else EmbeddingCache(None)
        return cache.embed(self.embedder(model), texts, output=output, fresh=fresh)

    def upstream(self, kind: str, doc_ids: Sequence[str]) -> dict[str, Any]:
        """What upstream ``kind`` holds for ``doc_ids`` (its ``read``), by document."""
        assert self.store is not None, "BuildContext.store is needed to read upstream rows"
        with self.store.session() as s:
            return self.kinds[kind].read(s, self.store, self.tables[kind], doc_ids)


@dataclass(frozen=True)
class Inspection:
    """What a kind's checks read: a session inside the observation's snapshot (with the
    staged scope ``tmp_scope``), the recipe, the target generation's tables and those of
    the upstream kinds, and the depth (``shallow``, ``audit``, ``deep``)."""

    session: Session
    store: Store
    recipe: Recipe
    tables: tuple[TableDef, ...]
    upstream: Mapping[str, tuple[TableDef, ...]]
    depth: str = "shallow"
    #: the recipe's model (None when it has none), for telling duplicates from placeholders
    embedder: Embedder | None = None


@dataclass(frozen=True)
class Findings:
    """What a kind's own consistency checks found (documents, sorted)."""

    incomplete: tuple[str, ...] = ()
    corrupt: tuple[tuple[str, str], ...] = ()
    #: documents holding placeholder values (identical values of texts the model reads
    #: differently)
    mock: tuple[str, ...] = ()
    #: groups of documents holding identical values of one model input (not drift)
    duplicates: tuple[tuple[str, ...], ...] = ()


class ArtifactKind(ABC):
    """A kind of derived data. Subclasses are stateless; one instance serves all runs."""

    name: str
    #: kinds whose rows this kind is built from (they are applied first)
    depends_on: tuple[str, ...] = ()
    #: bumped whenever the code that builds rows changes what it builds
    code_version: int = 1
    #: True when a document has several rows (chunks, entities); presence is then
    #: checked by count against the ledger's ``items``
    multi_row: bool = False
    #: the cross-artifact invariants ``inspect`` checks, in words (``verify`` lists them)
    invariants: tuple[str, ...] = ()
    #: the golden-query check before a switch searches the first vector column, reading
    #: this many rows per document wanted (1: one row per document; more for chunks);
    #: 0: the kind has no such check
    golden_fetch: int = 0
    #: what the kind embeds per text through the embedding cache (``vector`` or
    #: ``tokens``), None when it embeds nothing; its first table then has a
    #: ``text_hash`` column, so cache entries it holds are never evicted
    embedding_output: str | None = None
    #: True when the first table holds one row a document whose ``text_hash`` is the hash
    #: of what the model read of ``recheck_texts``' text (the text cut to its window): a
    #: document changed past the window is then restamped, not re-embedded
    stamps_model_input: bool = False

    @abstractmethod
    def recipe(self, spec: Spec) -> Recipe:
        """The recipe the spec asks for (may read model files, never loads a model)."""

    @abstractmethod
    def table(self, recipe: Recipe, generation: int) -> TableDef:
        """The table holding generation ``generation`` of this kind."""

    @abstractmethod
    def build(self, docs: Sequence[Document], recipe: Recipe, ctx: BuildContext) -> Built:
        """Rows for ``docs`` (all of them, in the table's column order)."""

    def tables(self, recipe: Recipe, generation: int) -> tuple[TableDef, ...]:
        """Every table of generation ``generation`` (the first is ``table()``)."""
        return (self.table(recipe, generation),)

    def vector_columns(self, recipe: Recipe) -> tuple[VectorColumn, ...]:
        """Vector columns to audit (none by default)."""
        return ()

    def read(self, session: Session, store: Store, tables: tuple[TableDef, ...], doc_ids: Sequence[str]) -> dict:
        """The rows of ``doc_ids`` in the form dependent kinds build from (by document)."""
        raise NotImplementedError(f"{self.name} has no dependent kinds to read it")

    def inspect(self, at: Inspection) -> Findings:
        """Consistency checks against the staged scope and the upstream kinds' target
        tables, as set operations; at depth ``audit`` also per-row checks that read every
        row, at ``deep`` also re-hashing stored texts. None by default."""
        return Findings()

    def recheck(self, at: Inspection, embedder: Embedder, sample: int, skip: set[str]) -> list[str] | None:
        """Documents whose re-embedded sample (at most ``sample`` items, none of the
        documents in ``skip``) disagrees with what is stored, or None when the kind
        re-embeds from the source instead (``recheck_texts``)."""
        return None

    def estimate_tokens(self, ref: DocRef, recipe: Recipe, max_tokens: int | None) -> int:
        """Tokens a build of ``ref`` will feed the model (an estimate: ~4 characters a token)."""
        chars = ref.title_chars + ref.abstract_chars + ref.body_chars
        tokens = max(1, chars // 4)
        return min(tokens, max_tokens) if max_tokens else tokens

    def recheck_texts(self, docs: Sequence[Document], recipe: Recipe) -> dict[str, str]:
        """Texts to re-embed for the placeholder check, keyed like the vector rows."""
        return {}

    def table_name(self, generation: int) -> str:
        return f"{self.name}_g{generation}"

    def pinned(self, spec: Spec, recipe_fp: str, params: Mapping[str, Any], models: Mapping[str, Any]) -> Pinned | None:
        """The recipe of a generation built earlier (its ``recipe_fp``, ``params`` and
        ``models`` as the generations table records them), complete enough to build more
        rows into that generation, with the spec to build them by (``spec`` with the
        recorded models); None when this version cannot build it again (another code
        version, a model or tokenizer that is no longer what it was, a model it cannot load).

        Builds read what they make from ``Recipe.params``; the spec supplies only the
        models, so the recorded params and models pin the rows' content."""
        if params.get("code_version") != self.code_version:
            return None
        try:
            recorded = {name: ModelSpec.model_validate(m) for name, m in models.items()}
            section = getattr(spec.artifacts, self.name)
            if recorded and hasattr(section, "model"):
                section = section.model_copy(update={"model": next(iter(recorded))})
            pinned_spec = spec.model_copy(
                update={
                    "models": {**spec.models, **recorded},
                    "artifacts": spec.artifacts.model_copy(update={self.name: section}),
                }
            )
            current = self.recipe(pinned_spec)
        except (RagstateError, ValidationError, AttributeError):
            return None
        # What the models make of a text must be what they made then.
        if any(current.params.get(key) != params.get(key) for key in ("model", "tokenizer") if key in params):
            return None
        recipe = replace(current, params=dict(params), fingerprint=recipe_fp)
        return Pinned(recipe, pinned_spec)

    def embedding_fp(self, params: Mapping[str, Any]) -> str | None:
        """The embedding recipe of a generation built with recipe ``params`` (None when
        the kind embeds nothing): what its rows' cache entries are keyed by."""
        identity = params.get("model")
        if self.embedding_output is None or not isinstance(identity, dict):
            return None
        from ragstate.artifacts.cache import embedding_fp

        return embedding_fp(identity, self.embedding_output)


def disagreeing(store: Store, embedder: Embedder, rows: Sequence[tuple[str, str, Any]]) -> list[str]:
    """Documents of ``(doc_id, text, stored vector)`` rows whose text re-embeds to a
    vector with cosine similarity under ``RECHECK_MIN_COSINE`` to the stored one."""
    if not rows:
        return []
    fresh = embedder.embed([r[1] for r in rows])
    out = []
    for (doc_id, _, value), vector in zip(rows, fresh, strict=True):
        try:
            stored = store.decode_vector(value)
        except ValueError:
            continue  # unreadable vectors are corrupt, not placeholders
        if stored.shape != np.shape(vector) or float(cosines(stored, vector)) < RECHECK_MIN_COSINE:
            out.append(doc_id)
    return sorted(set(out))
