"""A plan is a value: what drifted, what to do about it, what it will cost.

``apply`` consumes a plan; ``to_dict``/``from_dict`` round-trip it through JSON, so a
plan saved by ``ragstate plan --out plan.json`` can be reviewed and applied later
(``apply`` refuses it if the store or source has moved on since: its ``fingerprint``
no longer matches a fresh plan's).

Drift classes (the *reason*, for display) are separate from actions (what apply does,
``ACTIONS``): every reason but ``orphaned`` leads to a build of the document's rows
(``corrupt`` and ``mock`` to a rebuild that trusts nothing stored), ``orphaned`` to their
deletion, ``schema`` to a repair or a new generation. Apply reads the actions alone.

A plan computed here also holds what apply needs of the observation it was computed
from (``ApplyInputs``: the desired kinds and recipes, where each document to build is,
the source as read, quarantine writes). That part stays in memory: a saved plan is
applied by computing it again and comparing fingerprints (``apply`` refuses it when
they differ).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ragstate.errors import PlanError
from ragstate.hashing import fingerprint

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ragstate.observe.quarantine import QuarantineView
    from ragstate.artifacts.desired import Desired
    from ragstate.stores.documents import DocRef, FileStat, Snapshot

#: every drift class, in the order plans list them
DRIFT_CLASSES = ("missing", "stale", "orphaned", "recipe", "corrupt", "mock", "incomplete", "schema")
#: documents whose content changed past the model's window: no drift (the model would
#: read them as before), but their rows and ledger rows are restamped with the new
#: content hash (built again, served from the embedding cache: no model call)
PAST_WINDOW = "past_window"
#: the classes whose remedy is to (re)build the document's rows, and the restamp above
BUILD_CLASSES = ("missing", "stale", "recipe", "corrupt", "mock", "incomplete", "schema", PAST_WINDOW)

#: What apply does, by action kind (``KindPlan.actions``, ``Plan.gc``). Apply acts on
#: these alone; the drift class of a document (why it is built) is for display.
#:
#: =======  ======================================================================
#: build    compute the documents' rows and write them with their ledger rows; stored
#:          vectors of unchanged items and the embedding cache are reused
#: rebuild  the same, trusting nothing stored of them: their vectors were found
#:          corrupt or placeholders (embedded afresh, never served from a cache)
#: delete   delete the documents' rows and ledger rows (out of scope)
#: purge    delete the documents' rows, which have no ledger row (out of scope)
#: repair   create what the target generation's tables lack (``problems``)
#: switch   verify the target generation, then make it active with its switch group
#: drop     drop an inactive generation's tables and ledger rows (``Plan.gc``)
#: =======  ======================================================================
BUILD, REBUILD, DELETE, PURGE, REPAIR, SWITCH, DROP = "build", "rebuild", "delete", "purge", "repair", "switch", "drop"
ACTIONS = (BUILD, REBUILD, DELETE, PURGE, REPAIR, SWITCH, DROP)
#: the action each build reason leads to: the one place reasons turn into actions
ACTION_OF = {cls: REBUILD if cls in ("corrupt", "mock") else BUILD for cls in BUILD_CLASSES}

PLAN_FORMAT = 1


@dataclass(frozen=True)
class Action:
    """One action of a plan on one artifact kind (see ``ACTIONS``)."""

    #: the action kind: build, rebuild, delete, purge, repair, switch or drop
    what: str
    #: the artifact kind acted on
    kind: str
    #: the generation acted on (None: the new one apply creates first)
    generation: int | None
    documents: tuple[str, ...] = ()
    #: repair: the problems of the tables that apply repairs
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Estimate:
    """Work a plan will do: items built, tokens fed to models, seconds expected, and what
    the tokens cost where the model has a price (``models.<name>.price_per_million_tokens``;
    None: no priced model does any of the work)."""

    items: int = 0
    tokens: int = 0
    seconds: float = 0.0
    cost: float | None = None

    def __add__(self, other: Estimate) -> Estimate:
        costs = [c for c in (self.cost, other.cost) if c is not None]
        return Estimate(
            self.items + other.items,
            self.tokens + other.tokens,
            self.seconds + other.seconds,
            sum(costs) if costs else None,
        )


@dataclass(frozen=True)
class KindPlan:
    """Actions for one artifact kind."""

    kind: str
    recipe_fp: str
    active_generation: int | None
    #: generation the work goes into; None means a new one is created first
    target_generation: int | None
    #: make the target the active generation once it is complete
    switch: bool
    #: drift found, by class (for display and exit codes)
    drift: dict[str, int]
    #: documents to (re)build, by the reason they need it
    build: dict[str, tuple[str, ...]]
    #: documents out of scope: their rows and ledger rows are deleted
    delete: tuple[str, ...] = ()
    #: documents with artifact rows but no ledger row, out of scope: rows deleted
    purge: tuple[str, ...] = ()
    #: problems of the target's table that apply repairs (create what is missing)
    repair: tuple[str, ...] = ()
    #: every schema problem found (``drift["schema"]``): those in ``repair``, and those of
    #: a table that cannot be repaired in place, whose documents are rebuilt (``build["schema"]``)
    #: into a new generation
    schema: tuple[str, ...] = ()
    estimate: Estimate = Estimate()
    #: where the estimate's rate comes from (measured by a run, calibrated, or a default)
    basis: str = ""
    #: documents in scope held back by quarantine: not built, not drift
    quarantined: tuple[str, ...] = ()
    #: how the spec's recipe differs from the active generation's (``path: old → new``)
    changes: tuple[str, ...] = ()
    #: why a rollback holds the kind at its active generation, or "": it is planned under
    #: the recipe held (``recipe_fp``), while the spec asks for another (``changes``)
    held: str = ""
    #: True when the held kind is left alone (its recipe cannot be built again): no actions
    frozen: bool = False
    #: what the switch will be verified with: the golden check's settings, the active
    #: generation's last measured recall, the target's last verification if any
    verification: dict[str, Any] = field(default_factory=dict)

    @property
    def build_ids(self) -> tuple[str, ...]:
        return tuple(d for cls in BUILD_CLASSES for d in self.build.get(cls, ()))

    @property
    def actions(self) -> tuple[Action, ...]:
        """What apply does for this kind, in the order it does it: repair, purge, delete,
        build, rebuild, switch (only those with something to do; none for a frozen kind)."""
        g = self.target_generation
        out = [Action(REPAIR, self.kind, g, problems=self.repair)] if self.repair else []
        out += [Action(what, self.kind, g, ids) for what, ids in ((PURGE, self.purge), (DELETE, self.delete)) if ids]
        for what in (BUILD, REBUILD):
            ids = tuple(d for cls in BUILD_CLASSES if ACTION_OF[cls] == what for d in self.build.get(cls, ()))
            if ids:
                out.append(Action(what, self.kind, g, ids))
        if self.switch:
            out.append(Action(SWITCH, self.kind, g))
        return tuple(out)

    def documents(self, *what: str) -> tuple[str, ...]:
        """The documents of this kind's actions of kinds ``what``."""
        return tuple(d for a in self.actions if a.what in what for d in a.documents)

    def action(self, what: str) -> Action | None:
        """This kind's action of kind ``what``, if the plan has one."""
        return next((a for a in self.actions if a.what == what), None)

    @property
    def has_work(self) -> bool:
        return bool(self.actions)


@dataclass(frozen=True)
class GcDrop:
    """An inactive generation that garbage collection drops (tables and ledger rows)."""

    kind: str
    generation: int
    state: str
    documents: int
    items: int
    reason: str = ""


@dataclass(frozen=True)
class ApplyInputs:
    """What apply needs of the state a plan was computed from, besides its actions. In
    memory only (never in the plan's JSON nor its fingerprint): a plan read back from JSON
    has none, and is applied by computing it again."""

    #: the kinds to build and their recipes (held kinds pinned), in build order
    desired: Desired
    #: place and size of every document some kind builds
    refs: Mapping[str, DocRef]
    #: the source as read, when the document registry must record it (else None)
    snapshot: Snapshot | None
    #: the files the registry held when the source was read
    known: Mapping[str, FileStat]
    #: quarantine entries to record and to remove, and the kinds with entries
    quarantine: QuarantineView
    #: kinds whose rollback hold the spec has moved past: apply clears the hold
    release_holds: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """The difference between the desired and the observed state, as actions."""

    spec_hash: str
    created_at: float
    #: how closely the store was observed: shallow, audit or deep
    depth: str
    scope_size: int
    kinds: tuple[KindPlan, ...]
    #: problems of ragstate's own tables, repaired before anything else
    schema: tuple[str, ...] = ()
    #: problems of an in-place source: its view is repaired first; a table that no
    #: longer fits its mapping stops apply until the spec's mapping changes
    source_schema: tuple[str, ...] = ()
    estimate: Estimate = Estimate()
    destructive: bool = False
    destructive_reasons: tuple[str, ...] = ()
    fingerprint: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    #: ``{"quarantined": {kind: n}, "dropped": {kind: n}, "new": [entries], "stale": n}``:
    #: items in quarantine, and what apply would add to it (documents the source cannot
    #: read, found now) or remove from it
    quarantine: dict[str, Any] = field(default_factory=dict)
    #: kinds whose new generations are verified and switched in together, in one
    #: transaction: a kind with every kind built from it that switches too
    switch_groups: tuple[tuple[str, ...], ...] = ()
    #: inactive generations beyond ``generations.keep``: the only data a plan removes
    #: besides orphaned documents' rows
    gc: tuple[GcDrop, ...] = ()
    #: embedding-cache entries (``model_fp:text_hash``) a deep observation found corrupt
    #: or placeholders: apply removes them
    cache_purge: tuple[str, ...] = ()
    #: drift of the embedding cache by class (``corrupt``, ``mock``), non-zero only
    cache_drift: dict[str, int] = field(default_factory=dict)
    #: what apply needs of the observation (set by ``diff``; None once read from JSON)
    inputs: ApplyInputs | None = field(default=None, compare=False, repr=False)

    @property
    def in_sync(self) -> bool:
        """True when nothing needs doing (quarantined items are not work: they wait)."""
        return (
            not self.schema
            and not self.source_schema
            and not self.gc
            and not self.cache_purge
            and not any(k.has_work for k in self.kinds)
            and not self.quarantine.get("new")
        )

    @property
    def drift(self) -> dict[str, dict[str, int]]:
        """``{kind: {class: count}}``, non-zero counts only."""
        out = {k.kind: {c: n for c, n in k.drift.items() if n} for k in self.kinds}
        if self.schema:
            out.setdefault("store", {})["schema"] = len(self.schema)
        if self.source_schema:
            out.setdefault("source", {})["schema"] = len(self.source_schema)
        if self.cache_drift:
            out["embedding_cache"] = dict(self.cache_drift)
        return {k: v for k, v in out.items() if v}

    def kind(self, name: str) -> KindPlan:
        for k in self.kinds:
            if k.kind == name:
                return k
        raise KeyError(name)

    # --- JSON -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = asdict(replace(self, inputs=None))
        del data["inputs"]
        data["format"] = PLAN_FORMAT
        data["in_sync"] = self.in_sync
        data["drift"] = self.drift
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        """Rebuild a plan from ``to_dict`` output.

        Raises:
            PlanError: not a plan of this format.
        """
        try:
            if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
                raise PlanError(f"not a ragstate plan of format {PLAN_FORMAT}")
            kinds = tuple(
                KindPlan(
                    kind=str(k["kind"]),
                    recipe_fp=str(k["recipe_fp"]),
                    active_generation=_opt_int(k["active_generation"]),
                    target_generation=_opt_int(k["target_generation"]),
                    switch=bool(k["switch"]),
                    drift={str(c): int(n) for c, n in dict(k["drift"]).items()},
                    build={str(c): tuple(str(d) for d in ids) for c, ids in dict(k["build"]).items()},
                    delete=tuple(str(d) for d in k["delete"]),
                    purge=tuple(str(d) for d in k["purge"]),
                    repair=tuple(str(p) for p in k["repair"]),
                    schema=tuple(str(p) for p in k.get("schema", ())),
                    estimate=Estimate(**k["estimate"]),
                    basis=str(k.get("basis", "")),
                    quarantined=tuple(str(d) for d in k.get("quarantined", ())),
                    changes=tuple(str(c) for c in k.get("changes", ())),
                    held=str(k.get("held", "")),
                    frozen=bool(k.get("frozen", False)),
                    verification=dict(k.get("verification", {})),
                )
                for k in data["kinds"]
            )
            plan = cls(
                spec_hash=str(data["spec_hash"]),
                created_at=float(data["created_at"]),
                depth=str(data["depth"]),
                scope_size=int(data["scope_size"]),
                kinds=kinds,
                schema=tuple(str(p) for p in data["schema"]),
                source_schema=tuple(str(p) for p in data.get("source_schema", ())),
                estimate=Estimate(**data["estimate"]),
                destructive=bool(data["destructive"]),
                destructive_reasons=tuple(str(r) for r in data["destructive_reasons"]),
                fingerprint=str(data["fingerprint"]),
                notes=tuple(str(n) for n in data.get("notes", ())),
                quarantine=dict(data.get("quarantine") or {}),
                switch_groups=tuple(tuple(str(k) for k in g) for g in data.get("switch_groups", ())),
                gc=tuple(GcDrop(**g) for g in data.get("gc", ())),
                cache_purge=tuple(str(k) for k in data.get("cache_purge", ())),
                cache_drift={str(c): int(n) for c, n in dict(data.get("cache_drift", {})).items()},
            )
        except PlanError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PlanError(f"malformed plan: {type(exc).__name__}: {exc}") from None
        if plan.fingerprint != action_fingerprint(plan):
            raise PlanError("plan was edited after it was computed (its fingerprint does not match its actions)")
        return plan

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise PlanError(f"plan is not valid JSON: {exc.msg} (line {exc.lineno})") from None
        except RecursionError:
            raise PlanError("plan is not a plan: JSON nested too deeply") from None


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def action_fingerprint(plan: Plan) -> str:
    """Hash of what the plan would do (and under which spec), not of when it was made."""
    source = {"source_schema": list(plan.source_schema)} if plan.source_schema else {}
    gc = {"gc": [[g.kind, g.generation] for g in plan.gc]} if plan.gc else {}
    cache = {"cache_purge": list(plan.cache_purge)} if plan.cache_purge else {}
    return fingerprint(
        {
            "spec": plan.spec_hash,
            "schema": list(plan.schema),
            **source,
            **gc,
            **cache,
            "kinds": [
                {
                    "kind": k.kind,
                    "recipe": k.recipe_fp,
                    "target": k.target_generation,
                    "switch": k.switch,
                    "build": {c: list(ids) for c, ids in sorted(k.build.items())},
                    "delete": list(k.delete),
                    "purge": list(k.purge),
                    "repair": list(k.repair),
                    "quarantined": list(k.quarantined),
                }
                for k in plan.kinds
            ],
            "quarantine": [[e.get("kind"), e.get("item")] for e in plan.quarantine.get("new", ())],
        }
    )
