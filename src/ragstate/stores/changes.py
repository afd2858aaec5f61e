"""Change signals of a table source, for live mode: what tells that the user's table changed.

Both are hints (``reconcile.live``): a change they miss is found by the daemon's next full
observation, so they may be cheap and approximate.

==========  ==============================================================================
backend     signal
==========  ==============================================================================
PostgreSQL  a statement-level trigger on the user's table that sends ``NOTIFY`` on
            ``ragstate_changes`` with ``schema.table`` as payload; installed only when
            the spec asks (``source.notify: true``) and the role may create it
SQLite      polling: ``PRAGMA data_version`` (free; changes with any other connection's
            commit, ragstate's own included) gates a signature of the table, its row count
            and the largest value of ``source.change_column`` (default: the rowid)
==========  ==============================================================================
"""

from __future__ import annotations

from typing import Any

from ragstate.spec.model import TableSourceSpec
from ragstate.stores.base import Session
from ragstate.stores.dialect import Col, UserName

#: the channel every ragstate notify trigger sends on; the payload names the table
CHANNEL = "ragstate_changes"
#: the trigger function, one per ragstate schema (a ragstate table name: quoted and qualified)
NOTIFY_FUNCTION = "notify_changes"

_CREATE_FUNCTION = """CREATE OR REPLACE FUNCTION {notify_changes}() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    PERFORM pg_notify('ragstate_changes', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
    RETURN NULL;
END
$body$"""
_CREATE_TRIGGER = (
    "CREATE OR REPLACE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {source_table} "
    "FOR EACH STATEMENT EXECUTE FUNCTION {notify_changes}()"
)


def trigger_name(schema: str) -> str:
    """The trigger's name on the user's table: one per ragstate schema, so two stores
    mapping the same table each keep their own."""
    return "ragstate_notify_" + schema


def payload(spec: TableSourceSpec) -> str:
    """What the trigger sends for ``spec``'s table (``schema.table``; ``public`` by default)."""
    return f"{spec.schema_name or 'public'}.{spec.table_name}"


def install_notify(session: Session, spec: TableSourceSpec, schema: str) -> None:
    """Create (or replace) the notify function in ragstate's schema and the statement trigger
    on the user's table (PostgreSQL).

    Raises:
        StoreConfigError: the role may not create the trigger (it must own the table).
    """
    with session.transaction():
        session.execute(_CREATE_FUNCTION)
        session.execute(_CREATE_TRIGGER, trigger=Col(trigger_name(schema)), source_table=UserName(spec.table))


def data_version(session: Session) -> int:
    """SQLite's counter of commits by other connections to the database file."""
    return int(session.scalar("PRAGMA data_version"))


def table_signature(session: Session, spec: TableSourceSpec) -> tuple[Any, ...]:
    """The table's row count and the largest value of its change column (default: rowid)."""
    column = UserName(spec.change_column or "rowid")
    rows = session.query(
        "SELECT count(*), max({column}) FROM {source_table}", column=column, source_table=UserName(spec.table)
    )
    return tuple(rows[0]) if rows else ()
