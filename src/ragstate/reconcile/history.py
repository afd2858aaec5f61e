"""What ``history`` reports: every generation of each kind, and the recent runs.

A generation carries its recipe (and how it differs from the generation before it),
its state and times, the upstream generations it was built from, its size, the outcome
of its last verification and any rollback hold. A run carries its command, outcome,
what it built and switched, its verifications, rollback and garbage collection.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ragstate.errors import SchemaError
from ragstate.plan.diff import recipe_changes
from ragstate.stores import ledger, records
from ragstate.stores.base import Store
from ragstate.stores.migrations import MIGRATIONS, SCHEMA_VERSIONS, applied_versions


@dataclass
class HistoryReport:
    store: str
    #: ``{kind: [generation, ...]}``, oldest first
    generations: dict[str, list[dict[str, Any]]]
    #: the most recent runs, newest first
    runs: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def history_report(store: Store, *, kind: str | None = None, limit: int = 20) -> HistoryReport:
    """Read the generations and runs (nothing is written).

    Raises:
        SchemaError: the store's tables are older than this version (``apply`` migrates them).
    """
    with store.session() as s:
        if store.columns(s, SCHEMA_VERSIONS.name) is None:
            return HistoryReport(store=store.description, generations={}, runs=[])
        pending = [m.version for m in MIGRATIONS if m.version not in applied_versions(store, s)]
        if pending:
            raise SchemaError(
                f"{store.description}: migrations {pending} are pending; `ragstate apply` migrates the store first"
            )
        gens = ledger.generations(store, s, kind)
        sizes = ledger.sizes(s)
        runs = records.recent(store, s, limit=limit)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    previous: dict[str, ledger.Generation] = {}
    for g in gens:
        documents, items = sizes.get((g.kind, g.generation), (0, 0))
        before = previous.get(g.kind)
        by_kind.setdefault(g.kind, []).append(
            {
                "generation": g.generation,
                "state": g.state,
                "recipe_fp": g.recipe_fp,
                "recipe": g.recipe,
                "changes": list(recipe_changes(before.recipe, g.recipe)) if before else [],
                "documents": documents,
                "items": items,
                "upstream": g.upstream,
                "created_at": g.created_at,
                "activated_at": g.activated_at,
                "retired_at": g.retired_at,
                "dropped_at": g.dropped_at,
                "run_id": g.run_id,
                "verification": g.verification,
                "hold": g.hold,
            }
        )
        previous[g.kind] = g
    return HistoryReport(
        store=store.description,
        generations=by_kind,
        runs=[_run(r) for r in runs if kind is None or _touches(r, kind)],
    )


def _run(r: records.RunRow) -> dict[str, Any]:
    counts = r.counts or {}
    kinds = {
        name: {
            key: k.get(key) for key in ("generation", "built", "embedded", "reused", "created_generation", "switched")
        }
        for name, k in (counts.get("kinds") or {}).items()
    }
    return {
        "run_id": r.run_id,
        "command": r.command,
        "status": r.status,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "seconds": round(r.finished_at - r.started_at, 3) if r.finished_at else None,
        "drift": (r.plan or {}).get("drift", {}),
        "changes": (r.plan or {}).get("changes", {}),
        "kinds": kinds,
        "verification": counts.get("verification") or [],
        "rollback": counts.get("rollback"),
        "gc": counts.get("gc") or [],
        "error": r.error,
    }


def _touches(r: records.RunRow, kind: str) -> bool:
    counts = r.counts or {}
    rollback = counts.get("rollback") or {}
    return (
        kind in (counts.get("kinds") or {})
        or kind in (rollback.get("switched") or {})
        or kind in ((r.plan or {}).get("drift") or {})
        or r.status == "running"
    )
