"""The server backend: PostgreSQL with pgvector, through psycopg 3 and a connection pool.

Vectors live in typed ``vector(dim)`` columns with HNSW indexes (cosine); bulk writes
use binary COPY. Connections are in autocommit mode and every write happens inside an
explicit transaction, so nothing is ever committed by accident.

pgvector itself refuses NaN, infinity and vectors of the wrong dimension on input, so on
this backend those corruptions cannot be stored; the quality checks that remain are
zero norm and unit length.

No statement hangs: the server cancels one that runs (or waits for a lock) longer than
``store.statement_timeout_s``, and a server that does not answer at all (paused, its
host frozen) cannot cancel anything, so ``_Watchdog`` closes the connection of a statement
still unanswered ``connect_timeout_s`` later. Both are ``StoreTimeout``, transient.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ragstate.errors import StoreConfigError, StoreError, StoreTimeout, StoreUnavailable, WriterLockLost
from ragstate.hashing import lock_key
from ragstate.redact import redact, register_secret, secret_from_file
from ragstate.spec.model import StoreSpec
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
)
from ragstate.stores.dialect import Col
from ragstate.stores.postgres.dialect import PostgresDialect
from ragstate.stores.schema import ColumnType, TableDef

try:
    import psycopg
    import psycopg.errors as pg_errors
    from pgvector.psycopg import register_vector

    try:
        from pgvector import Vector  # pgvector >= 0.4
    except ImportError:
        from pgvector.utils import Vector  # pgvector 0.3
    from psycopg.adapt import Dumper
    from psycopg.pq import Format
    from psycopg.types import TypeInfo
    from psycopg.types.json import Jsonb
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise StoreConfigError("a postgresql:// store needs the postgres extra: pip install 'ragstate[postgres]'") from exc

_COPY_TYPES = {
    ColumnType.TEXT: "text",
    ColumnType.INT: "int4",
    ColumnType.BIGINT: "int8",
    ColumnType.FLOAT: "float8",
    ColumnType.BOOL: "bool",
    ColumnType.BLOB: "bytea",
    ColumnType.JSON: "jsonb",
    ColumnType.VECTOR: "vector",
}

#: errors that mean "try again": the server went away, a lock or serialisation conflict
_TRANSIENT = (
    psycopg.OperationalError,
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.LockNotAvailable,
    pg_errors.AdminShutdown,
    pg_errors.CannotConnectNow,
)


class EncodedVector(bytes):
    """A vector already in pgvector's binary wire format (dimension, then big-endian
    float32s). Encoded where the batch is computed, so the writer thread's COPY passes
    the bytes through instead of converting every vector as it writes."""

    @classmethod
    def of(cls, vector: np.ndarray) -> EncodedVector:
        values = np.asarray(vector, dtype=">f4").ravel()
        return cls(struct.pack(">HH", len(values), 0) + values.tobytes())

    def array(self) -> np.ndarray:
        (dim,) = struct.unpack_from(">H", self)
        return np.frombuffer(self, dtype=">f4", count=dim, offset=4).astype(np.float32)


def _as_vector(obj: Any) -> Vector:
    # Vector's public to_binary/to_text are the same in every pgvector release; its
    # private _to_db helpers are not (0.5 dropped _to_db_binary).
    return obj if isinstance(obj, Vector) else Vector(obj)


def _configure(conn: psycopg.Connection) -> None:
    """Per pooled connection: pgvector's types, and the pass-through dumper of ``EncodedVector``
    (none when the database has no pgvector: only a store opened without preparing it, for
    ``doctor``, gets that far)."""
    try:
        register_vector(conn)
    except psycopg.ProgrammingError:
        return
    info = TypeInfo.fetch(conn, "vector")
    assert info is not None  # register_vector raised otherwise

    # COPY with set_types picks the dumper by the column's type, not the value's: these
    # also take what pgvector's own dumpers take (arrays, Vector), e.g. reused stored values.
    class Binary(Dumper):
        format = Format.BINARY
        oid = info.oid

        def dump(self, obj: Any) -> bytes:
            return bytes(obj) if isinstance(obj, EncodedVector) else _as_vector(obj).to_binary()

    class Text(Dumper):
        oid = info.oid

        def dump(self, obj: Any) -> bytes:
            return _as_vector(obj.array() if isinstance(obj, EncodedVector) else obj).to_text().encode()

    conn.adapters.register_dumper(EncodedVector, Text)
    conn.adapters.register_dumper(EncodedVector, Binary)


class _Watchdog:
    """Closes the connection of a statement the server has not answered by its deadline.

    One thread for the process, started with the first watched statement; it looks every
    ``TICK_S`` at the statements running now. Closing the socket makes the waiting call
    return at once (the connection is lost; the pool discards it)."""

    TICK_S = 0.25

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, tuple[float, psycopg.Connection]] = {}
        self._closed: set[int] = set()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, conn: psycopg.Connection, seconds: float | None, where: str) -> Iterator[None]:
        if seconds is None:
            yield
            return
        key = id(conn)
        with self._lock:
            nested = key in self._running
            if not nested:
                self._running[key] = (time.monotonic() + seconds, conn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="ragstate-pg-watchdog", daemon=True)
                self._thread.start()
        try:
            yield
        except psycopg.Error as exc:
            with self._lock:
                closed = key in self._closed
            if closed and not nested:
                raise StoreTimeout(
                    f"{where}: the server did not answer a statement within {seconds:g} s "
                    "(store.statement_timeout_s, plus connect_timeout_s for a server that cannot cancel it); "
                    "the connection was closed: is the server paused or overloaded?"
                ) from exc
            raise
        finally:
            if not nested:
                with self._lock:
                    self._running.pop(key, None)
                    self._closed.discard(key)

    def _loop(self) -> None:
        while True:
            time.sleep(self.TICK_S)
            now = time.monotonic()
            # Under the lock: a statement that ends meanwhile cannot hand its connection back to
            # the pool between being found overdue and having its socket shut (a quick syscall).
            with self._lock:
                overdue = [(k, c) for k, (due, c) in self._running.items() if due <= now and k not in self._closed]
                self._closed.update(k for k, _ in overdue)
                for _, conn in overdue:
                    try:
                        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
                            sock.shutdown(socket.SHUT_RDWR)
                    except (OSError, psycopg.Error):
                        pass  # already closed: the statement ended anyway


_WATCHDOG = _Watchdog()


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Map psycopg's exceptions onto ragstate's taxonomy; messages lose any secret."""
    try:
        yield
    except pg_errors.QueryCanceled as exc:  # statement_timeout (or an administrator's cancel)
        raise StoreTimeout(
            f"{what}: a statement was cancelled by the server after store.statement_timeout_s "
            f"(a lock held by another session, or an overloaded server): {redact(str(exc)).strip()}"
        ) from exc
    except pg_errors.InsufficientPrivilege as exc:
        raise StoreConfigError(f"{what}: permission denied: {redact(str(exc)).strip()}") from exc
    except _TRANSIENT as exc:
        raise StoreUnavailable(f"{what}: {redact(str(exc)).strip()}") from exc
    except PoolTimeout as exc:
        raise StoreUnavailable(f"{what}: no connection available ({redact(str(exc)).strip()})") from exc
    except psycopg.Error as exc:
        raise StoreError(f"{what}: {redact(str(exc)).strip()}") from exc


class PostgresSession(Session):
    def __init__(self, conn: psycopg.Connection, dialect: PostgresDialect, where: str, deadline_s: float | None = None):
        self.conn = conn
        self.dialect = dialect
        self.where = where
        #: how long the client waits for an answer to one statement (None: for ever)
        self.deadline_s = deadline_s

    def _bounded(self) -> Any:
        return _WATCHDOG.watch(self.conn, self.deadline_s, self.where)

    def execute(self, template: str, params: Sequence[Any] = (), **tables: str) -> int:
        sql = self.dialect.render(template, **tables)
        with _translated(self.where), self._bounded():
            cur = self.conn.execute(sql, self.params(params))
        self.schema_changed(sql)
        return cur.rowcount

    def executemany(self, template: str, rows: Iterable[Sequence[Any]], **tables: str) -> None:
        sql = self.dialect.render(template, **tables)
        with _translated(self.where), self._bounded(), self.conn.cursor() as cur:
            cur.executemany(sql, [tuple(r) for r in rows])

    def query(self, template: str, params: Sequence[Any] = (), **tables: str) -> list[tuple[Any, ...]]:
        sql = self.dialect.render(template, **tables)
        with _translated(self.where), self._bounded():
            return [tuple(r) for r in self.conn.execute(sql, self.params(params)).fetchall()]

    def iter_query(
        self, template: str, params: Sequence[Any] = (), *, chunk: int = 10_000, **tables: str
    ) -> Iterator[tuple[Any, ...]]:
        sql = self.dialect.render(template, **tables)
        with _translated(self.where), self.conn.cursor() as cur:
            # each round trip is bounded, not the caller's work between chunks
            with self._bounded():
                cur.execute(sql, self.params(params))
            while True:
                with self._bounded():
                    rows = cur.fetchmany(chunk)
                if not rows:
                    break
                yield from (tuple(r) for r in rows)

    def copy_rows(self, table: TableDef, rows: Iterable[Sequence[Any]], *, temp: bool = False) -> int:
        name = self.dialect.temp_table(table.name) if temp else self.dialect.table(table.name)
        json_cols = [i for i, c in enumerate(table.columns) if c.type is ColumnType.JSON]
        count = 0
        with _translated(self.where), self._bounded(), self.conn.cursor() as cur:
            with cur.copy(self.dialect.copy_from(name, table.column_names)) as copy:
                copy.set_types([_COPY_TYPES[c.type] for c in table.columns])
                for row in rows:
                    if json_cols:
                        row = list(row)
                        for i in json_cols:
                            row[i] = None if row[i] is None else Jsonb(_json_value(row[i]))
                    copy.write_row(row)
                    count += 1
        return count

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with _translated(self.where), self.conn.transaction():
            yield self

    @contextmanager
    def read_transaction(self) -> Iterator[Session]:
        if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            yield self
            return
        with _translated(self.where), self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield self


class _AdvisoryLock(ProcessLock):
    """A session-level advisory lock on a connection of its own (outside the pool).

    The server releases it when that connection ends, including when this process is
    killed. If the connection is lost (the server restarted), ``check`` reconnects and
    takes the lock again, unless another process has it by then.
    """

    def __init__(self, store: PostgresStore, name: str):
        self._store = store
        self._name = name
        self._key = lock_key(f"ragstate:{store.dialect.schema}:{name}")
        self._conn: psycopg.Connection | None = None

    def try_acquire(self) -> bool:
        with _translated(self._store.description):
            conn = psycopg.connect(self._store.url, **self._store._kwargs, application_name=f"ragstate {self._name}")
        session = PostgresSession(conn, self._store.dialect, self._store.description, self._store._deadline_s)
        try:
            held = bool(session.scalar("SELECT pg_try_advisory_lock(?)", (self._key,)))
        except BaseException:
            conn.close()
            raise
        if not held:
            conn.close()
            return False
        self._conn = conn
        return True

    def check(self) -> None:
        if self._conn is not None and not self._conn.closed:
            try:
                PostgresSession(
                    self._conn, self._store.dialect, self._store.description, self._store._deadline_s
                ).scalar("SELECT 1")
                return
            except StoreUnavailable:
                pass
        self._close()
        if not self.try_acquire():
            raise WriterLockLost(
                f"{self._store.description}: the connection holding the writer lock was lost and another "
                "process has taken the lock; this run stopped (committed batches stay)"
            )

    def release(self) -> None:
        # Unlock before closing: closing alone frees the lock only when the server's
        # backend has exited, a moment later, and a caller may try to take it at once.
        if self._conn is not None and not self._conn.closed:
            try:
                PostgresSession(self._conn, self._store.dialect, self._store.description).scalar(
                    "SELECT pg_advisory_unlock(?)", (self._key,)
                )
            except StoreError:
                pass  # the connection is gone, and the lock with it
        self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass


def _json_value(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _lacks(privileges: str, on: str) -> str:
    """A grant ``doctor`` finds missing, in its message: ``CREATE on schema s`` (privilege
    names, not SQL text)."""
    return f"{privileges} on {on}"


class PostgresStore(Store, VectorSearch, FullTextSearch, ProcessLocks, InPlaceTables):
    """ragstate's tables in one schema (``ragstate`` by default) of a PostgreSQL database.

    ``prepare=False`` only connects: nothing is created (``doctor`` diagnoses a store
    that way, before anything would fail).
    """

    def __init__(self, spec: StoreSpec, *, prepare: bool = True):
        self.dialect = PostgresDialect(spec.schema_name)
        self.url = spec.url.replace("postgres://", "postgresql://", 1)
        self.description = f"postgresql {redact(self.url)} (schema {spec.schema_name})"
        self.max_sessions = spec.pool_size
        self.statement_timeout_s = spec.statement_timeout_s
        # a server that cannot cancel (paused) is given connect_timeout_s more, then the client gives up
        self._deadline_s = spec.statement_timeout_s + spec.connect_timeout_s
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, int(spec.connect_timeout_s)),
            "options": f"-c statement_timeout={max(1, round(spec.statement_timeout_s * 1000))}",
        }
        if spec.password_file is not None:
            try:
                self._kwargs["password"] = secret_from_file(spec.password_file)
            except (OSError, ValueError) as exc:
                raise StoreConfigError(
                    f"store.password_file {spec.password_file}: cannot read a password ({exc})"
                ) from None
        import os

        register_secret(os.environ.get("PGPASSWORD"))
        self._probe(prepare)
        self._pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=spec.pool_size,
            kwargs=self._kwargs,
            configure=_configure,
            open=False,
            name="ragstate",
            # Waiting for a connection is bounded like connecting: during an outage each
            # try fails within this time, and the retry policy and breaker decide the rest.
            timeout=spec.connect_timeout_s,
        )
        with _translated(self.description):
            self._pool.open(wait=True, timeout=spec.connect_timeout_s)

    def _probe(self, prepare: bool) -> None:
        """Connect once without the pool, to fail fast with the server's own reason."""
        try:
            with psycopg.connect(self.url, **self._kwargs) as conn:
                session = PostgresSession(conn, self.dialect, self.description)
                if prepare:
                    self.prepare(session)
        except psycopg.OperationalError as exc:
            lines = [line.strip() for line in redact(str(exc)).splitlines() if line.strip()]
            reason = "; ".join(lines) if lines else type(exc).__name__
            raise StoreUnavailable(f"cannot connect to {redact(self.url)}: {reason}") from None
        except psycopg.ProgrammingError as exc:
            raise StoreConfigError(f"{self.description}: {redact(str(exc)).strip()}") from None

    @contextmanager
    def session(self) -> Iterator[Session]:
        with _translated(self.description), self._pool.connection() as conn:
            yield PostgresSession(conn, self.dialect, self.description, self._deadline_s)

    def close(self) -> None:
        self._pool.close()

    def process_lock(self, name: str) -> ProcessLock | None:
        lock = _AdvisoryLock(self, name)
        return lock if lock.try_acquire() else None

    # --- schema -----------------------------------------------------------------------

    def prepare(self, session: Session) -> None:
        have = session.scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        if have is None:
            available = session.scalar("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            if available is None:
                raise StoreConfigError(
                    f"{self.description}: the server has no pgvector extension; install pgvector "
                    "(https://github.com/pgvector/pgvector) on the server"
                )
            try:
                with session.transaction():
                    session.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except StoreError as exc:
                # IF NOT EXISTS is not atomic: a process opening the store at the same
                # moment may have created it first, which is as good.
                if session.scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'") is None:
                    raise StoreConfigError(
                        f"{self.description}: pgvector is not enabled in this database and this role cannot "
                        f"enable it; ask an administrator to run CREATE EXTENSION vector ({exc})"
                    ) from None
        exists = session.scalar("SELECT 1 FROM pg_namespace WHERE nspname = ?", (self.dialect.schema,))
        if exists is None:
            try:
                with session.transaction():
                    session.execute("CREATE SCHEMA IF NOT EXISTS {s}", s=Col(self.dialect.schema))
            except StoreError:
                if session.scalar("SELECT 1 FROM pg_namespace WHERE nspname = ?", (self.dialect.schema,)) is None:
                    raise

    def integrity(self, session: Session) -> tuple[list[str], list[str]]:
        # What can be checked without changing anything: indexes marked invalid, and with
        # amcheck (when an administrator installed it) the structure of every B-tree index.
        indexes = session.query(
            "SELECT c.oid::regclass::text, c.relname, t.relname, i.indisvalid, a.amname FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am a ON a.oid = c.relam "
            "WHERE n.nspname = ? ORDER BY c.relname",
            (self.dialect.schema,),
        )
        problems: list[str] = []
        tables: set[str] = set()
        for _, index, table, valid, _ in indexes:
            if not valid:
                problems.append(f"index {index} of {table} is invalid (pg_index.indisvalid is false)")
                tables.add(table)
        if session.scalar("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'"):
            for qualified, index, table, valid, method in indexes:
                if valid and method == "btree":
                    try:
                        session.query("SELECT bt_index_check(?::regclass)", (qualified,))
                    except StoreError as exc:
                        problems.append(f"index {index} of {table}: {exc}")
                        tables.add(table)
        return problems, sorted(tables)

    def diagnose(self, session: Session, *, fulltext_languages: Sequence[str] = ()) -> list[Check]:
        checks = []
        server = session.scalar("SHOW server_version")
        database, role, superuser = session.query(
            "SELECT current_database(), current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
        )[0]
        checks.append(Check("store.reachable", "ok", f"PostgreSQL {server}, database {database}, role {role}"))
        installed = session.scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        available = session.query(
            "SELECT e.default_version, v.trusted FROM pg_available_extensions e JOIN pg_available_extension_versions v "
            "ON v.name = e.name AND v.version = e.default_version WHERE e.name = 'vector'"
        )
        may_create_in_db = bool(session.scalar("SELECT has_database_privilege(current_database(), 'CREATE')"))
        if installed is not None:
            checks.append(Check("store.vector", "ok", f"pgvector {installed} is enabled in database {database}"))
        elif not available:
            checks.append(
                Check(
                    "store.vector",
                    "fail",
                    f"PostgreSQL {server} has no pgvector extension",
                    "install pgvector on the server (https://github.com/pgvector/pgvector#installation), then run "
                    f"CREATE EXTENSION vector; in database {database} (or let a superuser role's first apply do it)",
                )
            )
        elif superuser or (available[0][1] and may_create_in_db):
            checks.append(
                Check(
                    "store.vector",
                    "ok",
                    f"pgvector {available[0][0]} is installed on the server; the first apply enables it in "
                    f"database {database}",
                )
            )
        else:
            checks.append(
                Check(
                    "store.vector",
                    "fail",
                    f"pgvector {available[0][0]} is installed on the server but not enabled in database {database}, "
                    f"and role {role} may not enable it",
                    f"an administrator runs CREATE EXTENSION vector; in database {database}",
                )
            )
        configs = [r[0] for r in session.query("SELECT cfgname FROM pg_ts_config ORDER BY cfgname")]
        unknown = [lang for lang in fulltext_languages if lang not in configs]
        if unknown:
            checks.append(
                Check(
                    "store.fulltext",
                    "fail",
                    f"no text search configuration {', '.join(unknown)} on this server",
                    "set artifacts.fulltext.language to one of: " + ", ".join(configs),
                )
            )
        else:
            langs = ", ".join(fulltext_languages) or "none needed"
            checks.append(Check("store.fulltext", "ok", f"built-in text search (configurations: {langs})"))
        checks.append(self._rights(session, database, role, bool(superuser), may_create_in_db))
        return checks

    def data_directory(self, session: Session) -> Path | None:
        # Visible to superusers and pg_read_all_settings only; a server elsewhere has a
        # folder of the same name here only by chance, so it must also hold PG_VERSION.
        setting = session.scalar("SELECT setting FROM pg_settings WHERE name = 'data_directory'")
        if not setting:
            return None
        path = Path(setting)
        return path if (path / "PG_VERSION").is_file() else None

    def _rights(self, session: Session, database: str, role: str, superuser: bool, may_create_in_db: bool) -> Check:
        schema = self.dialect.schema
        read_only, standby = session.query("SELECT current_setting('transaction_read_only'), pg_is_in_recovery()")[0]
        if standby:
            return Check(
                "store.rights", "fail", f"database {database} is a read-only standby", "point store.url at the primary"
            )
        if read_only == "on":
            return Check(
                "store.rights",
                "fail",
                f"role {role} runs read-only transactions (default_transaction_read_only)",
                f"ALTER ROLE {role} SET default_transaction_read_only = off, or use another role",
            )
        missing: list[str] = []
        exists = session.scalar("SELECT 1 FROM pg_namespace WHERE nspname = ?", (schema,)) is not None
        if not exists:
            if not (superuser or may_create_in_db):
                missing.append(_lacks("CREATE", f"database {database} (to create schema {schema})"))
        else:
            usage, create = session.query(
                "SELECT has_schema_privilege(?, 'USAGE'), has_schema_privilege(?, 'CREATE')", (schema, schema)
            )[0]
            if not usage:
                missing.append(_lacks("USAGE", f"schema {schema}"))
            if not create:
                missing.append(_lacks("CREATE", f"schema {schema}"))
            unwritable = [
                r[0]
                for r in session.query(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = ? AND c.relkind = 'r' AND NOT (has_table_privilege(c.oid, 'SELECT') "
                    "AND has_table_privilege(c.oid, 'INSERT') AND has_table_privilege(c.oid, 'UPDATE') "
                    "AND has_table_privilege(c.oid, 'DELETE')) ORDER BY c.relname",
                    (schema,),
                )
            ]
            if unwritable:
                shown = ", ".join(unwritable[:5]) + (f" and {len(unwritable) - 5} more" if len(unwritable) > 5 else "")
                missing.append(_lacks("SELECT, INSERT, UPDATE, DELETE", shown))
        if not session.scalar("SELECT has_database_privilege(current_database(), 'TEMPORARY')"):
            missing.append(_lacks("TEMPORARY", f"database {database} (plans stage their scope in temporary tables)"))
        if missing:
            return Check(
                "store.rights",
                "fail",
                f"role {role} lacks " + "; ".join(missing),
                f"make {role} the owner of schema {schema} and its tables (ALTER SCHEMA {schema} OWNER TO {role}; "
                f"REASSIGN OWNED BY <previous owner> TO {role}), or connect as the role that owns them",
            )
        where = f"schema {schema}" if exists else f"database {database} (schema {schema} is created on first use)"
        return Check("store.rights", "ok", f"role {role} may create and write ragstate's tables in {where}")

    def columns(self, session: Session, table: str) -> dict[str, ColumnInfo] | None:
        every = self.cached(session, "columns", self._all_columns)
        if every is not None:
            return every.get(table)
        rows = session.query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND c.relname = ? AND a.attnum > 0 AND NOT a.attisdropped",
            (self.dialect.schema, table),
        )
        if not rows:
            return None
        return {name: ColumnInfo(name, type_.lower()) for name, type_ in rows}

    def _all_columns(self, session: Session) -> dict[str, dict[str, ColumnInfo]]:
        """Columns of every relation in ragstate's schema (one query)."""
        out: dict[str, dict[str, ColumnInfo]] = {}
        for table, name, type_ in session.query(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum",
            (self.dialect.schema,),
        ):
            out.setdefault(table, {})[name] = ColumnInfo(name, type_.lower())
        return out

    def indexes(self, session: Session, table: str) -> set[str] | None:
        if self.columns(session, table) is None:
            return None
        every = self.cached(session, "indexes", self._all_indexes)
        if every is not None:
            return set(every.get(table, set()))
        rows = session.query(
            "SELECT indexname FROM pg_indexes WHERE schemaname = ? AND tablename = ?", (self.dialect.schema, table)
        )
        return {r[0] for r in rows}

    def _all_indexes(self, session: Session) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for table, name in session.query(
            "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = ?", (self.dialect.schema,)
        ):
            out.setdefault(table, set()).add(name)
        return out

    def user_columns(self, session: Session, schema: str | None, table: str) -> dict[str, ColumnInfo] | None:
        rows = session.query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE n.nspname = ? AND c.relname = ? AND c.relkind IN ('r', 'v', 'm', 'p', 'f') ORDER BY a.attnum",
            (schema or "public", table),
        )
        if not rows:
            return None
        return {name: ColumnInfo(name, type_) for name, type_ in rows if name is not None}

    def user_relations(self, session: Session, schema: str | None) -> list[str]:
        rows = session.query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = ? AND c.relkind IN ('r', 'v', 'm', 'p', 'f') ORDER BY c.relname",
            (schema or "public",),
        )
        return [r[0] for r in rows]

    # --- values -----------------------------------------------------------------------

    def encode_vector(self, vector: np.ndarray) -> EncodedVector:
        return EncodedVector.of(vector)

    def decode_vector(self, value: Any) -> np.ndarray:
        if value is None:
            raise ValueError("no vector")
        if isinstance(value, EncodedVector):
            value = value.array()
        if hasattr(value, "to_numpy"):  # pgvector's Vector
            value = value.to_numpy()
        return np.asarray(value, dtype=np.float32)

    # --- vector capabilities ----------------------------------------------------------

    def vector_quality(
        self, session: Session, table: str, column: str, dimension: int, normalized: bool, key: str = "doc_id"
    ) -> list[tuple[str, str]]:
        # Computed in the server: no vector crosses the wire unless it is bad.
        rows = session.query(
            "SELECT {key}, vector_dims({col}), vector_norm({col}) FROM {t} "
            "WHERE {col} IS NULL OR vector_dims({col}) <> ? OR vector_norm({col}) < 1e-6 "
            "OR (? AND abs(vector_norm({col}) - 1) > 1e-3)",
            (dimension, normalized),
            key=Col(key),
            col=Col(column),
            t=table,
        )
        bad = []
        for k, dims, norm in rows:
            if dims is None:
                bad.append((k, "unreadable"))
            elif dims != dimension:
                bad.append((k, f"dimension {dims}"))
            elif norm < 1e-6:
                bad.append((k, "zero norm"))
            else:
                bad.append((k, f"norm {norm:.4f} (expected 1)"))
        return bad

    def nearest_items(
        self, session: Session, table: str, column: str, query: np.ndarray, k: int, key: str = "doc_id"
    ) -> list[tuple[str, str, float]]:
        q = self.encode_vector(query)
        with session.read_transaction():
            # The HNSW scan returns at most ef_search rows (40 by default): widen it for
            # this transaction when more neighbours are asked for.
            session.query("SELECT set_config('hnsw.ef_search', ?, true)", (str(min(max(int(k), 40), 1000)),))
            rows = session.query(
                "SELECT doc_id, {key}, {col} <=> ? AS d FROM {t} ORDER BY {col} <=> ? LIMIT ?",
                (q, q, int(k)),
                key=Col(key),
                col=Col(column),
                t=table,
            )
        return [(r[0], r[1], float(r[2])) for r in rows]

    def fulltext_search(
        self, session: Session, table: TableDef, query: str, k: int, *, any_word: bool = False
    ) -> list[tuple[str, float]]:
        index = next(ix for ix in table.indexes if ix.method == "fulltext")
        rows = session.query(self.dialect.fulltext_query(table, index, any_word=any_word), (query, query, int(k)))
        return [(r[0], float(r[1])) for r in rows]

    def vector_index(self, session: Session, table: TableDef) -> None:
        # An HNSW build over a large table may rightly take longer than any statement should:
        # it runs without the statement timeout (the server still answers meanwhile).
        assert isinstance(session, PostgresSession)
        deadline, session.deadline_s = session.deadline_s, None
        session.execute("SET statement_timeout = 0")
        try:
            for ix in table.indexes:
                if ix.method == "vector":
                    session.execute(self.dialect.create_index(table, ix))
        finally:
            session.deadline_s = deadline
            session.execute("RESET statement_timeout")
