"""A PostgreSQL connection of its own that LISTENs for ragstate's change notifications
(``stores.changes``: the trigger a table source installs with ``source.notify: true``)."""

from __future__ import annotations

import psycopg

from ragstate.stores.postgres.store import PostgresStore, _translated


class Listener:
    """LISTEN on ``ragstate_changes`` on a connection outside the pool (a pooled one would
    be handed to other sessions, and its notifications with it)."""

    def __init__(self, store: PostgresStore):
        with _translated(store.description):
            self._conn = psycopg.connect(store.url, **store._kwargs, application_name="ragstate live")
            self._conn.execute("LISTEN ragstate_changes")
        self._where = store.description

    def wait(self, timeout: float) -> list[str]:
        """The payloads (``schema.table``) notified within ``timeout`` seconds: returns at the first.

        Raises:
            StoreUnavailable: the connection was lost (the caller reconnects).
        """
        with _translated(self._where):
            return [n.payload for n in self._conn.notifies(timeout=timeout, stop_after=1)]

    def close(self) -> None:
        try:
            self._conn.close()
        except psycopg.Error:
            pass  # already gone
