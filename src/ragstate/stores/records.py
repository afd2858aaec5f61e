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


def measured_rate(store: Store, session: Session, kind: str, recipe_fp: str) -> float | None:
    """Items per second of the most recent run that built ``kind`` under ``recipe_fp``."""
    for run in recent(store, session, limit=50):
        per_kind = (run.counts or {}).get("kinds", {}).get(kind)
        if not per_kind or per_kind.get("recipe_fp") != recipe_fp:
            continue
        built, seconds = per_kind.get("built", 0), per_kind.get("build_seconds", 0.0)
        if built >= 8 and seconds > 0:
            return built / seconds
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
