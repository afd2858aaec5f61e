"""Prometheus metrics of a daemon, in a registry of its own (never the global default).

Every name starts with ``ragstate_``. Counters count what this daemon process did
since it started; gauges hold what its latest observation found.

=============================================  =========  ===================================
name                                           labels     what
=============================================  =========  ===================================
``ragstate_runs_total``                        outcome    cycles by outcome: converged,
                                                          partial, not_converged, refused,
                                                          failed, interrupted
``ragstate_run_duration_seconds``              command    histogram of cycle durations
``ragstate_drift_documents``                   kind,      drift the latest observation
                                               class      found (0 once healed)
``ragstate_drift_found_total``                 kind,      drift found at the start of runs
                                               class
``ragstate_items_built_total``                 kind       documents built
``ragstate_items_failed_total``                kind       documents that failed and went to
                                                          quarantine
``ragstate_embedding_tokens_total``            kind,      tokens fed to embedding models
                                               model      (texts served from the cache: none)
``ragstate_embedding_cost_total``              kind,      what they cost at the model's
                                               model      ``price_per_million_tokens``
                                                          (priced models only)
``ragstate_quarantine_items``                  kind       items in quarantine now
                                                          (``source``: unreadable documents)
``ragstate_breaker_state``                     target,    1 for each circuit breaker's
                                               state      current state, 0 for the others
``ragstate_pipeline_ready``                    pipeline   1 when the pipeline is Ready
``ragstate_condition``                         scope,     1 when the condition is True
                                               name,
                                               type
``ragstate_consecutive_failures``                         failed cycles in a row
``ragstate_next_cycle_seconds``                           wait before the next cycle
                                                          (the interval, or a backoff)
``ragstate_last_success_timestamp_seconds``               end of the last converged cycle
``ragstate_last_run_timestamp_seconds``                   end of the last cycle
``ragstate_last_verify_timestamp_seconds``                end of the last full verify
``ragstate_live_events_total``                            change notifications received
                                                          (live mode)
``ragstate_live_events_dropped_total``                    events dropped: a burst over
                                                          ``daemon.live_queue`` (a full
                                                          observation follows)
``ragstate_live_events_coalesced_total``                  events merged into a change
                                                          already waiting
``ragstate_live_event_to_ready_seconds``                  histogram: from a change's first
                                                          event to the end of the converged
                                                          cycle that built it
``ragstate_build_info``                        version    1
=============================================  =========  ===================================
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ragstate.apply.record import RunRecord
from ragstate.faults.breaker import CLOSED, HALF_OPEN, OPEN
from ragstate.plan.model import DRIFT_CLASSES
from ragstate.reconcile.reports import StatusReport

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: cycle durations: a no-op cycle takes well under a second, a backlog hours
BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 10800)
#: event-to-ready latency of live mode: seconds when quiet, minutes behind a backlog
LIVE_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 900)


class Metrics:
    def __init__(self, version: str = "") -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.runs = Counter("ragstate_runs", "Reconcile cycles by outcome.", ["outcome"], registry=r)
        self.duration = Histogram(
            "ragstate_run_duration_seconds", "Duration of reconcile cycles.", ["command"], buckets=BUCKETS, registry=r
        )
        self.drift = Gauge(
            "ragstate_drift_documents", "Drift found by the latest observation.", ["kind", "class"], registry=r
        )
        self.drift_found = Counter(
            "ragstate_drift_found", "Drift found at the start of runs.", ["kind", "class"], registry=r
        )
        self.built = Counter("ragstate_items_built", "Documents built.", ["kind"], registry=r)
        self.failed = Counter(
            "ragstate_items_failed", "Documents that failed and went to quarantine.", ["kind"], registry=r
        )
        self.tokens = Counter(
            "ragstate_embedding_tokens", "Tokens fed to embedding models.", ["kind", "model"], registry=r
        )
        self.cost = Counter(
            "ragstate_embedding_cost",
            "What the embedding tokens cost, in the currency of models' price_per_million_tokens.",
            ["kind", "model"],
            registry=r,
        )
        self.quarantine = Gauge("ragstate_quarantine_items", "Items in quarantine.", ["kind"], registry=r)
        self.breaker = Gauge(
            "ragstate_breaker_state", "1 for each circuit breaker's current state.", ["target", "state"], registry=r
        )
        self.ready = Gauge("ragstate_pipeline_ready", "1 when the pipeline is Ready.", ["pipeline"], registry=r)
        self.condition = Gauge(
            "ragstate_condition", "1 when the condition is True.", ["scope", "name", "type"], registry=r
        )
        self.failures = Gauge("ragstate_consecutive_failures", "Failed cycles in a row.", registry=r)
        self.next_cycle = Gauge("ragstate_next_cycle_seconds", "Wait before the next cycle.", registry=r)
        self.last_success = Gauge(
            "ragstate_last_success_timestamp_seconds", "End of the last converged cycle.", registry=r
        )
        self.last_run = Gauge("ragstate_last_run_timestamp_seconds", "End of the last cycle.", registry=r)
        self.last_verify = Gauge("ragstate_last_verify_timestamp_seconds", "End of the last full verify.", registry=r)
        self.live_events = Counter("ragstate_live_events", "Change notifications received (live mode).", registry=r)
        self.live_dropped = Counter(
            "ragstate_live_events_dropped", "Change events dropped for a full observation (a burst).", registry=r
        )
        self.live_coalesced = Counter(
            "ragstate_live_events_coalesced", "Change events merged into a change already waiting.", registry=r
        )
        self.live_latency = Histogram(
            "ragstate_live_event_to_ready_seconds",
            "From a change's first event to the end of the converged cycle that built it.",
            buckets=LIVE_BUCKETS,
            registry=r,
        )
        self._live_seen = (0, 0, 0)
        Info("ragstate_build", "ragstate's version.", registry=r).info({"version": version})

    def record_run(
        self,
        outcome: str,
        seconds: float,
        command: str,
        record: RunRecord | None,
        at: float,
        models: Mapping[str, str] | None = None,
    ) -> None:
        """A cycle ended with ``outcome`` after ``seconds`` (``record``: its run, if it got one;
        ``models``: the ``models`` entry each kind embeds with, for labels)."""
        models = models or {}
        self.runs.labels(outcome).inc()
        self.duration.labels(command).observe(seconds)
        self.last_run.set(at)
        if outcome == "converged":
            self.last_success.set(at)
        if record is None:
            return
        for kind, classes in record.drift.items():
            for cls, n in classes.items():
                self.drift_found.labels(kind, cls).inc(n)
        for kind, counts in record.kinds.items():
            self.built.labels(kind).inc(counts.built)
            self.failed.labels(kind).inc(counts.quarantined)
            model = models.get(kind, "")
            self.tokens.labels(kind, model).inc(counts.tokens)
            if counts.cost is not None:
                self.cost.labels(kind, model).inc(counts.cost)
        if record.verify is not None:
            self.last_verify.set(at)

    def record_status(self, status: StatusReport) -> None:
        """What an observation found: drift, quarantine, readiness and conditions."""
        for kind, k in status.kinds.items():
            for cls in DRIFT_CLASSES:
                self.drift.labels(kind, cls).set(k.drift.get(cls, 0))
        quarantined: Mapping[str, int] = status.quarantine.get("quarantined") or {}
        for kind in [*status.kinds, "source"]:
            self.quarantine.labels(kind).set(quarantined.get(kind, 0))
        for name, p in status.pipelines.items():
            self.ready.labels(name).set(1 if p.ready else 0)
        for scope, named in status.conditions.items():
            for name, conds in named.items():
                for c in conds:
                    value = 1 if c["status"] == "True" else 0
                    self.condition.labels(scope.removesuffix("s"), name, c["type"]).set(value)

    def record_breakers(self, states: Mapping[str, str]) -> None:
        for target, state in states.items():
            for s in (CLOSED, HALF_OPEN, OPEN):
                self.breaker.labels(target, s).set(1 if s == state else 0)

    def record_schedule(self, failures: int, next_cycle_s: float) -> None:
        self.failures.set(failures)
        self.next_cycle.set(next_cycle_s)

    def record_live(self, received: int, dropped: int, coalesced: int, latencies: tuple[float, ...] = ()) -> None:
        """Live mode: the change queue's running totals, and the latencies of changes now ready."""
        seen = self._live_seen
        self.live_events.inc(received - seen[0])
        self.live_dropped.inc(dropped - seen[1])
        self.live_coalesced.inc(coalesced - seen[2])
        self._live_seen = (received, dropped, coalesced)
        for seconds in latencies:
            self.live_latency.observe(seconds)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
