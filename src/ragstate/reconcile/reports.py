"""What ``verify`` and ``status`` report, computed from a plan and what was observed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ragstate.artifacts.desired import Desired
from ragstate.observe.observe import KindObservation, Observed
from ragstate.plan.model import PAST_WINDOW, KindPlan, Plan
from ragstate.stores.records import RunRow

#: how many document ids a report lists per kind and class (counts are always complete)
LISTED = 50


@dataclass
class VerifyReport:
    """The result of a deep audit: remaining drift must be zero."""

    in_sync: bool
    scope_size: int
    drift: dict[str, dict[str, int]]
    #: ``{kind: {class: [doc ids, at most LISTED]}}``
    documents: dict[str, dict[str, list[str]]]
    #: ``{kind: [[doc id, reason], ...]}`` for corrupt vectors
    corrupt: dict[str, list[list[str]]]
    schema: list[str]
    checked: dict[str, Any] = field(default_factory=dict)
    #: schema drift of an in-place source (its view, or its table against the mapping)
    source_schema: list[str] = field(default_factory=list)
    #: items in quarantine (``Plan.quarantine``); they are not drift
    quarantine: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_report(plan: Plan, observed: Observed, desired: Desired) -> VerifyReport:
    """The report of a deep audit; ``invariants`` lists the cross-artifact checks run."""
    invariants = [f"{d.name}: {text}" for d in desired.kinds for text in d.kind.invariants]
    documents: dict[str, dict[str, list[str]]] = {}
    for k in plan.kinds:
        listed = {cls: list(ids[:LISTED]) for cls, ids in k.build.items() if ids}
        orphaned = list(k.delete) + list(k.purge)
        if orphaned:
            listed["orphaned"] = orphaned[:LISTED]
        if k.schema or k.repair:
            listed["schema"] = list((k.schema or k.repair)[:LISTED])
        if listed:
            documents[k.kind] = listed
    corrupt = {
        name: [[d, reason] for d, reason in k.corrupt[:LISTED]] for name, k in observed.kinds.items() if k.corrupt
    }
    if observed.cache is not None:
        if observed.cache.corrupt:
            corrupt["embedding_cache"] = [[k, reason] for k, reason in observed.cache.corrupt[:LISTED]]
        if observed.cache.mock:
            documents["embedding_cache"] = {"mock": list(observed.cache.mock[:LISTED])}
    return VerifyReport(
        in_sync=plan.in_sync,
        scope_size=plan.scope_size,
        drift=plan.drift,
        documents=documents,
        corrupt=corrupt,
        schema=list(plan.schema),
        source_schema=list(plan.source_schema),
        checked={
            "depth": observed.depth,
            "kinds": sorted(observed.kinds),
            "documents_in_scope": observed.scope_size,
            "invariants": invariants,
            "cache_entries": observed.cache.entries if observed.cache is not None else None,
        },
        quarantine=plan.quarantine,
    )


@dataclass
class KindStatus:
    #: the recipe of the active generation (of the spec when none is active)
    recipe_fp: str
    active_generation: int | None
    target_generation: int | None
    #: documents built into the target generation, of ``in_scope``
    built: int
    in_scope: int
    drift: dict[str, int]
    generations: list[dict[str, Any]]
    #: artifact rows the ledger records for the target generation (chunks, entities, ...)
    items: int = 0
    #: where the rows come from, when it needs saying (e.g. which model's token outputs)
    note: str = ""
    #: share of the documents in scope that are built and need nothing, 0..1
    complete: float = 0.0
    #: why the kind is held at its active generation by a rollback, or ""
    held: str = ""
    #: the spec's recipe for the kind (differs from ``recipe_fp`` after a rollback or a change)
    spec_recipe_fp: str = ""


@dataclass
class PipelineStatus:
    ready: bool
    #: the kinds it reads and those they are built from, in build order
    kinds: list[str]
    reasons: list[str]
    #: per kind: share of the documents in scope that are complete, 0..1
    completeness: dict[str, float] = field(default_factory=dict)


@dataclass
class StatusReport:
    store: str
    source: str
    scope_size: int
    pipelines: dict[str, PipelineStatus]
    kinds: dict[str, KindStatus]
    schema: list[str]
    last_run: dict[str, Any] | None
    running: list[dict[str, Any]]
    source_schema: list[str] = field(default_factory=list)
    #: items in quarantine (``Plan.quarantine``)
    quarantine: dict[str, Any] = field(default_factory=dict)
    #: ``{"pipelines": {name: [condition, ...]}, "kinds": {...}}`` (``reconcile.conditions``)
    conditions: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    #: the daemon's state as it last recorded it (``stores.records.daemon_state``), if any ran
    daemon: dict[str, Any] | None = None
    spec_hash: str = ""
    #: how long observing the source took just now: ``seconds``, and for a table its
    #: ``mode`` with ``sync_s`` (copy or materialised view) and ``stage_s``
    source_observe: dict[str, Any] = field(default_factory=dict)
    #: what the reader should know first (the store does not exist yet)
    notes: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(p.ready for p in self.pipelines.values())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ready"] = self.ready
        return data


def pipeline_readiness(
    plan: Plan, observed: Observed, desired: Desired, audit: Mapping[str, str] | None = None
) -> dict[str, PipelineStatus]:
    """A pipeline is ready when each kind it reads is active under the desired recipe and
    shows no drift, and no audit found bad rows of it that no apply has rebuilt since
    (``audit``: kind → what was found, ``conditions.audit_findings``)."""
    by_kind = {k.kind: k for k in plan.kinds}
    out: dict[str, PipelineStatus] = {}
    for pipeline, kinds in desired.pipelines.items():
        reasons: list[str] = [desired.unusable[pipeline]] if pipeline in desired.unusable else []
        if plan.schema:
            reasons.append("ragstate's tables need repair: " + "; ".join(plan.schema[:3]))
        if plan.source_schema:
            reasons.append("source: " + "; ".join(plan.source_schema[:3]))
        for name in kinds:
            k = by_kind.get(name)
            obs = observed.kinds.get(name)
            if k is None or obs is None:
                continue
            if obs.active is None:
                reasons.append(f"{name}: no active generation yet")
            elif obs.active.recipe_fp != obs.recipe_fp and not obs.held:
                reasons.append(f"{name}: active generation {obs.active.generation} has another recipe")
            drift = {c: n for c, n in k.drift.items() if n}
            if drift:
                reasons.append(f"{name}: drift " + ", ".join(f"{n} {c}" for c, n in drift.items()))
            elif audit and name in audit:
                reasons.append(f"{name}: {audit[name]}")
        completeness = {
            name: completeness_of(by_kind[name], observed.kinds[name], plan.scope_size)
            for name in kinds
            if name in by_kind and name in observed.kinds
        }
        out[pipeline] = PipelineStatus(ready=not reasons, kinds=list(kinds), reasons=reasons, completeness=completeness)
    return out


def completeness_of(k: KindPlan, obs: KindObservation, scope: int) -> float:
    """Share of the ``scope`` documents whose rows of a kind are built and need nothing."""
    if not scope:
        return 1.0
    if obs.frozen:  # queries read the held generation, as built when it was rolled back to
        return round(min(obs.rows.built, scope) / scope, 4)
    if obs.active is None or obs.active.recipe_fp != obs.recipe_fp:
        return 0.0  # queries read no generation of the desired recipe yet
    # A document changed past the model's window holds what the model would make of it
    # now: complete, though its rows wait for their new content hash.
    pending = len(k.build_ids) - len(k.build.get(PAST_WINDOW, ()))
    return round(max(0, min(obs.rows.built, scope) - pending) / scope, 4)


def live_progress(run: RunRow, now: float) -> dict[str, Any] | None:
    """Progress of a running apply as its last committed batch recorded it: documents done
    and total of the kind being built and of the whole run, rate (documents per second
    since the kind's, or the run's, first batch) and ETA (from ``now``). None before the
    first batch."""
    p = run.progress or {}
    if "done" not in p:
        return None
    at = float(p.get("at") or now)

    def pace(done: int, total: int, started: Any) -> tuple[float | None, float | None]:
        if not started or at <= float(started) or done <= 0:
            return None, None
        rate = done / (at - float(started))
        return round(rate, 3), round(max(0.0, (total - done) / rate - (now - at)), 1)

    rate, eta = pace(int(p["done"]), int(p.get("total") or 0), p.get("kind_started_at"))
    estimate = p.get("estimate_s")
    if eta is None and estimate:  # no pace yet: the plan's estimate, from the same throughput
        eta = round(float(estimate), 1)
    run_rate, run_eta = pace(int(p.get("run_done") or 0), int(p.get("run_total") or 0), p.get("run_started_at"))
    return {
        "kind": p.get("kind"),
        "generation": p.get("generation"),
        "done": int(p["done"]),
        "total": int(p.get("total") or 0),
        "quarantined": int(p.get("quarantined") or 0),
        "rate": rate,
        "eta_s": eta,
        "estimate_s": estimate,
        "run_done": int(p.get("run_done") or 0),
        "run_total": int(p.get("run_total") or 0),
        "run_rate": run_rate,
        "run_eta_s": run_eta,
        "committed_at": at,
    }


@dataclass
class RunPoint:
    """What the charts show of one run."""

    run_id: str
    command: str
    status: str
    started_at: float
    seconds: float
    drift: dict[str, int] = field(default_factory=dict)
    built: int = 0
    build_seconds: float = 0.0
    error: str | None = None

    @property
    def rate(self) -> float:
        return self.built / self.build_seconds if self.build_seconds > 0 else 0.0

    @classmethod
    def from_row(cls, row: Any) -> RunPoint:
        """From a ``records.RunRow`` (its counts and timings)."""
        counts = row.counts or {}
        drift: dict[str, int] = {}
        # Per class, the most documents of any one kind: a document drifting in seven kinds
        # is one document, not seven (a sum over kinds counted kinds × documents).
        for classes in (counts.get("drift") or (row.plan or {}).get("drift") or {}).values():
            for cls_, n in classes.items():
                drift[cls_] = max(drift.get(cls_, 0), int(n))
        kinds = (counts.get("kinds") or {}).values()
        end = row.finished_at or row.heartbeat_at or row.started_at
        return cls(
            run_id=row.run_id,
            command=row.command,
            status=row.status,
            started_at=row.started_at,
            seconds=float((row.timings or {}).get("total_s") or max(0.0, end - row.started_at)),
            drift=drift,
            built=sum(int(k.get("built", 0)) for k in kinds),
            build_seconds=sum(float(k.get("build_seconds", 0.0)) for k in kinds),
            error=row.error,
        )


@dataclass
class Report:
    status: StatusReport
    #: oldest first
    runs: list[RunPoint]
    generated_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at,
            "status": self.status.to_dict(),
            "runs": [{**vars(r), "rate": round(r.rate, 3)} for r in self.runs],
        }


@dataclass
class CacheReport:
    """The embedding cache: size against its limit, per embedding recipe, recent use."""

    enabled: bool
    max_bytes: int
    entries: int = 0
    bytes: int = 0
    #: ``{model_fp: {"entries": n, "bytes": b}}``
    per_recipe: dict[str, dict[str, int]] = field(default_factory=dict)
    #: entries no artifact references (what eviction may remove)
    unreferenced: int = 0
    #: what this call evicted
    evicted: int = 0
    evicted_bytes: int = 0
    #: hits and misses of the most recent runs, newest first
    recent_runs: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
