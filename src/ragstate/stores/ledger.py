"""The ledger and the generations: what was built, from what, and which build is live.

Ledger rows (kind, generation, doc_id) say which source hash and recipe a document's
artifact rows were built from and how many rows there are. They are written in the
same transaction as those rows (``apply`` guarantees it), and removed with them.

The drift queries here are the set operations a plan runs: the staged scope against the
ledger against the artifact table, each a single statement, never a query per document.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ragstate.errors import StoreError
from ragstate.stores.base import Session, Store, now
from ragstate.stores.dialect import Col
from ragstate.stores.schema import LEDGER, ROW_COUNTS, TableDef

#: the states of a generation, in the order of its life
BUILDING, REJECTED, ACTIVE, RETIRED, DROPPED = "building", "rejected", "active", "retired", "dropped"


@dataclass(frozen=True)
class Generation:
    """One build of an artifact kind under one recipe.

    ==========  ===========================================================================
    state       meaning
    ==========  ===========================================================================
    building    being built (or complete and waiting for verification); a killed build
                resumes into it
    rejected    complete, but failed verification; apply verifies it again, never
                switches to it unverified
    active      what queries read; exactly one per kind
    retired     was active; kept for ``rollback`` until garbage-collected
    dropped     garbage-collected: tables and ledger rows gone, the row kept for history
    ==========  ===========================================================================
    """

    kind: str
    generation: int
    recipe_fp: str
    recipe: dict[str, Any]
    table_name: str
    state: str
    created_at: float
    activated_at: float | None
    run_id: str | None
    #: the generation of each upstream kind it was built from (and switched in with)
    upstream: dict[str, int] = field(default_factory=dict)
    #: the model specs (by ``models`` name) it embeds with: its query embedder
    models: dict[str, Any] = field(default_factory=dict)
    #: the last verification before a switch (``apply.generations.Verification.to_dict``)
    verification: dict[str, Any] | None = None
    #: set on an active generation put back by ``rollback``: ``{"run_id", "recipe_fp"}``,
    #: the spec's recipe that apply must not switch back to while the spec asks for it
    hold: dict[str, Any] | None = None
    retired_at: float | None = None
    dropped_at: float | None = None

    @property
    def was_active(self) -> bool:
        return self.activated_at is not None and self.state in (ACTIVE, RETIRED)


def collectable(gens: Sequence[Generation], *, keep: int, protect: Collection[int | None] = ()) -> list[Generation]:
    """The generations of one kind that garbage collection drops, oldest last.

    Never the active one, never the one active before it (the most recently retired:
    what ``rollback`` returns to), never one in ``protect`` (the one the work goes into,
    the one holding the spec's recipe). Of the other inactive generations, the ``keep``
    most recent are kept, the previous one counting as one of them.
    """
    live = [g for g in gens if g.state not in (DROPPED, ACTIVE) and g.generation not in protect]
    retired = [g for g in live if g.state == RETIRED]
    previous = max(retired, key=lambda g: (g.retired_at or 0.0, g.generation), default=None)
    others = sorted(
        (g for g in live if g is not previous),
        key=lambda g: (g.retired_at or g.created_at, g.generation),
        reverse=True,
    )
    return others[keep - (1 if previous is not None else 0) :]


def holding(gens: Sequence[Generation], recipe_fp: str) -> int | None:
    """The newest generation (not dropped) built under ``recipe_fp``, if any."""
    found = [g.generation for g in gens if g.recipe_fp == recipe_fp and g.state != DROPPED]
    return max(found, default=None)


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
    """Generations of ``kind`` (or of every kind), by kind and number."""
    rows = session.query(
        "SELECT kind, generation, recipe_fp, recipe, table_name, state, created_at, activated_at, run_id, "
        "upstream, models, verification, hold, retired_at, dropped_at FROM {generations} "
        "WHERE kind = ? OR ? ORDER BY kind, generation",
        (kind or "", kind is None),
    )
    return [_generation(store, r) for r in rows]


def _generation(store: Store, r: tuple[Any, ...]) -> Generation:
    return Generation(
        kind=r[0],
        generation=int(r[1]),
        recipe_fp=r[2],
        recipe=store.decode_json(r[3]),
        table_name=r[4],
        state=r[5],
        created_at=float(r[6]),
        activated_at=None if r[7] is None else float(r[7]),
        run_id=r[8],
        upstream={str(k): int(v) for k, v in (store.decode_json(r[9]) or {}).items()},
        models=store.decode_json(r[10]) or {},
        verification=store.decode_json(r[11]),
        hold=store.decode_json(r[12]),
        retired_at=None if r[13] is None else float(r[13]),
        dropped_at=None if r[14] is None else float(r[14]),
    )


def active(store: Store, session: Session, kind: str) -> Generation | None:
    """The generation of ``kind`` that queries read now, or None before the first is complete.

    Queries read through this function alone, so the choice of what is live stays in one place.
    """
    return next((g for g in generations(store, session, kind) if g.state == "active"), None)


def create_generation(
    store: Store,
    session: Session,
    kind: str,
    recipe_fp: str,
    recipe: dict[str, Any],
    run_id: str,
    *,
    upstream: Mapping[str, int] | None = None,
    models: Mapping[str, Any] | None = None,
) -> Generation:
    """Register a new generation (state ``building``); the caller creates its table."""
    number = int(session.scalar("SELECT coalesce(max(generation), 0) + 1 FROM {generations} WHERE kind = ?", (kind,)))
    table_name = f"{kind}_g{number}"
    stamp = now()
    session.execute(
        "INSERT INTO {generations} (kind, generation, recipe_fp, recipe, table_name, state, created_at, run_id, "
        "upstream, models) VALUES (?, ?, ?, ?, ?, 'building', ?, ?, ?, ?)",
        (
            kind,
            number,
            recipe_fp,
            store.encode_json(recipe),
            table_name,
            stamp,
            run_id,
            store.encode_json(dict(upstream or {})),
            store.encode_json(dict(models or {})),
        ),
    )
    return Generation(
        kind,
        number,
        recipe_fp,
        recipe,
        table_name,
        BUILDING,
        stamp,
        None,
        run_id,
        dict(upstream or {}),
        dict(models or {}),
    )


def switch(
    store: Store,
    session: Session,
    targets: Mapping[str, int],
    *,
    upstream: Mapping[str, Mapping[str, int]] | None = None,
    holds: Mapping[str, dict[str, Any] | None] | None = None,
) -> dict[str, int | None]:
    """Make ``targets[kind]`` the active generation of each kind, all in one transaction.

    Each kind's previous active generation becomes ``retired`` (kept for rollback), so
    there is exactly one active generation per kind at every instant, and a group of
    kinds (a kind and those built from it) changes together or not at all. ``upstream``
    records the upstream generations each one now reads; ``holds`` sets (or, with None,
    clears) a rollback hold. Returns each kind's previously active generation.

    Raises:
        StoreError: a target generation does not exist or was dropped (nothing changed).
    """
    stamp = now()
    previous: dict[str, int | None] = {}
    with session.transaction():
        for kind, generation in targets.items():
            was = session.scalar("SELECT generation FROM {generations} WHERE kind = ? AND state = 'active'", (kind,))
            previous[kind] = None if was is None else int(was)
            session.execute(
                "UPDATE {generations} SET state = 'retired', retired_at = ?, hold = NULL "
                "WHERE kind = ? AND state = 'active' AND generation <> ?",
                (stamp, kind, generation),
            )
            changed = session.execute(
                "UPDATE {generations} SET state = 'active', activated_at = ?, retired_at = NULL, hold = ?, "
                "upstream = coalesce(?, upstream) WHERE kind = ? AND generation = ? AND state <> 'dropped'",
                (
                    stamp,
                    store.encode_json((holds or {}).get(kind)) if (holds or {}).get(kind) else None,
                    store.encode_json(dict(upstream[kind])) if upstream and kind in upstream else None,
                    kind,
                    generation,
                ),
            )
            if changed == 0:
                raise StoreError(f"{kind}: generation {generation} does not exist or was dropped; nothing was switched")
    return previous


def record_verification(store: Store, session: Session, kind: str, generation: int, result: dict[str, Any]) -> None:
    """Keep a generation's last verification; a failed one marks it ``rejected``."""
    with session.transaction():
        session.execute(
            "UPDATE {generations} SET verification = ?, "
            "state = CASE WHEN state IN ('building', 'rejected') THEN ? ELSE state END "
            "WHERE kind = ? AND generation = ?",
            (store.encode_json(result), BUILDING if result.get("passed") else REJECTED, kind, generation),
        )


def clear_hold(session: Session, kind: str) -> None:
    """Forget a rollback hold on ``kind``'s active generation (the spec asks for its recipe again)."""
    with session.transaction():
        session.execute("UPDATE {generations} SET hold = NULL WHERE kind = ? AND state = 'active'", (kind,))


def drop_generation(store: Store, session: Session, kind: str, generation: int, tables: Sequence[TableDef]) -> int:
    """Garbage-collect an inactive generation in one transaction: its tables, its ledger
    rows; the generation's row stays, state ``dropped``, for history. Returns the
    ledger rows removed.

    Raises:
        StoreError: the generation is active (nothing was dropped).
    """
    with session.transaction():
        state = session.scalar("SELECT state FROM {generations} WHERE kind = ? AND generation = ?", (kind, generation))
        if state == ACTIVE:
            raise StoreError(f"{kind}: generation {generation} is active; it is never dropped")
        for table in tables:
            store.drop_table(session, table)
        removed = session.execute("DELETE FROM {ledger} WHERE kind = ? AND generation = ?", (kind, generation))
        session.execute(
            "UPDATE {generations} SET state = 'dropped', dropped_at = ?, hold = NULL WHERE kind = ? AND generation = ?",
            (now(), kind, generation),
        )
    return removed


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


def identical_values(session: Session, table: str, column: str) -> list[tuple[str, str, tuple[str, str]]]:
    """``(doc_id, text_hash, group)`` of the rows whose ``column`` value is identical to
    another row's of a different ``text_hash``; rows of one value share ``group``.

    A model maps different inputs to different values; identical ones are placeholders,
    unless the texts differ only where the model does not look (``artifacts.cache.
    placeholders`` tells them apart).
    """
    rows = session.query(
        "SELECT a.doc_id, a.text_hash, d.g1, d.g2 FROM {t} a JOIN (SELECT {col} AS v, min(text_hash) AS g1, "
        "max(text_hash) AS g2 FROM {t} GROUP BY {col} HAVING count(DISTINCT text_hash) > 1) d ON a.{col} = d.v "
        "ORDER BY a.doc_id",
        col=Col(column),
        t=table,
    )
    return [(r[0], r[1], (r[2], r[3])) for r in rows]


def row_stamps(
    session: Session, kind: str, generation: int, table: str, doc_ids: Sequence[str]
) -> dict[str, tuple[str, str, str]]:
    """``{doc_id: (ledger source_hash, row source_hash, row text_hash)}`` of ``doc_ids`` in
    generation ``generation`` of ``kind``, whose rows are in ``table`` (one a document)."""
    if not doc_ids:
        return {}
    rows = session.query(
        "SELECT l.doc_id, l.source_hash, a.source_hash, a.text_hash FROM {ledger} l JOIN {t} a "
        "ON a.doc_id = l.doc_id WHERE l.kind = ? AND l.generation = ? AND l.doc_id = ANY(?)",
        (kind, generation, list(doc_ids)),
        t=table,
    )
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def texts_of(session: Session, table: str, doc_ids: Sequence[str]) -> set[str]:
    """Every ``text_hash`` the rows of ``doc_ids`` hold in ``table``."""
    if not doc_ids:
        return set()
    rows = session.query("SELECT DISTINCT text_hash FROM {t} WHERE doc_id = ANY(?)", (list(doc_ids),), t=table)
    return {r[0] for r in rows}


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


def built_among(session: Session, kind: str, generation: int, doc_ids: Sequence[str]) -> int:
    """How many of ``doc_ids`` have rows in ``kind``'s ``generation``."""
    if not doc_ids:
        return 0
    return int(
        session.scalar(
            "SELECT count(DISTINCT doc_id) FROM {ledger} WHERE kind = ? AND generation = ? AND doc_id = ANY(?)",
            (kind, generation, list(doc_ids)),
        )
    )


def documents_built(session: Session, kind: str, generation: int) -> int:
    """How many documents the ledger records in ``kind``'s ``generation`` (those with no rows too)."""
    return int(
        session.scalar("SELECT count(*) FROM {ledger} WHERE kind = ? AND generation = ?", (kind, generation)) or 0
    )


def counts(session: Session) -> dict[tuple[str, int], int]:
    """Ledger rows per (kind, generation)."""
    rows = session.query("SELECT kind, generation, count(*) FROM {ledger} GROUP BY kind, generation")
    return {(r[0], int(r[1])): int(r[2]) for r in rows}


def sizes(session: Session) -> dict[tuple[str, int], tuple[int, int]]:
    """``(documents, items)`` the ledger records per (kind, generation)."""
    rows = session.query("SELECT kind, generation, count(*), sum(items) FROM {ledger} GROUP BY kind, generation")
    return {(r[0], int(r[1])): (int(r[2]), int(r[3] or 0)) for r in rows}


def item_counts(session: Session) -> dict[tuple[str, int], int]:
    """Artifact rows the ledger records per (kind, generation) (chunks, entities, ...)."""
    rows = session.query("SELECT kind, generation, sum(items) FROM {ledger} GROUP BY kind, generation")
    return {(r[0], int(r[1])): int(r[2] or 0) for r in rows}
