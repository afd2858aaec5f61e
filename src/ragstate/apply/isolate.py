"""Failure isolation: build a batch; when it fails, find the documents that fail, set them aside.

For each batch, the documents are read (one that cannot be read any more is set aside
alone) and built together through the guard, which retries transient errors. When the
build still fails, by the error's class (``faults.taxonomy``):

==============  =====================================================================
``memory``      the batch is halved (and the sizer's ceiling with it) and each half
                built; a document that runs out of memory alone is set aside
``item``        an ``ItemError`` naming its document sets that one aside at once;
                otherwise the batch is split in halves until the failing documents
                are alone, and each is set aside while the others are built
``unexpected``  as ``item``; but ``max_failure_streak`` documents failing in a row
                with no success between them stop the run (``BuildFailing``): the
                model or plugin is at fault, and quarantining everything would hide it
``transient``   (once the guard's tries are spent) and ``fatal``: raised; the run stops
==============  =====================================================================

Built rows are checked before anything is written: a document with a vector that fails
the quality checks (wrong dimension, NaN or infinity, zero norm, not unit length when it
should be) is set aside, so the store never holds a bad vector. Set-aside documents come
back as ``Failure`` values, which apply writes to quarantine in the batch's transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from ragstate.apply.batching import BatchSizer, payload_bytes, process_memory
from ragstate.artifacts.base import ArtifactKind, BuildContext, Built, Recipe
from ragstate.errors import BuildFailing, DocumentError, ItemError, VanishedDocument
from ragstate.faults.retry import Guard
from ragstate.faults.taxonomy import FaultClass, classify, quarantine_reason
from ragstate.hashing import quarantine_fingerprint
from ragstate.redact import redact
from ragstate.sources.base import Document, Source
from ragstate.stores.base import Store, check_vector
from ragstate.stores.documents import DocRef
from ragstate.stores.quarantine import MAX_MESSAGE, Entry
from ragstate.stores.schema import TableDef


@dataclass(frozen=True)
class Failure:
    """A document set aside: what it was when it failed, and why."""

    ref: DocRef
    reason: str
    error_type: str
    message: str

    def entry(self, kind: str, recipe_fp: str) -> Entry:
        return Entry(
            kind=kind,
            item=self.ref.doc_id,
            doc_id=self.ref.doc_id,
            path=self.ref.path,
            reason=self.reason,
            error_type=self.error_type,
            message=self.message,
            # the content hash the plan saw, and the recipe: the next plan compares its own with them
            fingerprint=quarantine_fingerprint(self.ref.content_hash, recipe_fp),
        )


@dataclass
class BatchResult:
    built: Built
    #: documents built, in the order they were built
    doc_ids: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


class Isolator:
    """Builds the batches of one kind for one apply."""

    def __init__(
        self,
        *,
        kind: ArtifactKind,
        recipe: Recipe,
        ctx: BuildContext,
        tables: tuple[TableDef, ...],
        store: Store,
        guard: Guard,
        sizer: BatchSizer,
        max_streak: int,
    ):
        self.kind = kind
        self.recipe = recipe
        self.ctx = ctx
        self.store = store
        self.guard = guard
        self.sizer = sizer
        self.max_streak = max_streak
        self.streak = 0
        self.n_tables = len(tables)
        # (table index, doc_id column, vector column, what to check) for each vector column
        self._vectors = [
            (
                vc.table,
                tables[vc.table].column_names.index("doc_id"),
                tables[vc.table].column_names.index(vc.column),
                vc,
            )
            for vc in kind.vector_columns(recipe)
            if vc.table < len(tables) and vc.column in tables[vc.table].column_names
        ]

    def run(
        self,
        source: Source,
        refs: Sequence[DocRef],
        *,
        loaded: tuple[list[Document], list[Failure]] | None = None,
        prebuilt: Built | BaseException | None = None,
    ) -> BatchResult:
        """Read and build ``refs``; failing documents are returned, not raised.

        ``loaded`` is what ``load`` returned for ``refs``, and ``prebuilt`` the build of
        all its documents made elsewhere (another executor): used as is when it is a
        ``Built``; when it is the error that build raised, the batch is built again here,
        with the retries and isolation of a local build.
        """
        by_id = {r.doc_id: r for r in refs}
        docs, failures = loaded if loaded is not None else self._load(source, refs)
        done = prebuilt if isinstance(prebuilt, Built) else None
        parts: list[Built] = []
        stack: list[list[Document]] = [docs]
        while stack:
            group = stack.pop()
            if not group:
                continue
            try:
                built, done = (done, None) if done is not None else (self._build(group), None)
            except BaseException as exc:
                cls = classify(exc)
                if cls not in (FaultClass.MEMORY, FaultClass.ITEM, FaultClass.UNEXPECTED):
                    raise
                stack.extend(self._isolate(group, exc, cls, by_id, failures))
                continue
            self.streak = 0
            parts.append(self._checked(built, by_id, failures))
        result = BatchResult(built=merge(parts, self.n_tables))
        result.doc_ids = [d for d in (r.doc_id for r in refs) if d in result.built.source_hashes]
        result.failures = failures
        return result

    def load(self, source: Source, refs: Sequence[DocRef]) -> tuple[list[Document], list[Failure]]:
        """Read ``refs``: the documents, and a failure for each that cannot be read."""
        return self._load(source, refs)

    # --- internals --------------------------------------------------------------------

    def _load(self, source: Source, refs: Sequence[DocRef]) -> tuple[list[Document], list[Failure]]:
        try:
            return self.guard.call("source", lambda: list(source.load(refs))), []
        except DocumentError:
            pass
        docs: list[Document] = []
        failures: list[Failure] = []
        for ref in refs:  # find which one(s) cannot be read
            try:
                docs.extend(self.guard.call("source", lambda ref=ref: list(source.load([ref]))))
            except VanishedDocument:
                # deleted since observed: not a failure; the end-of-run check finds it out of scope
                self.guard.log.vanished(self.kind.name)
            except DocumentError as exc:
                failures.append(_failure(ref, exc))
                self.guard.log.failed("source", "item", exc, f"quarantined {ref.doc_id}")
                self.guard.log.set_aside(self.kind.name)
        return docs, failures

    def _build(self, group: list[Document]) -> Built:
        before = process_memory()
        built = self.guard.call("embedder", lambda: self.kind.build(group, self.recipe, self.ctx))
        grown = max(0, process_memory() - before)
        text = sum(len(d.title) + len(d.abstract) + len(d.body) for d in group)
        self.sizer.measured(len(group), text + payload_bytes(built.rows) + grown)
        return built

    def _isolate(
        self,
        group: list[Document],
        exc: BaseException,
        cls: FaultClass,
        by_id: dict[str, DocRef],
        failures: list[Failure],
    ) -> list[list[Document]]:
        """What to build next after ``group`` failed with ``exc`` (in stack order)."""
        named = exc.doc_id if isinstance(exc, ItemError) else None
        if len(group) == 1 or (named is not None and any(d.doc_id == named for d in group)):
            culprit = group[0] if len(group) == 1 else next(d for d in group if d.doc_id == named)
            failures.append(_failure(by_id[culprit.doc_id], exc))
            self.guard.log.failed("embedder", cls.value, exc, f"quarantined {culprit.doc_id}")
            self.guard.log.set_aside(self.kind.name)
            if cls is FaultClass.UNEXPECTED:
                self.streak += 1
                if self.streak >= self.max_streak:
                    raise BuildFailing(
                        f"{self.kind.name}: {self.streak} documents failed in a row with unexpected errors "
                        f"(last: {type(exc).__name__}: {redact(str(exc))[:200]}); this looks like a fault of the "
                        "model or plugin, not of the documents, so the run stopped (reconcile.max_failure_streak)",
                        kind=self.kind.name,
                        streak=self.streak,
                    ) from exc
            rest = [d for d in group if d.doc_id != culprit.doc_id]
            return [rest] if rest else []
        if cls is FaultClass.MEMORY:
            half = self.sizer.out_of_memory(len(group))
            self.guard.log.failed("embedder", cls.value, exc, f"batch of {len(group)} halved to {half}")
        else:
            half = (len(group) + 1) // 2
            self.guard.log.failed("embedder", cls.value, exc, f"batch of {len(group)} split to find the document")
        pieces = [group[i : i + half] for i in range(0, len(group), half)]
        return list(reversed(pieces))

    def _checked(self, built: Built, by_id: dict[str, DocRef], failures: list[Failure]) -> Built:
        """``built`` without the documents whose vectors fail the quality checks."""
        if not self._vectors:
            return built
        bad: dict[str, str] = {}
        per_table = built.table_rows(self.n_tables)
        for table, doc_at, value_at, vc in self._vectors:
            for row in per_table[table]:
                try:
                    reason = check_vector(self.store.decode_vector(row[value_at]), vc.dimension, vc.normalized)
                except ValueError:
                    reason = "unreadable"
                if reason is not None:
                    bad.setdefault(row[doc_at], reason)
        if not bad:
            return built
        for doc_id, reason in sorted(bad.items()):
            error = ItemError(f"{self.kind.name}: the model gave document '{doc_id}' a bad vector ({reason})")
            failures.append(_failure(by_id[doc_id], error, reason="bad_vector"))
            self.guard.log.failed("embedder", FaultClass.ITEM.value, error, f"quarantined {doc_id}")
            self.guard.log.set_aside(self.kind.name)
        return without(built, set(bad), self.n_tables)


def merge(parts: Sequence[Built], n_tables: int = 1) -> Built:
    """One ``Built`` holding all of ``parts``: rows joined table by table, mappings merged,
    counts added."""
    out = Built()
    for part in parts:
        for f in dataclasses.fields(Built):
            mine, theirs = getattr(out, f.name), getattr(part, f.name)
            if f.name == "more":
                continue  # joined per table below
            if isinstance(mine, list):
                mine.extend(theirs)
            elif isinstance(mine, dict):
                mine.update(theirs)
            elif isinstance(mine, (int, float)):
                setattr(out, f.name, mine + theirs)
            else:  # a new kind of field: say so rather than drop it
                raise TypeError(f"merge() does not know how to combine Built.{f.name}")
    if n_tables > 1:
        out.more = [[row for part in parts for row in part.table_rows(n_tables)[i]] for i in range(1, n_tables)]
    return out


def without(built: Built, doc_ids: set[str], n_tables: int = 1) -> Built:
    """``built`` minus the rows and per-document entries of ``doc_ids``.

    Every row of every table starts with the stamp, ``doc_id`` first.
    """
    per_table = [[r for r in rows if r[0] not in doc_ids] for rows in built.table_rows(n_tables)]
    return dataclasses.replace(
        built,
        rows=per_table[0],
        more=per_table[1:],
        items={d: n for d, n in built.items.items() if d not in doc_ids},
        source_hashes={d: h for d, h in built.source_hashes.items() if d not in doc_ids},
    )


def _failure(ref: DocRef, exc: BaseException, *, reason: str | None = None) -> Failure:
    return Failure(
        ref=ref,
        reason=reason or quarantine_reason(exc),
        error_type=type(exc).__name__,
        message=redact(str(exc) or type(exc).__name__)[:MAX_MESSAGE],
    )
