"""The readiness guard: is a pipeline's data converged, cheaply, before it answers?

The check is the shallow observation ``plan`` and ``status`` make, limited to the kinds
the pipeline reads (and those they are built from): a stat of every source file (a file
whose stat is unchanged is not read), then set operations in SQL between the scope, the
ledger and the active generation's tables. It reads no vector and re-embeds nothing
(that is ``verify``). A pipeline is ready when each of its kinds has an active
generation under the spec's recipe and shows no drift: no document missing, stale,
orphaned, of another recipe or incomplete, and no table or index missing; nor has an audit
(``verify``, an apply) found bad rows that no apply has rebuilt since (the recorded
``AuditFound`` condition, ``reconcile.conditions``).

=========  ==================================================================  =========
mode       when the pipeline is not ready                                     CLI exit
=========  ==================================================================  =========
``fail``   refuse: ``NotReady`` with the reasons (the default)                2
``warn``   answer from the active generations, with the reasons as warnings   0
``heal``   apply the plan of the pipeline's kinds, check again, then answer   0 (2 if
           (the run is recorded like any apply and its counts come back)      still not)
=========  ==================================================================  =========

Whatever the mode, a query needs an active generation of every kind it reads, built
with the models the spec names (a query is encoded with the spec's model; vectors of
another model cannot be compared with it): otherwise it is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ragstate.artifacts.desired import Desired
from ragstate.observe.observe import observe, pinned
from ragstate.plan.diff import diff
from ragstate.reconcile import conditions
from ragstate.reconcile.reports import pipeline_readiness
from ragstate.sources.base import Source
from ragstate.spec.model import Spec
from ragstate.stores import conditions as conditions_store
from ragstate.stores import records
from ragstate.stores.base import Store

MODES = ("fail", "warn", "heal")


@dataclass(frozen=True)
class Readiness:
    """Whether ``pipeline`` may answer, and why not."""

    pipeline: str
    ready: bool
    reasons: tuple[str, ...]
    seconds: float


def check(spec: Spec, spec_hash: str, desired: Desired, store: Store, source: Source, pipeline: str) -> Readiness:
    """Observe ``desired`` (the pipeline's kinds) shallowly and say whether ``pipeline`` is ready.

    Raises:
        SourceError, DocumentError: the source cannot be read.
        StoreError: the store failed.
    """
    t0 = time.perf_counter()
    desired = pinned(spec, desired, store)
    observed = observe(spec, desired, store, source, depth="shallow")
    plan = diff(spec, spec_hash, desired, observed)
    # What an audit found is recorded (conditions) until an apply rebuilds it: two small reads.
    with store.session() as s:
        previous = conditions.from_rows(conditions_store.read(store, s)) if not plan.schema else {}
        runs = records.recent(store, s, limit=20) if not plan.schema else []
    audit = conditions.audit_findings(plan, previous, runs)
    status = pipeline_readiness(plan, observed, desired, audit)[pipeline]
    return Readiness(pipeline, status.ready, tuple(status.reasons), round(time.perf_counter() - t0, 4))
