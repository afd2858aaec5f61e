"""In-place sources in the store: view mappings, the views, and the queries that read them.

A user's table is read through a view that ragstate creates in its own schema (or with
its prefix) and records in ``view_mappings``. Every statement here is a template
rendered by the dialect: ragstate's names as ``{name}``, the user's as ``UserName``,
filter conditions and the content hash as the dialect's markers (``view_sql``), values
always bound. Nothing here ever writes to the user's table; the only statements that
write touch ragstate's view, its mapping row and the plan's temporary ``scope``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ragstate.stores.base import Session, Store, now
from ragstate.stores.dialect import Filter, UserName, ViewLayout
from ragstate.stores.schema import VIEW_MAPPINGS

#: bumped whenever ``Dialect.create_view`` changes what the view holds: every recorded
#: view is then recreated by the next apply
VIEW_LAYOUT_VERSION = 1

_STAGE = (
    "INSERT INTO {tmp_scope} (doc_id, content_hash, title, path, pos, byte_offset, title_chars, abstract_chars, "
    "body_chars) SELECT doc_id, /*content_hash*/, title, ?, 0, 0, length(title), length(abstract), length(body) "
    "FROM {view} WHERE doc_id IS NOT NULL AND /*filter*/ ON CONFLICT (doc_id) DO NOTHING"
)
# The first N documents of a table are the first N in the order of its id column.
_STAGE_FIRST = (
    "INSERT INTO {tmp_scope} (doc_id, content_hash, title, path, pos, byte_offset, title_chars, abstract_chars, "
    "body_chars) SELECT doc_id, /*content_hash*/, title, ?, 0, 0, length(title), length(abstract), length(body) "
    "FROM {view} WHERE doc_id IS NOT NULL AND /*filter*/ ORDER BY {raw_id}, doc_id LIMIT ? "
    "ON CONFLICT (doc_id) DO NOTHING"
)
_LOAD_BY_DOC_ID = "SELECT /*content_hash*/, v.* FROM {view} v WHERE v.doc_id = ANY(?) AND /*filter*/"
_LOAD_BY_RAW_ID = "SELECT /*content_hash*/, v.* FROM {view} v WHERE {raw_id} = ANY(?) AND /*filter*/"


@dataclass(frozen=True)
class RecordedMapping:
    """A row of ``view_mappings``."""

    name: str
    view_name: str
    source_table: str
    definition: dict[str, Any]
    fingerprint: str
    columns: dict[str, str]
    created_at: float
    checked_at: float


def view_name(mapping_name: str) -> str:
    """The (unprefixed) name of the view of mapping ``mapping_name``."""
    return "src_" + mapping_name


#: what ``source.mode`` reads documents from, besides the view itself
STORED_SUFFIX = {"copy": "_copy", "materialized": "_mat"}


def relation_name(mapping_name: str, mode: str) -> str:
    """What observing and loading read for ``mode``: the view, its copy (a table ragstate
    keeps in step) or its materialised view (refreshed before each observation)."""
    return view_name(mapping_name) + STORED_SUFFIX.get(mode, "")


def sync(store: Store, session: Session, mapping_name: str, layout: ViewLayout, mode: str) -> None:
    """Bring the copy or materialised view of ``mapping_name`` in step with its view
    (nothing for ``view``): one pass over the view, in one transaction."""
    if mode == "view":
        return
    relation = relation_name(mapping_name, mode)
    with session.transaction():
        if mode == "materialized":
            session.execute(store.dialect.refresh_materialized(relation))
        else:
            for statement in store.dialect.sync_copy(relation, view_name(mapping_name), layout):
                session.execute(statement)


def recorded(store: Store, session: Session, name: str) -> RecordedMapping | None:
    """The recorded mapping ``name``, or None (also when the table is not there yet)."""
    if store.columns(session, VIEW_MAPPINGS.name) is None:
        return None
    rows = session.query(
        "SELECT name, view_name, source_table, definition, fingerprint, columns, created_at, checked_at "
        "FROM {view_mappings} WHERE name = ?",
        (name,),
    )
    if not rows:
        return None
    r = rows[0]
    return RecordedMapping(
        r[0], r[1], r[2], store.decode_json(r[3]), r[4], store.decode_json(r[5]), float(r[6]), float(r[7])
    )


def create(
    store: Store,
    session: Session,
    name: str,
    layout: ViewLayout,
    definition: dict[str, Any],
    fingerprint: str,
    columns: dict[str, str],
) -> None:
    """(Re)create the view of mapping ``name`` (and its copy or materialised view, for
    ``definition["mode"]``) and record it, in one transaction."""
    stamp = now()
    old = recorded(store, session, name)
    mode = definition.get("mode", "view")
    d = store.dialect
    with session.transaction():
        # A materialised view depends on the view: it goes first, whatever the old mode.
        for statement in d.drop_stored(relation_name(name, "copy"), relation_name(name, "materialized")):
            session.execute(statement)
        for statement in d.create_view(view_name(name), layout):
            session.execute(statement)
        if mode != "view":
            for statement in d.create_stored(mode, relation_name(name, mode), view_name(name), layout):
                session.execute(statement)
        session.execute(
            store.dialect.upsert(VIEW_MAPPINGS.name, VIEW_MAPPINGS.column_names, VIEW_MAPPINGS.primary_key),
            (
                name,
                view_name(name),
                layout.source,
                store.encode_json(definition, redacted=False),  # read back by `source check`
                fingerprint,
                store.encode_json(columns),
                old.created_at if old is not None else stamp,
                stamp,
            ),
        )


def touch(store: Store, session: Session, name: str) -> None:
    """Record that mapping ``name`` was checked now."""
    with session.transaction():
        session.execute("UPDATE {view_mappings} SET checked_at = ? WHERE name = ?", (now(), name))


# --- reading the user's table directly (the compatibility check, before any view) --------


def id_counts(session: Session, source: str, id_column: str, filters: Sequence[Filter]) -> tuple[int, int, int]:
    """``(rows, rows with an id, distinct ids)`` among the rows the filters keep."""
    template = session.dialect.view_sql(
        "SELECT count(*), count({id}), count(DISTINCT CAST({id} AS TEXT)) FROM {src} WHERE /*filter*/", filters
    )
    row = session.query(template, session.dialect.filter_params(filters), src=UserName(source), id=UserName(id_column))
    rows, with_id, distinct = row[0]
    return int(rows), int(with_id), int(distinct)


def duplicate_ids(
    session: Session, source: str, id_column: str, filters: Sequence[Filter], *, limit: int = 3
) -> list[tuple[str, int]]:
    """A few ids that more than one kept row holds, with how many rows hold each."""
    template = session.dialect.view_sql(
        "SELECT CAST({id} AS TEXT), count(*) FROM {src} WHERE {id} IS NOT NULL AND /*filter*/ "
        "GROUP BY CAST({id} AS TEXT) HAVING count(*) > 1 ORDER BY count(*) DESC, 1 LIMIT ?",
        filters,
    )
    rows = session.query(
        template, [*session.dialect.filter_params(filters), limit], src=UserName(source), id=UserName(id_column)
    )
    return [(str(r[0]), int(r[1])) for r in rows]


def binary_values(session: Session, source: str, column: str, filters: Sequence[Filter]) -> int:
    """Kept rows whose ``column`` holds binary data where its type allows that (else 0)."""
    template = session.dialect.binary_values_sql()
    if template is None:
        return 0
    sql = session.dialect.view_sql(template, filters)
    return int(
        session.scalar(sql, session.dialect.filter_params(filters), src=UserName(source), col=UserName(column)) or 0
    )


# --- reading through the view -------------------------------------------------------------


def stage_scope(
    session: Session,
    relation: str,
    layout: ViewLayout,
    filters: Sequence[Filter],
    limit: int | None,
    path: str,
    *,
    stored: bool = False,
) -> tuple[int, int]:
    """Insert the documents of ``relation`` (the view, or its copy or materialised view
    when ``stored``: hashes already computed) into the temporary ``scope``.

    Returns ``(staged, kept)``: rows staged, and rows the filters keep (ids missing or
    repeated make the first smaller). The caller creates ``scope`` first.
    """
    d = session.dialect
    params: list[Any] = [path, *d.filter_params(filters)]
    names = {"view": relation, "raw_id": UserName(layout.EXTRA_PREFIX + layout.id)}
    pre = layout.EXTRA_PREFIX
    if limit is None:
        staged = session.execute(d.view_sql(_STAGE, filters, prefix=pre, stored_hash=stored), params, **names)
    else:
        staged = session.execute(
            d.view_sql(_STAGE_FIRST, filters, prefix=pre, stored_hash=stored), [*params, limit], **names
        )
    kept = session.scalar(
        d.view_sql("SELECT count(*) FROM {view} WHERE /*filter*/", filters, prefix=pre),
        d.filter_params(filters),
        view=relation,
    )
    return int(staged), int(kept)


def view_id_problems(
    session: Session, relation: str, layout: ViewLayout, filters: Sequence[Filter]
) -> tuple[int, list[tuple[str, int]]]:
    """``(rows without an id, a few repeated ids with their counts)`` among the kept rows."""
    d = session.dialect
    params = d.filter_params(filters)
    nulls = session.scalar(
        d.view_sql(
            "SELECT count(*) FROM {view} WHERE doc_id IS NULL AND /*filter*/", filters, prefix=layout.EXTRA_PREFIX
        ),
        params,
        view=relation,
    )
    repeated = session.query(
        d.view_sql(
            "SELECT doc_id, count(*) FROM {view} WHERE doc_id IS NOT NULL AND /*filter*/ "
            "GROUP BY doc_id HAVING count(*) > 1 ORDER BY count(*) DESC, doc_id LIMIT 3",
            filters,
            prefix=layout.EXTRA_PREFIX,
        ),
        params,
        view=relation,
    )
    return int(nulls or 0), [(str(r[0]), int(r[1])) for r in repeated]


def load_rows(
    session: Session,
    relation: str,
    layout: ViewLayout,
    filters: Sequence[Filter],
    ids: Sequence[Any],
    *,
    by_raw_id: bool,
    stored: bool = False,
) -> list[tuple[Any, ...]]:
    """Rows of ``relation`` (the view, its copy or its materialised view when ``stored``)
    for ``ids``: ``(content_hash, doc_id, title, abstract, body, *extras)`` (a stored
    relation adds its ``content_hash`` again at the end).

    ``by_raw_id`` looks the rows up by the id column's own values (integers, or text
    of a text column), so the table's index on it serves; otherwise by the text ``doc_id``.
    """
    d = session.dialect
    template = _LOAD_BY_RAW_ID if by_raw_id else _LOAD_BY_DOC_ID
    return session.query(
        d.view_sql(template, filters, prefix=layout.EXTRA_PREFIX, stored_hash=stored),
        [list(ids), *d.filter_params(filters)],
        view=relation,
        raw_id=UserName(layout.EXTRA_PREFIX + layout.id),
    )
