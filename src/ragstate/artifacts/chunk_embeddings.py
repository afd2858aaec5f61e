"""``chunk_embeddings``: one vector per chunk, by the configured model.

Built from the chunks' stored text (``chunks`` is applied first). A rebuild keeps the
vector of every chunk whose id and text are unchanged, so editing one paragraph of a
long article re-embeds only the chunks whose text changed (``reused`` in the run record
counts the rest). Checks: the vector audit of ``doc_embeddings`` (dimension, finite,
non-zero, unit length; identical vectors of different texts; a re-embedded sample), and
every chunk has its vector and every vector its chunk (``incomplete`` otherwise).
"""

from __future__ import annotations

from typing import Any

from ragstate.artifacts.base import BuildContext, Recipe
from ragstate.artifacts.chunks import Chunks
from ragstate.artifacts.per_chunk import PerChunkKind, VectorItems, item_columns, model_recipe
from ragstate.spec.model import Spec
from ragstate.stores.schema import ARTIFACT_STAMP, ColumnType, Index, TableDef, col


class ChunkEmbeddings(VectorItems, PerChunkKind):
    name = "chunk_embeddings"
    code_version = 1
    golden_fetch = 8
    invariants = ("every chunk has its embedding, every embedding its chunk",)
    value_columns = ("embedding",)
    select_values = "SELECT chunk_id, text_hash, embedding FROM {t} WHERE doc_id = ANY(?)"
    sample_texts = (
        "SELECT e.doc_id, c.text, e.embedding FROM {t} e JOIN {u} c ON c.doc_id = e.doc_id "
        "AND c.chunk_id = e.chunk_id WHERE e.doc_id IN (SELECT doc_id FROM {tmp_scope}) ORDER BY e.text_hash LIMIT ?"
    )

    def recipe(self, spec: Spec) -> Recipe:
        return model_recipe(self, spec, spec.artifacts.chunk_embeddings.model, Chunks().recipe(spec))

    def table(self, recipe: Recipe, generation: int) -> TableDef:
        return TableDef(
            self.table_name(generation),
            ARTIFACT_STAMP + item_columns() + (col("embedding", ColumnType.VECTOR, null=False, dim=recipe.dimension),),
            primary_key=("doc_id", "chunk_id"),
            indexes=(Index("embedding_hnsw", ("embedding",), method="vector"),),
        )

    def encode(self, texts: list[str], values: list[Any], ctx: BuildContext) -> list[tuple[Any, ...]]:
        return [(ctx.encode_vector(v),) for v in values]
