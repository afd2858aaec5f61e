"""The ``conditions`` table: the last evaluated condition of each pipeline and kind.

Rows are plain tuples in ``COLUMNS`` order; ``reconcile.conditions`` turns them into
``Condition`` values. A store older than migration 6 has no table: reads give nothing
and writes are skipped (the next writer lock's migration creates it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragstate.stores.base import Session, Store
from ragstate.stores.schema import CONDITIONS

Row = tuple[Any, ...]
#: the order of a row's values
COLUMNS = CONDITIONS.column_names


def read(store: Store, session: Session) -> list[Row]:
    """Every recorded condition, in ``COLUMNS`` order."""
    if store.columns(session, CONDITIONS.name) is None:
        return []
    return session.query(
        "SELECT scope, name, type, status, reason, message, last_transition_at, spec_hash, observed_at "
        "FROM {conditions} ORDER BY scope, name, type"
    )


def replace_all(store: Store, session: Session, rows: Sequence[Row]) -> bool:
    """Make ``rows`` the recorded conditions, in one transaction; False if there is no table yet.

    Rows are upserted, then the keys no longer present are deleted: any process may record
    conditions (``status`` does, without the writer lock, while a daemon cycle does too), and
    a delete-all-then-insert would let two such transactions insert the same key (PostgreSQL's
    delete does not see the other's uncommitted rows). The last writer wins.
    """
    if store.columns(session, CONDITIONS.name) is None:
        return False
    keep = {tuple(row[:3]) for row in rows}  # (scope, name, type): the primary key
    with session.transaction():
        if rows:
            session.executemany(store.dialect.upsert(CONDITIONS.name, COLUMNS, CONDITIONS.primary_key), rows)
        gone = [key for key in session.query("SELECT scope, name, type FROM {conditions}") if tuple(key) not in keep]
        if gone:
            session.executemany("DELETE FROM {conditions} WHERE scope = ? AND name = ? AND type = ?", gone)
    return True
