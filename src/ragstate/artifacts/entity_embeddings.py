"""``entity_embeddings``: one vector per entity of each document, of its canonical key.

The embedded text is the entity's canonical key (case folded, whitespace collapsed), so
an entity has one text, hence one vector, in every document; the default model is
uncased, so nothing is lost by folding. A rebuild keeps stored vectors of the same text
from any document of the generation: each distinct entity is embedded once, however
many documents name it. Checks: the vector audit, and every entity of ``entities`` has
its vector and every vector its entity (``incomplete`` otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragstate.artifacts.base import BuildContext, Recipe
from ragstate.artifacts.chunks import ChunkRow
from ragstate.artifacts.entities import Entities
from ragstate.artifacts.per_chunk import PerItemKind, VectorItems, item_columns, model_recipe
from ragstate.spec.model import Spec
from ragstate.stores.documents import DocRef
from ragstate.stores.schema import ARTIFACT_STAMP, ColumnType, Index, TableDef, col


class EntityEmbeddings(VectorItems, PerItemKind):
    name = "entity_embeddings"
    depends_on = ("entities",)
    code_version = 1
    invariants = ("every entity has its embedding, every embedding its entity",)
    item_column = "entity_id"
    value_columns = ("text", "embedding")
    select_values = "SELECT doc_id, text_hash, text, embedding FROM {t} WHERE text_hash = ANY(?)"
    missing_rows = (
        "SELECT DISTINCT x.doc_id FROM {u} x WHERE x.doc_id IN (SELECT doc_id FROM {tmp_scope}) "
        "AND NOT EXISTS (SELECT 1 FROM {t} e WHERE e.doc_id = x.doc_id AND e.entity_id = x.entity_id)"
    )
    dangling_rows = (
        "SELECT DISTINCT e.doc_id FROM {t} e WHERE e.doc_id IN (SELECT doc_id FROM {tmp_scope}) "
        "AND NOT EXISTS (SELECT 1 FROM {u} x WHERE x.doc_id = e.doc_id AND x.entity_id = e.entity_id)"
    )
    # an entity has one row per chunk it occurs in upstream, and one vector per document here
    items_in_scope = (
        "SELECT count(*) FROM (SELECT DISTINCT x.doc_id, x.entity_id FROM {u} x "
        "WHERE x.doc_id IN (SELECT doc_id FROM {tmp_scope})) d"
    )
    sample_texts = (
        "SELECT doc_id, text, embedding FROM {t} WHERE doc_id IN (SELECT doc_id FROM {tmp_scope}) "
        "ORDER BY text_hash LIMIT ?"
    )

    def recipe(self, spec: Spec) -> Recipe:
        return model_recipe(self, spec, spec.artifacts.entity_embeddings.model, Entities().recipe(spec))

    def table(self, recipe: Recipe, generation: int) -> TableDef:
        return TableDef(
            self.table_name(generation),
            ARTIFACT_STAMP
            + item_columns("entity_id")
            + (
                col("text", ColumnType.TEXT, null=False),
                col("embedding", ColumnType.VECTOR, null=False, dim=recipe.dimension),
            ),
            primary_key=("doc_id", "entity_id"),
            indexes=(Index("text", ("text_hash",)), Index("embedding_hnsw", ("embedding",), method="vector")),
        )

    def reuse_key(self, item: ChunkRow) -> tuple[str, ...]:
        return (item.text_hash,)

    def reusable(
        self, ctx: BuildContext, recipe: Recipe, doc_ids: Sequence[str], items: Sequence[ChunkRow]
    ) -> dict[tuple[str, ...], tuple[Any, ...]]:
        # Any document's vector of the same text will do: an entity is embedded once.
        hashes = sorted({i.text_hash for i in items})
        if not hashes:
            return {}
        assert ctx.store is not None
        with ctx.store.session() as s:
            rows = s.query(self.select_values, (hashes,), t=ctx.tables[self.name][0].name)
        return {
            (h,): (text, vector)
            for doc_id, h, text, vector in rows
            if doc_id not in ctx.fresh and self.usable(ctx.store, recipe, (text, vector))
        }

    def encode(self, texts: list[str], values: list[Any], ctx: BuildContext) -> list[tuple[Any, ...]]:
        return [(t, ctx.encode_vector(v)) for t, v in zip(texts, values, strict=True)]

    def estimate_tokens(self, ref: DocRef, recipe: Recipe, max_tokens: int | None) -> int:
        return max(1, (ref.title_chars + ref.abstract_chars + ref.body_chars) // 100)
