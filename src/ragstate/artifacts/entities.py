"""``entities`` with their relations: the entity graph, one document at a time.

Built from the chunks' stored text by an extractor plugin (``compute.extractors``; the
built-in ``rules`` extractor needs no model and no download). Two tables a generation:

* ``entities_g<N>``: one row per entity and chunk it occurs in (``entity_id``, the
  ``chunk_id`` it cites, its ``canonical`` key, a surface ``name``, ``type``, mentions).
  ``entity_id`` is a hash of the canonical key alone, so the same entity has the same id
  in every document: the corpus graph is the union of the documents' rows.
* ``entities_g<N>_relations``: typed, weighted edges (``source_id``, ``target_id``,
  ``type``, ``weight``) observed in one chunk (``chunk_id``).

The ledger counts both tables' rows. Checks: an entity or relation citing a chunk that
is gone, or a relation whose end is not an entity of its chunk (``incomplete``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ragstate.artifacts.base import ArtifactKind, BuildContext, Built, Findings, Inspection, Recipe
from ragstate.artifacts.chunks import ChunkRow, Chunks, Upstream
from ragstate.compute.extractors import make_extractor
from ragstate.hashing import item_id, text_hash
from ragstate.sources.base import Document
from ragstate.spec.model import Spec
from ragstate.stores.base import Session, Store
from ragstate.stores.documents import DocRef
from ragstate.stores.schema import ARTIFACT_STAMP, ColumnType, Index, TableDef, col

T, I, F = ColumnType.TEXT, ColumnType.INT, ColumnType.FLOAT


def entity_id(canonical: str) -> str:
    """The id of the entity whose canonical key is ``canonical`` (the same in every document)."""
    return item_id("entity", canonical)


class Entities(ArtifactKind):
    name = "entities"
    depends_on = ("chunks",)
    code_version = 1
    invariants = (
        "every entity and relation cites an existing chunk of its document",
        "every relation joins entities of its chunk",
    )
    multi_row = True

    def recipe(self, spec: Spec) -> Recipe:
        params = spec.artifacts.entities
        extractor = make_extractor(params.extractor, dict(params.options))
        return Recipe.of(
            self.name,
            {
                "code_version": self.code_version,
                "extractor": extractor.identity(),
                "extractor_name": params.extractor,
                "options": dict(params.options),
                "upstream": Chunks().recipe(spec).fingerprint,
            },
            default_rate=100.0,
            note=f"extractor {params.extractor}",
        )

    def table(self, recipe: Recipe, generation: int) -> TableDef:
        return TableDef(
            self.table_name(generation),
            ARTIFACT_STAMP
            + (
                col("entity_id", T, null=False),
                col("chunk_id", T, null=False),
                col("canonical", T, null=False),
                col("name", T, null=False),
                col("type", T, null=False),
                col("mentions", I, null=False),
            ),
            primary_key=("doc_id", "chunk_id", "entity_id"),
            indexes=(Index("entity", ("entity_id",)),),
        )

    def tables(self, recipe: Recipe, generation: int) -> tuple[TableDef, ...]:
        relations = TableDef(
            f"{self.table_name(generation)}_relations",
            ARTIFACT_STAMP
            + (
                col("chunk_id", T, null=False),
                col("source_id", T, null=False),
                col("target_id", T, null=False),
                col("type", T, null=False),
                col("weight", F, null=False),
            ),
            primary_key=("doc_id", "chunk_id", "source_id", "target_id", "type"),
            indexes=(Index("source", ("source_id",)), Index("target", ("target_id",))),
        )
        return (self.table(recipe, generation), relations)

    def build(self, docs: Sequence[Document], recipe: Recipe, ctx: BuildContext) -> Built:
        extractor = make_extractor(recipe.params["extractor_name"], recipe.params["options"])
        doc_ids = [d.doc_id for d in docs]
        chunks: dict[str, Upstream] = ctx.upstream("chunks", doc_ids)
        built = Built(more=[[]])
        for doc in docs:
            up = chunks.get(doc.doc_id, Upstream(doc.content_hash, []))
            stamp = (doc.doc_id, up.source_hash, recipe.fingerprint, ctx.run_id, ctx.now)
            n = 0
            for chunk, found in zip(up.items, extractor.extract([c.text for c in up.items]), strict=True):
                ids = {e.key: entity_id(e.key) for e in found.entities}
                for e in found.entities:
                    built.rows.append(stamp + (ids[e.key], chunk.chunk_id, e.key, e.name, e.type, e.mentions))
                for r in found.relations:
                    if r.source in ids and r.target in ids:
                        built.more[0].append(stamp + (chunk.chunk_id, ids[r.source], ids[r.target], r.type, r.weight))
                        n += 1
                n += len(found.entities)
            built.items[doc.doc_id] = n
            built.source_hashes[doc.doc_id] = up.source_hash
        return built

    def read(
        self, session: Session, store: Store, tables: tuple[TableDef, ...], doc_ids: Sequence[str]
    ) -> dict[str, Upstream]:
        """Each document's distinct entities (``chunk_id`` holds the entity id, ``text`` its
        canonical key), for ``entity_embeddings``."""
        out: dict[str, Upstream] = {}
        rows = session.query(
            "SELECT DISTINCT doc_id, source_hash, entity_id, canonical FROM {t} WHERE doc_id = ANY(?) "
            "ORDER BY doc_id, entity_id",
            (list(doc_ids),),
            t=tables[0].name,
        )
        for doc_id, source_hash, eid, canonical in rows:
            out.setdefault(doc_id, Upstream(source_hash, [])).items.append(
                ChunkRow(eid, canonical, text_hash(canonical))
            )
        return out

    def inspect(self, at: Inspection) -> Findings:
        e, r, c = at.tables[0].name, at.tables[1].name, at.upstream["chunks"][0].name
        bad = {
            row[0]
            for row in at.session.query(
                "SELECT DISTINCT e.doc_id FROM {e} e WHERE e.doc_id IN (SELECT doc_id FROM {tmp_scope}) "
                "AND NOT EXISTS (SELECT 1 FROM {c} c WHERE c.doc_id = e.doc_id AND c.chunk_id = e.chunk_id "
                "AND c.level = 1)",
                e=e,
                c=c,
            )
        }
        bad |= {
            row[0]
            for row in at.session.query(
                "SELECT DISTINCT r.doc_id FROM {r} r WHERE r.doc_id IN (SELECT doc_id FROM {tmp_scope}) "
                "AND (NOT EXISTS (SELECT 1 FROM {c} c WHERE c.doc_id = r.doc_id AND c.chunk_id = r.chunk_id "
                "AND c.level = 1) "
                "OR NOT EXISTS (SELECT 1 FROM {e} e WHERE e.doc_id = r.doc_id AND e.chunk_id = r.chunk_id "
                "AND e.entity_id = r.source_id) "
                "OR NOT EXISTS (SELECT 1 FROM {e} e WHERE e.doc_id = r.doc_id AND e.chunk_id = r.chunk_id "
                "AND e.entity_id = r.target_id))",
                e=e,
                r=r,
                c=c,
            )
        }
        return Findings(incomplete=tuple(sorted(bad)))

    def estimate_tokens(self, ref: DocRef, recipe: Recipe, max_tokens: int | None) -> int:
        return 0  # the built-in extractor feeds no model
