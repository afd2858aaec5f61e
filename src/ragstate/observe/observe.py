"""Observe: read the source, the ledger and the artifact tables into an ``Observed`` value.

Read-only, apart from creating the universal tables of a brand-new store (an empty
store is not drift) and the plan's temporary staging tables.

Three depths:

* ``shallow`` (``plan``): source vs ledger vs presence of artifact rows and their stamps,
  all as set operations in SQL; a no-op costs a stat per file and a few joins.
* ``audit`` (``apply``): also checks every stored vector (dimension, finite, non-zero,
  unit length), looks for identical vectors of different texts, and runs each kind's
  consistency checks against its upstream kinds (every chunk has its embedding and token
  matrix, every entity cites an existing chunk, offsets lie inside their document).
* ``deep`` (``verify``, ``reconcile``, ``--deep``): also re-reads and re-hashes every
  source file, trusting no recorded file stat, and re-embeds a sample of stored items to
  compare with what is stored.

Kinds are observed in build order (upstream first), so each one's checks can read its
upstream kinds' target tables.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ragstate.artifacts.base import Findings, Inspection, disagreeing
from ragstate.artifacts.cache import identical_rows
from ragstate.artifacts.desired import Desired, DesiredKind, pin_holds
from ragstate.compute.embedders import make_embedder, model_inputs
from ragstate.errors import RagstateError
from ragstate.hashing import text_hash
from ragstate.observe.cache import CacheFindings, observe_cache
from ragstate.observe.quarantine import QuarantineView, held_downstream, quarantine_view
from ragstate.sources.base import InPlaceSource, Source, SourceProblem
from ragstate.spec.model import Spec
from ragstate.stores import ledger, quarantine, records, registry
from ragstate.stores.base import SchemaProblem, Session, Store, VectorSearch
from ragstate.stores.dialect import Col
from ragstate.stores.documents import DocRef, FileStat, Snapshot
from ragstate.stores.ledger import ACTIVE, BUILDING, DROPPED, REJECTED, DriftRows, Generation
from ragstate.stores.migrations import SCHEMA_VERSIONS, migrate, schema_problems
from ragstate.stores.schema import GENERATIONS, TableDef


@dataclass(frozen=True)
class KindObservation:
    """One artifact kind as found, relative to its desired recipe."""

    kind: str
    recipe_fp: str
    active: Generation | None
    #: the generation holding the desired recipe (the active one, or one being built)
    target: Generation | None
    rows: DriftRows
    #: problems of the target generation's table (missing, columns, indexes)
    table_problems: tuple[SchemaProblem, ...] = ()
    #: True when the target table's shape cannot be repaired in place (a column of
    #: another type or dimension): a new generation is needed
    table_incompatible: bool = False
    #: problems of the active generation's table that cannot be repaired in place,
    #: though its recipe is the desired one: ``target`` is then another generation of
    #: the same recipe (None: a new one), built and verified on its own table, then switched
    replaced: tuple[SchemaProblem, ...] = ()
    corrupt: tuple[tuple[str, str], ...] = ()
    mock: tuple[str, ...] = ()
    #: documents the kind's consistency checks found partial or inconsistent with upstream
    incomplete: tuple[str, ...] = ()
    #: the throughput measured by the last run that built this kind (with this model, or
    #: this recipe for kinds without a model), or calibrated (``observe.throughput``)
    rate: records.Rate | None = None
    #: the target generation's tables, when they all exist
    tables: tuple[TableDef, ...] | None = None
    #: the target tables of the kinds this one depends on
    upstream: Mapping[str, tuple[TableDef, ...]] = field(default_factory=dict)
    #: documents in scope held back by quarantine (not built, not counted as drift)
    quarantined: tuple[str, ...] = ()
    #: every generation of the kind (for garbage collection and the plan's comparison)
    generations: tuple[Generation, ...] = ()
    #: ``(documents, items)`` the ledger holds per generation
    sizes: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    #: why the kind is held at its active generation (a rollback, or an upstream kind's),
    #: or "": while the spec asks for the recipe rolled back from, the kind is observed
    #: under the recipe it is held at (``artifacts.desired.pin_holds``)
    held: str = ""
    #: True when the held kind is left alone: this version cannot build its recipe again
    #: (``ArtifactKind.pinned``), so it is observed only as far as status needs
    frozen: bool = False
    #: documents whose content changed past the model's window: what the model reads of
    #: them did not change, so they are no drift (out of ``rows.changed``); apply
    #: restamps them with their new content hash without a model call
    past_window: tuple[str, ...] = ()
    #: groups of documents holding identical values of one model input (the same article
    #: in two formats, a case variant for an uncased model): duplicates, not drift
    duplicates: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Observed:
    """Everything a plan is computed from."""

    scope_size: int
    kinds: dict[str, KindObservation]
    #: problems of the universal tables; when set, artifact drift was not observed
    schema: tuple[SchemaProblem, ...] = ()
    #: problems of an in-place source (its view, or its table against the mapping);
    #: when set, artifact drift was not observed either
    source_schema: tuple[SourceProblem, ...] = ()
    #: place and size of every document some kind must build
    refs: Mapping[str, DocRef] = field(default_factory=dict)
    snapshot: Snapshot | None = None
    known: Mapping[str, FileStat] = field(default_factory=dict)
    depth: str = "shallow"
    quarantine: QuarantineView = field(default_factory=QuarantineView)
    #: ``(doc_id, title)`` of the documents in scope, when asked for (golden queries)
    titles: tuple[tuple[str, str], ...] = ()
    #: the embedding cache's audit (deep observations only)
    cache: CacheFindings | None = None
    #: how long observing the source took (``seconds``; an in-place source also says its
    #: ``mode`` and splits it into ``sync_s`` and ``stage_s``)
    source_timing: Mapping[str, Any] = field(default_factory=dict)

    @property
    def registry_changed(self) -> bool:
        """True when the document registry differs from the source (apply records it)."""
        if self.snapshot is None:
            return False
        return bool(self.snapshot.changed_paths) or set(self.known) != {f.path for f in self.snapshot.files}


DEPTHS = ("shallow", "audit", "deep")


def observe(
    spec: Spec, desired: Desired, store: Store, source: Source, *, depth: str = "shallow", titles: bool = False
) -> Observed:
    """Observe the store and the source against ``desired``, at ``depth`` (see above);
    with ``titles``, also read the title of every document in scope (golden queries).

    Documents the source cannot read, and documents quarantined earlier, are in
    ``Observed.quarantine``; their drift is held back (see ``observe.quarantine``).

    Raises:
        SourceError, DuplicateDocumentId: the source cannot be read; nothing was written.
        StoreError: the store failed.
    """
    with store.session() as s:
        if store.columns(s, SCHEMA_VERSIONS.name) is None:
            migrate(store)
        # The catalog is read once per block (a query or two), not per table.
        with store.catalog_snapshot(s):
            problems = tuple(schema_problems(store, s))
            # An in-place source (a user's table) has no files: it reports its own schema
            # drift and stages its scope in the database, hashes included (sources.base).
            in_place = source if isinstance(source, InPlaceSource) else None
            source_problems = tuple(in_place.problems(s)) if in_place is not None else ()
        if problems or source_problems:
            return Observed(scope_size=0, kinds={}, schema=problems, source_schema=source_problems, depth=depth)
        known: Mapping[str, FileStat] = {}
        snapshot: Snapshot | None = None
        t0 = time.perf_counter()
        if in_place is None:
            known = registry.known_files(s)
            snapshot = source.snapshot(known, rehash=depth == "deep")
        else:
            in_place.sync(s)  # a copy or materialised view: refreshed before the snapshot
        with s.read_transaction(), store.catalog_snapshot(s):
            try:
                if in_place is not None:
                    scope_size = in_place.stage_scope(s, spec.scope_limit)
                else:
                    assert snapshot is not None
                    scope_size = registry.stage_scope(store, s, snapshot, known, spec.scope_limit)
                timing = {**(in_place.timing if in_place is not None else {}), "documents": scope_size}
                timing["seconds"] = round(time.perf_counter() - t0, 4)
                view = quarantine_view(
                    s, quarantine.entries(s), snapshot, {d.name: d.recipe.fingerprint for d in desired.kinds}
                )
                kinds = _observe_kinds(spec, desired, store, s, view, depth=depth, scope_size=scope_size)
                staged_titles = registry.scope_titles(s) if titles else ()
                refs = _refs_to_build(s, kinds, snapshot)
                kinds = {
                    name: _past_window(spec, store, s, source, desired.kind(name), k, refs) for name, k in kinds.items()
                }
                cache: CacheFindings | None = None
                if depth == "deep":
                    kinds, refs, cache = _deep(spec, desired, store, s, source, kinds, refs)
            finally:
                registry.drop_scope(s)
    return Observed(
        scope_size=scope_size,
        kinds=kinds,
        refs=refs,
        snapshot=snapshot,
        known=known,
        depth=depth,
        quarantine=view,
        titles=staged_titles,
        cache=cache,
        source_timing=timing,
    )


def _observe_kinds(
    spec: Spec, desired: Desired, store: Store, s: Session, view: QuarantineView, *, depth: str, scope_size: int
) -> dict[str, KindObservation]:
    """Every desired kind observed, in build order, without what quarantine holds back."""
    held = held_downstream(view.held, {d.name: d.kind.depends_on for d in desired.kinds})
    kinds: dict[str, KindObservation] = {}
    sizes = ledger.sizes(s)
    for d in desired.kinds:  # upstream first: checks read upstream tables
        upstream = {u: kinds[u].tables for u in d.kind.depends_on if u in kinds}
        held_upstream = [u for u in d.kind.depends_on if u in kinds and kinds[u].held]
        found = _observe_kind(spec, store, s, d, upstream, sizes, held_upstream, depth=depth, scope_size=scope_size)
        kinds[d.name] = _held(found, held.get(d.name, frozenset()), view.kept)
    return kinds


def _refs_to_build(s: Session, kinds: Mapping[str, KindObservation], snapshot: Snapshot | None) -> Mapping[str, DocRef]:
    """The place and size of every document some kind must build."""
    need = {doc for k in kinds.values() for doc in _to_build(k)}
    # Documents read just now are in hand already; only the others are looked up
    # (a first build of a large corpus would otherwise hold every ref twice).
    fresh = {r.doc_id: r for r in snapshot.fresh if r.doc_id in need} if snapshot is not None else {}
    rest = sorted(need.difference(fresh))
    return {**fresh, **registry.scope_refs(s, rest)} if rest else fresh


def _deep(
    spec: Spec,
    desired: Desired,
    store: Store,
    s: Session,
    source: Source,
    kinds: dict[str, KindObservation],
    refs: Mapping[str, DocRef],
) -> tuple[dict[str, KindObservation], Mapping[str, DocRef], CacheFindings]:
    """What a deep observation adds: a sample of stored vectors re-embedded (disagreeing
    ones are placeholders, built again: their refs added), and the embedding cache's audit."""
    kinds = {name: _with_recheck(spec, store, s, source, desired.kind(name), k) for name, k in kinds.items()}
    extra = {doc for k in kinds.values() for doc in k.mock} - set(refs)
    if extra:
        refs = {**refs, **registry.scope_refs(s, sorted(extra))}
    return kinds, refs, observe_cache(spec, desired, s)


def pinned(spec: Spec, desired: Desired, store: Store) -> Desired:
    """``desired`` with the kinds a rollback holds pinned to the recipe held
    (``artifacts.desired.pin_holds``); as it is on a store without generations yet."""
    with store.session() as s:
        columns = store.columns(s, GENERATIONS.name)
        if columns is None or "hold" not in columns:  # new, or from before rollback holds (migrated later)
            return desired
        gens = ledger.generations(store, s)
    return pin_holds(spec, desired, gens)


def _observe_kind(
    spec: Spec,
    store: Store,
    s: Session,
    desired: DesiredKind,
    upstream: Mapping[str, tuple[TableDef, ...] | None],
    sizes: Mapping[tuple[str, int], tuple[int, int]],
    held_upstream: list[str],
    *,
    depth: str,
    scope_size: int,
) -> KindObservation:
    kind, recipe = desired.kind, desired.recipe
    gens = ledger.generations(store, s, kind.name)
    own_sizes = {g: n for (k, g), n in sizes.items() if k == kind.name}
    active = next((g for g in gens if g.state == ACTIVE), None)
    held = _hold_reason(active, recipe.fingerprint, held_upstream)
    if held:
        # Left alone: observed only as far as status needs (what the active generation holds).
        assert active is not None
        built = own_sizes.get(active.generation, (0, 0))[0]
        return KindObservation(
            kind=kind.name,
            recipe_fp=recipe.fingerprint,
            active=active,
            target=active,
            rows=DriftRows(built=built),
            generations=tuple(gens),
            sizes=own_sizes,
            held=held,
            frozen=True,
        )
    target, table_problems, replaced = _target(store, s, desired, gens, active)
    incompatible = False
    tables: tuple[TableDef, ...] | None = None
    if target is not None:
        defs = kind.tables(recipe, target.generation)
        incompatible = any(not p.repairable for p in table_problems)
        tables_ok = not any(p.what in ("missing_table", "missing_column", "wrong_type") for p in table_problems)
        tables = defs if tables_ok else None
    rows = ledger.drift_rows(
        s,
        kind.name,
        target.generation if target is not None else 0,
        [t.name for t in tables] if tables is not None else None,
        recipe.fingerprint,
        multi_row=kind.multi_row,
        scope_size=scope_size,
    )
    found = _audit(spec, store, s, desired, tables, upstream, rows, depth)
    bad = {d for d, _ in found.corrupt}
    return KindObservation(
        kind=kind.name,
        recipe_fp=recipe.fingerprint,
        active=active,
        target=target,
        rows=rows,
        table_problems=tuple(table_problems),
        table_incompatible=incompatible,
        replaced=replaced,
        corrupt=tuple(sorted(set(found.corrupt))),
        mock=tuple(sorted(set(found.mock) - bad)),
        incomplete=tuple(sorted(set(found.incomplete) - bad)),
        duplicates=tuple(sorted(set(found.duplicates))),
        rate=records.measured_rate(store, s, kind.name, kind.embedding_fp(recipe.params)),
        tables=tables,
        upstream={u: t for u, t in upstream.items() if t is not None},
        generations=tuple(gens),
        sizes=own_sizes,
        held=desired.held,
    )


def _target(
    store: Store, s: Session, desired: DesiredKind, gens: list[Generation], active: Generation | None
) -> tuple[Generation | None, list[SchemaProblem], tuple[SchemaProblem, ...]]:
    """The generation holding the desired recipe (None: a new one is needed), the problems
    of its tables, and those of the active table when it cannot be repaired in place."""
    fp = desired.recipe.fingerprint
    if active is not None and active.recipe_fp == fp:
        target: Generation | None = active
    else:
        # A dropped generation has no tables left to build into.
        target = next((g for g in reversed(gens) if g.recipe_fp == fp and g.state != DROPPED), None)
    if target is None:
        return None, [], ()
    table_problems = _table_problems(store, s, desired, target)
    if target is not active or all(p.repairable for p in table_problems):
        return target, table_problems, ()
    # The active table cannot be repaired in place (a column of another type or
    # dimension): the recipe is built again into a generation of its own (resumed
    # when one is under way), which verification judges on its own table before
    # the switch. Judging the active table again would reject every rebuild.
    replaced = tuple(table_problems)
    target = next((g for g in reversed(gens) if g.recipe_fp == fp and g.state in (BUILDING, REJECTED)), None)
    return target, _table_problems(store, s, desired, target) if target is not None else [], replaced


def _audit(
    spec: Spec,
    store: Store,
    s: Session,
    desired: DesiredKind,
    tables: tuple[TableDef, ...] | None,
    upstream: Mapping[str, tuple[TableDef, ...] | None],
    rows: DriftRows,
    depth: str,
) -> Findings:
    """What the vector audit (audit and deep depths) and the kind's consistency checks
    find in ``tables``, for documents that are in scope and not rebuilt anyway."""
    kind, recipe = desired.kind, desired.recipe
    corrupt: list[tuple[str, str]] = []
    mock: list[str] = []
    duplicates: list[tuple[str, ...]] = []
    incomplete: tuple[str, ...] = ()
    embedder = make_embedder(recipe.model, spec.models[recipe.model]) if recipe.model is not None else None
    if tables is not None:
        if depth != "shallow":
            for vc in kind.vector_columns(recipe):
                name = tables[vc.table].name
                vectors = store.capability(VectorSearch)
                corrupt.extend(vectors.vector_quality(s, name, vc.column, vc.dimension, vc.normalized, vc.key))
                fake, same = identical_rows(s, name, vc.column, embedder, kind.embedding_fp(recipe.params))
                mock.extend(fake)
                duplicates.extend(same)
        if all(upstream.get(u) is not None for u in kind.depends_on):
            at = Inspection(s, store, recipe, tables, upstream, depth, embedder)  # type: ignore[arg-type]
            found = kind.inspect(at)
            # Documents rebuilt anyway (new, changed, another recipe) are not reported
            # again for what their outdated rows look like.
            outdated = set(rows.unbuilt) | set(rows.changed) | set(rows.foreign_recipe)
            corrupt.extend((d, r) for d, r in found.corrupt if d not in outdated)
            mock.extend(d for d in found.mock if d not in outdated)
            duplicates.extend(found.duplicates)
            incomplete = tuple(d for d in found.incomplete if d not in outdated)
    # Documents out of scope are deleted, never rebuilt: what their rows look like does not
    # matter (apply has no source ref to rebuild them from: the KeyError of issue 23).
    gone = set(rows.out_of_scope) | set(rows.strays)
    return Findings(
        corrupt=tuple((d, r) for d, r in corrupt if d not in gone),
        mock=tuple(d for d in mock if d not in gone),
        incomplete=tuple(d for d in incomplete if d not in gone),
        duplicates=tuple(duplicates),
    )


def _table_problems(store: Store, s: Session, desired: DesiredKind, g: Generation) -> list[SchemaProblem]:
    """What differs between generation ``g``'s tables and what the recipe asks for."""
    out: list[SchemaProblem] = []
    for t in desired.kind.tables(desired.recipe, g.generation):
        # A generation still being built gets its vector index when it is switched in.
        out += store.table_problems(s, t, vector_indexes=g.state == ACTIVE)
    return out


def _held(k: KindObservation, held: frozenset[str], kept: frozenset[str]) -> KindObservation:
    """``k`` without the documents quarantine holds back: ``held`` are not built, ``kept``
    (out of scope, their file unreadable now) not deleted."""
    if not held and not kept:
        return k
    r = k.rows

    def minus(ids: tuple[str, ...], out: frozenset[str]) -> tuple[str, ...]:
        return tuple(d for d in ids if d not in out)

    rows = replace(
        r,
        unbuilt=minus(r.unbuilt, held),
        rows_absent=minus(r.rows_absent, held),
        changed=minus(r.changed, held),
        foreign_recipe=minus(r.foreign_recipe, held),
        out_of_scope=minus(r.out_of_scope, kept),
        strays=minus(r.strays, kept),
    )
    return replace(
        k,
        rows=rows,
        corrupt=tuple(c for c in k.corrupt if c[0] not in held),
        mock=minus(k.mock, held),
        incomplete=minus(k.incomplete, held),
        quarantined=tuple(sorted(held)),
    )


def _hold_reason(active: Generation | None, recipe_fp: str, held_upstream: list[str]) -> str:
    """Why the kind is held at its active generation, or "" (see ``Generation.hold``)."""
    if active is None or active.recipe_fp == recipe_fp:
        return ""
    if active.hold and active.hold.get("recipe_fp") == recipe_fp:
        return f"rolled back to generation {active.generation} by run {active.hold.get('run_id')}"
    if held_upstream:
        return f"built from {', '.join(held_upstream)}, which is held"
    return ""


def _to_build(k: KindObservation) -> set[str]:
    r = k.rows
    return (
        set(r.unbuilt)
        | set(r.rows_absent)
        | set(r.changed)
        | set(r.foreign_recipe)
        | {d for d, _ in k.corrupt}
        | set(k.mock)
        | set(k.incomplete)
        | set(k.past_window)
    )


def _past_window(
    spec: Spec,
    store: Store,
    s: Session,
    source: Source,
    desired: DesiredKind,
    k: KindObservation,
    refs: Mapping[str, DocRef],
) -> KindObservation:
    """``k`` with the changed documents whose model input did not change (an edit past the
    model's window) moved from ``rows.changed`` to ``past_window``.

    Only kinds whose rows stamp what the model read of one text per document
    (``stamps_model_input``) are looked at; their changed documents are read and
    tokenized (no model call), and what the model would read is compared with the
    ``text_hash`` their row holds.
    """
    kind, recipe = desired.kind, desired.recipe
    changed = [d for d in k.rows.changed if d in refs]
    if not kind.stamps_model_input or not changed or k.tables is None or recipe.model is None or k.target is None:
        return k
    # Only documents whose content really changed since the build (the ledger's hash is
    # not the current one) and whose row agrees with the ledger: a row stamped with
    # another hash than its ledger row is stale, whatever it holds.
    stamps = ledger.row_stamps(s, kind.name, k.target.generation, k.tables[0].name, changed)
    changed = [
        d for d in changed if d in stamps and stamps[d][0] == stamps[d][1] and stamps[d][0] != refs[d].content_hash
    ]
    if not changed:
        return k
    try:
        docs = list(source.load([refs[d] for d in changed]))
    except RagstateError:  # a document unreadable now: rebuilt (and set aside) as stale
        return k
    texts = kind.recheck_texts(docs, recipe)
    embedder = make_embedder(recipe.model, spec.models[recipe.model])
    ids = [d for d in changed if d in texts]
    reads = model_inputs(embedder, [texts[d] for d in ids])
    same = {d for d, r in zip(ids, reads, strict=True) if stamps[d][2] == text_hash(r.text)}
    if not same:
        return k
    rows = replace(k.rows, changed=tuple(d for d in k.rows.changed if d not in same))
    return replace(k, rows=rows, past_window=tuple(sorted(same)))


def _with_recheck(
    spec: Spec, store: Store, s: Session, source: Source, desired: DesiredKind, k: KindObservation
) -> KindObservation:
    """Re-embed a sample of stored vectors; disagreeing ones are placeholders (``mock``)."""
    kind, recipe = desired.kind, desired.recipe
    n = spec.reconcile.sample_recheck
    columns = kind.vector_columns(recipe)
    if n == 0 or k.tables is None or k.table_problems or recipe.model is None:
        return k
    skip = _to_build(k)
    embedder = make_embedder(recipe.model, desired.model_spec(spec))
    disagree = kind.recheck(Inspection(s, store, recipe, k.tables, k.upstream, "deep"), embedder, n, skip)
    if disagree is None and columns:
        disagree = _recheck_from_source(store, s, source, desired, k.tables, n, skip, embedder)
    if not disagree:
        return k
    return replace(k, mock=tuple(sorted(set(k.mock) | set(disagree))))


def _recheck_from_source(
    store: Store,
    s: Session,
    source: Source,
    desired: DesiredKind,
    tables: tuple[TableDef, ...],
    n: int,
    skip: set[str],
    embedder,
) -> list[str]:
    """The recheck of kinds with one vector per document: re-read a sample of documents."""
    kind, recipe = desired.kind, desired.recipe
    vc = kind.vector_columns(recipe)[0]
    # Keys first, vectors only for the sample: reading every vector to keep n of them held
    # the whole table in memory (1.5 KB a document at 384 dimensions).
    keys = s.query(
        "SELECT {key} FROM {t} WHERE {key} IN (SELECT doc_id FROM {tmp_scope})",
        key=Col(vc.key),
        t=tables[vc.table].name,
    )
    keys = [r for r in keys if r[0] not in skip]
    picked = [r[0] for r in random.Random(0x5EED).sample(keys, min(n, len(keys)))]
    del keys
    if not picked:
        return []
    found = s.query(
        "SELECT {key}, text_hash, {col} FROM {t} WHERE {key} = ANY(?)",
        (picked,),
        key=Col(vc.key),
        col=Col(vc.column),
        t=tables[vc.table].name,
    )
    by_key = {r[0]: r for r in found}
    sample = [by_key[d] for d in picked if d in by_key]
    refs = registry.scope_refs(s, [r[0] for r in sample])
    docs = list(source.load([refs[r[0]] for r in sample if r[0] in refs]))
    texts = kind.recheck_texts(docs, recipe)
    ids = [r[0] for r in sample if r[0] in texts]
    read = dict(zip(ids, model_inputs(embedder, [texts[d] for d in ids]), strict=True))
    # Rows stamp what the model read of their text (the text cut to its window).
    keep = [(r[0], read[r[0]].text, r[2]) for r in sample if r[0] in read and text_hash(read[r[0]].text) == r[1]]
    return disagreeing(store, embedder, keep)
