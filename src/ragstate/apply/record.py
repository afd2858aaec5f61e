"""The run record: what one apply or reconcile did, as the caller and ``runs`` see it."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

#: run statuses, as stored in ``runs.status``; ``partial``: stopped on purpose at a batch
#: boundary before the plan was done (work budget spent, or asked to stop), to be continued;
#: ``rejected``: a new generation failed verification and was not switched in (the active
#: one is untouched)
RUNNING, CONVERGED, FAILED, INTERRUPTED, REFUSED, NOT_CONVERGED, PARTIAL, REJECTED = (
    "running",
    "converged",
    "failed",
    "interrupted",
    "refused",
    "not_converged",
    "partial",
    "rejected",
)


def new_run_id() -> str:
    """Sortable and unique: UTC time, then random hex."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


@dataclass
class KindCounts:
    """Work done on one artifact kind."""

    recipe_fp: str = ""
    generation: int | None = None
    built: int = 0
    rows: int = 0
    #: distinct texts fed to a model (the embedding cache's misses)
    embedded: int = 0
    #: distinct texts served from the embedding cache instead of the model
    cache_hits: int = 0
    #: distinct texts the embedding cache did not hold (fed to the model; = ``embedded``)
    cache_misses: int = 0
    #: items whose stored vectors were kept because their text did not change
    reused: int = 0
    tokens: int = 0
    truncated: int = 0
    #: documents whose content changed past the model's window: restamped, not re-embedded
    past_window: int = 0
    #: what the tokens cost at the model's ``price_per_million_tokens`` (None: not priced)
    cost: float | None = None
    deleted: int = 0
    purged: int = 0
    #: documents set aside (quarantined) during this run
    quarantined: int = 0
    batches: int = 0
    build_seconds: float = 0.0
    #: the plan's estimate of this kind's work (what the next plan's rate is measured
    #: against: estimated tokens a second of ``build_seconds``), and its basis
    estimate_tokens: int = 0
    estimate_seconds: float = 0.0
    estimate_basis: str = ""
    #: the embedding recipe of the model the kind feeds (None: it feeds none)
    model_fp: str | None = None
    created_generation: bool = False
    switched: bool = False
    repaired: list[str] = field(default_factory=list)


@dataclass
class RunRecord:
    """The outcome of an apply (or a reconcile: apply plus verify)."""

    run_id: str
    command: str
    status: str = RUNNING
    spec_hash: str = ""
    started_at: float = 0.0
    finished_at: float | None = None
    drift: dict[str, dict[str, int]] = field(default_factory=dict)
    kinds: dict[str, KindCounts] = field(default_factory=dict)
    documents_recorded: int = 0
    #: where the batches were computed (``local``, or ``ray (N workers, …)``)
    executor: str = "local"
    schema_repaired: list[str] = field(default_factory=list)
    #: the embedding cache in this run: hits, misses, entries purged (verify found them
    #: bad), evicted and their bytes
    cache: dict[str, int] = field(default_factory=dict)
    #: when kinds were built concurrently, when each built and how much they overlapped
    #: (``apply/schedule.py``: ``wall_s``, ``work_s``, ``overlap``, ``kinds``)
    schedule: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    verify: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None
    #: transient, item or fatal: the class of the error that stopped the run
    error_class: str | None = None
    #: what went wrong and what was done about it (``faults.log.FaultLog.to_dict``)
    faults: dict[str, Any] = field(default_factory=dict)
    #: items in quarantine after the run, by kind (``source`` or an artifact kind)
    quarantined: dict[str, int] = field(default_factory=dict)
    #: the work budget and whether it stopped the run (``apply.budget.Budget.to_dict``)
    budget: dict[str, Any] = field(default_factory=dict)
    #: drift left when the run ended (a partial run leaves some on purpose)
    remaining: dict[str, dict[str, int]] = field(default_factory=dict)
    #: set by the daemon: its cycle, what started it, how long it waited before it (backoff)
    daemon: dict[str, Any] | None = None
    #: the verification of each switch group (``apply.generations.Verification.to_dict``)
    verification: list[dict[str, Any]] = field(default_factory=list)
    #: generations garbage-collected: ``{"kind", "generation", "documents"}``
    gc: list[dict[str, Any]] = field(default_factory=list)
    #: what a rollback switched: ``{"kind", "switched": {kind: {"from", "to"}}, "held", "recomputed"}``
    rollback: dict[str, Any] | None = None

    @property
    def converged(self) -> bool:
        return self.status == CONVERGED

    @property
    def rejected(self) -> list[str]:
        """Why new generations were not switched in (empty: none was rejected)."""
        return [r for v in self.verification if not v["passed"] for r in v["reasons"]]

    @property
    def built(self) -> int:
        return sum(k.built for k in self.kinds.values())

    @property
    def tokens(self) -> int:
        """Tokens fed to models in this run (texts served from the cache cost none)."""
        return sum(k.tokens for k in self.kinds.values())

    @property
    def cost(self) -> float | None:
        """What this run's tokens cost where models are priced (None: none is)."""
        costs = [k.cost for k in self.kinds.values() if k.cost is not None]
        return sum(costs) if costs else None

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def counts(self) -> dict[str, Any]:
        """What ``runs.counts`` stores."""
        return {
            "kinds": {name: asdict(k) for name, k in self.kinds.items()},
            "documents_recorded": self.documents_recorded,
            "executor": self.executor,
            "schema_repaired": self.schema_repaired,
            "cache": self.cache,
            "schedule": self.schedule,
            "drift": self.drift,
            "verify": self.verify,
            "error_type": self.error_type,
            "error_class": self.error_class,
            "faults": self.faults,
            "quarantined": self.quarantined,
            "budget": self.budget,
            "remaining": self.remaining,
            "daemon": self.daemon,
            "verification": self.verification,
            "gc": self.gc,
            "rollback": self.rollback,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["converged"] = self.converged
        data["built"] = self.built
        data["quarantined_total"] = self.quarantined_total
        data["tokens"] = self.tokens
        data["cost"] = self.cost
        return data
