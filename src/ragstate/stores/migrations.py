"""Versioned schema migrations of the universal tables.

Each migration has a number and a description and is applied once, inside one
transaction with the row that records it in ``schema_versions``. Migrations only ever
add (tables, columns, indexes); none drops data. Tables missing although their version
is recorded (deleted by hand) are recreated by ``repair``, which ``schema`` drift runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ragstate.stores.base import SchemaProblem, Session, Store, now
from ragstate.stores.schema import (
    CONDITIONS,
    DAEMON_STATE,
    DOCUMENTS,
    EMBEDDING_CACHE,
    GENERATIONS,
    LEDGER,
    LOCKS,
    PIPELINE_STATES,
    QUARANTINE,
    RUNS,
    SCHEMA_VERSIONS,
    SOURCE_FILES,
    VIEW_MAPPINGS,
    TableDef,
)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    tables: tuple[TableDef, ...] = ()
    #: extra steps beyond creating tables (adding columns, backfilling)
    steps: Callable[[Store, Session], None] | None = None


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "universal tables: documents, source_files, ledger, generations, runs, pipeline_states",
        (DOCUMENTS, SOURCE_FILES, LEDGER, GENERATIONS, RUNS, PIPELINE_STATES),
    ),
    Migration(2, "fault handling: quarantine, locks (the writer lock's fencing epoch)", (QUARANTINE, LOCKS)),
    Migration(3, "view_mappings: user tables read in place through views", (VIEW_MAPPINGS,)),
    # Numbers are assigned per issue, so a gap (4) is expected.
    Migration(
        5,
        "generations: upstream lineage, models, verification, rollback holds, retirement and drop times",
        steps=lambda store, s: add_missing_columns(store, s, GENERATIONS),
    ),
    Migration(6, "conditions of pipelines and kinds; daemon_state", (CONDITIONS, DAEMON_STATE)),
    Migration(7, "embedding_cache: one vector per embedding recipe and exact text", (EMBEDDING_CACHE,)),
)

CURRENT_VERSION = MIGRATIONS[-1].version


def describe_applied(versions: list[int]) -> str:
    """One line for a run's summary: the migrations applied, and why a number is absent.

    Numbers are assigned per issue, so an unused one (4) looks like a skipped step unless said.
    """
    unused = sorted(set(range(1, CURRENT_VERSION + 1)) - {m.version for m in MIGRATIONS})
    gaps = [v for v in unused if versions and min(versions) < v < max(versions)]
    line = f"applied schema migration{'s' * (len(versions) > 1)} {', '.join(map(str, versions))}"
    line += f" (now at version {CURRENT_VERSION}"
    if gaps:
        line += f"; there is no migration {', '.join(map(str, gaps))}: numbers follow issues, none was skipped"
    return line + ")"


def universal_tables() -> tuple[TableDef, ...]:
    """Every table the migrations create, in their current form."""
    return (SCHEMA_VERSIONS,) + tuple(t for m in MIGRATIONS for t in m.tables)


def applied_versions(store: Store, session: Session) -> set[int]:
    if store.columns(session, SCHEMA_VERSIONS.name) is None:
        return set()
    return {r[0] for r in session.query("SELECT version FROM {schema_versions}")}


def migrate(store: Store) -> list[int]:
    """Apply every migration not yet recorded; return the versions applied now."""
    applied_now = []
    with store.session() as s:
        store.prepare(s)
        with s.transaction():
            store.ensure_table(s, SCHEMA_VERSIONS)
        done = applied_versions(store, s)
        for m in MIGRATIONS:
            if m.version in done:
                continue
            with s.transaction():
                for table in m.tables:
                    store.ensure_table(s, table)
                if m.steps is not None:
                    m.steps(store, s)
                s.execute(
                    "INSERT INTO {schema_versions} (version, description, applied_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (version) DO NOTHING",
                    (m.version, m.description, now()),
                )
            applied_now.append(m.version)
    return applied_now


def schema_problems(store: Store, session: Session) -> list[SchemaProblem]:
    """Differences between the universal tables and what this version expects."""
    problems = []
    done = applied_versions(store, session)
    pending = [m.version for m in MIGRATIONS if m.version not in done]
    if pending:
        problems.append(
            SchemaProblem(
                SCHEMA_VERSIONS.name,
                "pending_migration",
                f"schema version {max(done, default=0)}; migrations {pending} are pending",
            )
        )
    for table in universal_tables():
        problems.extend(store.table_problems(session, table))
    return problems


def repair(store: Store) -> list[str]:
    """Recreate missing universal tables, columns and indexes; return what was done."""
    applied = migrate(store)
    done: list[str] = [describe_applied(applied)] if applied else []
    with store.session() as s:
        for table in universal_tables():
            problems = store.table_problems(s, table)
            if problems:
                with s.transaction():
                    store.ensure_table(s, table)
                    add_missing_columns(store, s, table)
                done.extend(str(p) for p in problems)
    return done


def add_missing_columns(store: Store, session: Session, table: TableDef) -> None:
    """``ALTER TABLE ADD COLUMN`` for each column of ``table`` the database lacks.

    Added columns are nullable whatever the definition says: existing rows have no
    value, and a NOT NULL without a default would fail on them.
    """
    found = store.columns(session, table.name) or {}
    for column in table.columns:
        if column.name not in found:
            session.execute(store.dialect.add_column(table, column))
