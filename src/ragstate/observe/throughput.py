"""Throughput for estimates when no run on this store has measured one: a calibration batch.

A plan's estimate divides each kind's work by a rate. Kinds that feed a model are
measured in (estimated) tokens per second by the runs that built them
(``stores.records.measured_rate``). Before any run has, a local model (an embedder with
``calibrate = True``: sentence-transformers) is timed once per process on a short batch
of English text, each text a full input window, so the first plan's estimate comes from
this machine and this model, not from a constant. Loading the model is not timed (a run
loads it before its clock starts, too). Other embedders (a remote API, the hash
embedder) keep their default rate until a run measures one.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

from ragstate.artifacts.desired import Desired
from ragstate.compute.embedders import Embedder, make_embedder, model_inputs
from ragstate.observe.observe import Observed, _to_build
from ragstate.spec.model import Spec
from ragstate.stores.records import Rate

log = logging.getLogger(__name__)

#: texts in the calibration batch (each as long as the model's window)
BATCH = 8

_SAMPLE = (
    "Seeds of many plants stay dormant until the conditions for germination are right: "
    "water, warmth and light break the dormancy, and the embryo begins to grow. "
    "Researchers measured the germination rate of seeds kept at several temperatures "
    "and found that warm, moist storage shortened dormancy in most of the species studied. "
)

_lock = threading.Lock()
_calibrated: dict[tuple[str, str], float] = {}


def calibrate(embedder: Embedder, output: str) -> float:
    """Tokens a second ``embedder`` reads, timed on a batch of full windows (once per
    process and embedding recipe)."""
    from ragstate.artifacts.cache import embedding_fp

    key = (embedding_fp(embedder.identity(), output), output)
    with _lock:
        if key in _calibrated:
            return _calibrated[key]
        embedder.load()
        texts = [f"{i}. " + _SAMPLE * 8 for i in range(BATCH)]
        reads = model_inputs(embedder, texts)
        tokens = sum(r.tokens for r in reads)
        cut = [r.text for r in reads]
        started = time.perf_counter()
        if output == "tokens":
            embedder.embed_tokens(cut)
        else:
            embedder.embed(cut)
        seconds = max(time.perf_counter() - started, 1e-6)
        _calibrated[key] = tokens / seconds
        return _calibrated[key]


def with_calibration(spec: Spec, desired: Desired, observed: Observed) -> Observed:
    """``observed`` with a calibrated rate for each kind that feeds a model, has documents
    to build and no measured rate."""
    kinds = dict(observed.kinds)
    for d in desired.kinds:
        k = kinds.get(d.name)
        output, model = d.kind.embedding_output, d.recipe.model
        if k is None or k.rate is not None or k.held or output is None or model is None or not _to_build(k):
            continue
        embedder = make_embedder(model, spec.models[model])
        if not getattr(embedder, "calibrate", False):
            continue  # a remote API or a test embedder: its default rate, no calls spent on timing
        try:
            rate = calibrate(embedder, output)
        except Exception as exc:  # noqa: BLE001 - a model that cannot run is apply's to report, not plan's
            log.debug("calibration of models.%s failed: %s", model, exc)
            continue
        kinds[d.name] = replace(k, rate=Rate(rate, "tokens", f"calibrated on a batch of {BATCH} texts"))
    return replace(observed, kinds=kinds)
