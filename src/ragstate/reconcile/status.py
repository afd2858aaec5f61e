"""``status`` and ``report``: readiness of each pipeline, generations per kind, runs, the daemon.

Reads only (besides recording the conditions it evaluates): a store that does not exist
yet is reported so, and not created (``run.reading``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from ragstate.observe.observe import Observed
from ragstate.artifacts.desired import Desired
from ragstate.plan.diff import diff
from ragstate.plan.model import Plan
from ragstate.reconcile import conditions as cond
from ragstate.reconcile.reports import (
    KindStatus,
    Report,
    RunPoint,
    StatusReport,
    completeness_of,
    live_progress,
    pipeline_readiness,
)
from ragstate.reconcile.run import RunContext, reading, record_state
from ragstate.stores import ledger, records
from ragstate.stores.ledger import Generation
from ragstate.stores.records import RunRow


def status(ctx: RunContext) -> StatusReport:
    """Readiness of each pipeline, generations per kind, the last and any running run."""
    with reading(ctx) as (ctx, note):
        report = _status(ctx)
    return replace(report, notes=[note]) if note else report


def report(ctx: RunContext, *, runs: int = 30) -> Report:
    """Status (with conditions) and the last ``runs`` runs, oldest first, for ``ragstate report``."""
    with reading(ctx) as (ctx, note):
        current = _status(ctx)
        with ctx.store.session() as s:
            rows = records.recent(ctx.store, s, limit=runs) if not current.schema else []
    current = replace(current, notes=[note]) if note else current
    return Report(status=current, runs=[RunPoint.from_row(r) for r in reversed(rows)], generated_at=time.time())


def _status(ctx: RunContext) -> StatusReport:
    desired, observed = ctx.observe(depth="shallow")
    plan = diff(ctx.spec, ctx.spec_hash, desired, observed)
    with ctx.store.session() as s:
        gens = ledger.generations(ctx.store, s) if not observed.schema else []
        counts = ledger.counts(s) if not observed.schema else {}
        items = ledger.item_counts(s) if not observed.schema else {}
        runs = records.recent(ctx.store, s, limit=20) if not observed.schema else []
    kinds = _kinds(plan, observed, desired, gens, counts, items)
    finished = [r for r in runs if r.status != "running"]
    running = _running(runs)
    last = finished[0] if finished else None
    conditions = record_state(ctx, plan, observed, desired)
    with ctx.store.session() as s:
        daemon = records.daemon_state(ctx.store, s) if not observed.schema else None
    return StatusReport(
        quarantine=plan.quarantine,
        store=ctx.store.description,
        source=ctx.source().description,
        scope_size=plan.scope_size,
        pipelines=pipeline_readiness(plan, observed, desired, cond.audit_of(conditions)),
        kinds=kinds,
        schema=list(plan.schema),
        source_schema=list(plan.source_schema),
        last_run=(
            {
                "run_id": last.run_id,
                "command": last.command,
                "status": last.status,
                "started_at": last.started_at,
                "finished_at": last.finished_at,
                "error": last.error,
            }
            if last
            else None
        ),
        running=running,
        conditions=cond.as_dict(conditions),
        daemon=daemon,
        spec_hash=ctx.spec_hash,
        source_observe=dict(observed.source_timing),
    )


def _kinds(
    plan: Plan,
    observed: Observed,
    desired: Desired,
    gens: list[Generation],
    counts: dict[tuple[str, int], int],
    items: dict[tuple[str, int], int],
) -> dict[str, KindStatus]:
    kinds: dict[str, KindStatus] = {}
    for k in plan.kinds:
        obs = observed.kinds[k.kind]
        target = obs.target.generation if obs.target else None
        active = [g for g in gens if g.kind == k.kind and g.generation == k.active_generation]
        kinds[k.kind] = KindStatus(
            # the active generation's own recipe (after a rollback, not the spec's)
            recipe_fp=active[0].recipe_fp if active else k.recipe_fp,
            spec_recipe_fp=desired.kind(k.kind).asked_fp,  # what the spec asks for, even while held
            active_generation=k.active_generation,
            target_generation=target,
            built=counts.get((k.kind, target), 0) if target is not None else 0,
            items=items.get((k.kind, target), 0) if target is not None else 0,
            note=desired.kind(k.kind).recipe.note,
            complete=completeness_of(k, obs, plan.scope_size),
            held=obs.held,
            in_scope=plan.scope_size,
            drift={c: n for c, n in k.drift.items() if n},
            generations=[
                {
                    "generation": g.generation,
                    "state": g.state,
                    "recipe_fp": g.recipe_fp,
                    "documents": counts.get((g.kind, g.generation), 0),
                    "created_at": g.created_at,
                    "activated_at": g.activated_at,
                }
                for g in gens
                if g.kind == k.kind
            ],
        )
    return kinds


def _running(runs: list[RunRow]) -> list[dict[str, Any]]:
    stamp = time.time()
    return [
        {
            "run_id": r.run_id,
            "command": r.command,
            "started_at": r.started_at,
            "progress": r.progress,
            "live": live_progress(r, stamp),
            "heartbeat_at": r.heartbeat_at,
            "host": r.host,
            "pid": r.pid,
            "alive": cond.process_alive(r),
        }
        for r in runs
        if r.status == "running"
    ]
