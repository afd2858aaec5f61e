"""A table (or view) of the user's own database as a source, read in place through a view.

ragstate never copies the table and never writes to it: it checks that the table fits
the mapping (``check``), creates a view in its own schema or with its prefix that
renames and converts the mapped columns (``map_table``), records the mapping in
``view_mappings``, and reads the documents through that view. Observing stages the
scope inside the database, content hashes computed there (``md5`` of the normalised
fields on PostgreSQL, ragstate's BLAKE2b as a registered function on SQLite), so no
text crosses into Python until a plan builds a document. docs/sources.md has the whole
design; ``InPlaceSource`` in ``sources.base`` is the contract observe relies on.

The table must live in the store's database (a schema of the same PostgreSQL database,
or the same SQLite file): a view cannot reach another database.
"""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ragstate.errors import DocumentError, DocumentTooLarge, MappingError, SpecError, StoreError
from ragstate.hashing import fingerprint
from ragstate.redact import redact
from ragstate.sources.base import Document, SourceProblem
from ragstate.spec.model import TableSourceSpec
from ragstate.stores import registry, views
from ragstate.stores.base import ColumnInfo, InPlaceTables, Session, Store
from ragstate.stores.dialect import ViewLayout
from ragstate.stores.documents import DocRef
from ragstate.stores.migrations import migrate

#: roles whose columns must read as text (binary data cannot)
_TEXT_ROLES = ("id", "text", "title", "abstract", "metadata")


@dataclass
class ColumnReport:
    """One mapped column as the compatibility check found it."""

    #: the spec field that names it: id, text, title, abstract, metadata, where
    field: str
    column: str
    #: the database's type, None when the column is missing
    sql_type: str | None
    #: direct (text already), convert (cast to text), binary (cannot be text), missing;
    #: ``compared`` for a filter column (compared in its own type, never converted)
    conversion: str


@dataclass
class MappingReport:
    """The result of checking (and perhaps mapping) a user's table.

    ``view_state`` is what was found before anything was done: ``current`` (the view
    exists and matches this mapping), ``missing`` or ``differs``; ``created`` says
    whether the view was (re)created now. A report with problems created nothing.
    """

    name: str
    table: str
    view: str
    columns: list[ColumnReport] = field(default_factory=list)
    #: rows the filters keep (None when the table could not be read)
    rows: int | None = None
    null_ids: int | None = None
    #: rows whose id another kept row also holds (beyond the first)
    duplicate_ids: int | None = None
    duplicate_examples: list[tuple[str, int]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the table's columns, as the database spells them (to see what a mapping can use)
    table_columns: list[str] = field(default_factory=list)
    view_state: str = "missing"
    created: bool = False
    #: the ``source`` section of a spec for this mapping
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def compatible(self) -> bool:
        return not self.problems

    @property
    def direct(self) -> list[ColumnReport]:
        return [c for c in self.columns if c.conversion == "direct"]

    @property
    def conversions(self) -> list[ColumnReport]:
        return [c for c in self.columns if c.conversion == "convert"]

    @property
    def missing(self) -> list[ColumnReport]:
        return [c for c in self.columns if c.conversion == "missing"]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["compatible"] = self.compatible
        for key in ("direct", "conversions", "missing"):
            data[key] = [asdict(c) for c in getattr(self, key)]
        data["duplicate_examples"] = [{"id": i, "rows": n} for i, n in self.duplicate_examples]
        return data


class TableSource:
    """Documents from a user's table through ragstate's view (see the module docstring)."""

    def __init__(self, spec: TableSourceSpec, store: Store):
        if spec.mode != "view" and spec.mode not in store.dialect.stored_modes:
            raise SpecError(
                f"source.mode: {spec.mode} is not available on {store.dialect.name} "
                f"(available: view, {', '.join(store.dialect.stored_modes)})"
            )
        self.spec = spec
        self.store = store
        self.name = spec.mapping_name
        self.view = views.view_name(self.name)
        #: what documents are read from: the view, or its copy or materialised view
        self.relation = views.relation_name(self.name, spec.mode)
        self.stored = spec.mode != "view"
        via = {"view": "through view", "copy": "copied through view", "materialized": "materialised from view"}
        self.description = f"table {spec.table} {via[spec.mode]} {view_display(store, self.name)}"
        #: seconds the last observation spent on the source: ``sync_s`` (refreshing the
        #: copy or materialised view), ``stage_s`` (staging the scope)
        self.timing: dict[str, Any] = {"mode": spec.mode}

    # --- InPlaceSource ----------------------------------------------------------------

    def problems(self, session: Session) -> list[SourceProblem]:
        spec, store = self.spec, self.store
        found = store.capability(InPlaceTables).user_columns(session, spec.schema_name, spec.table_name)
        if found is None:
            return [
                SourceProblem(
                    "table_missing",
                    f"source table {spec.table} is missing (dropped or renamed?); change source.table in the spec, "
                    "or restore the table",
                )
            ]
        out = []
        for c in _columns(store, spec, found):
            if c.conversion == "missing":
                out.append(
                    SourceProblem(
                        "column_missing",
                        f"source table {spec.table}: column {c.column} (source.{c.field}) is missing (renamed or "
                        f"dropped?); map another column in the spec{_hint(c.column, found)}",
                    )
                )
            elif c.conversion == "binary" and c.field in _TEXT_ROLES:
                out.append(
                    SourceProblem(
                        "column_type",
                        f"source table {spec.table}: column {c.column} (source.{c.field}) is now {c.sql_type}, "
                        "binary data that cannot be read as text",
                    )
                )
        if out:
            return out
        state, recorded = _view_state(store, session, spec)
        shown, table = view_display(store, self.name), spec.table
        problem = {
            "unrecorded": (
                "view_missing",
                f"view {shown} over {table} is not created yet; apply checks the table and creates it",
            ),
            "other": (
                "view_differs",
                f"mapping '{self.name}' in the store "
                f"({recorded.source_table if recorded else table}) differs from the spec; apply checks the "
                f"table and recreates view {shown}",
            ),
            "dropped": (
                "view_missing",
                f"view {shown} over {table}"
                + ("" if spec.mode == "view" else f" (or its {spec.mode} copy)")
                + " was dropped; apply recreates it",
            ),
            "changed": ("view_differs", f"view {shown} was changed outside ragstate; apply recreates it"),
        }.get(state)
        return [SourceProblem(*problem)] if problem else []

    def stage_scope(self, session: Session, limit: int | None) -> int:
        spec = self.spec
        registry.create_scope(session)
        layout = layout_of(spec, self.store)
        t0 = time.perf_counter()
        staged, kept = views.stage_scope(
            session, self.relation, layout, spec.where, limit, path=spec.table, stored=self.stored
        )
        self.timing["stage_s"] = round(time.perf_counter() - t0, 4)
        if staged < (kept if limit is None else min(kept, limit)):
            nulls, repeated = views.view_id_problems(session, self.relation, layout, spec.where)
            what = []
            if nulls:
                what.append(f"{nulls} rows have no id (NULL)")
            if repeated:
                what.append("ids are repeated: " + ", ".join(f"'{i}' in {n} rows" for i, n in repeated))
            raise DocumentError(
                f"source table {spec.table}: column {spec.id} (source.id) must hold a unique id in every row, but "
                + "; ".join(what or ["some rows could not be staged"])
                + " (`ragstate source check` reports them)",
                path=spec.table,
                doc_id=repeated[0][0] if repeated else None,
            )
        return staged

    def sync(self, session: Session) -> None:
        """Bring the copy or materialised view in step with the view (``source.mode``),
        before the observation's snapshot; nothing in mode ``view``."""
        t0 = time.perf_counter()
        views.sync(self.store, session, self.name, layout_of(self.spec, self.store), self.spec.mode)
        if self.stored:
            self.timing["sync_s"] = round(time.perf_counter() - t0, 4)

    def repair(self) -> list[str]:
        report = map_table(self.store, self.spec)
        if not report.compatible:
            raise MappingError(
                f"source table {self.spec.table} does not fit the mapping; nothing was created:\n  - "
                + "\n  - ".join(report.problems),
                table=self.spec.table,
                problems=report.problems,
            )
        return [f"created view {report.view} over {report.table}"] if report.created else []

    # --- Source -----------------------------------------------------------------------

    def snapshot(self, known: Any, *, rehash: bool = False) -> Any:
        raise NotImplementedError("an in-place source stages its scope in the database (stage_scope)")

    def load(self, refs: Sequence[DocRef]) -> Iterator[Document]:
        spec, store = self.spec, self.store
        layout = layout_of(spec, store)
        with store.session() as s:
            found = store.capability(InPlaceTables).user_columns(s, spec.schema_name, spec.table_name) or {}
            id_info = _find(found, spec.id, store.dialect.fold_case)
            rows: dict[str, tuple[Any, ...]] = {}
            wanted = [r.doc_id for r in refs]
            # Look up by the id column's own values where they can be spelled exactly
            # (integers, text), so the table's index on it serves; else by the text doc_id.
            raw: list[Any] | None = None
            if id_info is not None and store.dialect.is_integer_type(id_info.sql_type):
                raw = [int(d) for d in wanted if _canonical_int(d)]
            elif id_info is not None and store.dialect.text_conversion(id_info.sql_type) == "direct":
                raw = wanted
            if raw:
                rows.update(
                    (r[1], r)
                    for r in views.load_rows(
                        s, self.relation, layout, spec.where, raw, by_raw_id=True, stored=self.stored
                    )
                )
            rest = [d for d in wanted if d not in rows]
            if rest:
                rows.update(
                    (r[1], r)
                    for r in views.load_rows(
                        s, self.relation, layout, spec.where, rest, by_raw_id=False, stored=self.stored
                    )
                )
        fold = store.dialect.fold_case
        metadata_at = [(name, 5 + (_extra_index(layout.extras, name, fold) or 0)) for name in spec.metadata]
        for ref in refs:
            row = rows.get(ref.doc_id)
            if row is None:
                raise DocumentError(
                    f"document '{ref.doc_id}' is no longer in table {spec.table} (deleted, or no longer kept by "
                    "source.where)",
                    path=spec.table,
                    doc_id=ref.doc_id,
                )
            content_hash, doc_id, title, abstract, body = row[:5]
            size = sum(len(v.encode("utf-8")) for v in (title, abstract, body) if isinstance(v, str))
            if size > spec.max_document_bytes:
                raise DocumentTooLarge(
                    f"document '{doc_id}' of table {spec.table} is {size} bytes; the limit "
                    f"(source.max_document_bytes) is {spec.max_document_bytes}",
                    path=spec.table,
                    doc_id=doc_id,
                )
            metadata = {name: _text(row[i]) for name, i in metadata_at}
            yield Document(
                doc_id=doc_id,
                title=title,
                abstract=abstract,
                body=body,
                path=spec.table,
                metadata={name: value for name, value in metadata.items() if value is not None},
                source_hash=content_hash,
            )


# --- mapping ------------------------------------------------------------------------------


def mapped_columns(spec: TableSourceSpec) -> list[tuple[str, str]]:
    """``(spec field, column)`` of every column the mapping reads, in the view's order."""
    out = [("id", spec.id), ("text", spec.text)]
    out += [(name, getattr(spec, name)) for name in ("title", "abstract") if getattr(spec, name)]
    out += [("metadata", c) for c in spec.metadata]
    out += [("where", f.column) for f in spec.where]
    return out


def layout_of(spec: TableSourceSpec, store: Store) -> ViewLayout:
    """The view's columns: the four text fields, then the id, metadata and filter columns as they are."""
    extras: list[str] = []
    for column in [spec.id, *spec.metadata, *(f.column for f in spec.where)]:
        if _extra_index(extras, column, store.dialect.fold_case) is None:
            extras.append(column)
    return ViewLayout(
        source=spec.table, id=spec.id, text=spec.text, title=spec.title, abstract=spec.abstract, extras=tuple(extras)
    )


def mapping_fingerprint(spec: TableSourceSpec) -> str:
    """What the view and the staging queries are made from (a change recreates the view)."""
    return fingerprint({"layout": views.VIEW_LAYOUT_VERSION, "definition": spec.definition()})


def view_display(store: Store, name: str) -> str:
    """The view's name as people read it (``ragstate.src_articles``, ``rs_src_articles``)."""
    return store.dialect.table(views.view_name(name)).replace('"', "")


def check(store: Store, session: Session, spec: TableSourceSpec) -> MappingReport:
    """Check that the user's table fits ``spec``; read-only, creates nothing.

    Checks: the table and every mapped column exist; the id column is unique and not
    null among the rows the filters keep (or how many rows violate it); the text
    columns are text or convertible to text (binary data is not); the filters run.
    """
    report = MappingReport(
        name=spec.mapping_name,
        table=spec.table,
        view=view_display(store, spec.mapping_name),
        spec=spec.model_dump(mode="json", exclude_defaults=True),
    )
    found = store.capability(InPlaceTables).user_columns(session, spec.schema_name, spec.table_name)
    if found is None:
        relations = store.capability(InPlaceTables).user_relations(session, spec.schema_name)
        where = f"schema {spec.schema_name or 'public'}" if store.dialect.name == "postgresql" else "this database"
        report.problems.append(
            f"table {spec.table} does not exist in {where} (or this role cannot see it)"
            + _hint(spec.table_name, dict.fromkeys(relations))
        )
        return report
    report.table_columns = list(found)
    report.columns = _columns(store, spec, found)
    for c in report.columns:
        if c.conversion == "missing":
            report.problems.append(
                f"column {spec.table}.{c.column} (source.{c.field}) does not exist{_hint(c.column, found)}"
            )
        elif c.conversion == "binary" and c.field in _TEXT_ROLES:
            report.problems.append(
                f"column {spec.table}.{c.column} (source.{c.field}) is {c.sql_type}: binary data cannot be read as text"
            )
    # Rows can be counted without the other columns, not without the id or a filter's.
    if not any(c.conversion == "missing" and c.field in ("id", "where") for c in report.columns):
        _check_rows(session, spec, report)
    state, recorded = _view_state(store, session, spec)
    if recorded is not None and recorded.source_table != spec.table:
        report.notes.append(f"mapping '{spec.mapping_name}' now maps {recorded.source_table}; mapping replaces it")
    report.view_state = {"current": "current", "unrecorded": "missing", "dropped": "missing"}.get(state, "differs")
    return report


def _columns(store: Store, spec: TableSourceSpec, found: dict[str, ColumnInfo]) -> list[ColumnReport]:
    """Each mapped column as the database has it, and how it becomes text."""
    out = []
    for field_name, column in mapped_columns(spec):
        info = _find(found, column, store.dialect.fold_case)
        if info is None:
            out.append(ColumnReport(field_name, column, None, "missing"))
        else:
            conversion = "compared" if field_name == "where" else store.dialect.text_conversion(info.sql_type)
            out.append(ColumnReport(field_name, column, info.sql_type, conversion))
    return out


def _view_state(store: Store, session: Session, spec: TableSourceSpec) -> tuple[str, views.RecordedMapping | None]:
    """The view of ``spec`` as found: ``current``; ``unrecorded``; ``other`` (recorded from
    another mapping); ``dropped``; ``changed`` (its columns changed outside ragstate)."""
    recorded = views.recorded(store, session, spec.mapping_name)
    if recorded is None:
        return "unrecorded", None
    if recorded.fingerprint != mapping_fingerprint(spec):
        return "other", recorded
    try:
        columns = store.columns(session, views.view_name(spec.mapping_name))
    except StoreError:  # SQLite reports a view whose columns were renamed away as broken
        return "changed", recorded
    if columns is None:
        return "dropped", recorded
    if spec.mode != "view" and store.columns(session, views.relation_name(spec.mapping_name, spec.mode)) is None:
        return "dropped", recorded  # its copy or materialised view is gone: recreated with the view
    return ("current" if set(columns) == set(layout_of(spec, store).columns) else "changed"), recorded


def _check_rows(session: Session, spec: TableSourceSpec, report: MappingReport) -> None:
    try:
        rows, with_id, distinct = views.id_counts(session, spec.table, spec.id, spec.where)
        report.rows, report.null_ids, report.duplicate_ids = rows, rows - with_id, with_id - distinct
        if report.null_ids:
            report.problems.append(
                f"column {spec.table}.{spec.id} (source.id): {report.null_ids} of {rows} rows have no id (NULL)"
            )
        if report.duplicate_ids:
            report.duplicate_examples = views.duplicate_ids(session, spec.table, spec.id, spec.where)
            examples = ", ".join(f"'{i}' in {n} rows" for i, n in report.duplicate_examples)
            report.problems.append(
                f"column {spec.table}.{spec.id} (source.id) is not unique: {report.duplicate_ids} rows repeat "
                f"an id ({examples})"
            )
        for column in report.columns:
            if column.field in _TEXT_ROLES and column.conversion in ("direct", "convert"):
                n = views.binary_values(session, spec.table, column.column, spec.where)
                if n:
                    report.problems.append(
                        f"column {spec.table}.{column.column} (source.{column.field}): {n} rows hold binary data, "
                        "which cannot be read as text"
                    )
    except StoreError as exc:  # no SELECT right, a filter value the column's type refuses, ...
        report.problems.append(f"cannot read table {spec.table}: {redact(str(exc))}")
        return
    if rows == 0:
        report.notes.append("no rows" + (" match source.where" if spec.where else " in the table") + " yet")


def map_table(store: Store, spec: TableSourceSpec, *, create: bool = True) -> MappingReport:
    """Check the user's table and, if it fits, (re)create its view and record the mapping.

    Nothing is created when the check finds a problem, when ``create`` is false (a dry
    run), or when the view already matches. Returns the report either way.
    """
    with store.session() as s:
        report = check(store, s, spec)
    if not report.compatible or not create or report.view_state == "current":
        return report
    migrate(store)  # the view-mappings table (and the rest of ragstate's tables)
    columns = {c.column: c.sql_type or "" for c in report.columns}
    with store.session() as s:
        views.create(
            store, s, spec.mapping_name, layout_of(spec, store), spec.definition(), mapping_fingerprint(spec), columns
        )
    report.created = True
    return report


def check_recorded(store: Store, name: str) -> MappingReport:
    """Re-check a mapping recorded in the store (made by ``map-table``) by its name.

    Raises:
        MappingError: no mapping of that name is recorded.
    """
    with store.session() as s:
        recorded = views.recorded(store, s, name)
    if recorded is None:
        raise MappingError(f"no mapping named '{name}' is recorded in {store.description}", table=name, problems=[])
    spec = TableSourceSpec(**recorded.definition, name=name)
    with store.session() as s:
        report = check(store, s, spec)
        if report.compatible:
            views.touch(store, s, name)
    return report


# --- helpers ------------------------------------------------------------------------------


def _find(found: dict[str, ColumnInfo], column: str, fold_case: bool) -> ColumnInfo | None:
    if column in found:
        return found[column]
    if fold_case:
        for name, info in found.items():
            if name.lower() == column.lower():
                return info
    return None


def _extra_index(extras: Sequence[str], column: str, fold_case: bool) -> int | None:
    """Where ``column`` is among the view's extra columns (names compared as the database does)."""
    for i, name in enumerate(extras):
        if name == column or (fold_case and name.lower() == column.lower()):
            return i
    return None


def _hint(name: str, candidates: dict[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    lower = [c for c in candidates if c.lower() == name.lower() and c != name]
    guess = lower[0] if lower else close[0] if close else None
    return f" (did you mean {guess}?)" if guess else ""


def _canonical_int(text: str) -> bool:
    try:
        return str(int(text)) == text
    except ValueError:
        return False


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (bytes, bytearray, memoryview)):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)
