"""Executors: where a kind's batches are computed (``kind.build(docs, recipe, ctx)``).

Apply reads the documents of each batch and writes each ``Built`` result in one
transaction (``apply.writer``); an executor sits between the two and decides only where
``build`` runs. Results always come back in the order the batches went in, so the
write order and crash safety are the same whatever the executor.

==========  ==========================================================================
``local``   in this process, one batch at a time, while the writer thread commits
            the previous batch (the default)
``ray``     on the actors of a Ray cluster (a local one started for the run, or
            ``executor.address``): each actor loads the models once and builds whole
            batches; up to two batches per actor are in flight, the next batches are
            read only as results come back, so memory stays bounded
==========  ==========================================================================

An executor is opened once per apply and serves every kind of the plan; a Ray cluster
and its actors start on the first batch, so a no-op apply never starts one.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ragstate.errors import ExecutorError

if TYPE_CHECKING:
    from ragstate.artifacts.base import ArtifactKind, BuildContext, Built, Recipe
    from ragstate.sources.base import Document
    from ragstate.spec.model import Spec

#: batches in flight per Ray actor: one being built, one waiting, so an actor never idles
IN_FLIGHT_PER_WORKER = 2


class Executor(Protocol):
    """Computes one kind's batches: for each ``(key, docs)`` yields ``(key, outcome)``, in
    order, the outcome being the ``Built`` or the error the build raised."""

    description: str
    #: seconds spent starting workers and loading their models (0 for the local executor)
    startup_seconds: float

    def map(
        self, kind: ArtifactKind, recipe: Recipe, ctx: BuildContext, batches: Iterable[tuple[Any, Sequence[Document]]]
    ) -> Iterator[tuple[Any, Built | BaseException]]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """``build`` in this process (the model is loaded once per process). Apply builds
    through its isolator directly; ``map`` is the same contract for other callers."""

    description = "local"
    startup_seconds = 0.0

    def map(
        self, kind: ArtifactKind, recipe: Recipe, ctx: BuildContext, batches: Iterable[tuple[Any, Sequence[Document]]]
    ) -> Iterator[tuple[Any, Built | BaseException]]:
        for key, docs in batches:
            try:
                yield key, kind.build(docs, recipe, ctx)
            except Exception as exc:  # the caller decides: retry, isolate, or stop
                yield key, exc

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class _Job:
    """What an actor needs to rebuild a ``BuildContext`` of its own (all picklable)."""

    kind: Any
    recipe: Any
    run_id: str
    now: float
    tables: Mapping[str, Any]
    kinds: Mapping[str, Any]
    fresh: frozenset[str]


class BuildWorker:
    """The body of a Ray actor: the spec, its own store connection and models, loaded once."""

    def __init__(self, spec: Spec):
        from ragstate.stores import open_store

        self.spec = spec
        self.store = open_store(spec.store)  # for upstream reads and the store's vector encoding
        self.pid = os.getpid()

    def load(self, models: Sequence[str]) -> int:
        """Load ``models`` now (before the first batch); returns this process's id."""
        from ragstate.compute.embedders import make_embedder

        for name in models:
            make_embedder(name, self.spec.models[name]).load()
        return self.pid

    def build(self, job: _Job, docs: Sequence[Document]) -> tuple[Built, int]:
        from ragstate.artifacts.base import BuildContext
        from ragstate.compute.embedders import make_embedder

        ctx = BuildContext(
            spec=self.spec,
            embedder=lambda name: make_embedder(name, self.spec.models[name]),
            encode_vector=self.store.encode_vector,
            run_id=job.run_id,
            now=job.now,
            store=self.store,
            tables=job.tables,
            kinds=job.kinds,
            fresh=job.fresh,
        )
        return job.kind.build(docs, job.recipe, ctx), self.pid


class RayExecutor:
    """``build`` on Ray actors; results in submission order (see the module doc)."""

    def __init__(self, spec: Spec):
        settings = spec.executor
        self.spec = spec
        self.address = settings.address
        self.workers = settings.workers
        self.cpus_per_worker = settings.cpus_per_worker
        self.gpus_per_worker = settings.gpus_per_worker
        self.description = f"ray ({self.workers} workers, {self.address or 'local cluster'})"
        self._actors: list[Any] = []
        self._started_ray = False
        #: seconds spent starting the cluster and the actors and loading their models
        self.startup_seconds = 0.0
        #: process ids of the actors that built batches (for run records and tests)
        self.worker_pids: set[int] = set()

    def _start(self, models: Sequence[str]) -> None:
        t0 = time.perf_counter()
        try:
            self._start_actors(models)
        finally:
            self.startup_seconds += time.perf_counter() - t0

    def _start_actors(self, models: Sequence[str]) -> None:
        try:
            import ray
        except ImportError:
            raise ExecutorError(
                "executor.type is ray, but Ray is not installed (pip install 'ragstate[ray]')"
            ) from None
        if not ray.is_initialized():
            try:
                if self.address:
                    ray.init(address=self.address, logging_level="ERROR", log_to_driver=False)
                else:
                    ray.init(
                        num_cpus=max(1, int(self.workers * self.cpus_per_worker + 0.999)),
                        include_dashboard=False,
                        logging_level="ERROR",
                        log_to_driver=False,
                    )
            except Exception as exc:  # Ray raises many kinds: connection, version mismatch, ...
                raise ExecutorError(f"executor: cannot start or reach Ray ({self.address or 'local'}): {exc}") from exc
            self._started_ray = True
        actor = ray.remote(num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker)(BuildWorker)
        self._actors = [actor.remote(self.spec) for _ in range(self.workers)]
        self.worker_pids.update(self._get([a.load.remote(list(models)) for a in self._actors]))

    def map(
        self, kind: ArtifactKind, recipe: Recipe, ctx: BuildContext, batches: Iterable[tuple[Any, Sequence[Document]]]
    ) -> Iterator[tuple[Any, Built | BaseException]]:
        if not self._actors:
            self._start([recipe.model] if recipe.model is not None else [])
        elif recipe.model is not None:
            self._get([a.load.remote([recipe.model]) for a in self._actors])
        job = _Job(
            kind=kind,
            recipe=recipe,
            run_id=ctx.run_id,
            now=ctx.now,
            tables=dict(ctx.tables),
            kinds=dict(ctx.kinds),
            fresh=ctx.fresh,
        )
        pending: collections.deque[tuple[Any, Any]] = collections.deque()
        limit = IN_FLIGHT_PER_WORKER * len(self._actors)
        turn = 0
        try:
            for key, docs in batches:
                if len(pending) >= limit:
                    yield self._result(pending.popleft())
                pending.append((key, self._actors[turn % len(self._actors)].build.remote(job, docs)))
                turn += 1
            while pending:
                yield self._result(pending.popleft())
        finally:
            if pending:  # abandoned (an error downstream): do not leave work running
                import ray

                for _, ref in pending:
                    ray.cancel(ref)

    def _result(self, item: tuple[Any, Any]) -> tuple[Any, Built | BaseException]:
        import ray

        key, ref = item
        try:
            built, pid = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            # The build raised on the actor: the caller builds the batch again locally.
            cause = getattr(exc, "cause", None)
            return key, cause if isinstance(cause, BaseException) else exc
        except ray.exceptions.RayError as exc:  # the actor or the cluster is gone
            raise ExecutorError(f"executor: a Ray worker failed: {exc}") from exc
        self.worker_pids.add(pid)
        return key, built

    @staticmethod
    def _get(refs: Any) -> Any:
        import ray

        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else None
            if cause is not None:
                raise cause from None
            raise ExecutorError(f"executor: a Ray worker failed: {exc}") from exc
        except ray.exceptions.RayError as exc:
            raise ExecutorError(f"executor: a Ray worker failed: {exc}") from exc

    def close(self) -> None:
        if not self._actors and not self._started_ray:
            return
        import ray

        for actor in self._actors:
            ray.kill(actor)
        self._actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False


def open_executor(spec: Spec) -> Executor:
    """The executor ``spec.executor`` names (nothing starts until the first batch)."""
    if spec.executor.type == "ray":
        return RayExecutor(spec)
    return LocalExecutor()
