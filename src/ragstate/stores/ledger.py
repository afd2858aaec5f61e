"""The ledger and the generations: what was built, from what, and which build is live.

Ledger rows (kind, generation, doc_id) say which source hash and recipe a document's
artifact rows were built from and how many rows there are. They are written in the
same transaction as those rows (``apply`` guarantees it), and removed with them.

The drift queries here are the set operations a plan runs: the staged scope against the
ledger against the artifact table, each a single statement, never a query per document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ragstate.stores.base import Session, Store, now
from ragstate.stores.dialect import Col
from ragstate.stores.schema import LEDGER, ROW_COUNTS


@dataclass(frozen=True)
class Generation:
    """One build of an artifact kind under one recipe."""

    kind: str
    generation: int
    recipe_fp: str
    recipe: dict[str, Any]
    table_name: str
    state: str  # building | active | retired
    created_at: float
    activated_at: float | None
    run_id: str | None


@dataclass(frozen=True)
class DriftRows:
    """What the set operations found for one kind and generation (doc ids, sorted).

    ``unbuilt``: in scope, no ledger row. ``rows_absent``: ledger row, but the artifact
    rows are gone or fewer/more than recorded. ``changed``: the source's hash differs
    from the ledger's or from the rows' stamp. ``foreign_recipe``: the ledger or the
    rows carry another recipe's fingerprint. ``out_of_scope``: ledger rows of documents
    no longer in scope. ``strays``: artifact rows with no ledger row, outside scope.
    """

    unbuilt: tuple[str, ...] = ()
    rows_absent: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    foreign_recipe: tuple[str, ...] = ()
    out_of_scope: tuple[str, ...] = ()
    strays: tuple[str, ...] = ()
    built: int = 0


def generations(store: Store, session: Session, kind: str | None = None) -> list[Generation]:
    rows = session.query(
        "SELECT kind, generation, recipe_fp, recipe, table_name, state, created_at, activated_at, run_id "
        "FROM {generations} ORDER BY kind, generation"
    )
    if kind is not None:
        rows = [r for r in rows if r[0] == kind]
    return [
        Generation(r[0], int(r[1]), r[2], store.decode_json(r[3]), r[4], r[5], float(r[6]), r[7], r[8]) for r in rows
    ]


def create_generation(
    store: Store, session: Session, kind: str, recipe_fp: str, recipe: dict[str, Any], run_id: str
) -> Generation:
    """Register a new generation (state ``building``); the caller creates its table."""
    number = int(session.scalar("SELECT coalesce(max(generation), 0) + 1 FROM {generations} WHERE kind = ?", (kind,)))
    table_name = f"{kind}_g{number}"
    stamp = now()
    session.execute(
        "INSERT INTO {generations} (kind, generation, recipe_fp, recipe, table_name, state, created_at, run_id) "
        "VALUES (?, ?, ?, ?, ?, 'building', ?, ?)",
        (kind, number, recipe_fp, store.encode_json(recipe), table_name, stamp, run_id),
    )
    return Generation(kind, number, recipe_fp, recipe, table_name, "building", stamp, None, run_id)


def activate(session: Session, kind: str, generation: int) -> None:
    """Make ``generation`` the active one of ``kind``, in one transaction.

    The previous active generation becomes ``retired`` (kept for rollback), so there is
    exactly one active generation per kind at every instant.
    """
    with session.transaction():
        session.execute(
            "UPDATE {generations} SET state = 'retired' WHERE kind = ? AND state = 'active' AND generation <> ?",
            (kind, generation),
        )
        session.execute(
            "UPDATE {generations} SET state = 'active', activated_at = ? WHERE kind = ? AND generation = ?",
            (now(), kind, generation),
        )


def drift_rows(
    session: Session,
    kind: str,
    generation: int,
    tables: Sequence[str] | None,
    recipe_fp: str,
    *,
    multi_row: bool,
    scope_size: int,
) -> DriftRows:
    """Run the drift set operations for ``kind``/``generation`` against the staged scope.

    ``tables`` are the generation's tables (a kind may keep rows in several); None when
    one of them does not exist (not created yet, or dropped behind ragstate's back):
    every ledger row then counts as rows absent. A multi-row kind's rows are counted per
    document over all its tables, against the ledger's ``items``. ``scope_size`` is the
    number of staged documents.
    """
    params: tuple[Any, ...]
    if tables is None:
        rows = session.query(
            "SELECT s.doc_id, l.doc_id IS NULL, l.doc_id IS NOT NULL, l.source_hash <> s.content_hash, "
            "l.recipe_fp <> ? FROM {tmp_scope} s "
            "LEFT JOIN {ledger} l ON l.kind = ? AND l.generation = ? AND l.doc_id = s.doc_id",
            (recipe_fp, kind, generation),
        )
    elif not multi_row:
        params = (recipe_fp, recipe_fp, kind, generation, recipe_fp, recipe_fp)
        rows = session.query(
            "SELECT s.doc_id, l.doc_id IS NULL, l.doc_id IS NOT NULL AND a.doc_id IS NULL, "
            "l.source_hash <> s.content_hash OR a.source_hash <> s.content_hash, "
            "l.recipe_fp <> ? OR a.recipe_fp <> ? "
            "FROM {tmp_scope} s "
            "LEFT JOIN {ledger} l ON l.kind = ? AND l.generation = ? AND l.doc_id = s.doc_id "
            "LEFT JOIN {t} a ON a.doc_id = s.doc_id "
            "WHERE l.doc_id IS NULL OR a.doc_id IS NULL OR l.source_hash <> s.content_hash "
            "OR a.source_hash <> s.content_hash OR l.recipe_fp <> ? OR a.recipe_fp <> ?",
            params,
            t=tables[0],
        )
    else:
        _stage_row_counts(session, tables)
        params = (recipe_fp, recipe_fp, recipe_fp, kind, generation, recipe_fp, recipe_fp, recipe_fp)
        rows = session.query(
            "SELECT s.doc_id, l.doc_id IS NULL, l.doc_id IS NOT NULL AND coalesce(a.n, 0) <> l.items, "
            "l.source_hash <> s.content_hash OR a.lo_hash <> s.content_hash OR a.hi_hash <> s.content_hash, "
            "l.recipe_fp <> ? OR a.lo_fp <> ? OR a.hi_fp <> ? "
            "FROM {tmp_scope} s "
            "LEFT JOIN {ledger} l ON l.kind = ? AND l.generation = ? AND l.doc_id = s.doc_id "
            "LEFT JOIN (SELECT doc_id, sum(n) AS n, min(lo_hash) AS lo_hash, max(hi_hash) AS hi_hash, "
            "min(lo_fp) AS lo_fp, max(hi_fp) AS hi_fp FROM {tmp_row_counts} GROUP BY doc_id) a "
            "ON a.doc_id = s.doc_id "
            "WHERE l.doc_id IS NULL OR coalesce(a.n, 0) <> l.items OR l.source_hash <> s.content_hash "
            "OR a.lo_hash <> s.content_hash OR a.hi_hash <> s.content_hash "
            "OR l.recipe_fp <> ? OR a.lo_fp <> ? OR a.hi_fp <> ?",
            params,
        )
    unbuilt, absent, changed, foreign = [], [], [], []
    for doc_id, no_ledger, rows_absent, hash_differs, fp_differs in rows:
        if no_ledger:
            unbuilt.append(doc_id)
        elif rows_absent:
            absent.append(doc_id)
        elif hash_differs:
            changed.append(doc_id)
        elif fp_differs:
            foreign.append(doc_id)
    built = int(session.scalar("SELECT count(*) FROM {ledger} WHERE kind = ? AND generation = ?", (kind, generation)))
    # Counting decides exactly, and cheaply, whether the anti-joins below can find
    # anything (the no-op case): ledger and artifact rows are unique per document (per
    # item), so when every row is accounted for by a document in scope, none is outside.
    in_scope = scope_size - len(unbuilt)  # documents in scope with a ledger row
    out_of_scope: list[str] = []
    if built != in_scope:
        out_of_scope = [
            r[0]
            for r in session.query(
                "SELECT l.doc_id FROM {ledger} l WHERE l.kind = ? AND l.generation = ? "
                "AND NOT EXISTS (SELECT 1 FROM {tmp_scope} s WHERE s.doc_id = l.doc_id)",
                (kind, generation),
            )
        ]
    strays: set[str] = set()
    if tables is not None and multi_row:
        # per document, not per row: the row counts are staged already
        strays.update(
            r[0]
            for r in session.query(
                "SELECT DISTINCT a.doc_id FROM {tmp_row_counts} a WHERE NOT EXISTS "
                "(SELECT 1 FROM {ledger} l WHERE l.kind = ? AND l.generation = ? AND l.doc_id = a.doc_id) "
                "AND NOT EXISTS (SELECT 1 FROM {tmp_scope} s WHERE s.doc_id = a.doc_id)",
                (kind, generation),
            )
        )
        session.execute("DROP TABLE IF EXISTS {tmp_row_counts}")
    elif tables is not None:
        # one row per document: rows of documents in scope with a ledger row are
        # in_scope - len(absent); any more rows belong to some other document
        single = len(tables) == 1 and int(session.scalar("SELECT count(*) FROM {t}", t=tables[0])) == in_scope - len(
            absent
        )
        for table in () if single else tables:
            strays.update(
                r[0]
                for r in session.query(
                    "SELECT DISTINCT a.doc_id FROM {t} a WHERE NOT EXISTS "
                    "(SELECT 1 FROM {ledger} l WHERE l.kind = ? AND l.generation = ? AND l.doc_id = a.doc_id) "
                    "AND NOT EXISTS (SELECT 1 FROM {tmp_scope} s WHERE s.doc_id = a.doc_id)",
                    (kind, generation),
                    t=table,
                )
            )
    return DriftRows(
        unbuilt=tuple(sorted(unbuilt)),
        rows_absent=tuple(sorted(absent)),
        changed=tuple(sorted(changed)),
        foreign_recipe=tuple(sorted(foreign)),
        out_of_scope=tuple(sorted(out_of_scope)),
        strays=tuple(sorted(strays)),
        built=built,
    )


def _stage_row_counts(session: Session, tables: Sequence[str]) -> None:
    """Fill the temporary ``row_counts`` with rows per document of each table (one
    statement per table, whatever the number of documents)."""
    session.execute("DROP TABLE IF EXISTS {tmp_row_counts}")
    for statement in session.dialect.create_table(ROW_COUNTS, temp=True):
        session.execute(statement)
    for part, table in enumerate(tables):
        session.execute(
            "INSERT INTO {tmp_row_counts} (doc_id, part, n, lo_hash, hi_hash, lo_fp, hi_fp) "
            "SELECT doc_id, ?, count(*), min(source_hash), max(source_hash), min(recipe_fp), max(recipe_fp) "
            "FROM {t} GROUP BY doc_id",
            (part,),
            t=table,
        )
    if session.dialect.analyze_temp_tables:
        session.execute("ANALYZE {tmp_row_counts}")


def duplicate_vectors(session: Session, table: str, column: str) -> list[str]:
    """Documents whose vector is identical to another document's of a different text.

    A model maps different texts to different vectors; identical ones mean placeholders.
    """
    rows = session.query(
        "SELECT a.doc_id FROM {t} a JOIN (SELECT {col} AS v FROM {t} GROUP BY {col} "
        "HAVING count(DISTINCT text_hash) > 1) d ON a.{col} = d.v ORDER BY a.doc_id",
        col=Col(column),
        t=table,
    )
    return [r[0] for r in rows]


def write(
    session: Session,
    kind: str,
    generation: int,
    entries: Sequence[tuple[str, str, str, int]],
    run_id: str,
) -> None:
    """Set the ledger rows ``(doc_id, source_hash, recipe_fp, items)`` of their documents.

    The documents' rows are deleted, then the new ones bulk inserted (binary COPY on
    PostgreSQL): inside the caller's transaction this is an upsert, at the speed of the
    write path (an ``INSERT … ON CONFLICT`` per row took three times the artifact rows'
    COPY; BENCHMARKS.md, "Bulk write path").
    """
    stamp = now()
    delete(session, kind, generation, [e[0] for e in entries])
    session.copy_rows(LEDGER, [(kind, generation, d, h, fp, n, run_id, stamp) for d, h, fp, n in entries])


def delete(session: Session, kind: str, generation: int, doc_ids: Sequence[str]) -> int:
    if not doc_ids:
        return 0
    return session.execute(
        "DELETE FROM {ledger} WHERE kind = ? AND generation = ? AND doc_id = ANY(?)",
        (kind, generation, list(doc_ids)),
    )


def delete_rows(session: Session, tables: str | Sequence[str], doc_ids: Sequence[str]) -> int:
    """Delete every artifact row of ``doc_ids`` from ``tables`` (one name or several)."""
    if not doc_ids:
        return 0
    names = (tables,) if isinstance(tables, str) else tables
    return sum(session.execute("DELETE FROM {t} WHERE doc_id = ANY(?)", (list(doc_ids),), t=t) for t in names)


def counts(session: Session) -> dict[tuple[str, int], int]:
    """Ledger rows per (kind, generation)."""
    rows = session.query("SELECT kind, generation, count(*) FROM {ledger} GROUP BY kind, generation")
    return {(r[0], int(r[1])): int(r[2]) for r in rows}


def item_counts(session: Session) -> dict[tuple[str, int], int]:
    """Artifact rows the ledger records per (kind, generation) (chunks, entities, ...)."""
    rows = session.query("SELECT kind, generation, sum(items) FROM {ledger} GROUP BY kind, generation")
    return {(r[0], int(r[1])): int(r[2] or 0) for r in rows}
