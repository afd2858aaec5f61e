"""The contract of an artifact kind: recipe, table, build, checks.

A kind turns documents into rows of one table per generation. Every row starts with the
stamp columns (``doc_id, source_hash, recipe_fp, run_id, created_at``) so that the
store itself, not only the ledger, says what each row was built from; ``verify``
cross-checks the two.

================  =====================================================================
``recipe(spec)``  everything that determines the rows' content, and its fingerprint;
                  computed without loading a model
``table(...)``    the table of one generation (its name ends in ``_g<generation>``)
``build(docs)``   rows for a batch of documents, with how many rows each document has
``checks``        which vector columns the quality audit reads
================  =====================================================================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ragstate.compute.embedders import Embedder
from ragstate.hashing import fingerprint
from ragstate.sources.base import DocRef, Document
from ragstate.spec.model import Spec
from ragstate.stores.schema import TableDef


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

    @classmethod
    def of(cls, kind: str, params: dict[str, Any], **extra: Any) -> Recipe:
        return cls(kind=kind, params=params, fingerprint=fingerprint({"kind": kind, **params}), **extra)


@dataclass(frozen=True)
class VectorColumn:
    """A vector column the quality audit reads."""

    column: str
    dimension: int
    normalized: bool
    key: str = "doc_id"


@dataclass
class Built:
    """The result of building one batch: rows, rows per document, and what it cost."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    items: dict[str, int] = field(default_factory=dict)
    #: the content hash each document had when its text was read (what is stamped)
    source_hashes: dict[str, str] = field(default_factory=dict)
    embedded: int = 0
    tokens: int = 0
    truncated: int = 0


@dataclass(frozen=True)
class BuildContext:
    """What a build may use: embedders by spec name, the store's vector encoding."""

    spec: Spec
    embedder: Callable[[str], Embedder]
    encode_vector: Callable[[np.ndarray], Any]
    run_id: str
    now: float


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

    @abstractmethod
    def recipe(self, spec: Spec) -> Recipe:
        """The recipe the spec asks for (may read model files, never loads a model)."""

    @abstractmethod
    def table(self, recipe: Recipe, generation: int) -> TableDef:
        """The table holding generation ``generation`` of this kind."""

    @abstractmethod
    def build(self, docs: Sequence[Document], recipe: Recipe, ctx: BuildContext) -> Built:
        """Rows for ``docs`` (all of them, in the table's column order)."""

    def vector_columns(self, recipe: Recipe) -> tuple[VectorColumn, ...]:
        """Vector columns to audit (none by default)."""
        return ()

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
