"""The document registry: what the source held at the last apply, and the plan's scope.

``documents`` and ``source_files`` record, per document, its identity, place, content
hash and sizes, and per file the stat it had when read. They are a cache of the
source (never of the text) that lets a no-op plan read only file stats. They are
written by apply, before any artifact, so a crash between the two leaves artifacts
that the next plan sees as stale, never the reverse.

A plan stages the documents in scope into the temporary table ``scope``: recorded rows
of unchanged files plus fresh rows of files that changed. Every drift query joins
against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ragstate.errors import DuplicateDocumentId
from ragstate.stores.base import Session, Store, now
from ragstate.stores.documents import DocRef, FileStat, Snapshot
from ragstate.stores.schema import DOCUMENTS, SCOPE, SOURCE_FILES, STALE_PATHS


def known_files(session: Session) -> dict[str, FileStat]:
    """The file stats recorded by the last apply, by path."""
    rows = session.query("SELECT path, size, mtime_ns, ctime_ns, inode FROM {source_files}")
    return {r[0]: FileStat(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}


def stage_scope(
    store: Store, session: Session, snapshot: Snapshot, known: Mapping[str, FileStat], limit: int | None
) -> int:
    """Fill the temporary ``scope`` table with the documents in scope; return how many.

    Must run inside ``session.read_transaction()``; ``drop_scope`` removes it after.

    Raises:
        DuplicateDocumentId: a new or changed file declares a document id that an unchanged
            file already holds.
    """
    create_scope(session)
    stale = [(p,) for p in known if p not in snapshot.unchanged]
    session.copy_rows(STALE_PATHS, stale, temp=True)
    session.copy_rows(SCOPE, (_ref_row(r) for r in snapshot.fresh), temp=True)
    if not stale and not snapshot.fresh:
        # Nothing changed (a no-op plan): every recorded document is in scope as recorded.
        session.execute(
            "INSERT INTO {tmp_scope} (doc_id, content_hash, title, path, pos, byte_offset, title_chars, "
            "abstract_chars, body_chars) "
            "SELECT doc_id, content_hash, title, path, pos, byte_offset, title_chars, abstract_chars, body_chars "
            "FROM {documents}"
        )
    else:
        session.execute(
            "INSERT INTO {tmp_scope} (doc_id, content_hash, title, path, pos, byte_offset, title_chars, "
            "abstract_chars, body_chars) "
            "SELECT doc_id, content_hash, title, path, pos, byte_offset, title_chars, abstract_chars, body_chars "
            "FROM {documents} d WHERE NOT EXISTS (SELECT 1 FROM {tmp_stale_paths} p WHERE p.path = d.path) "
            "AND NOT EXISTS (SELECT 1 FROM {tmp_scope} s WHERE s.doc_id = d.doc_id)"
        )
    # Only a fresh document can clash with a recorded one (documents are unique by id).
    clash = (
        session.query(
            "SELECT d.doc_id, d.path, s.path FROM {documents} d JOIN {tmp_scope} s ON s.doc_id = d.doc_id "
            "WHERE d.path <> s.path AND NOT EXISTS (SELECT 1 FROM {tmp_stale_paths} p WHERE p.path = d.path) "
            "LIMIT 1"
        )
        if snapshot.fresh
        else []
    )
    if clash:
        doc_id, old, new = clash[0]
        raise DuplicateDocumentId(
            f"document id '{doc_id}' appears twice: in {old} and in {new}", path=new, doc_id=doc_id
        )
    if limit is not None:
        session.execute(
            "DELETE FROM {tmp_scope} WHERE doc_id NOT IN (SELECT doc_id FROM {tmp_scope} ORDER BY path, pos LIMIT ?)",
            (limit,),
        )
    if session.dialect.analyze_temp_tables:
        session.execute("ANALYZE {tmp_scope}")
    return int(session.scalar("SELECT count(*) FROM {tmp_scope}"))


def create_scope(session: Session) -> None:
    """(Re)create the empty temporary tables a plan stages into (``scope``, ``stale_paths``)."""
    drop_scope(session)
    for table in (SCOPE, STALE_PATHS):
        for statement in session.dialect.create_table(table, temp=True):
            session.execute(statement)


def drop_scope(session: Session) -> None:
    session.execute("DROP TABLE IF EXISTS {tmp_scope}")
    session.execute("DROP TABLE IF EXISTS {tmp_stale_paths}")


def scope_refs(session: Session, doc_ids: Sequence[str]) -> dict[str, DocRef]:
    """``DocRef`` of each staged document in ``doc_ids``."""
    rows = session.query(
        "SELECT doc_id, content_hash, title, path, pos, byte_offset, title_chars, abstract_chars, body_chars "
        "FROM {tmp_scope} WHERE doc_id = ANY(?)",
        (list(doc_ids),),
    )
    return {r[0]: _row_ref(r) for r in rows}


def sync(session: Session, snapshot: Snapshot, known: Mapping[str, FileStat]) -> int:
    """Record the snapshot: fresh documents, their files' stats, vanished files gone.

    Runs inside one transaction. Returns the number of document rows written.
    """
    stamp = now()
    stale_paths = sorted(p for p in known if p not in snapshot.unchanged)
    fresh_ids = {r.doc_id for r in snapshot.fresh}
    # Documents of changed or vanished files that are not fresh any more are gone.
    if stale_paths:
        rows = session.query("SELECT doc_id FROM {documents} WHERE path = ANY(?)", (stale_paths,))
        gone = [r[0] for r in rows if r[0] not in fresh_ids]
        if gone:
            session.execute("DELETE FROM {documents} WHERE doc_id = ANY(?)", (gone,))
    session.executemany(
        session.dialect.upsert(DOCUMENTS.name, DOCUMENTS.column_names, DOCUMENTS.primary_key),
        (_ref_row(r) + (stamp,) for r in snapshot.fresh),
    )
    present = {f.path for f in snapshot.files}
    vanished = [p for p in known if p not in present]
    if vanished:
        session.execute("DELETE FROM {source_files} WHERE path = ANY(?)", (vanished,))
    changed = [f for f in snapshot.files if f.path not in snapshot.unchanged]
    session.executemany(
        session.dialect.upsert(SOURCE_FILES.name, SOURCE_FILES.column_names, SOURCE_FILES.primary_key),
        ((f.path, f.size, f.mtime_ns, f.ctime_ns, f.inode, stamp) for f in changed),
    )
    return len(snapshot.fresh)


def scope_titles(session: Session) -> tuple[tuple[str, str], ...]:
    """``(doc_id, title)`` of every staged document with a title, by id."""
    rows = session.query(
        "SELECT doc_id, title FROM {tmp_scope} WHERE title IS NOT NULL AND title <> '' ORDER BY doc_id"
    )
    return tuple((str(r[0]), str(r[1])) for r in rows)


def document_refs(session: Session, doc_ids: Sequence[str]) -> dict[str, DocRef]:
    """``DocRef`` of each document in ``doc_ids`` as the registry recorded it (no staged scope needed)."""
    rows = session.query(
        "SELECT doc_id, content_hash, title, path, pos, byte_offset, title_chars, abstract_chars, body_chars "
        "FROM {documents} WHERE doc_id = ANY(?)",
        (list(doc_ids),),
    )
    return {r[0]: _row_ref(r) for r in rows}


def document_titles(session: Session, doc_ids: Iterable[str]) -> dict[str, str]:
    rows = session.query("SELECT doc_id, title FROM {documents} WHERE doc_id = ANY(?)", (list(doc_ids),))
    return {r[0]: r[1] or "" for r in rows}


def _ref_row(r: DocRef) -> tuple[object, ...]:
    return (r.doc_id, r.content_hash, r.title, r.path, r.pos, r.offset, r.title_chars, r.abstract_chars, r.body_chars)


def _row_ref(row: tuple[object, ...]) -> DocRef:
    return DocRef(
        doc_id=str(row[0]),
        content_hash=str(row[1]),
        title=str(row[2] or ""),
        path=str(row[3]),
        pos=int(row[4]),  # type: ignore[arg-type]
        offset=int(row[5]),  # type: ignore[arg-type]
        title_chars=int(row[6]),  # type: ignore[arg-type]
        abstract_chars=int(row[7]),  # type: ignore[arg-type]
        body_chars=int(row[8]),  # type: ignore[arg-type]
    )
