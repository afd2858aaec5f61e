"""Run records, verify reports and status as text for people."""

from __future__ import annotations

import time

from ragstate.apply.record import RunRecord
from ragstate.plan.render import SHOWN, counts_text, quarantine_lines
from ragstate.reconcile.reports import StatusReport, VerifyReport
from ragstate.stores.quarantine import Entry


def render_run(record: RunRecord) -> str:
    lines = [f"Run {record.run_id} ({record.command}): {record.status}"]
    if record.schema_repaired:
        lines.append("  repaired: " + "; ".join(record.schema_repaired))
    for name, k in record.kinds.items():
        parts = [f"built {k.built}"]
        if k.deleted or k.purged:
            parts.append(f"deleted {k.deleted + k.purged}")
        if k.embedded:
            rate = k.built / k.build_seconds if k.build_seconds else 0.0
            # A rate over a handful of documents measures start-up, not throughput.
            parts.append(f"embedded {k.embedded} texts" + (f" ({rate:.1f} docs/s)" if k.built >= 20 else ""))
        if k.reused:
            parts.append(f"kept {k.reused} unchanged")
        if k.truncated:
            parts.append(f"{k.truncated} of them longer than the model's window (cut)")
        if k.created_generation:
            parts.append(f"new generation {k.generation}")
        if k.switched:
            parts.append(f"generation {k.generation} now active")
        lines.append(f"  {name}: " + ", ".join(parts))
    if not record.kinds and record.converged:
        lines.append("  nothing to do")
    set_aside = sum(k.quarantined for k in record.kinds.values())
    if set_aside:
        lines.append(f"  {set_aside} document(s) failed and were set aside in quarantine")
    if record.quarantined_total:
        lines.append(
            f"  in quarantine: {counts_text(record.quarantined)} (see `ragstate quarantine list`; "
            "fix and `ragstate quarantine retry`, or `drop`)"
        )
    retries = record.faults.get("retries") or {}
    if retries:
        lines.append("  retried after transient errors: " + ", ".join(f"{t} {n}" for t, n in sorted(retries.items())))
    total = record.timings.get("total_s")
    if total is not None:
        lines.append(f"  took {total:.1f} s")
    if record.error:
        lines.append(f"  {record.error}")
    return "\n".join(lines)


def render_verify(report: VerifyReport) -> str:
    if report.in_sync:
        return "\n".join(
            [f"Verified: in sync ({report.scope_size} documents in scope, every artifact checked)."]
            + quarantine_lines(report.quarantine)
        )
    lines = [f"Verify found drift ({report.scope_size} documents in scope):"]
    lines += [f"  store: {p}" for p in report.schema]
    lines += [f"  source: {p}" for p in report.source_schema]
    for kind, classes in report.drift.items():
        for cls, n in classes.items():
            ids = report.documents.get(kind, {}).get(cls, [])
            shown = ", ".join(ids[:SHOWN]) + (f" … and {n - SHOWN} more" if n > SHOWN else "")
            lines.append(f"  {kind}: {cls} {n}  {shown}")
        for doc_id, reason in report.corrupt.get(kind, [])[:SHOWN]:
            lines.append(f"    corrupt {doc_id}: {reason}")
    lines.append("Run `ragstate apply --deep` (or `ragstate reconcile`) to heal it.")
    return "\n".join(lines)


def render_quarantine(entries: list[Entry]) -> str:
    if not entries:
        return "Quarantine is empty."
    lines = [f"{len(entries)} item(s) in quarantine:"]
    for e in entries:
        seen = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_seen))
        lines.append(f"  {e.kind:<16} {e.item}  [{e.state}] {e.reason}, {e.attempts} attempt(s), last {seen}")
        lines.append(f"    {e.message}")
    lines.append("Fix the input, then `ragstate quarantine retry ITEM` (or --all); `drop` leaves an item out.")
    return "\n".join(lines)


def render_status(status: StatusReport) -> str:
    lines = [f"Store: {status.store}", f"Source: {status.source} ({status.scope_size} documents in scope)"]
    lines += [f"  schema drift: {p}" for p in status.source_schema]
    lines.append("Pipelines:")
    for name, p in status.pipelines.items():
        kinds = ", ".join(f"{k} {p.completeness.get(k, 0.0):.0%}" for k in p.kinds)
        lines.append(f"  {name:<9} {'ready' if p.ready else 'NOT READY'}  ({kinds})")
        lines += [f"            - {r}" for r in p.reasons]
    lines.append("Artifact kinds:")
    for name, k in status.kinds.items():
        gen = f"generation {k.active_generation}" if k.active_generation is not None else "no active generation"
        rows = f", {k.items} rows" if k.items != k.built else ""
        lines.append(
            f"  {name:<17} {gen}, {k.built}/{k.in_scope} documents{rows}, {k.complete:.0%} complete, "
            f"recipe {k.recipe_fp}"
        )
        if k.note:
            lines.append(f"    {k.note}")
        for g in k.generations:
            lines.append(f"    g{g['generation']}: {g['state']}, {g['documents']} documents, recipe {g['recipe_fp']}")
    for r in status.running:
        prog = r.get("progress") or {}
        lines.append(
            f"Running: {r['command']} {r['run_id']} (pid {r['pid']} on {r['host']}): "
            f"{prog.get('kind', '')} {prog.get('done', 0)}/{prog.get('total', '?')}"
        )
    if status.last_run:
        lr = status.last_run
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lr["started_at"]))
        lines.append(f"Last run: {lr['command']} {lr['run_id']} at {when}: {lr['status']}")
        if lr.get("error"):
            lines.append(f"  {lr['error']}")
    lines += quarantine_lines(status.quarantine)
    return "\n".join(lines)
