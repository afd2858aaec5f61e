"""The embedded default: one SQLite file, vectors as float32 blobs searched with sqlite-vec.

The driver is apsw, chosen by measurement (BENCHMARKS.md, "SQLite driver"): the
standard library's ``sqlite3`` here cannot load extensions, and among the drop-ins that
can (pysqlite3-binary, sqlean.py, apsw) apsw was fastest on every operation ragstate
does in bulk. Each thread gets its own connection to the file; WAL mode lets readers
run beside the one writer.

Durability: ``synchronous=NORMAL`` in WAL mode survives a killed process (the case
ragstate's crash tests exercise); a power cut may lose the last committed batches,
which the next reconcile rebuilds, because the ledger is committed with the rows.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import apsw
import numpy as np
import sqlite_vec

from ragstate.errors import StoreConfigError, StoreError, StoreUnavailable
from ragstate.hashing import content_hash
from ragstate.identifiers import ident
from ragstate.stores.base import (
    Check,
    ColumnInfo,
    FullTextSearch,
    InPlaceTables,
    ProcessLock,
    ProcessLocks,
    Session,
    Store,
    VectorSearch,
    check_vector,
    norms,
)
from ragstate.stores.dialect import Col
from ragstate.stores.schema import TableDef
from ragstate.stores.sqlite.dialect import SQLiteDialect

BUSY_TIMEOUT_MS = 30_000


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Map apsw's exceptions onto ragstate's taxonomy (busy → transient)."""
    try:
        yield
    except (apsw.BusyError, apsw.LockedError) as exc:
        raise StoreUnavailable(f"{what}: database is locked by another process ({exc})") from exc
    except apsw.CantOpenError as exc:
        raise StoreConfigError(f"{what}: cannot open the database file ({exc})") from exc
    except (apsw.CorruptError, apsw.NotADBError) as exc:
        raise StoreError(f"{what}: {exc}; `ragstate doctor` names the damage and how to rebuild the store") from exc
    except (apsw.ReadOnlyError, apsw.PermissionsError, apsw.AuthError) as exc:
        raise StoreConfigError(f"{what}: not allowed ({exc})") from exc
    except apsw.Error as exc:
        raise StoreError(f"{what}: {exc}") from exc


def _content_hash(title: Any, abstract: Any, body: Any) -> str:
    """``content_hash`` as an SQL function (NULL is '', other values as text)."""
    return content_hash(*("" if v is None else v if isinstance(v, str) else str(v) for v in (title, abstract, body)))


class SQLiteSession(Session):
    def __init__(self, conn: apsw.Connection, dialect: SQLiteDialect, where: str):
        self.conn = conn
        self.dialect = dialect
        self.where = where
        self._depth = 0

    def execute(self, template: str, params: Sequence[Any] = (), **tables: str) -> int:
        sql = self.dialect.render(template, **tables)
        with _translated(self.where):
            before = self.conn.total_changes()
            self.conn.execute(sql, self.params(params))
            changed = self.conn.total_changes() - before
        self.schema_changed(sql)
        return changed

    def executemany(self, template: str, rows: Iterable[Sequence[Any]], **tables: str) -> None:
        sql = self.dialect.render(template, **tables)
        with _translated(self.where):
            self.conn.executemany(sql, (tuple(r) for r in rows))

    def query(self, template: str, params: Sequence[Any] = (), **tables: str) -> list[tuple[Any, ...]]:
        sql = self.dialect.render(template, **tables)
        with _translated(self.where):
            return [tuple(r) for r in self.conn.execute(sql, self.params(params))]

    def iter_query(
        self, template: str, params: Sequence[Any] = (), *, chunk: int = 10_000, **tables: str
    ) -> Iterator[tuple[Any, ...]]:
        sql = self.dialect.render(template, **tables)
        with _translated(self.where):
            for row in self.conn.execute(sql, self.params(params)):
                yield tuple(row)

    def copy_rows(self, table: TableDef, rows: Iterable[Sequence[Any]], *, temp: bool = False) -> int:
        name = self.dialect.temp_table(table.name) if temp else self.dialect.table(table.name)
        sql = self.dialect.insert(name, table.column_names)
        count = 0

        def counted() -> Iterator[tuple[Any, ...]]:
            nonlocal count
            for r in rows:
                count += 1
                yield tuple(r)

        with _translated(self.where):
            self.conn.executemany(sql, counted())
        return count

    @contextmanager
    def read_transaction(self) -> Iterator[Session]:
        # A deferred transaction reads one WAL snapshot; writes to temp tables do not
        # take the database's write lock.
        if self._depth:
            yield self
            return
        with _translated(self.where):
            self.conn.execute("BEGIN DEFERRED")
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            with _translated(self.where):
                self.conn.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        begin, commit, rollback = self.dialect.transaction_statements(self._depth)
        with _translated(self.where):
            self.conn.execute(begin)
        self._depth += 1
        try:
            yield self
        except BaseException:
            self._depth -= 1
            with _translated(self.where):
                self.conn.execute(rollback)
            raise
        else:
            self._depth -= 1
            with _translated(self.where):
                self.conn.execute(commit)


class _FileLock(ProcessLock):
    """An OS lock on a file beside the database (``flock``; ``msvcrt.locking`` on Windows).

    The kernel releases it when the process dies, however it dies, and it cannot be lost
    while the process lives, so ``check`` has nothing to do.
    """

    def __init__(self, fd: int):
        self._fd: int | None = fd

    def check(self) -> None:
        return None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            _unlock_file(fd)
            os.close(fd)


def _lock_file(fd: int) -> bool:
    """Take an exclusive lock on open file ``fd`` without waiting; False if it is held."""
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock_file(fd: int) -> None:
    if os.name == "nt":  # pragma: no cover
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


class SQLiteStore(Store, VectorSearch, FullTextSearch, ProcessLocks, InPlaceTables):
    """ragstate's tables in one SQLite file (prefix ``rs_`` by default)."""

    def __init__(self, path: Path, *, prefix: str = "rs_"):
        if str(path) == ":memory:":
            raise StoreConfigError("sqlite::memory: cannot be a store: reconciled data must outlive the process")
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise StoreConfigError(f"store {self.path}: folder {self.path.parent} does not exist")
        self.dialect = SQLiteDialect(prefix)
        self.description = f"sqlite {self.path}"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[apsw.Connection] = []
        self._closed = False

    def exists(self) -> bool:
        return self.path.exists()

    # --- connections ------------------------------------------------------------------

    def _connection(self) -> SQLiteSession:
        session = getattr(self._local, "session", None)
        if session is not None:
            return session
        if self._closed:
            raise StoreError(f"{self.description}: store is closed")
        with _translated(self.description):
            conn = apsw.Connection(str(self.path), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
            conn.setbusytimeout(BUSY_TIMEOUT_MS)
            conn.enable_load_extension(True)
            conn.load_extension(sqlite_vec.loadable_path())
            conn.enable_load_extension(False)
            conn.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY")
            # A double-quoted name that matches no column must be an error, not a string
            # literal: otherwise a view over a user's table whose column was dropped
            # would read the column's name as every row's text.
            conn.config(apsw.SQLITE_DBCONFIG_DQS_DML, 0)
            conn.config(apsw.SQLITE_DBCONFIG_DQS_DDL, 0)
            # In-place sources hash in the database with the same algorithm as files.
            conn.create_scalar_function("rs_content_hash", _content_hash, 3, deterministic=True)
        session = SQLiteSession(conn, self.dialect, self.description)
        self._local.session = session
        with self._lock:
            self._connections.append(conn)
        return session

    @contextmanager
    def session(self) -> Iterator[Session]:
        yield self._connection()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._connections:
                try:
                    conn.close()
                except apsw.Error:
                    pass
            self._connections.clear()
        self._local = threading.local()

    def process_lock(self, name: str) -> ProcessLock | None:
        # Beside the database, never deleted: unlinking a lock file lets two processes
        # lock two different files of the same name.
        path = self.path.with_name(f"{self.path.name}.{ident(name, what='lock name')}.lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreConfigError(f"{self.description}: cannot open the lock file {path}: {exc.strerror}") from None
        if not _lock_file(fd):
            os.close(fd)
            return None
        return _FileLock(fd)

    # --- schema -----------------------------------------------------------------------

    def prepare(self, session: Session) -> None:
        if not os.access(self.path.parent, os.W_OK):
            raise StoreConfigError(f"store {self.path}: folder {self.path.parent} is not writable")

    def integrity(self, session: Session) -> tuple[list[str], list[str]]:
        try:
            rows = session.query("PRAGMA quick_check")
            problems = [line for r in rows for line in str(r[0]).splitlines() if line and not line.startswith("***")]
        except StoreError as exc:  # too damaged to be walked through
            problems = [str(exc.__cause__ or exc)]
        if problems == ["ok"]:
            return [], []
        # quick_check names a damaged b-tree by its root page ("Tree 8 page 8 cell 29: ..."); when
        # it names none, each table is checked alone to find those that fail
        pages = {int(m) for p in problems for m in re.findall(r"\bTree (\d+)\b", p)}
        tables: set[str] = set()
        try:
            catalog = session.query(
                "SELECT tbl_name, rootpage, type FROM sqlite_master WHERE tbl_name LIKE ?", (self.dialect.prefix + "%",)
            )
        except StoreError:
            return problems, []  # the catalog itself is damaged: the problems say so
        for name, root, type_ in catalog:
            if root in pages:
                tables.add(str(name))
            elif not pages and type_ == "table":
                try:
                    alone = session.query(self.dialect.quick_check(str(name)))
                except StoreError:
                    alone = [("damaged",)]
                if [tuple(r) for r in alone] != [("ok",)]:
                    tables.add(str(name))
        return problems, sorted(tables)

    def diagnose(self, session: Session, *, fulltext_languages: Sequence[str] = ()) -> list[Check]:
        version, vec = session.query("SELECT sqlite_version(), vec_version()")[0]
        checks = [
            Check("store.reachable", "ok", f"SQLite {version} (apsw {apsw.apswversion()}), file {self.path}"),
            Check("store.vector", "ok", f"sqlite-vec {vec} loaded"),
        ]
        try:
            session.execute("CREATE VIRTUAL TABLE {tmp_fts_probe} USING fts5(x, tokenize = 'porter unicode61')")
            session.execute("DROP TABLE {tmp_fts_probe}")
            checks.append(Check("store.fulltext", "ok", "FTS5 with the Porter stemmer"))
        except StoreError as exc:
            checks.append(
                Check(
                    "store.fulltext",
                    "fail",
                    f"this SQLite has no FTS5 ({exc})",
                    "install apsw from its wheels (they bundle SQLite with FTS5): pip install --force-reinstall apsw",
                )
            )
        conn = self._connection().conn
        folder = self.path.parent
        if conn.readonly("main"):
            checks.append(
                Check(
                    "store.rights",
                    "fail",
                    f"{self.path} is read-only for this process",
                    f"give the user running ragstate write access to {self.path} and {folder}",
                )
            )
        elif not os.access(folder, os.W_OK):
            checks.append(
                Check(
                    "store.rights",
                    "fail",
                    f"folder {folder} is not writable (SQLite writes its journal beside the file)",
                    f"give the user running ragstate write access to {folder}",
                )
            )
        else:
            checks.append(Check("store.rights", "ok", f"{self.path} and its folder are writable"))
        return checks

    def columns(self, session: Session, table: str) -> dict[str, ColumnInfo] | None:
        every = self.cached(session, "columns", self._all_columns)
        if every is not None:
            return every.get(table)
        rows = session.query("SELECT name, type FROM pragma_table_info(?)", (self.dialect.prefix + table,))
        if not rows:
            return None
        return {name: ColumnInfo(name, (type_ or "").lower()) for name, type_ in rows}

    def _all_columns(self, session: Session) -> dict[str, dict[str, ColumnInfo]]:
        """Columns of every table and view with ragstate's prefix, by unprefixed name (one query)."""
        prefix = self.dialect.prefix
        out: dict[str, dict[str, ColumnInfo]] = {}
        for table, name, type_ in session.query(
            "SELECT m.name, p.name, p.type FROM sqlite_schema m JOIN pragma_table_info(m.name) p "
            "WHERE m.type IN ('table', 'view') AND substr(m.name, 1, length(?)) = ? ORDER BY m.name, p.cid",
            (prefix, prefix),
        ):
            out.setdefault(table[len(prefix) :], {})[name] = ColumnInfo(name, (type_ or "").lower())
        return out

    def indexes(self, session: Session, table: str) -> set[str] | None:
        if self.columns(session, table) is None:
            return None
        physical = self.dialect.prefix + table
        every = self.cached(session, "indexes", self._all_indexes)
        if every is not None:
            named = every.get(physical, set())
        else:
            named = {r[0] for r in session.query("SELECT name FROM pragma_index_list(?)", (physical,))}
        return named | self._fulltext_indexes(session, physical)

    def _all_indexes(self, session: Session) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for table, name in session.query(
            "SELECT m.name, i.name FROM sqlite_schema m JOIN pragma_index_list(m.name) i WHERE m.type = 'table'"
        ):
            out.setdefault(table, set()).add(name)
        return out

    def _fulltext_indexes(self, session: Session, physical: str) -> set[str]:
        """FTS5 tables over ``physical`` that are whole: all three triggers present and one
        indexed row per row of the table (otherwise the index is reported missing, and
        repair recreates and rebuilds it)."""
        every = self.cached(session, "triggers", self._all_triggers)
        if every is not None:
            triggers = every.get(physical, set())
        else:
            triggers = {
                r[0]
                for r in session.query(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (physical,)
                )
            }
        found = set()
        for name in triggers:
            fts = name.removesuffix("_ai")
            if name == fts or not {fts + "_ad", fts + "_au"} <= triggers:
                continue
            if (
                session.scalar("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (fts + "_docsize",))
                is None
            ):
                continue
            rows, indexed = session.query(
                "SELECT (SELECT count(*) FROM {t}), (SELECT count(*) FROM {d})",
                t=physical.removeprefix(self.dialect.prefix),
                d=(fts + "_docsize").removeprefix(self.dialect.prefix),
            )[0]
            if rows == indexed:
                found.add(fts)
        return found

    def _all_triggers(self, session: Session) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for table, name in session.query("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'"):
            out.setdefault(table, set()).add(name)
        return out

    def user_columns(self, session: Session, schema: str | None, table: str) -> dict[str, ColumnInfo] | None:
        if schema not in (None, "main"):
            return None  # a view in this file can read only this file's tables
        found = session.scalar(
            "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE", (table,)
        )
        if found is None:
            return None
        rows = session.query("SELECT name, type FROM pragma_table_info(?) ORDER BY cid", (found,))
        return {name: ColumnInfo(name, type_ or "") for name, type_ in rows}

    def user_relations(self, session: Session, schema: str | None) -> list[str]:
        if schema not in (None, "main"):
            return []
        rows = session.query("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') ORDER BY name")
        return [r[0] for r in rows]

    # --- values -----------------------------------------------------------------------

    def encode_vector(self, vector: np.ndarray) -> bytes:
        return np.ascontiguousarray(vector, dtype="<f4").tobytes()

    def decode_vector(self, value: Any) -> np.ndarray:
        if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) % 4:
            raise ValueError("not a float32 vector blob")
        return np.frombuffer(value, dtype="<f4")

    # --- vector capabilities ----------------------------------------------------------

    def vector_quality(
        self, session: Session, table: str, column: str, dimension: int, normalized: bool, key: str = "doc_id"
    ) -> list[tuple[str, str]]:
        bad: list[tuple[str, str]] = []
        width = 4 * dimension
        keys: list[str] = []
        blobs: list[bytes] = []

        def flush() -> None:
            if not keys:
                return
            matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(keys), dimension)
            finite = np.isfinite(matrix).all(axis=1)
            lengths = norms(np.where(np.isfinite(matrix), matrix, 0))
            suspect = ~finite | (lengths < 1e-6) | (normalized & (np.abs(lengths - 1.0) > 1e-3))
            for i in np.flatnonzero(suspect):
                reason = check_vector(matrix[i], dimension, normalized)
                if reason:
                    bad.append((keys[i], reason))
            keys.clear()
            blobs.clear()

        for k, value in session.iter_query("SELECT {key}, {col} FROM {t}", key=Col(key), col=Col(column), t=table):
            if not isinstance(value, (bytes, bytearray, memoryview)):
                bad.append((k, "unreadable"))
            elif len(value) != width:
                bad.append((k, "unreadable" if len(value) % 4 else f"dimension {len(value) // 4}"))
            else:
                keys.append(k)
                blobs.append(bytes(value))
                if len(keys) >= 8192:
                    flush()
        flush()
        return bad

    def fulltext_search(
        self, session: Session, table: TableDef, query: str, k: int, *, any_word: bool = False
    ) -> list[tuple[str, float]]:
        index = next(ix for ix in table.indexes if ix.method == "fulltext")
        # Each word becomes a quoted FTS5 string, so user text can never be FTS5 syntax.
        match = (" OR " if any_word else " ").join('"' + w + '"' for w in re.findall(r"\w+", query))
        if not match:
            return []
        rows = session.query(self.dialect.fulltext_query(table, index), (match, int(k)))
        return [(r[0], float(r[1])) for r in rows]

    def nearest_items(
        self, session: Session, table: str, column: str, query: np.ndarray, k: int, key: str = "doc_id"
    ) -> list[tuple[str, str, float]]:
        rows = session.query(
            # A zero vector has no cosine distance (NULL): it can never be a neighbour.
            "SELECT doc_id, k, d FROM (SELECT doc_id, {key} AS k, vec_distance_cosine({col}, ?) AS d FROM {t}) "
            "WHERE d IS NOT NULL ORDER BY d LIMIT ?",
            (self.encode_vector(query), int(k)),
            key=Col(key),
            col=Col(column),
            t=table,
        )
        return [(r[0], r[1], float(r[2])) for r in rows]
