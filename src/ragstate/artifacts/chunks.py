"""``chunks``: parent sections and child chunks of each document, with character offsets.

Rows (one table per generation): a section (``level`` 0, ``text`` its heading, its span
the whole section) or a chunk (``level`` 1, ``text`` exactly ``Document.text[start:end]``,
``parent_id`` its section). Each row also says where it lies, so an answer can cite
"p. 4, Methods": ``page_start``/``page_end`` (PDF pages, else NULL) and ``section``, the
section path the loader found (``Document.layout``: "Methods > Design"), else the
heading of the chunker's section. The loaders' versions are part of the recipe, so a
better extraction re-chunks as a new generation. Chunks never exceed the model's window, counted with the
model's own tokenizer (``compute.chunkers``).

Ids are stable: a chunk's id is a hash of its document id, its text and how many equal
texts precede it in the document, so a chunk whose text is unchanged keeps its id when
its document changes elsewhere (even though its offsets move); a section's id is a hash
of its heading likewise. Dependent kinds reuse their stored items by chunk id and text.

Checks: a child whose parent section is gone (``incomplete``, every depth); from depth
``audit`` on, offsets outside the document or a chunk whose text is not as long as its
span (``corrupt``); at ``deep``,
a text that no longer hashes to its ``text_hash`` (``corrupt``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ragstate.artifacts.base import ArtifactKind, BuildContext, Built, Findings, Inspection, Recipe
from ragstate.compute.chunkers import Piece, make_chunker
from ragstate.compute.embedders import Embedder, make_embedder
from ragstate.errors import SpecError
from ragstate.hashing import item_id, text_hash
from ragstate.sources.base import Document
from ragstate.sources.loaders import loader_versions
from ragstate.spec.model import Spec
from ragstate.stores.base import Session, Store
from ragstate.stores.dialect import Col
from ragstate.stores.documents import DocRef
from ragstate.stores.schema import ARTIFACT_STAMP, ColumnType, TableDef, col


@dataclass(frozen=True)
class ChunkRow:
    """A chunk (or, read from ``entities``, an entity) as dependent kinds read it."""

    chunk_id: str
    text: str
    text_hash: str


@dataclass(frozen=True)
class Upstream:
    """One document's rows of an upstream kind, with the source hash they were built from
    (which the dependent rows are stamped with, so they are stale exactly when it is)."""

    source_hash: str
    items: list[ChunkRow]


class ModelTokens:
    """A model's tokenizer with its special tokens left out of the counts."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder
        self.special = embedder.count_tokens([""])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [n - self.special for n in self.embedder.count_tokens(texts)]

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return self.embedder.token_spans(texts)


def tokenizer_identity(embedder: Embedder) -> dict[str, Any]:
    """What decides how a model splits text: its identity less its output settings."""
    return {k: v for k, v in embedder.identity().items() if k not in ("normalize", "dimension")}


def window(embedder: Embedder) -> int:
    """Tokens of text the model reads, its special tokens deducted."""
    return embedder.max_tokens - ModelTokens(embedder).special


class Chunks(ArtifactKind):
    name = "chunks"
    #: 2: rows carry page_start, page_end and section
    code_version = 2
    invariants = ("every chunk's parent section exists", "chunk offsets lie inside their document")
    multi_row = True

    def recipe(self, spec: Spec) -> Recipe:
        params = spec.artifacts.chunks
        embedder = make_embedder(params.model, spec.models[params.model])
        room = window(embedder)
        if params.max_tokens is not None and params.max_tokens > room:
            raise SpecError(
                f"artifacts.chunks.max_tokens is {params.max_tokens}, but model '{params.model}' reads at most "
                f"{room} tokens of text; longer chunks would be cut silently"
            )
        chunker = make_chunker(params.chunker, max_tokens=params.max_tokens or room, min_tokens=params.min_tokens)
        return Recipe.of(
            self.name,
            {
                "code_version": self.code_version,
                "tokenizer": tokenizer_identity(embedder),
                "chunker": chunker.identity(),
                "chunker_name": params.chunker,
                # A folder's loaders decide the text and its pages and sections.
                "loaders": loader_versions(getattr(spec.source, "formats", ())),
            },
            default_rate=200.0,
        )

    def table(self, recipe: Recipe, generation: int) -> TableDef:
        T, I = ColumnType.TEXT, ColumnType.INT
        return TableDef(
            self.table_name(generation),
            ARTIFACT_STAMP
            + (
                col("chunk_id", T, null=False),
                col("parent_id", T),
                col("level", I, null=False),
                col("seq", I, null=False),
                col("start_char", I, null=False),
                col("end_char", I, null=False),
                col("n_tokens", I, null=False),
                col("text_hash", T, null=False),
                col("text", T, null=False),
                col("page_start", I),
                col("page_end", I),
                col("section", T),
            ),
            primary_key=("doc_id", "chunk_id"),
        )

    def build(self, docs: Sequence[Document], recipe: Recipe, ctx: BuildContext) -> Built:
        params = ctx.spec.artifacts.chunks
        tokens = ModelTokens(ctx.embedder(params.model))
        chunker_id = recipe.params["chunker"]
        chunker = make_chunker(
            recipe.params["chunker_name"], max_tokens=chunker_id["max_tokens"], min_tokens=chunker_id["min_tokens"]
        )
        built = Built()
        for doc in docs:
            pieces = chunker.chunk(doc, tokens)
            ids = piece_ids(doc.doc_id, pieces)
            for seq, (piece, pid) in enumerate(zip(pieces, ids, strict=True)):
                parent = ids[piece.parent] if piece.parent is not None else None
                page_start, page_end, section = doc.place(piece.start, piece.end)
                if section is None:  # no layout: the chunker's section heading
                    heading = piece if piece.level == 0 or piece.parent is None else pieces[piece.parent]
                    section = heading.text if heading.level == 0 else ""
                built.rows.append(
                    (
                        doc.doc_id,
                        doc.content_hash,
                        recipe.fingerprint,
                        ctx.run_id,
                        ctx.now,
                        pid,
                        parent,
                        piece.level,
                        seq,
                        piece.start,
                        piece.end,
                        piece.n_tokens,
                        text_hash(piece.text),
                        piece.text,
                        page_start,
                        page_end,
                        section or None,
                    )
                )
            built.items[doc.doc_id] = len(pieces)
            built.source_hashes[doc.doc_id] = doc.content_hash
        return built

    def read(
        self, session: Session, store: Store, tables: tuple[TableDef, ...], doc_ids: Sequence[str]
    ) -> dict[str, Upstream]:
        """The chunks (not the sections) of ``doc_ids``, in document order."""
        out: dict[str, Upstream] = {}
        rows = session.query(
            "SELECT doc_id, source_hash, chunk_id, text, text_hash FROM {t} WHERE level = 1 AND doc_id = ANY(?) "
            "ORDER BY doc_id, seq",
            (list(doc_ids),),
            t=tables[0].name,
        )
        for doc_id, source_hash, chunk_id, text, h in rows:
            out.setdefault(doc_id, Upstream(source_hash, [])).items.append(ChunkRow(chunk_id, text, h))
        return out

    def inspect(self, at: Inspection) -> Findings:
        t = at.tables[0].name
        orphans = at.session.query(
            "SELECT DISTINCT c.doc_id FROM {t} c WHERE c.level = 1 "
            "AND c.doc_id IN (SELECT doc_id FROM {tmp_scope}) AND NOT EXISTS "
            "(SELECT 1 FROM {t} p WHERE p.doc_id = c.doc_id AND p.chunk_id = c.parent_id AND p.level = 0)",
            t=t,
        )
        if at.depth == "shallow":
            # Offsets are values, checked row by row like vectors: corrupt is found by
            # apply and verify (README, "What ragstate checks"); a plan checks references.
            return Findings(incomplete=tuple(sorted({r[0] for r in orphans})))
        # The document's length is bounded from the staged sizes: Document.text joins the
        # present parts with a blank line (a part of only whitespace is left out, so the
        # bound is exact unless a document has one, and never too small).
        corrupt = [
            (doc_id, f"chunk {chunk_id}: offsets {start}-{end} outside the document or its text")
            for doc_id, chunk_id, start, end in at.session.query(
                "SELECT c.doc_id, c.chunk_id, c.start_char, c.end_char FROM {t} c "
                "JOIN {tmp_scope} s ON s.doc_id = c.doc_id "
                "WHERE c.start_char < 0 OR c.end_char <= c.start_char "
                "OR c.end_char > s.title_chars + s.abstract_chars + s.body_chars + 2 * ("
                "CASE WHEN s.title_chars > 0 THEN 1 ELSE 0 END + CASE WHEN s.abstract_chars > 0 THEN 1 ELSE 0 END + "
                "CASE WHEN s.body_chars > 0 THEN 1 ELSE 0 END - 1) "
                "OR (c.level = 1 AND length(c.text) <> c.end_char - c.start_char)",
                t=t,
            )
        ]
        if at.depth == "deep":
            corrupt += stored_text_mismatches(at.session, t, "chunk_id")
        return Findings(incomplete=tuple(sorted({r[0] for r in orphans})), corrupt=tuple(sorted(set(corrupt))))

    def estimate_tokens(self, ref: DocRef, recipe: Recipe, max_tokens: int | None) -> int:
        return 0  # chunking counts tokens but feeds no model


def piece_ids(doc_id: str, pieces: Sequence[Piece]) -> list[str]:
    """Stable ids of a document's sections and chunks (see the module doc)."""
    seen: Counter[tuple[int, str]] = Counter()
    ids = []
    for p in pieces:
        what = "section" if p.level == 0 else "chunk"
        ids.append(item_id(doc_id, what, p.text, str(seen[(p.level, p.text)])))
        seen[(p.level, p.text)] += 1
    return ids


def stored_text_mismatches(session: Session, table: str, key: str, column: str = "text") -> list[tuple[str, str]]:
    """``(doc_id, reason)`` for rows of ``table`` whose text no longer hashes to ``text_hash``."""
    bad = []
    for doc_id, item, h, text in session.iter_query(
        "SELECT doc_id, {key}, text_hash, {col} FROM {t} WHERE doc_id IN (SELECT doc_id FROM {tmp_scope})",
        key=Col(key),
        col=Col(column),
        t=table,
    ):
        if text is None or text_hash(text) != h:
            bad.append((doc_id, f"{key} {item}: text does not match its hash"))
    return bad
