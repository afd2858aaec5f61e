"""The store contract: a small core, and the capabilities a backend may add.

A backend is one folder (``sqlite/``, ``postgres/``) with a ``dialect.py`` and a
``store.py`` implementing ``Store`` and ``Session``, and declaring the capabilities it
implements. Everything above this layer (ledger, registry, run records, artifact kinds,
the retrieval reads) speaks through ``Session`` with statement templates, so a third
backend (IRIS) is one more folder with the same two files.

The core, which every backend implements:

=====================  ===========================================================
``Store.session()``    one connection, for reads and temporary tables
``Session.transaction``  all-or-nothing writes; artifact and ledger rows of a batch
                       are always written inside one
``Store.migrate()``    brings the universal tables to the current schema version
``copy_rows``          bulk insert (COPY on PostgreSQL, executemany on SQLite)
=====================  ===========================================================

The capabilities (``CAPABILITIES``), asked for with ``store.capability(X)``:

=====================  ===========================================================
``VectorSearch``       ``nearest_items``: rows nearest to a vector (sqlite-vec, or
                       pgvector's HNSW index); ``vector_quality``: rows whose vectors
                       are unreadable, non-finite, zero, or not unit length when
                       they should be
``FullTextSearch``     ``fulltext_search``: rows matching a text query through a
                       table's fulltext index
``ProcessLocks``       ``process_lock``: a lock released by the OS or server when its
                       holder dies (the single-writer lock of ``stores.locks``)
``InPlaceTables``      ``user_columns``, ``user_relations``: a user's own tables,
                       read through a view that hashes rows in the database
=====================  ===========================================================
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from ragstate.errors import MissingCapability, RagstateError
from ragstate.redact import redact_data
from ragstate.stores.dialect import Dialect
from ragstate.stores.schema import TableDef


@dataclass(frozen=True)
class ColumnInfo:
    """A column as the database reports it (for schema drift).

    ``sql_type`` is lower case and spelled as ``Dialect.column_type`` spells it, so
    the two compare as strings (``vector(384)`` includes the dimension).
    """

    name: str
    sql_type: str


@dataclass(frozen=True)
class SchemaProblem:
    """One difference between a table definition and the database."""

    table: str
    #: missing_table | missing_column | wrong_type | missing_index | pending_migration
    what: str
    message: str

    @property
    def repairable(self) -> bool:
        """Fixable in place by creating what is missing (a wrong type is not)."""
        return self.what != "wrong_type"

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Check:
    """One finding of ``ragstate doctor``: what was checked, how it went, and the fix.

    ``status``: ``ok``, ``warn`` (works, but worth knowing), ``fail`` (ragstate cannot
    work until the fix is made) or ``skipped`` (an earlier failure hides it).
    ``cheap`` checks run at the start of every apply too.
    """

    name: str
    status: str
    detail: str
    fix: str = ""
    cheap: bool = True

    @property
    def failed(self) -> bool:
        return self.status == "fail"


_DDL = ("CREATE", "DROP", "ALTER", "REFRESH")


def changes_schema(sql: str) -> bool:
    """True for a statement that may change ragstate's catalog (DDL not on a temporary
    table): it clears a session's catalog snapshot."""
    return sql.lstrip()[:8].upper().startswith(_DDL) and "rs_tmp_" not in sql


class Session(ABC):
    """One connection. Statement templates are rendered by the store's dialect."""

    dialect: Dialect
    #: a snapshot of ragstate's catalog while inside ``Store.catalog_snapshot`` (else None)
    catalog: dict[str, Any] | None = None

    def schema_changed(self, sql: str) -> None:
        """Called after each statement: DDL clears the catalog snapshot."""
        if self.catalog and changes_schema(sql):
            self.catalog.clear()

    @abstractmethod
    def execute(self, template: str, params: Sequence[Any] = (), **tables: str) -> int:
        """Run one statement; return the number of rows it changed (-1 if unknown)."""

    @abstractmethod
    def executemany(self, template: str, rows: Iterable[Sequence[Any]], **tables: str) -> None:
        """Run one statement for each parameter row."""

    @abstractmethod
    def query(self, template: str, params: Sequence[Any] = (), **tables: str) -> list[tuple[Any, ...]]:
        """Run a query and return all rows."""

    @abstractmethod
    def iter_query(
        self, template: str, params: Sequence[Any] = (), *, chunk: int = 10_000, **tables: str
    ) -> Iterator[tuple[Any, ...]]:
        """Run a query and stream its rows, ``chunk`` at a time from the server."""

    @abstractmethod
    def copy_rows(self, table: TableDef, rows: Iterable[Sequence[Any]], *, temp: bool = False) -> int:
        """Bulk-insert ``rows`` (in ``table.columns`` order); return how many."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Session]:
        """All statements inside commit together or not at all."""

    @abstractmethod
    def read_transaction(self) -> AbstractContextManager[Session]:
        """A consistent snapshot for reads (temporary tables may be written).

        Takes no write lock, so observing never waits for a running apply.
        """

    def scalar(self, template: str, params: Sequence[Any] = (), **tables: str) -> Any:
        rows = self.query(template, params, **tables)
        return rows[0][0] if rows else None

    def params(self, params: Sequence[Any]) -> tuple[Any, ...]:
        """Driver values for ``params``: a Python list (for ``= ANY(?)``) as the dialect wants it."""
        return tuple(self.dialect.list_param(p) if isinstance(p, list) else p for p in params)


class ProcessLock(ABC):
    """A lock held by this process, released by the OS or the server when it dies (kill -9 too)."""

    @abstractmethod
    def check(self) -> None:
        """Return if the lock is still held; take it again if it was lost and is free.

        Raises:
            WriterLockLost: another process holds it now.
            StoreUnavailable: it cannot be told now (the server is unreachable).
        """

    @abstractmethod
    def release(self) -> None:
        """Let the lock go (idempotent)."""


class Store(ABC):
    """A database holding ragstate's tables: SQLite (default) or PostgreSQL."""

    dialect: Dialect
    #: human-readable, password-free description, e.g. ``sqlite /data/rag.db``
    description: str
    #: sessions that can be open at once (a connection pool's size), None when unbounded
    max_sessions: int | None = None

    @abstractmethod
    def session(self) -> AbstractContextManager[Session]:
        """A connection for the duration of the ``with`` block."""

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction."""
        with self.session() as s, s.transaction():
            yield s

    @abstractmethod
    def close(self) -> None:
        """Release every connection."""

    def exists(self) -> bool:
        """False when the store is not there yet (a SQLite file no apply has created).

        Reading commands (``plan``, ``status``) then create nothing where the spec points.
        """
        return True

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- capabilities -------------------------------------------------------------------

    def capability(self, capability: type[C]) -> C:
        """This store as ``capability`` (one of ``CAPABILITIES``), for code that needs it.

        Raises:
            MissingCapability: this backend does not implement it (named, with what it does).
        """
        if isinstance(self, capability):
            return self
        raise MissingCapability(self.description, capability.__name__, CAPABILITIES.get(capability, ""))

    def capabilities(self) -> dict[str, bool]:
        """Each capability of ``CAPABILITIES`` by name: whether this backend implements it."""
        return {c.__name__: isinstance(self, c) for c in CAPABILITIES}

    # --- schema -----------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Bring the universal tables to the current version; return versions applied."""
        from ragstate.stores.migrations import migrate

        return migrate(self)

    @contextmanager
    def catalog_snapshot(self, session: Session) -> Iterator[None]:
        """Inside the block, ``columns`` and ``indexes`` of ragstate's tables come from one
        read of the catalog (a query or two, loaded on first use), not a query per table.
        DDL run through ``session`` clears it; so use it where the schema is read many
        times and changed rarely (an observation). Nested blocks share the outer one."""
        if session.catalog is not None:
            yield
            return
        session.catalog = {}
        try:
            yield
        finally:
            session.catalog = None

    def cached(self, session: Session, what: str, load: Any) -> Any:
        """``load(session)``, once per catalog snapshot (None outside one, or when the
        snapshot cannot be read in one go: callers then query table by table)."""
        catalog = session.catalog
        if catalog is None:
            return None
        if what not in catalog:
            try:
                catalog[what] = load(session)
            except RagstateError:  # e.g. a view SQLite reports as broken: read table by table
                catalog[what] = None
        return catalog[what]

    @abstractmethod
    def prepare(self, session: Session) -> None:
        """Create what the tables live in (a schema, extensions), idempotently."""

    @abstractmethod
    def columns(self, session: Session, table: str) -> dict[str, ColumnInfo] | None:
        """Columns of ragstate table ``table`` as the database has it, or None if absent."""

    @abstractmethod
    def indexes(self, session: Session, table: str) -> set[str] | None:
        """Physical index names on ragstate table ``table``, or None if it is absent."""

    # --- doctor -----------------------------------------------------------------------

    def diagnose(self, session: Session, *, fulltext_languages: Sequence[str] = ()) -> list[Check]:
        """What this backend needs, checked without changing anything: extensions (with
        versions), full-text search (and its ``fulltext_languages``), and the rights to
        create and write ragstate's tables."""
        return []

    def integrity(self, session: Session) -> tuple[list[str], list[str]]:
        """Damage the database itself reports (``doctor``): ``(problems, tables)``, the
        problems in the database's words and the ragstate tables they hit (when known);
        two empty lists for an undamaged store. Reads the whole store: not cheap."""
        return [], []

    def data_directory(self, session: Session) -> Path | None:
        """The folder the database writes to, when this process can see it (for the
        free-space check), else None."""
        return None

    def ensure_table(self, session: Session, table: TableDef) -> None:
        for statement in self.dialect.create_table(table):
            session.execute(statement)

    def drop_table(self, session: Session, table: TableDef) -> None:
        """Drop ``table`` and what its indexes keep beside it (SQLite's FTS5 tables)."""
        for statement in self.dialect.drop_table(table):
            session.execute(statement)

    def table_problems(self, session: Session, table: TableDef, *, vector_indexes: bool = True) -> list[SchemaProblem]:
        """What differs between ``table`` and the database (empty: none)."""
        found = self.columns(session, table.name)
        if found is None:
            return [SchemaProblem(table.name, "missing_table", f"table {table.name} is missing")]
        problems = []
        for c in table.columns:
            info = found.get(c.name)
            expected = self.dialect.column_type(c).lower()
            if info is None:
                problems.append(SchemaProblem(table.name, "missing_column", f"column {table.name}.{c.name} is missing"))
            elif info.sql_type != expected:
                problems.append(
                    SchemaProblem(
                        table.name,
                        "wrong_type",
                        f"column {table.name}.{c.name} is {info.sql_type}, expected {expected}",
                    )
                )
        present = self.indexes(session, table.name) or set()
        for ix in table.indexes:
            if ix.method == "vector" and not vector_indexes:
                continue
            name = self.dialect.index_name(table, ix)
            if name and name not in present:
                problems.append(SchemaProblem(table.name, "missing_index", f"index {name} on {table.name} is missing"))
        return problems

    # --- values -----------------------------------------------------------------------

    @abstractmethod
    def encode_vector(self, vector: np.ndarray) -> Any:
        """A float32 vector as the driver's parameter value."""

    @abstractmethod
    def decode_vector(self, value: Any) -> np.ndarray:
        """A stored vector value back to float32 numpy (raises ValueError if unreadable)."""

    def encode_json(self, value: Any, *, redacted: bool = True) -> str:
        """``value`` as JSON text for a JSON column, secrets masked (``ragstate.redact``).

        ``redacted=False`` only for the user's own data that ragstate reads back as it was
        written (a table mapping's filter values).
        """
        return json.dumps(redact_data(value) if redacted else value, sort_keys=True, separators=(",", ":"), default=str)

    def decode_json(self, value: Any) -> Any:
        if value is None or not isinstance(value, (str, bytes)):
            return value
        return json.loads(value)


def now() -> float:
    """Wall-clock time as stored in ragstate's tables (seconds since the epoch)."""
    return time.time()


def norms(values: np.ndarray) -> np.ndarray:
    """Euclidean norms along the last axis, computed in float64: a float32 vector of huge
    (finite) values overflows float32 when squared, and numpy warns into verify's output."""
    return np.linalg.norm(np.asarray(values, dtype=np.float64), axis=-1)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two arrays of the same shape (float64, see ``norms``); 0 for a zero row."""
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.sum(a64 * b64, axis=-1) / np.maximum(norms(a64) * norms(b64), 1e-12)


def check_vector(vector: np.ndarray, dimension: int, normalized: bool) -> str | None:
    """The reason ``vector`` fails the quality checks, or None. One definition for all."""
    if vector.shape != (dimension,):
        return f"dimension {vector.size}"
    if not np.all(np.isfinite(vector)):
        return "non-finite"
    norm = float(norms(vector))
    if norm < 1e-6:
        return "zero norm"
    if normalized and abs(norm - 1.0) > 1e-3:
        return f"norm {norm:.4f} (expected 1)"
    return None


# --- capabilities ----------------------------------------------------------------------
#
# What a backend may implement beyond the core ``Store``. A backend declares each one it
# implements by subclassing it (``class SQLiteStore(Store, VectorSearch, …)``), which also
# makes its abstract methods binding; code that needs one asks ``store.capability(X)``,
# which raises ``MissingCapability`` naming the backend and the capability when it is not
# there. The protocols are runtime-checkable, so a backend that implements the methods
# without subclassing is recognised too.

C = TypeVar("C")


@runtime_checkable
class VectorSearch(Protocol):
    """Vectors in a column: the rows nearest to a query vector, and the vectors' quality."""

    @abstractmethod
    def vector_quality(
        self, session: Session, table: str, column: str, dimension: int, normalized: bool, key: str = "doc_id"
    ) -> list[tuple[str, str]]:
        """``(key, reason)`` for every row whose vector fails the quality checks.

        Reasons: ``unreadable``, ``dimension N``, ``non-finite``, ``zero norm``,
        ``norm X (expected 1)``.
        """

    def nearest(
        self, session: Session, table: str, column: str, query: np.ndarray, k: int, key: str = "doc_id"
    ) -> list[tuple[str, float]]:
        """The ``k`` rows nearest to ``query`` by cosine distance: ``(key, distance)``, nearest first."""
        return [(item, d) for _, item, d in self.nearest_items(session, table, column, query, k, key)]

    @abstractmethod
    def nearest_items(
        self, session: Session, table: str, column: str, query: np.ndarray, k: int, key: str = "doc_id"
    ) -> list[tuple[str, str, float]]:
        """The ``k`` rows nearest to ``query`` by cosine distance: ``(doc_id, key, distance)``,
        nearest first (exhaustive on SQLite; through the HNSW index on PostgreSQL, approximate).
        ``key`` names the item column of tables with several rows a document (``chunk_id``)."""

    def vector_index(self, session: Session, table: TableDef) -> None:
        """Create the approximate-nearest-neighbour indexes of ``table`` (if supported).

        Called when a generation is complete, because building an index over a full
        table is much faster than maintaining it row by row during a bulk load.
        SQLite has no such index (sqlite-vec searches exhaustively), hence no-op here.
        """
        return None


@runtime_checkable
class FullTextSearch(Protocol):
    """Rows matching a text query through a table's full-text index."""

    @abstractmethod
    def fulltext_search(
        self, session: Session, table: TableDef, query: str, k: int, *, any_word: bool = False
    ) -> list[tuple[str, float]]:
        """``(doc_id, score)`` of the ``k`` best rows of ``table`` matching ``query`` (every
        word must occur, or with ``any_word`` at least one), best first, through the table's
        fulltext index; scores are ``ts_rank`` on PostgreSQL (higher is better) and bm25 on
        SQLite (lower is better), so compare ranks, not scores, across backends."""


@runtime_checkable
class ProcessLocks(Protocol):
    """Store-wide locks released by the OS or the server when their holder dies (advisory
    locks on PostgreSQL, a lock file beside the database on SQLite); ``stores.locks``
    builds the single-writer lock on them."""

    @abstractmethod
    def process_lock(self, name: str) -> ProcessLock | None:
        """Try once to take the store-wide lock ``name``; None if another process holds it."""


@runtime_checkable
class InPlaceTables(Protocol):
    """A user's own tables in this database, read in place through a view that hashes each
    row's content in the database (``sources.table``, ``Dialect.view_sql``)."""

    @abstractmethod
    def user_columns(self, session: Session, schema: str | None, table: str) -> dict[str, ColumnInfo] | None:
        """Columns of the user's table or view ``schema.table`` in this database, in order;
        None when there is none (or this role cannot see it). Types as the database spells them.
        """

    @abstractmethod
    def user_relations(self, session: Session, schema: str | None) -> list[str]:
        """Names of the tables and views in the user's ``schema`` (for "did you mean")."""


#: every capability a backend may implement, with what it gives (``doctor`` lists them)
CAPABILITIES: dict[type, str] = {
    VectorSearch: "the rows nearest to a vector, and vector quality checks",
    FullTextSearch: "rows matching words through a full-text index",
    ProcessLocks: "locks released when their holder dies, under the single-writer lock",
    InPlaceTables: "a user's tables read through a view, rows hashed in the database",
}
