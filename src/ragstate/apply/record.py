"""The run record: what one apply or reconcile did, as the caller and ``runs`` see it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: run statuses, as stored in ``runs.status``
RUNNING, CONVERGED, FAILED, INTERRUPTED, REFUSED, NOT_CONVERGED = (
    "running",
    "converged",
    "failed",
    "interrupted",
    "refused",
    "not_converged",
)


@dataclass
class KindCounts:
    """Work done on one artifact kind."""

    recipe_fp: str = ""
    generation: int | None = None
    built: int = 0
    rows: int = 0
    #: texts fed to a model
    embedded: int = 0
    #: items whose stored vectors were kept because their text did not change
    reused: int = 0
    tokens: int = 0
    truncated: int = 0
    deleted: int = 0
    purged: int = 0
    batches: int = 0
    build_seconds: float = 0.0
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
    schema_repaired: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    verify: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None

    @property
    def converged(self) -> bool:
        return self.status == CONVERGED

    @property
    def built(self) -> int:
        return sum(k.built for k in self.kinds.values())

    def counts(self) -> dict[str, Any]:
        """What ``runs.counts`` stores."""
        return {
            "kinds": {name: asdict(k) for name, k in self.kinds.items()},
            "documents_recorded": self.documents_recorded,
            "schema_repaired": self.schema_repaired,
            "drift": self.drift,
            "verify": self.verify,
            "error_type": self.error_type,
        }

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["converged"] = self.converged
        data["built"] = self.built
        return data
