"""Prometheus metrics of the query service, in a registry of its own.

===========================================  =================  ============================
name                                         labels             what
===========================================  =================  ============================
``ragstate_queries_total``                   pipeline, outcome  queries by outcome: answered,
                                                                warned, not_ready, invalid,
                                                                failed
``ragstate_query_duration_seconds``          pipeline           histogram of answered queries
``ragstate_queries_in_flight``                                  queries being answered now
``ragstate_build_info``                      version            1
===========================================  =================  ============================
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: a warm query takes milliseconds; a cold model or a large ColBERT pool, seconds
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServeMetrics:
    def __init__(self, version: str = "") -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.queries = Counter(
            "ragstate_queries", "Queries by pipeline and outcome.", ["pipeline", "outcome"], registry=r
        )
        self.duration = Histogram(
            "ragstate_query_duration_seconds",
            "Duration of answered queries.",
            ["pipeline"],
            buckets=BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("ragstate_queries_in_flight", "Queries being answered now.", registry=r)
        Info("ragstate_build", "The ragstate version serving.", registry=r).info({"version": version})

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
