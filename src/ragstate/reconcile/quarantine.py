"""The quarantine's commands: list the items set aside, retry them (an apply), or drop them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ragstate.apply.progress import Progress
from ragstate.apply.record import RunRecord
from ragstate.errors import QuarantineNotFound
from ragstate.reconcile.run import RunContext, apply, writer_lock
from ragstate.stores import quarantine as quarantine_store
from ragstate.stores.quarantine import DROPPED, QUARANTINED, RETRY, SOURCE, Entry
from ragstate.stores.schema import QUARANTINE


def entries(ctx: RunContext) -> list[Entry]:
    """Every item in quarantine (states quarantined, retry and dropped), by kind and item."""
    with ctx.store.session() as s:
        if ctx.store.columns(s, QUARANTINE.name) is None:
            return []
        return quarantine_store.entries(s)


def retry(
    ctx: RunContext,
    items: Sequence[str] = (),
    *,
    all_items: bool = False,
    allow_destructive: bool = False,
    progress: Progress | None = None,
) -> RunRecord:
    """Try quarantined items again now: mark them ``retry``, then apply.

    Args:
        items: document ids, quarantine items or source paths (see ``quarantine_list``).
        all_items: every item in state ``quarantined`` instead.

    Returns:
        The run record of the apply; items that fail again are back in quarantine.

    Raises:
        QuarantineNotFound: an item named is not in quarantine, or none was named.
    """
    with writer_lock(ctx, progress=progress, command="quarantine retry"):
        chosen = _select(ctx, items, all_items, "retry")
        with ctx.store.transaction() as s:
            quarantine_store.set_state(s, [e.key for e in chosen], RETRY)
            # A file that could not be read is read again only if its stat is forgotten.
            quarantine_store.forget_files(s, [e.path for e in chosen if e.kind == SOURCE and e.path])
        return apply(ctx, allow_destructive=allow_destructive, progress=progress, command="quarantine retry")


def drop(ctx: RunContext, items: Sequence[str] = (), *, all_items: bool = False) -> list[Entry]:
    """Mark items ``dropped`` (see ``Project.quarantine_drop``).

    Raises:
        QuarantineNotFound: an item named is not in quarantine, or none was named.
    """
    with writer_lock(ctx, command="quarantine drop"):
        chosen = _select(ctx, items, all_items, "drop")
        with ctx.store.transaction() as s:
            quarantine_store.set_state(s, [e.key for e in chosen], DROPPED)
    return [replace(e, state=DROPPED) for e in chosen]


def _select(ctx: RunContext, items: Sequence[str], all_items: bool, verb: str) -> list[Entry]:
    listed = entries(ctx)
    if all_items:
        return [e for e in listed if e.state in (QUARANTINED, RETRY)]
    if not items:
        raise QuarantineNotFound(f"name the items to {verb} (see `ragstate quarantine list`) or pass --all", items=[])
    chosen = [e for e in listed if {e.item, e.doc_id, e.path} & set(items)]
    unknown = sorted(i for i in items if not any(i in (e.item, e.doc_id, e.path) for e in listed))
    if unknown:
        raise QuarantineNotFound(
            "not in quarantine: " + ", ".join(unknown) + " (see `ragstate quarantine list`)", items=unknown
        )
    return chosen
