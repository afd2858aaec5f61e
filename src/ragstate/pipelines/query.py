"""A pipeline's query side: guard, retrieve, describe. ``Project.pipeline(name)`` makes one.

``Pipeline.retrieve(query, k)``, in order:

1. the retriever's own check of the spec (HyDE: a generator is configured), so a
   query that cannot be answered fails before any other work;
2. the readiness guard (``pipelines.readiness``) in the mode asked for, or the spec's
   ``query.readiness``: refuse, warn, or heal (apply the plan of the pipeline's kinds,
   then check again);
3. the retriever, over the active generation of each kind (read through
   ``ledger.active``), in one read transaction;
4. titles (from the document registry, else the source) and, where the retriever took no
   passage from the store (``basic``, ``hyde``), the document's summary from the source.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ragstate.apply.record import RunRecord
from ragstate.artifacts.desired import Desired, desired_state, pin_holds
from ragstate.errors import NotReady, QueryError, RagstateError
from ragstate.pipelines import readiness
from ragstate.pipelines.base import Found, Hit, QueryContext, Retrieval, Retriever, cut
from ragstate.pipelines.basic import Basic
from ragstate.pipelines.colbert import Colbert
from ragstate.pipelines.crag import Crag
from ragstate.pipelines.graphrag import Graphrag
from ragstate.pipelines.hybrid import Hybrid
from ragstate.pipelines.hyde import Hyde
from ragstate.pipelines.noderag import Noderag
from ragstate.sources.base import InPlaceSource, Source
from ragstate.spec.model import Spec
from ragstate.stores import ledger, registry, retrieval
from ragstate.stores.base import Session, Store
from ragstate.stores.documents import DocRef
from ragstate.stores.ledger import Generation

log = logging.getLogger(__name__)

#: the retrieval path of each pipeline
RETRIEVERS: dict[str, Retriever] = {
    r.name: r for r in (Basic(), Crag(), Hyde(), Colbert(), Noderag(), Graphrag(), Hybrid())
}


class Pipeline:
    """One enabled pipeline of a project, ready to answer queries.

    Args:
        name: the pipeline (enabled in ``spec.pipelines``).
        spec, spec_hash, store: the project's.
        source: makes the project's source (read by the guard and for titles).
        heal: applies the plan of the given pipelines' kinds (``Project.apply``).

    Raises:
        QueryError: the pipeline is not enabled in the spec.
    """

    def __init__(
        self,
        name: str,
        *,
        spec: Spec,
        spec_hash: str,
        store: Store,
        source: Callable[[], Source],
        heal: Callable[[tuple[str, ...]], RunRecord],
    ):
        if name not in spec.pipelines:
            raise QueryError(
                f"pipeline '{name}' is not enabled in the spec (pipelines: {', '.join(spec.pipelines)}); "
                "add it to pipelines and reconcile first"
            )
        self.name = name
        self.spec = spec
        self.spec_hash = spec_hash
        self.store = store
        self._source = source
        self._heal = heal
        self.retriever = RETRIEVERS[name]
        #: the kinds this pipeline reads and those they are built from
        self.desired: Desired = desired_state(spec, pipelines=(name,))

    def readiness(self) -> readiness.Readiness:
        """The guard's check alone: is the pipeline's data converged now?"""
        return readiness.check(self.spec, self.spec_hash, self.desired, self.store, self._source(), self.name)

    def retrieve(self, query: str, k: int | None = None, *, readiness_mode: str | None = None) -> Retrieval:
        """The ``k`` documents that best answer ``query``, best first.

        Args:
            query: the text asked.
            k: how many documents (default ``query.k`` of the spec).
            readiness_mode: ``fail``, ``warn`` or ``heal`` (default ``query.readiness``).

        Returns:
            A ``Retrieval``: ``results`` (``Hit``: doc_id, title, score, passage, kind,
            generation), and whether the data was ready, warnings, the heal run, notes.

        Raises:
            QueryError: empty text, k below 1, an unknown readiness mode.
            NotReady: the data is not converged (``fail``), still not after healing
                (``heal``), or has no active generation of a kind built with the spec's
                models (any mode).
            GeneratorError: HyDE's generator is missing or failed.
            RagstateError: anything else (store, source, model).
        """
        mode = readiness_mode or self.spec.query.readiness
        if mode not in readiness.MODES:
            raise QueryError(f"readiness mode {mode!r}: use one of {', '.join(readiness.MODES)}")
        k = self.spec.query.k if k is None else k
        if k < 1:
            raise QueryError(f"k is {k}: ask for at least one document")
        if not query.strip():
            raise QueryError("the query is empty")
        t0 = time.perf_counter()
        self.retriever.check(self.spec)
        state = self.readiness()
        timings = {"readiness_s": state.seconds}
        warnings: list[str] = []
        healed: dict[str, Any] | None = None
        if not state.ready:
            if mode == "fail":
                raise NotReady(_refusal(self.name, state.reasons), pipeline=self.name, reasons=list(state.reasons))
            if mode == "warn":
                warnings = [f"{self.name} is not ready: {r}" for r in state.reasons]
            else:
                t1 = time.perf_counter()
                record = self._heal((self.name,))
                timings["heal_s"] = round(time.perf_counter() - t1, 4)
                healed = _healed(record)
                state = self.readiness()
                if not state.ready:
                    raise NotReady(
                        _refusal(self.name, state.reasons, healed=record.run_id),
                        pipeline=self.name,
                        reasons=list(state.reasons),
                    )
        prepared = self.retriever.prepare(self.spec, query)
        t2 = time.perf_counter()
        with self.store.session() as s, s.read_transaction():
            # A kind a rollback holds is read under the recipe (and model) it is held at.
            desired = pin_holds(self.spec, self.desired, ledger.generations(self.store, s))
            generations = self._generations(s, desired)
            ctx = QueryContext(self.spec, self.store, s, desired, generations, prepared=prepared)
            found = self.retriever.retrieve(ctx, query, k)
            hits = _placed(ctx, self._describe(s, found))
        timings["retrieve_s"] = round(time.perf_counter() - t2, 4)
        timings["total_s"] = round(time.perf_counter() - t0, 4)
        return Retrieval(
            pipeline=self.name,
            query=query,
            results=tuple(hits),
            generations={kind: g.generation for kind, g in generations.items()},
            ready=state.ready,
            readiness=mode,
            warnings=tuple(warnings),
            healed=healed,
            confidence=found.confidence,
            notes=found.notes,
            timings=timings,
        )

    # --- internals --------------------------------------------------------------------

    def _generations(self, s: Session, desired: Desired) -> dict[str, Generation]:
        """The active generation of every kind the pipeline needs; refuses a kind without
        one, or one whose vectors another model made (the query could not be compared)."""
        out: dict[str, Generation] = {}
        for d in desired.kinds:
            gen = ledger.active(self.store, s, d.name)
            if gen is None:
                raise NotReady(
                    f"pipeline {self.name} cannot answer: {d.name} has no active generation yet; "
                    "run `ragstate reconcile` first",
                    pipeline=self.name,
                    reasons=[f"{d.name}: no active generation yet"],
                )
            wanted = d.recipe.params.get("model")
            if wanted is not None and gen.recipe.get("model") != wanted:
                raise NotReady(
                    f"pipeline {self.name} cannot answer: the active generation {gen.generation} of {d.name} was "
                    f"built with another model than models.{d.recipe.model} names, so a query encoded now "
                    "cannot be compared with it; apply the new generation first",
                    pipeline=self.name,
                    reasons=[f"{d.name}: active generation {gen.generation} has another model"],
                )
            out[d.name] = gen
        return out

    def _describe(self, s: Session, found: Found) -> list[Hit]:
        """Fill in titles and missing passages: from the registry, else from the source."""
        ids = [h.doc_id for h in found.hits]
        refs = registry.document_refs(s, ids) if ids else {}
        need = [d for d in ids if not (d in refs and refs[d].title)] + [h.doc_id for h in found.hits if not h.passage]
        docs = self._load(refs, list(dict.fromkeys(need)))
        out = []
        for h in found.hits:
            doc = docs.get(h.doc_id)
            ref = refs.get(h.doc_id)
            title = ref.title if ref is not None and ref.title else (doc.title if doc is not None else "")
            passage = h.passage or (cut(doc.summary) if doc is not None else "")
            out.append(replace(h, title=title, passage=passage))
        return out

    def _load(self, refs: dict[str, DocRef], ids: list[str]) -> dict[str, Any]:
        """The documents ``ids`` as the source holds them now; a document that cannot be read
        is left out (its hit keeps an empty title or passage) and logged."""
        if not ids:
            return {}
        source = self._source()
        if isinstance(source, InPlaceSource):  # rows are found by id: no registry entry needed
            wanted = [refs.get(d) or DocRef(d, "", "", "", 0, 0, 0, 0, 0) for d in ids]
        else:
            wanted = [refs[d] for d in ids if d in refs]
        try:
            return {doc.doc_id: doc for doc in source.load(wanted)}
        except RagstateError:  # one document gone (warn mode): read the others one by one
            docs = {}
            for ref in wanted:
                try:
                    docs.update((doc.doc_id, doc) for doc in source.load([ref]))
                except RagstateError as exc:
                    log.warning("result %s: cannot read the document again: %s", ref.doc_id, exc)
            return docs


def _placed(ctx: QueryContext, hits: list[Hit]) -> list[Hit]:
    """Hits whose passage is a chunk of the active ``chunks`` generation, with the chunk's
    place: ``start_char`` and ``end_char`` in the details, its pages and section."""
    wanted = [(h.doc_id, h.details.get("chunk_id")) for h in hits if h.details.get("chunk_id") is not None]
    if not wanted or "chunks" not in ctx.generations:
        return hits
    table = ctx.table("chunks")
    # a generation built before chunks kept pages and sections (code version 1) has no such columns
    sections = "section" in (ctx.store.columns(ctx.session, table) or {})
    rows = retrieval.chunk_places(
        ctx.session, table, sorted({d for d, _ in wanted}), sorted({c for _, c in wanted}), sections=sections
    )
    places = {(d, c): (int(start), int(end), p0, p1, sec) for d, c, start, end, p0, p1, sec in rows}
    out = []
    for h in hits:
        place = places.get((h.doc_id, h.details.get("chunk_id")))
        if place is None:
            out.append(h)
            continue
        start, end, p0, p1, sec = place
        details = {**h.details, "start_char": start, "end_char": end}
        out.append(replace(h, details=details, page=p0, page_end=p1, section=sec))
    return out


def _refusal(name: str, reasons: tuple[str, ...], healed: str | None = None) -> str:
    head = f"pipeline {name} is not ready" + (f" even after healing (run {healed})" if healed else "")
    return (
        head
        + ": "
        + "; ".join(reasons)
        + ". Run `ragstate reconcile`, or query with readiness warn (answer anyway) or heal (reconcile first)."
    )


def _healed(record: RunRecord) -> dict[str, Any]:
    """What a heal did, as a query reports it: the run and its counts per kind."""
    return {
        "run_id": record.run_id,
        "status": record.status,
        "kinds": {
            name: {"built": k.built, "deleted": k.deleted + k.purged, "embedded": k.embedded, "reused": k.reused}
            for name, k in record.kinds.items()
        },
        "seconds": record.timings.get("total_s"),
    }
