"""``rollback``: switch a kind (and the kinds built from it) back to an earlier generation,
recorded as a run (command ``rollback``)."""

from __future__ import annotations

import time

from ragstate.apply.generations import rollback as rollback_generations
from ragstate.apply.record import CONVERGED, FAILED, KindCounts, RunRecord, new_run_id
from ragstate.apply.safety import Safety
from ragstate.artifacts import get_kind
from ragstate.errors import RagstateError
from ragstate.reconcile.run import RunContext, finish, writer_lock
from ragstate.redact import redact
from ragstate.stores import ledger, records


def rollback(ctx: RunContext, kind: str, to: int | None = None) -> RunRecord:
    """Switch ``kind`` back to generation ``to`` (default: the one active before the
    current), together with the kinds built from it, in one transaction and without
    recomputing anything. The run is recorded (command ``rollback``).

    While the spec still asks for the recipe rolled back from, the kinds are held there:
    apply keeps them in sync with the source under the recipe rolled back to and never
    switches back; changing the spec (or rolling forward with ``to``) releases them.

    Holds the writer lock, like apply: a rollback never interleaves with a build.

    Raises:
        StoreLocked: another process is writing the store (``reconcile.lock``).
        RollbackError: nothing to roll back to, or the generations do not fit
            together; nothing was switched.
    """
    with writer_lock(ctx, command="rollback") as lease:  # migrates the store when it takes the lock
        return _rollback(ctx, kind, to, Safety(ctx.guard, fence=lease.fence))


def _rollback(ctx: RunContext, kind: str, to: int | None, safety: Safety) -> RunRecord:
    desired = ctx.desired()
    record = RunRecord(run_id=new_run_id(), command="rollback", spec_hash=ctx.spec_hash, started_at=time.time())

    def start() -> set[str]:
        with ctx.store.session() as s:
            records.start(ctx.store, s, record.run_id, "rollback", ctx.spec_hash, {"kind": kind, "to": to})
            return {g.kind for g in ledger.generations(ctx.store, s)}

    kinds = safety.read(start)
    depends = {name: _depends_on(name) for name in kinds | {kind}}
    try:
        record.rollback = rollback_generations(
            ctx.store,
            depends,
            kind,
            to,
            desired_fps={d.name: d.recipe.fingerprint for d in desired.kinds},
            run_id=record.run_id,
            safety=safety,
        )
    except BaseException as exc:
        record.status, record.error, record.error_type = FAILED, redact(str(exc)), type(exc).__name__
        finish(ctx, record)
        raise
    for name, change in record.rollback["switched"].items():
        record.kinds[name] = KindCounts(generation=change["to"], switched=True)
    record.status = CONVERGED
    finish(ctx, record)
    return record


def _depends_on(kind: str) -> tuple[str, ...]:
    try:
        return get_kind(kind).depends_on
    except RagstateError:  # a plugin kind no longer installed: nothing is built from it here
        return ()
