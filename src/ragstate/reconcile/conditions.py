"""Status conditions of each pipeline and artifact kind, in the style of Kubernetes.

Four condition types, each ``True``, ``False`` or ``Unknown`` with a reason (one
CamelCase word, for machines), a message (for people), the time of its last transition
(kept while the status stays the same) and the spec hash it was observed against:

===============  ==========================================================================
type             True when
===============  ==========================================================================
``Ready``        the kind's active generation has the desired recipe and shows no drift
                 (a pipeline: every kind it reads is Ready)
``Reconciling``  a live run is working on it (its plan has work for the kind)
``Degraded``     it serves, but less than asked: items of it are in quarantine, the
                 last run failed in a way the next run retries (a transient failure), or
                 an audit found bad rows (``AuditFound``) that no apply has rebuilt yet
``Stalled``      it is not Ready and runs cannot get it there without a person: the last
                 run stopped on a fatal error or a refused destructive plan, or
                 ``STALL_AFTER`` runs in a row failed
===============  ==========================================================================

Reasons: Ready — ``Converged``, ``Drift``, ``NoActiveGeneration``, ``RecipeChanged``,
``SchemaDrift``, ``SourceSchemaDrift``, ``KindsNotReady`` (pipelines); Reconciling —
``Applying``, ``Idle``, ``Pending`` (drift waits for the next run), ``WriterLockBusy``
(the last run found another process writing the store: it is neither a degradation nor
counted towards Stalled); Degraded —
``ItemsQuarantined``, ``SourceItemsQuarantined``, ``LastRunFailed``, ``AuditFound``, ``AsExpected``;
Stalled — the error type that stopped the last run (``DestructiveRefused``,
``BuildFailing``, ``ModelError``, ...), ``RepeatedFailures``, ``AsExpected``.

``evaluate`` is pure: the plan, the observation and the recent runs in, conditions out;
``merge`` carries the transition times over from the previous evaluation.

What an audit finds (rows that fail the vector checks, placeholders, partial artifacts:
``AUDIT_CLASSES``) a shallow observation (``status``, the readiness guard) cannot see. So it
is remembered, as the kind's recorded ``Degraded``/``AuditFound`` condition, until a run
that audited (``apply``, ``reconcile``) converged after it: until then the kind is not Ready
and its pipelines are not ready (``audit_findings``), and ``apply`` audits deeply.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ragstate.artifacts.desired import Desired
from ragstate.observe.observe import Observed
from ragstate.plan.model import KindPlan, Plan
from ragstate.reconcile.reports import live_progress, pipeline_readiness
from ragstate.stores.records import RunRow

READY, RECONCILING, DEGRADED, STALLED = "Ready", "Reconciling", "Degraded", "Stalled"
TYPES = (READY, RECONCILING, DEGRADED, STALLED)
TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"
PIPELINE, KIND = "pipeline", "kind"
#: failed runs in a row (of the current spec) after which a kind that is not Ready is Stalled
STALL_AFTER = 3
#: drift classes only an audit sees (a shallow observation reads no vector)
AUDIT_CLASSES = ("corrupt", "mock", "incomplete")
AUDIT_FOUND = "AuditFound"
_FAILED = ("failed", "refused")


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str = ""
    #: when ``status`` last changed (seconds since the epoch)
    last_transition_at: float = 0.0
    #: the spec this was observed against
    spec_hash: str = ""
    observed_at: float = 0.0

    @property
    def true(self) -> bool:
        return self.status == TRUE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: ``{(scope, name): (Ready, Reconciling, Degraded, Stalled)}``
Conditions = dict[tuple[str, str], tuple[Condition, ...]]


def evaluate(
    plan: Plan,
    observed: Observed,
    desired: Desired,
    runs: Sequence[RunRow],
    *,
    spec_hash: str,
    now: float,
    alive: Callable[[RunRow], bool] | None = None,
    audit: Mapping[str, str] | None = None,
) -> Conditions:
    """The conditions of every pipeline and kind the spec enables.

    Args:
        plan, observed, desired: the current state, as ``status`` computes it.
        runs: recent runs, newest first (``records.recent``).
        alive: whether a ``running`` row's process still lives (default: a process of
            this host is checked by pid, one of another host is assumed alive).
        audit: what audits found and no run rebuilt yet, by kind (``audit_findings``).
    """
    audit = audit or {}
    alive = alive or process_alive
    running = [r for r in runs if r.status == "running" and alive(r)]
    finished = [r for r in runs if r.status != "running" and r.spec_hash == spec_hash]
    # A run that could not take the writer lock says nothing about the data: another
    # writer was at work. It neither degrades nor stalls a kind; Reconciling says so.
    blocked = finished[0] if finished and _writer_busy(finished[0]) else None
    mine = [r for r in finished if not _writer_busy(r)]
    streak = 0
    for r in mine:
        if r.status not in _FAILED:
            break
        streak += 1
    last = mine[0] if mine else None
    quarantined = dict(plan.quarantine.get("quarantined") or {})
    by_kind = {k.kind: k for k in plan.kinds}

    def stamp(c: Condition) -> Condition:
        return replace(c, spec_hash=spec_hash, observed_at=now, last_transition_at=now)

    out: Conditions = {}
    for d in desired.kinds:
        conds = _kind(d.name, by_kind.get(d.name), plan, observed, running, last, streak, quarantined, now, blocked)
        if d.name in audit:
            conds = _audited(conds, audit[d.name])
        out[(KIND, d.name)] = tuple(stamp(c) for c in conds)
    readiness = pipeline_readiness(plan, observed, desired, audit)
    for pipeline, kinds in desired.pipelines.items():
        conds = _pipeline(
            pipeline, kinds, readiness[pipeline].reasons, out, quarantined, configured=pipeline not in desired.unusable
        )
        out[(PIPELINE, pipeline)] = tuple(stamp(c) for c in conds)
    return out


def audit_findings(
    plan: Plan, previous: Mapping[tuple[str, str, str], Condition], runs: Sequence[RunRow]
) -> dict[str, str]:
    """What audits found and no run has rebuilt yet, by kind (a message each).

    A deep plan (``verify``) says it afresh; an audit-depth one (``apply``'s) adds what it
    finds to what was recorded; a shallow one (``status``, a query's readiness guard) keeps
    what was recorded (``previous``). A recorded finding ends when a run that audited
    converged after it was observed (``apply`` audits deeply while one is recorded).
    """
    found: dict[str, str] = {}
    if plan.depth != "deep":
        healed_at = max(
            (
                float(r.finished_at or 0)
                for r in runs
                if r.status == "converged" and (r.plan or {}).get("depth", "shallow") != "shallow"
            ),
            default=0.0,
        )
        for (scope, name, type_), c in previous.items():
            if scope == KIND and type_ == DEGRADED and c.reason == AUDIT_FOUND and c.observed_at > healed_at:
                found[name] = c.message.split("; ")[0]  # without the other reasons of Degraded
    if plan.depth != "shallow":
        for k in plan.kinds:
            bad = {c: k.drift[c] for c in AUDIT_CLASSES if k.drift.get(c)}
            if bad:
                found[k.kind] = (
                    f"an audit ({plan.depth}) found {_words(bad)} row(s) that queries may still read "
                    "(`ragstate apply` rebuilds them)"
                )
    return found


def audit_of(conditions: Conditions) -> dict[str, str]:
    """The audit findings ``evaluate`` put into ``conditions``, by kind."""
    return {
        name: c.message.split("; ")[0]
        for (scope, name), conds in conditions.items()
        if scope == KIND
        for c in conds
        if c.type == DEGRADED and c.reason == AUDIT_FOUND
    }


def audited(previous: Mapping[tuple[str, str, str], Condition]) -> bool:
    """Whether a recorded condition says an audit found bad rows not rebuilt yet."""
    return any(c.reason == AUDIT_FOUND for c in previous.values())


def merge(previous: Mapping[tuple[str, str, str], Condition], current: Conditions) -> Conditions:
    """``current`` with the transition time of each condition whose status did not change
    taken from ``previous`` (keyed by scope, name and type)."""
    out: Conditions = {}
    for (scope, name), conds in current.items():
        kept = []
        for c in conds:
            before = previous.get((scope, name, c.type))
            if before is not None and before.status == c.status:
                c = replace(c, last_transition_at=before.last_transition_at)
            kept.append(c)
        out[(scope, name)] = tuple(kept)
    return out


def as_dict(conditions: Conditions) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{"pipelines": {name: [condition, ...]}, "kinds": {...}}`` for JSON."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {"pipelines": {}, "kinds": {}}
    for (scope, name), conds in conditions.items():
        out["pipelines" if scope == PIPELINE else "kinds"][name] = [c.to_dict() for c in conds]
    return out


def process_alive(run: RunRow) -> bool:
    """False only for a run of this host whose process is gone (it died without finishing)."""
    if run.host != socket.gethostname() or not run.pid:
        return True
    try:
        os.kill(int(run.pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- internals ------------------------------------------------------------------------


def _kind(
    name: str,
    k: KindPlan | None,
    plan: Plan,
    observed: Observed,
    running: Sequence[RunRow],
    last: RunRow | None,
    streak: int,
    quarantined: dict[str, int],
    now: float,
    blocked: RunRow | None = None,
) -> tuple[Condition, ...]:
    ready = _ready(name, k, plan, observed)
    working = [r for r in running if name in ((r.plan or {}).get("drift") or {}) or _progress_kind(r) == name]
    reconciling = _reconciling(name, working, ready, now, blocked)
    degraded = _degraded(name, ready, last, quarantined)
    stalled = _stalled(ready, last, bool(working), streak)
    return ready, reconciling, degraded, stalled


def _ready(name: str, k: KindPlan | None, plan: Plan, observed: Observed) -> Condition:
    obs = observed.kinds.get(name)
    drift = {c: n for c, n in k.drift.items() if n} if k is not None else {}
    if plan.schema:
        ready = Condition(READY, FALSE, "SchemaDrift", "ragstate's tables need repair: " + "; ".join(plan.schema[:3]))
    elif plan.source_schema:
        ready = Condition(READY, FALSE, "SourceSchemaDrift", "source: " + "; ".join(plan.source_schema[:3]))
    elif k is None or obs is None:
        ready = Condition(READY, UNKNOWN, "NotObserved", "not observed")
    elif obs.active is None:
        ready = Condition(READY, FALSE, "NoActiveGeneration", "no generation is active yet" + _drift_tail(drift))
    elif obs.active.recipe_fp != obs.recipe_fp:
        ready = Condition(
            READY,
            FALSE,
            "RecipeChanged",
            f"generation {obs.active.generation} (recipe {obs.active.recipe_fp}) still serves; the spec's recipe is "
            f"{obs.recipe_fp}" + _drift_tail(drift),
        )
    elif drift or k.has_work:
        ready = Condition(READY, FALSE, "Drift", _words(drift) or "work pending (repairs or a generation switch)")
    else:
        message = f"generation {obs.active.generation} active and in sync ({plan.scope_size} in scope)"
        ready = Condition(READY, TRUE, "Converged", message)
    return ready


def _reconciling(
    name: str, working: Sequence[RunRow], ready: Condition, now: float, blocked: RunRow | None
) -> Condition:
    if working:
        r = working[0]
        live = live_progress(r, now)
        if live and live["kind"] == name:
            what = _progress_words(live)
        else:
            what = "planned in this run; waiting for the kinds before it"
        reconciling = Condition(RECONCILING, TRUE, "Applying", f"{r.command} {r.run_id}: {what}")
    elif ready.status == TRUE:
        reconciling = Condition(RECONCILING, FALSE, "Idle", "no run is working on it")
    elif blocked is not None:
        reconciling = Condition(
            RECONCILING,
            FALSE,
            "WriterLockBusy",
            f"run {blocked.run_id} could not take the writer lock: {blocked.error or ''}; the next run tries again",
        )
    else:
        reconciling = Condition(RECONCILING, FALSE, "Pending", "no run is working on it; the next apply will")
    return reconciling


def _degraded(name: str, ready: Condition, last: RunRow | None, quarantined: dict[str, int]) -> Condition:
    degraded_reasons: list[tuple[str, str]] = []
    n = quarantined.get(name, 0)
    if n:
        degraded_reasons.append(("ItemsQuarantined", f"{n} item(s) in quarantine (see `ragstate quarantine list`)"))
    failed_class = _error_class(last)
    if last is not None and ready.status != TRUE and last.status == "failed" and failed_class != "fatal":
        message = f"run {last.run_id} failed ({failed_class or 'error'}): {last.error or ''}; the next run retries"
        degraded_reasons.append(("LastRunFailed", message))
    return (
        Condition(DEGRADED, TRUE, degraded_reasons[0][0], "; ".join(m for _, m in degraded_reasons))
        if degraded_reasons
        else Condition(DEGRADED, FALSE, "AsExpected")
    )


def _stalled(ready: Condition, last: RunRow | None, working: bool, streak: int) -> Condition:
    failed_class = _error_class(last)
    stalled = Condition(STALLED, FALSE, "AsExpected")
    if ready.status != TRUE and last is not None and not working:
        if last.status == "refused":
            stalled = Condition(
                STALLED,
                TRUE,
                "DestructiveRefused",
                f"run {last.run_id} refused a destructive plan: {last.error or ''} "
                "(apply --allow-destructive if it is right)",
            )
        elif last.status == "failed" and failed_class == "fatal":
            reason = ((last.counts or {}).get("error_type") or "Failed").replace("_", "")
            stalled = Condition(STALLED, TRUE, reason, f"run {last.run_id} stopped: {last.error or ''}")
        elif streak >= STALL_AFTER:
            stalled = Condition(
                STALLED, TRUE, "RepeatedFailures", f"the last {streak} runs failed; last: {last.error or ''}"
            )
    return stalled


def _audited(conds: tuple[Condition, ...], message: str) -> tuple[Condition, ...]:
    """A kind's conditions with an audit's finding: not Ready (if it seemed so), Degraded."""
    ready, reconciling, degraded, stalled = conds
    if ready.true:
        ready = Condition(READY, FALSE, AUDIT_FOUND, message)
        reconciling = Condition(RECONCILING, FALSE, "Pending", "no run is working on it; the next apply will")
    reasons = [degraded.message] if degraded.true else []
    degraded = Condition(DEGRADED, TRUE, AUDIT_FOUND, "; ".join([message, *reasons]))
    return ready, reconciling, degraded, stalled


def _pipeline(
    pipeline: str,
    kinds: Sequence[str],
    reasons: Sequence[str],
    by_scope: Conditions,
    quarantined: dict[str, int],
    *,
    configured: bool = True,
) -> tuple[Condition, ...]:
    mine = [(k, by_scope[(KIND, k)]) for k in kinds if (KIND, k) in by_scope]
    if reasons:
        # NotConfigured: the spec lacks what it needs to answer (hyde without a generator)
        ready = Condition(READY, FALSE, "KindsNotReady" if configured else "NotConfigured", "; ".join(reasons))
    else:
        ready = Condition(READY, TRUE, "Converged", "every kind it reads is in sync: " + ", ".join(kinds))
    out = [ready]
    for i, type_ in enumerate(TYPES[1:], start=1):
        hits = [(k, conds[i]) for k, conds in mine if conds[i].true]
        extra: list[tuple[str, str]] = []
        if type_ == DEGRADED and quarantined.get("source"):
            n = quarantined["source"]
            extra.append(("SourceItemsQuarantined", f"{n} source document(s) cannot be read and are left out"))
        if hits or extra:
            reason = hits[0][1].reason if hits else extra[0][0]
            message = "; ".join([f"{k}: {c.message}" for k, c in hits] + [m for _, m in extra])
            out.append(Condition(type_, TRUE, reason, message))
        elif type_ == RECONCILING:
            busy = [c for _, conds in mine if (c := conds[i]).reason == "WriterLockBusy"]
            if busy and not ready.true:
                out.append(busy[0])
            else:
                out.append(Condition(type_, FALSE, "Idle" if ready.true else "Pending", "no run is working on it"))
        else:
            out.append(Condition(type_, FALSE, "AsExpected"))
    return tuple(out)


def _progress_kind(run: RunRow) -> str | None:
    return (run.progress or {}).get("kind")


def _writer_busy(run: RunRow) -> bool:
    """The run failed because another process held the store's writer lock."""
    return run.status == "failed" and (run.counts or {}).get("error_type") == "StoreLocked"


def _error_class(run: RunRow | None) -> str | None:
    return (run.counts or {}).get("error_class") if run is not None else None


def _words(drift: dict[str, int]) -> str:
    return ", ".join(f"{n} {c}" for c, n in drift.items())


def _drift_tail(drift: dict[str, int]) -> str:
    return f" ({_words(drift)})" if drift else ""


def _progress_words(live: dict[str, Any]) -> str:
    text = f"{live['done']}/{live['total']} documents"
    if live.get("rate"):
        text += f", {live['rate']:.1f} docs/s"
    if live.get("eta_s") is not None:
        text += f", ETA {live['eta_s']:.0f} s"
    return text


def to_rows(conditions: Conditions) -> list[tuple[Any, ...]]:
    """Rows for ``stores.conditions.replace_all``."""
    return [
        (scope, name, c.type, c.status, c.reason, c.message, c.last_transition_at, c.spec_hash, c.observed_at)
        for (scope, name), conds in conditions.items()
        for c in conds
    ]


def from_rows(rows: Sequence[Sequence[Any]]) -> dict[tuple[str, str, str], Condition]:
    """Recorded rows (``stores.conditions.read``) keyed by scope, name and type."""
    return {
        (r[0], r[1], r[2]): Condition(
            type=r[2],
            status=r[3],
            reason=r[4],
            message=r[5],
            last_transition_at=float(r[6]),
            spec_hash=r[7],
            observed_at=float(r[8]),
        )
        for r in rows
    }
