"""What the kinds with one item per upstream item share: reuse, reference checks, recheck.

``chunk_embeddings`` and ``token_embeddings`` hold one row per chunk, ``entity_embeddings``
one per entity of a document. Each row carries its upstream item's id and ``text_hash``:

* a rebuild keeps the stored value of every item whose id and text are unchanged (and
  whose value passes the quality checks), so editing one paragraph re-embeds only the
  chunks whose text changed (``Built.reused`` counts the others);
* ``inspect`` finds, as set operations, an upstream item without its row and a row whose
  upstream item is gone or changed: the document is ``incomplete``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragstate.artifacts.base import (
    ArtifactKind,
    BuildContext,
    Built,
    Findings,
    Inspection,
    Recipe,
    VectorColumn,
    disagreeing,
)
from ragstate.artifacts.chunks import ChunkRow, Upstream, window
from ragstate.compute.embedders import Embedder, make_embedder
from ragstate.errors import SpecError
from ragstate.sources.base import Document
from ragstate.spec.model import Spec
from ragstate.stores.base import Store, check_vector
from ragstate.stores.dialect import Col
from ragstate.stores.documents import DocRef
from ragstate.stores.schema import Column, ColumnType, col


def item_columns(item: str = "chunk_id") -> tuple[Column, ...]:
    """The columns after the stamp of a per-item kind: the upstream item's id and text hash."""
    return (col(item, ColumnType.TEXT, null=False), col("text_hash", ColumnType.TEXT, null=False))


class PerItemKind(ArtifactKind):
    """A kind with one row per item of its single upstream kind."""

    multi_row = True
    #: the upstream kind (``depends_on[0]``) and the column naming its item
    item_column: str = "chunk_id"
    #: the value columns, after the stamp, the item id and ``text_hash``
    value_columns: tuple[str, ...] = ()

    @property
    def upstream_kind(self) -> str:
        return self.depends_on[0]

    # --- build ------------------------------------------------------------------------

    def encode(self, texts: list[str], values: list[Any], ctx: BuildContext) -> list[tuple[Any, ...]]:
        """The value columns of each text's row, from what ``ctx.embed`` gave for it."""
        raise NotImplementedError

    def usable(self, store: Store, recipe: Recipe, values: tuple[Any, ...]) -> bool:
        """True when stored values pass the quality checks (so they may be reused)."""
        raise NotImplementedError

    def reuse_key(self, item: ChunkRow) -> tuple[str, ...]:
        """What identifies a stored value that may stand in for ``item``'s."""
        return (item.chunk_id, item.text_hash)

    def reusable(
        self, ctx: BuildContext, recipe: Recipe, doc_ids: Sequence[str], items: Sequence[ChunkRow]
    ) -> dict[tuple[str, ...], tuple[Any, ...]]:
        """Stored values that may be kept for ``items``, by ``reuse_key``: by default the
        rows of ``doc_ids`` (not those found corrupt or placeholders) whose values pass
        the quality checks."""
        wanted = [d for d in doc_ids if d not in ctx.fresh]
        if not wanted:
            return {}
        assert ctx.store is not None
        with ctx.store.session() as s:
            rows = s.query(self.select_values, (wanted,), t=ctx.tables[self.name][0].name)
        return {(r[0], r[1]): tuple(r[2:]) for r in rows if self.usable(ctx.store, recipe, tuple(r[2:]))}

    #: ``(item id, text_hash, *values)`` of the rows of ``doc_ids`` (``doc_id = ANY(?)``)
    select_values = ""

    def build(self, docs: Sequence[Document], recipe: Recipe, ctx: BuildContext) -> Built:
        assert recipe.model is not None and self.embedding_output is not None
        doc_ids = [d.doc_id for d in docs]
        upstream: dict[str, Upstream] = ctx.upstream(self.upstream_kind, doc_ids)
        items = [item for d in doc_ids for item in upstream.get(d, Upstream("", [])).items]
        keep = self.reusable(ctx, recipe, doc_ids, items)
        # Each new text once, however many items share it; ctx.embed serves those it
        # has seen under this embedding recipe (any kind, document or run) from the cache.
        todo: dict[str, str] = {}
        for item in items:
            if self.reuse_key(item) not in keep:
                todo.setdefault(item.text_hash, item.text)
        fresh = [i.text for d in doc_ids if d in ctx.fresh for i in upstream.get(d, Upstream("", [])).items]
        texts = list(todo.values())
        embedded = ctx.embed(recipe.model, texts, output=self.embedding_output, fresh=fresh)
        new = dict(zip(todo, self.encode(texts, embedded.values, ctx), strict=True))
        built = Built()
        built.count(embedded)
        for doc in docs:
            up = upstream.get(doc.doc_id, Upstream(doc.content_hash, []))
            for item in up.items:
                values = keep.get(self.reuse_key(item))
                if values is None:
                    values = new[item.text_hash]
                else:
                    built.reused += 1
                built.rows.append(
                    (doc.doc_id, up.source_hash, recipe.fingerprint, ctx.run_id, ctx.now, item.chunk_id, item.text_hash)
                    + tuple(values)
                )
            built.items[doc.doc_id] = len(up.items)
            built.source_hashes[doc.doc_id] = up.source_hash
        return built

    # --- checks -----------------------------------------------------------------------

    def inspect(self, at: Inspection) -> Findings:
        own, up = at.tables[0].name, at.upstream[self.upstream_kind][0].name
        names = {"t": own, "u": up, "item": Col(self.item_column)}
        incomplete = {r[0] for r in at.session.query(self.missing_rows, **names)}
        # When every upstream item has its row, a row without its item exists exactly
        # when there are more rows than items: item keys are unique per document on both
        # sides, so each item's row is a different row. Counting is cheaper than the
        # anti-join below, which then runs only when the counts differ.
        if incomplete or at.session.scalar(self.items_in_scope, **names) != at.session.scalar(
            "SELECT count(*) FROM {t} WHERE doc_id IN (SELECT doc_id FROM {tmp_scope})", **names
        ):
            incomplete |= {r[0] for r in at.session.query(self.dangling_rows, **names)}
        return Findings(incomplete=tuple(sorted(incomplete)))

    #: documents with an upstream item that has no row here (same id and text)
    missing_rows = ""
    #: documents with a row whose upstream item is gone or changed
    dangling_rows = ""
    #: the number of upstream items (distinct keys) of the documents in scope
    items_in_scope = ""

    def recheck(self, at: Inspection, embedder: Embedder, sample: int, skip: set[str]) -> list[str] | None:
        if self.upstream_kind not in at.upstream:
            return []
        rows = at.session.query(
            self.sample_texts,
            (sample + len(skip),),
            t=at.tables[0].name,
            u=at.upstream[self.upstream_kind][0].name,
            item=Col(self.item_column),
        )
        rows = [r for r in rows if r[0] not in skip][:sample]
        return self.disagree(at.store, embedder, rows)

    #: ``(doc_id, text, *values)`` of a deterministic sample of rows (``LIMIT ?``)
    sample_texts = ""

    def disagree(self, store: Store, embedder: Embedder, rows: list[tuple[Any, ...]]) -> list[str]:
        raise NotImplementedError

    def estimate_tokens(self, ref: DocRef, recipe: Recipe, max_tokens: int | None) -> int:
        # Every chunk of the document is read once (those unchanged are reused, which the
        # estimate does not know): about four characters a token.
        return max(1, (ref.title_chars + ref.abstract_chars + ref.body_chars) // 4)


class PerChunkKind(PerItemKind):
    """One row per chunk (level 1 row) of ``chunks``."""

    depends_on = ("chunks",)
    missing_rows = (
        "SELECT DISTINCT c.doc_id FROM {u} c WHERE c.level = 1 AND c.doc_id IN (SELECT doc_id FROM {tmp_scope}) "
        "AND NOT EXISTS (SELECT 1 FROM {t} e WHERE e.doc_id = c.doc_id AND e.chunk_id = c.chunk_id "
        "AND e.text_hash = c.text_hash)"
    )
    dangling_rows = (
        "SELECT DISTINCT e.doc_id FROM {t} e WHERE e.doc_id IN (SELECT doc_id FROM {tmp_scope}) "
        "AND NOT EXISTS (SELECT 1 FROM {u} c WHERE c.doc_id = e.doc_id AND c.chunk_id = e.chunk_id "
        "AND c.level = 1 AND c.text_hash = e.text_hash)"
    )
    items_in_scope = "SELECT count(*) FROM {u} c WHERE c.level = 1 AND c.doc_id IN (SELECT doc_id FROM {tmp_scope})"


class VectorItems:
    """Mixin of the kinds whose last value column is one vector (``embedding``)."""

    embedding_output = "vector"

    def vector_columns(self, recipe: Recipe) -> tuple[VectorColumn, ...]:
        assert recipe.dimension is not None
        return (VectorColumn("embedding", recipe.dimension, recipe.normalized),)

    def usable(self, store: Store, recipe: Recipe, values: tuple[Any, ...]) -> bool:
        assert recipe.dimension is not None
        try:
            vector = store.decode_vector(values[-1])
        except ValueError:
            return False
        return check_vector(vector, recipe.dimension, recipe.normalized) is None

    def disagree(self, store: Store, embedder: Embedder, rows: list[tuple[Any, ...]]) -> list[str]:
        return disagreeing(store, embedder, rows)


def model_recipe(kind: ArtifactKind, spec: Spec, model: str, upstream: Recipe, **params: Any) -> Recipe:
    """The recipe of a kind that embeds its upstream kind's items with ``model``.

    The upstream recipe's fingerprint is part of it: an upstream recipe change is recipe
    drift here. A model that reads fewer tokens than a chunk may hold is refused.

    Raises:
        SpecError: the model's window is smaller than the chunks' (their text would be cut).
    """
    embedder = make_embedder(model, spec.models[model])
    if "chunks" in kind.depends_on:
        chunks = spec.artifacts.chunks
        budget = chunks.max_tokens or window(make_embedder(chunks.model, spec.models[chunks.model]))
        if window(embedder) < budget:
            raise SpecError(
                f"artifacts.{kind.name}.model: model '{model}' reads {window(embedder)} tokens of text, but chunks "
                f"hold up to {budget} (artifacts.chunks); their ends would be cut silently"
            )
    identity = embedder.identity()
    return Recipe.of(
        kind.name,
        {"code_version": kind.code_version, "model": identity, "upstream": upstream.fingerprint, **params},
        model=model,
        dimension=identity["dimension"],
        normalized=bool(identity["normalize"]),
        max_tokens=embedder.max_tokens,
        default_rate=embedder.default_rate,
    )


__all__ = ["ChunkRow", "PerChunkKind", "PerItemKind", "VectorItems", "item_columns", "model_recipe"]
