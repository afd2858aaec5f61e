"""``doc_embeddings``: one vector per document, of a text made from a template.

The default text is the title and the abstract (or the opening of the body when there
is no abstract). The model reads at most its input window (256 word-pieces for
all-MiniLM-L6-v2) and ignores the rest; the run record counts how many texts were cut,
so a user who embeds whole bodies sees it. A row's ``text_hash`` is the hash of what the
model read (``compute.embedders.ModelInput``), so an edit past the window changes the
document's content hash but not what its row was built from: the plan restamps such a
document without a model call ("content changed past the model's window"). Passages of long documents belong in chunk
embeddings, not here.
"""

from __future__ import annotations

from collections.abc import Sequence

from ragstate.artifacts.base import ArtifactKind, BuildContext, Built, Recipe, VectorColumn
from ragstate.compute.embedders import make_embedder
from ragstate.sources.base import Document
from ragstate.spec.model import TEXT_FIELDS, Spec
from ragstate.stores.documents import DocRef
from ragstate.stores.schema import ARTIFACT_STAMP, ColumnType, Index, TableDef, col


class DocEmbeddings(ArtifactKind):
    name = "doc_embeddings"
    code_version = 1
    golden_fetch = 1
    embedding_output = "vector"
    stamps_model_input = True

    def recipe(self, spec: Spec) -> Recipe:
        params = spec.artifacts.doc_embeddings
        model = make_embedder(params.model, spec.models[params.model])
        identity = model.identity()
        return Recipe.of(
            self.name,
            {"code_version": self.code_version, "model": identity, "text": params.text},
            model=params.model,
            dimension=identity["dimension"],
            normalized=bool(identity["normalize"]),
            max_tokens=model.max_tokens,
            default_rate=model.default_rate,
        )

    def table(self, recipe: Recipe, generation: int) -> TableDef:
        return TableDef(
            self.table_name(generation),
            ARTIFACT_STAMP
            + (
                col("text_hash", ColumnType.TEXT, null=False),
                col("embedding", ColumnType.VECTOR, null=False, dim=recipe.dimension),
            ),
            primary_key=("doc_id",),
            indexes=(Index("embedding_hnsw", ("embedding",), method="vector"),),
        )

    def vector_columns(self, recipe: Recipe) -> tuple[VectorColumn, ...]:
        assert recipe.dimension is not None
        return (VectorColumn("embedding", recipe.dimension, recipe.normalized),)

    def text(self, doc: Document, recipe: Recipe) -> str:
        template: str = recipe.params["text"]
        return template.format(**{name: doc.field(name) for name in TEXT_FIELDS}).strip()

    def build(self, docs: Sequence[Document], recipe: Recipe, ctx: BuildContext) -> Built:
        assert recipe.model is not None
        texts = [self.text(d, recipe) for d in docs]
        fresh = [t for d, t in zip(docs, texts, strict=True) if d.doc_id in ctx.fresh]
        embedded = ctx.embed(recipe.model, texts, fresh=fresh)
        built = Built()
        built.count(embedded)
        # ``text_hash`` stamps what the model read (the text cut to its window): the key of
        # the text's cache entry, and what the placeholder check tells texts apart by.
        for doc, read_hash, vector in zip(docs, embedded.hashes, embedded.values, strict=True):
            source_hash = doc.content_hash
            built.rows.append(
                (
                    doc.doc_id,
                    source_hash,
                    recipe.fingerprint,
                    ctx.run_id,
                    ctx.now,
                    read_hash,
                    ctx.encode_vector(vector),
                )
            )
            built.items[doc.doc_id] = 1
            built.source_hashes[doc.doc_id] = source_hash
        return built

    def estimate_tokens(self, ref: DocRef, recipe: Recipe, max_tokens: int | None) -> int:
        template: str = recipe.params["text"]
        chars = 0
        if "{title}" in template or "{text}" in template:
            chars += ref.title_chars
        if "{abstract}" in template or "{text}" in template:
            chars += ref.abstract_chars
        if "{summary}" in template:
            chars += ref.abstract_chars or min(ref.body_chars, 2000)
        if "{body}" in template or "{text}" in template:
            chars += ref.body_chars
        tokens = max(1, chars // 4)
        return min(tokens, max_tokens) if max_tokens else tokens

    def recheck_texts(self, docs: Sequence[Document], recipe: Recipe) -> dict[str, str]:
        return {d.doc_id: self.text(d, recipe) for d in docs}
