"""Run records, pipeline states and the daemon's state: what each reconcile did, what is
ready, what the daemon is doing.

A run row is inserted when apply starts and updated in the same transaction as every
batch it commits (progress), so another process reading it (``status``) sees exactly
the work that is durable.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

from ragstate.redact import redact
from ragstate.stores.base import Session, Store, now
from ragstate.stores.schema import DAEMON_STATE


@dataclass(frozen=True)
class RunRow:
    run_id: str
    command: str
    spec_hash: str
    status: str
    started_at: float
    finished_at: float | None
    heartbeat_at: float | None
    plan: dict[str, Any] | None
    progress: dict[str, Any] | None
    counts: dict[str, Any] | None
    timings: dict[str, Any] | None
    error: str | None
    host: str | None
    pid: int | None


def start(store: Store, session: Session, run_id: str, command: str, spec_hash: str, plan: dict[str, Any]) -> None:
    stamp = now()
    with session.transaction():
        session.execute(
            "INSERT INTO {runs} (run_id, command, spec_hash, status, started_at, heartbeat_at, plan, host, pid) "
            "VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?)",
            (run_id, command, spec_hash, stamp, stamp, store.encode_json(plan), socket.gethostname(), os.getpid()),
        )


def insert_finished(
    store: Store,
    session: Session,
    run_id: str,
    command: str,
    spec_hash: str,
    *,
    status: str,
    started_at: float,
    finished_at: float,
    counts: dict[str, Any],
    timings: dict[str, Any],
    error: str | None,
) -> None:
    """Record a run that ended before it could record itself (it failed before its start
    was written, for example because the store was down); nothing if the row exists."""
    with session.transaction():
        session.execute(
            "INSERT INTO {runs} (run_id, command, spec_hash, status, started_at, finished_at, heartbeat_at, counts, "
            "timings, error, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
            (
                run_id,
                command,
                spec_hash,
                status,
                started_at,
                finished_at,
                finished_at,
                store.encode_json(counts),
                store.encode_json(timings),
                redact(error) if error else None,
                socket.gethostname(),
                os.getpid(),
            ),
        )


def progress(store: Store, session: Session, run_id: str, progress: dict[str, Any]) -> None:
    """Record progress; call inside the transaction of the batch it describes."""
    session.execute(
        "UPDATE {runs} SET progress = ?, heartbeat_at = ? WHERE run_id = ?",
        (store.encode_json(progress), now(), run_id),
    )


def finish(
    store: Store,
    session: Session,
    run_id: str,
    status: str,
    counts: dict[str, Any],
    timings: dict[str, Any],
    error: str | None = None,
) -> None:
    with session.transaction():
        session.execute(
            "UPDATE {runs} SET status = ?, finished_at = ?, counts = ?, timings = ?, error = ? WHERE run_id = ?",
            (
                status,
                now(),
                store.encode_json(counts),
                store.encode_json(timings),
                redact(error) if error else None,
                run_id,
            ),
        )


def recent(store: Store, session: Session, limit: int = 20, command: str | None = None) -> list[RunRow]:
    rows = session.query(
        "SELECT run_id, command, spec_hash, status, started_at, finished_at, heartbeat_at, plan, progress, "
        "counts, timings, error, host, pid FROM {runs} ORDER BY started_at DESC LIMIT ?",
        (limit,),
    )
    runs = [_row(store, r) for r in rows]
    return [r for r in runs if command is None or r.command == command]


def get(store: Store, session: Session, run_id: str) -> RunRow | None:
    rows = session.query(
        "SELECT run_id, command, spec_hash, status, started_at, finished_at, heartbeat_at, plan, progress, "
        "counts, timings, error, host, pid FROM {runs} WHERE run_id = ?",
        (run_id,),
    )
    return _row(store, rows[0]) if rows else None


@dataclass(frozen=True)
class Rate:
    """A throughput that a plan's estimate divides its work by, and where it comes from."""

    value: float
    #: ``tokens`` (estimated tokens a second: what kinds that feed a model are measured
    #: in) or ``documents`` (a second: kinds that feed none)
    unit: str
    #: where it comes from, in words (shown with the estimate)
    basis: str


#: a run that fed a model fewer estimated tokens than this measured start-up, not throughput
MIN_TOKENS = 1000
#: a run that built fewer documents than this measured start-up, not throughput
MIN_DOCUMENTS = 8


def measured_rate(store: Store, session: Session, kind: str, model_fp: str | None = None) -> Rate | None:
    """The throughput of the most recent run on this store that built enough of ``kind``.

    A kind that feeds a model (``model_fp``, its embedding recipe) is measured in the
    plan's estimated tokens per second of build time, by any run that built it with the
    same model (a changed text template or chunk size changes the work, not the model's
    pace); a kind that feeds none in documents per second.
    """
    for run in recent(store, session, limit=50):
        per_kind = (run.counts or {}).get("kinds", {}).get(kind)
        if not per_kind:
            continue
        built, seconds = per_kind.get("built", 0), per_kind.get("build_seconds", 0.0)
        if seconds <= 0:
            continue
        if model_fp is not None:
            # Texts served from the embedding cache, or items kept, cost no model time:
            # only the share the model was fed counts.
            fed = per_kind.get("embedded", 0)
            texts = fed + per_kind.get("cache_hits", 0) + per_kind.get("reused", 0)
            tokens = per_kind.get("estimate_tokens", 0) * (fed / texts if texts else 0.0)
            if per_kind.get("model_fp") == model_fp and tokens >= MIN_TOKENS:
                return Rate(tokens / seconds, "tokens", f"measured by run {run.run_id}")
            continue
        if built >= MIN_DOCUMENTS:
            return Rate(built / seconds, "documents", f"measured by run {run.run_id}")
    return None


def set_pipeline_states(
    store: Store, session: Session, states: dict[str, tuple[bool, list[str]]], spec_hash: str
) -> None:
    stamp = now()
    with session.transaction():
        session.execute("DELETE FROM {pipeline_states}")
        session.executemany(
            "INSERT INTO {pipeline_states} (pipeline, ready, reasons, spec_hash, updated_at) VALUES (?, ?, ?, ?, ?)",
            [(p, ready, store.encode_json(reasons), spec_hash, stamp) for p, (ready, reasons) in states.items()],
        )


def pipeline_states(store: Store, session: Session) -> dict[str, dict[str, Any]]:
    rows = session.query("SELECT pipeline, ready, reasons, spec_hash, updated_at FROM {pipeline_states}")
    return {
        r[0]: {"ready": bool(r[1]), "reasons": store.decode_json(r[2]), "spec_hash": r[3], "updated_at": r[4]}
        for r in rows
    }


def _row(store: Store, r: tuple[Any, ...]) -> RunRow:
    return RunRow(
        run_id=r[0],
        command=r[1],
        spec_hash=r[2],
        status=r[3],
        started_at=float(r[4]),
        finished_at=r[5],
        heartbeat_at=r[6],
        plan=store.decode_json(r[7]),
        progress=store.decode_json(r[8]),
        counts=store.decode_json(r[9]),
        timings=store.decode_json(r[10]),
        error=r[11],
        host=r[12],
        pid=r[13],
    )


def set_daemon_state(store: Store, session: Session, state: dict[str, Any], name: str = "daemon") -> bool:
    """Record what the daemon ``name`` is doing (``DAEMON_STATE`` columns); False without the table."""
    if store.columns(session, DAEMON_STATE.name) is None:
        return False
    values = {c: state.get(c) for c in DAEMON_STATE.column_names}
    values.update(name=name, holder=store.encode_json(state.get("holder") or {}), updated_at=now())
    values["last_error"] = redact(values["last_error"]) if values["last_error"] else None
    with session.transaction():
        session.execute(
            session.dialect.upsert(DAEMON_STATE.name, DAEMON_STATE.column_names, DAEMON_STATE.primary_key),
            tuple(values[c] for c in DAEMON_STATE.column_names),
        )
    return True


def daemon_state(store: Store, session: Session, name: str = "daemon") -> dict[str, Any] | None:
    """The daemon's last recorded state, or None if no daemon ever ran on this store."""
    if store.columns(session, DAEMON_STATE.name) is None:
        return None
    rows = session.query(
        "SELECT name, holder, state, cycle, consecutive_failures, interval_s, next_cycle_at, last_success_at, "
        "last_verify_at, last_error, updated_at FROM {daemon_state} WHERE name = ?",
        (name,),
    )
    if not rows:
        return None
    state = dict(zip(DAEMON_STATE.column_names, rows[0], strict=True))
    state["holder"] = store.decode_json(state["holder"]) or {}
    return state


def last_since(store: Store, session: Session, since: float) -> RunRow | None:
    """The run started last, if one started after ``since`` (any command, any spec)."""
    run_id = session.scalar(
        "SELECT run_id FROM {runs} WHERE started_at > ? ORDER BY started_at DESC, run_id DESC LIMIT 1", (since,)
    )
    return get(store, session, run_id) if run_id is not None else None
