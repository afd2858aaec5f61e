"""Duplicate documents: identical vectors of one model input in several documents.

The same article as ``.txt`` and as JATS, or entity names that differ only in case or
accents for an uncased model, give the model the same token ids, so the same vectors.
That is neither drift nor a placeholder (``artifacts.cache.placeholders`` tells the two
apart); ``ragstate status --duplicates`` lists these groups so that a user can see them.
"""

from __future__ import annotations

from ragstate.artifacts.cache import identical_rows
from ragstate.artifacts.desired import Desired
from ragstate.compute.embedders import make_embedder
from ragstate.spec.model import Spec
from ragstate.stores import ledger
from ragstate.stores.base import Store
from ragstate.stores.ledger import ACTIVE


def duplicate_groups(spec: Spec, desired: Desired, store: Store) -> dict[str, list[tuple[str, ...]]]:
    """``{kind: [documents sharing one model input and its vectors, ...]}`` in each kind's
    active generation (kinds with a vector column; groups sorted, kinds without any left out)."""
    out: dict[str, list[tuple[str, ...]]] = {}
    with store.session() as s:
        active = {g.kind: g for g in ledger.generations(store, s) if g.state == ACTIVE}
        for d in desired.kinds:
            kind, recipe = d.kind, d.recipe
            gen = active.get(d.name)
            if gen is None or gen.recipe_fp != recipe.fingerprint or recipe.model is None:
                continue
            embedder = make_embedder(recipe.model, spec.models[recipe.model])
            tables = kind.tables(recipe, gen.generation)
            groups: set[tuple[str, ...]] = set()
            for vc in kind.vector_columns(recipe):
                table = tables[vc.table].name
                if store.columns(s, table) is None:
                    continue
                _, same = identical_rows(s, table, vc.column, embedder, kind.embedding_fp(recipe.params))
                groups.update(g for g in same if len(g) > 1)
            if groups:
                out[d.name] = sorted(groups)
    return out
