"""Plans as text for people (JSON is ``Plan.to_json``)."""

from __future__ import annotations

import math
from typing import Any

from ragstate.plan.model import DRIFT_CLASSES, PAST_WINDOW, KindPlan, Plan

#: document ids shown per drift class before "… and N more"
SHOWN = 5


def render_plan(plan: Plan, *, store: str = "") -> str:
    lines = [f"Plan ({plan.depth}) for {store or 'the store'}: {plan.scope_size} documents in scope"]
    if plan.schema:
        lines.append("  ragstate's tables need repair:")
        lines += [f"    - {p}" for p in plan.schema]
    if plan.source_schema:
        lines.append("  source (schema drift):")
        lines += [f"    - {p}" for p in plan.source_schema]
    for k in plan.kinds:
        gen = f"generation {k.active_generation}" if k.active_generation is not None else "no active generation"
        target = (
            " → new generation"
            if k.target_generation is None
            else f" → generation {k.target_generation}"
            if k.target_generation != k.active_generation
            else ""
        )
        lines.append(f"  {k.kind} ({gen}{target}, recipe {k.recipe_fp})")
        if k.frozen:
            lines.append(f"    held: {k.held}; left alone while the spec asks for recipe {k.recipe_fp}")
            lines += [f"      {c}" for c in k.changes]
            continue
        if k.held:
            lines.append(f"    held: {k.held}; kept in sync under that generation's recipe; the spec asks for:")
            lines += [f"      {c}" for c in k.changes]
        drift = {c: n for c, n in k.drift.items() if n}
        if not drift and not k.has_work:
            lines.append("    in sync")
            continue
        if k.changes and not k.held:
            lines.append(f"    recipe changes against generation {k.active_generation}:")
            lines += [f"      {c}" for c in k.changes]
        for cls in DRIFT_CLASSES:
            n = k.drift.get(cls, 0)
            if not n:
                continue
            ids = list(k.build.get(cls, ()))
            if cls == "orphaned":
                ids = list(k.delete) + list(k.purge)
            if cls == "schema":
                ids = list(k.schema or k.repair)
            shown = ", ".join(ids[:SHOWN]) + (f" … and {len(ids) - SHOWN} more" if len(ids) > SHOWN else "")
            if cls == "recipe" and not ids:
                shown = f"(built into generation {k.target_generation}; waiting for verification and the switch)"
            lines.append(f"    {cls:<10} {n:>6}  {shown}")
            if cls == "schema" and k.build.get("schema"):
                lines.append(
                    f"      cannot be changed in place: {len(k.build['schema'])} documents are built into a new "
                    "generation of the same recipe, verified on its own table, then switched in"
                )
        if past := k.build.get(PAST_WINDOW, ()):
            shown = ", ".join(past[:SHOWN]) + (f" … and {len(past) - SHOWN} more" if len(past) > SHOWN else "")
            lines.append(f"    {'past window':<10}{len(past):>6}  {shown}")  # the count in the column above
            lines.append("               (content changed past the model's window: no re-embedding)")
        e = k.estimate
        if e.items:
            basis = f" ({k.basis})" if k.basis else ""
            lines.append(
                f"    work: build {e.items} documents, ~{e.tokens} tokens, ~{_seconds(e.seconds)}{_cost(e)}{basis}"
            )
        if k.switch:
            lines += _switch_lines(k, plan)
    for g in plan.gc:
        lines.append(
            f"  gc: drop {g.kind} generation {g.generation} ({g.state}, {g.documents} documents, {g.items} rows), "
            f"{g.reason}"
        )
    if plan.in_sync:
        lines.append("In sync: nothing to do.")
    else:
        e = plan.estimate
        lines.append(f"Estimate: {e.items} documents to build, ~{e.tokens} tokens, ~{_seconds(e.seconds)}{_cost(e)}.")
        lines += [f"  expensive: {line}" for line in expensive(plan)]
    if plan.destructive:
        lines.append("DESTRUCTIVE: " + "; ".join(plan.destructive_reasons))
        lines.append("  apply refuses this without --allow-destructive")
    lines += [f"Note: {n}" for n in plan.notes]
    lines += quarantine_lines(plan.quarantine)
    return "\n".join(lines)


def _cost(e: Any) -> str:
    """``, cost ~0.0123`` when a priced model does the work (in the price's currency), else ""."""
    return "" if e.cost is None else f", cost ~{format_cost(e.cost)}"


def format_cost(cost: float) -> str:
    """A cost for people: four decimals, or two significant digits below a cent (no exponent)."""
    if cost >= 0.01 or cost <= 0:
        return f"{cost:.4f}"
    return f"{cost:.{1 - math.floor(math.log10(cost))}f}"


#: why a kind costs what it does, for the kinds that feed a model every token of a text
_WHY = {
    "token_embeddings": "every token of every chunk through the model, one vector each",
    "chunk_embeddings": "every chunk of the full bodies through the model",
    "entity_embeddings": "every entity name through the model",
    "doc_embeddings": "one text a document, cut to the model's window",
}

#: a kind is called expensive when it takes at least this share of the estimated time
EXPENSIVE_SHARE = 0.25
#: ... of a plan estimated to take at least this long (a plan of seconds has no expensive kind)
EXPENSIVE_AFTER_S = 30.0


def expensive(plan: Plan) -> list[str]:
    """The kinds that take most of the estimated time (at least ``EXPENSIVE_SHARE``), with
    their share and why: token and chunk embeddings of full bodies feed the model far
    more tokens than one text a document."""
    total = plan.estimate.seconds
    if total < EXPENSIVE_AFTER_S:
        return []
    out = []
    for k in sorted(plan.kinds, key=lambda k: -k.estimate.seconds):
        share = k.estimate.seconds / total
        if share >= EXPENSIVE_SHARE and k.estimate.tokens:
            why = _WHY.get(k.kind, "its texts through the model")
            out.append(f"{k.kind} ~{_seconds(k.estimate.seconds)} ({share:.0%} of the estimate): {why}")
    return out


def quarantine_lines(quarantine: dict[str, Any]) -> list[str]:
    """Lines about quarantine for plan, verify and status (none when it is empty)."""
    lines = []
    held, dropped, new = quarantine.get("quarantined") or {}, quarantine.get("dropped") or {}, quarantine.get("new")
    if held:
        lines.append(f"Quarantined (not built, not drift): {counts_text(held)}; see `ragstate quarantine list`")
    if dropped:
        lines.append(f"Dropped from quarantine on purpose: {counts_text(dropped)}")
    for e in (new or [])[:SHOWN]:
        lines.append(f"  cannot read ({e['reason']}) {e['message']}; apply quarantines it")
    if new and len(new) > SHOWN:
        lines.append(f"  … and {len(new) - SHOWN} more documents that cannot be read")
    return lines


def counts_text(by_kind: dict[str, int]) -> str:
    """``3 doc_embeddings, 2 source``."""
    return ", ".join(f"{n} {kind}" for kind, n in sorted(by_kind.items()))


def _switch_lines(k: KindPlan, plan: Plan) -> list[str]:
    """How the switch of ``k`` is verified, what with, and what the last check found."""
    v = k.verification
    group = next((g for g in plan.switch_groups if k.kind in g), (k.kind,))
    together = [name for name in group if name != k.kind]
    checks = ", ".join(v.get("checks", ["complete", "quality"]))
    lines = [f"    then verify ({checks}) and switch" + (f" together with {', '.join(together)}" if together else "")]
    golden = v.get("golden")
    if golden:
        active = golden.get("active_recall")
        measured = f"last measured {active:.2f}" if active is not None else "not measured yet"
        lines.append(
            f"    golden: recall@{golden['k']} of {golden['queries']} ≥ {golden['min_share']:.0%} of generation "
            f"{golden['active_generation']}'s ({measured})"
        )
    last = v.get("last")
    if last:
        outcome = "passed" if last.get("passed") else "failed: " + "; ".join(last.get("reasons", []))
        lines.append(f"    last verification (run {last.get('run_id')}): {outcome}")
    return lines


def _seconds(s: float) -> str:
    if s < 90:
        return f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
