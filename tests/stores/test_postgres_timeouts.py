"""PostgreSQL statement timeouts: a blocked or unanswered statement fails as transient, never hangs
(issue 15, item 8)."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from ragstate.errors import StoreTimeout
from ragstate.faults.taxonomy import FaultClass, classify
from ragstate.spec.model import StoreSpec
from ragstate.stores.migrations import migrate
from ragstate.stores.postgres.store import PostgresStore


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    spec = StoreSpec(
        url=pg_url, schema="t_" + uuid.uuid4().hex[:12], statement_timeout_s=1, connect_timeout_s=1, pool_size=1
    )
    store = PostgresStore(spec)
    migrate(store)
    try:
        yield store
    finally:
        store.close()


def test_the_default_is_bounded() -> None:
    assert 0 < StoreSpec(url="postgresql://h/db").statement_timeout_s <= 600


def test_a_statement_blocked_by_a_lock_held_elsewhere_times_out_as_transient(store: PostgresStore, pg_url: str) -> None:
    with psycopg.connect(pg_url) as other:  # a transaction of another session, holding the table
        other.execute(f"LOCK TABLE {store.dialect.table('ledger')} IN ACCESS EXCLUSIVE MODE")
        start = time.monotonic()
        with pytest.raises(StoreTimeout) as raised, store.session() as s:
            s.query("SELECT count(*) FROM {ledger}")
        assert time.monotonic() - start < 30
        other.rollback()
    assert classify(raised.value) is FaultClass.TRANSIENT
    assert "store.statement_timeout_s" in str(raised.value) and "lock held by another session" in str(raised.value)
    with store.session() as s:  # the connection is usable again
        assert s.scalar("SELECT count(*) FROM {ledger}") == 0


def test_a_server_that_does_not_answer_times_out_as_transient(store: PostgresStore) -> None:
    with store.session() as s:
        backend = int(s.scalar("SELECT pg_backend_pid()"))
    os.kill(backend, signal.SIGSTOP)  # the server process serving the pool's one connection, paused
    try:
        start = time.monotonic()
        with pytest.raises(StoreTimeout) as raised, store.session() as s:
            s.query("SELECT count(*) FROM {ledger}")
        assert time.monotonic() - start < 30
    finally:
        os.kill(backend, signal.SIGCONT)
    assert classify(raised.value) is FaultClass.TRANSIENT
    assert "did not answer a statement within 2 s" in str(raised.value) and "paused" in str(raised.value)
    with store.session() as s:  # the pool replaced the closed connection
        assert s.scalar("SELECT count(*) FROM {ledger}") == 0
