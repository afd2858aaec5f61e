"""The reads retrieval makes of artifact tables: chunks, token matrices, entities and relations.

The pipelines (``ragstate.pipelines``) rank; the statements they need live here, as
templates rendered by the dialect like every other repository's (``{t}`` a validated
table name, values bound, ``col = ANY(?)`` for lists), so that a backend serves them with
nothing more than its ``Session``. Each function reads one table of one generation, the
one its caller names; rows come back in the order the statement gives them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ragstate.stores.base import Session


def chunk_texts(session: Session, chunks: str, doc_ids: Sequence[str], chunk_ids: Sequence[str]) -> list[tuple]:
    """``(doc_id, chunk_id, text)`` of the chunks of ``doc_ids`` whose id is in ``chunk_ids``
    (the cross product: callers keep the pairs they asked for)."""
    return session.query(
        "SELECT doc_id, chunk_id, text FROM {t} WHERE doc_id = ANY(?) AND chunk_id = ANY(?)",
        (doc_ids, chunk_ids),
        t=chunks,
    )


def strips(session: Session, chunks: str, doc_ids: Sequence[str]) -> list[tuple]:
    """``(doc_id, chunk_id, text)`` of the leaf chunks (level 1) of ``doc_ids``, in document order."""
    return session.query(
        "SELECT doc_id, chunk_id, text FROM {t} WHERE level = 1 AND doc_id = ANY(?) ORDER BY doc_id, seq",
        (doc_ids,),
        t=chunks,
    )


def chunk_parents(session: Session, chunks: str, doc_ids: Sequence[str], chunk_ids: Sequence[str]) -> list[tuple]:
    """``(doc_id, chunk_id, parent_id)`` of the chunks of ``doc_ids`` whose id is in ``chunk_ids``."""
    return session.query(
        "SELECT doc_id, chunk_id, parent_id FROM {t} WHERE doc_id = ANY(?) AND chunk_id = ANY(?)",
        (doc_ids, chunk_ids),
        t=chunks,
    )


def sections_and_members(session: Session, chunks: str, doc_ids: Sequence[str], section_ids: Sequence[str]) -> list:
    """``(doc_id, chunk_id, parent_id, level, seq, text)`` of the chunks of ``doc_ids`` that are
    one of ``section_ids`` or lie under one."""
    return session.query(
        "SELECT doc_id, chunk_id, parent_id, level, seq, text FROM {t} WHERE doc_id = ANY(?) "
        "AND (chunk_id = ANY(?) OR parent_id = ANY(?))",
        (doc_ids, section_ids, section_ids),
        t=chunks,
    )


def chunk_places(
    session: Session, chunks: str, doc_ids: Sequence[str], chunk_ids: Sequence[str], *, sections: bool
) -> list[tuple]:
    """``(doc_id, chunk_id, start_char, end_char, page_start, page_end, section)`` of the chunks of
    ``doc_ids`` whose id is in ``chunk_ids``; the last three None when the table predates them
    (``sections`` False: a generation built before chunks kept pages and sections)."""
    if sections:
        statement = (
            "SELECT doc_id, chunk_id, start_char, end_char, page_start, page_end, section FROM {t} "
            "WHERE doc_id = ANY(?) AND chunk_id = ANY(?)"
        )
    else:
        statement = (
            "SELECT doc_id, chunk_id, start_char, end_char, NULL, NULL, NULL FROM {t} "
            "WHERE doc_id = ANY(?) AND chunk_id = ANY(?)"
        )
    return session.query(statement, (doc_ids, chunk_ids), t=chunks)


def token_matrices(session: Session, table: str, doc_ids: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    """``(doc_id, chunk_id, n_tokens, dim, matrix)`` of every chunk of ``doc_ids``, streamed."""
    return session.iter_query(
        "SELECT doc_id, chunk_id, n_tokens, dim, matrix FROM {t} WHERE doc_id = ANY(?)", (doc_ids,), t=table
    )


def fulltext_contents(session: Session, fulltext: str, doc_ids: Sequence[str]) -> dict[str, str]:
    """The indexed text of each of ``doc_ids`` that the full-text table holds."""
    return dict(session.query("SELECT doc_id, content FROM {t} WHERE doc_id = ANY(?)", (doc_ids,), t=fulltext))


def entity_names(session: Session, entities: str, entity_ids: Sequence[str]) -> list[tuple[str, str]]:
    """``(entity_id, canonical)`` of each of ``entity_ids`` that the entities table holds, once each."""
    return session.query(
        "SELECT DISTINCT entity_id, canonical FROM {t} WHERE entity_id = ANY(?)", (entity_ids,), t=entities
    )


def relation_weights(session: Session, relations: str, entity_ids: Sequence[str]) -> list[tuple]:
    """``(source_id, target_id, weight)`` of every relation touching ``entity_ids`` at either
    end, its weight summed over the documents that hold it."""
    return session.query(
        "SELECT source_id, target_id, sum(weight) FROM {t} WHERE source_id = ANY(?) OR target_id = ANY(?) "
        "GROUP BY source_id, target_id",
        (entity_ids, entity_ids),
        t=relations,
    )


def entity_document_counts(session: Session, entities: str, entity_ids: Sequence[str]) -> dict[str, int]:
    """How many documents name each of ``entity_ids`` (absent: none)."""
    return {
        eid: int(n)
        for eid, n in session.query(
            "SELECT entity_id, count(DISTINCT doc_id) FROM {t} WHERE entity_id = ANY(?) GROUP BY entity_id",
            (entity_ids,),
            t=entities,
        )
    }


def entity_mentions(session: Session, entities: str, entity_ids: Sequence[str]) -> list[tuple]:
    """``(doc_id, chunk_id, entity_id)`` of every mention of ``entity_ids``."""
    return session.query(
        "SELECT doc_id, chunk_id, entity_id FROM {t} WHERE entity_id = ANY(?)", (entity_ids,), t=entities
    )


def relations_among(session: Session, relations: str, entity_ids: Sequence[str]) -> list[tuple]:
    """``(doc_id, chunk_id, source_id, target_id)`` of the relations whose two ends are both in
    ``entity_ids``, once per chunk."""
    return session.query(
        "SELECT DISTINCT doc_id, chunk_id, source_id, target_id FROM {t} "
        "WHERE source_id = ANY(?) AND target_id = ANY(?)",
        (entity_ids, entity_ids),
        t=relations,
    )
