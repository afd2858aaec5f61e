"""``fulltext``: each document's text under a full-text index, kept in step with the source.

One row per document (``content`` is ``Document.text``: title, abstract and body). The
index is part of the table's definition (an ``Index`` of method ``fulltext``) and each
backend spells it its own way: on PostgreSQL a GIN index over ``to_tsvector(language,
content)``, on SQLite an FTS5 table over the rows, kept in step by triggers. So the
engine writes and deletes plain rows as for every kind; the index follows.

Drift: the usual per-document classes (a document in scope without its row, a row of a
changed or vanished document, another language), ``schema`` when the index is missing
or, on SQLite, holds another number of rows than the table (it is rebuilt), and at
``deep`` a row whose content no longer hashes to its ``text_hash`` (``corrupt``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ragstate.artifacts.base import ArtifactKind, BuildContext, Built, Findings, Inspection, Recipe
from ragstate.artifacts.chunks import stored_text_mismatches
from ragstate.hashing import text_hash
from ragstate.sources.base import Document
from ragstate.spec.model import Spec
from ragstate.stores.documents import DocRef
from ragstate.stores.schema import ARTIFACT_STAMP, ColumnType, Index, TableDef, col


class Fulltext(ArtifactKind):
    name = "fulltext"
    code_version = 1
    invariants = ("the full-text rows are the documents in scope, with their current text",)

    def recipe(self, spec: Spec) -> Recipe:
        language = spec.artifacts.fulltext.language
        return Recipe.of(
            self.name,
            {"code_version": self.code_version, "language": language, "text": "title, abstract, body"},
            default_rate=2000.0,
            note=f"language {language}",
        )

    def table(self, recipe: Recipe, generation: int) -> TableDef:
        return TableDef(
            self.table_name(generation),
            ARTIFACT_STAMP
            + (col("text_hash", ColumnType.TEXT, null=False), col("content", ColumnType.TEXT, null=False)),
            primary_key=("doc_id",),
            indexes=(Index("content_fts", ("content",), method="fulltext", language=recipe.params["language"]),),
        )

    def build(self, docs: Sequence[Document], recipe: Recipe, ctx: BuildContext) -> Built:
        built = Built()
        for doc in docs:
            text = doc.text
            built.rows.append(
                (doc.doc_id, doc.content_hash, recipe.fingerprint, ctx.run_id, ctx.now, text_hash(text), text)
            )
            built.items[doc.doc_id] = 1
            built.source_hashes[doc.doc_id] = doc.content_hash
        return built

    def inspect(self, at: Inspection) -> Findings:
        if at.depth != "deep":
            return Findings()
        return Findings(
            corrupt=tuple(sorted(set(stored_text_mismatches(at.session, at.tables[0].name, "doc_id", "content"))))
        )

    def estimate_tokens(self, ref: DocRef, recipe: Recipe, max_tokens: int | None) -> int:
        return 0  # indexing feeds no model
