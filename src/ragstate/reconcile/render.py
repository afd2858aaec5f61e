"""Run records, verify reports and status as text for people."""

from __future__ import annotations

import time

from ragstate.apply.record import RunRecord
from ragstate.plan.render import SHOWN, counts_text, format_cost, quarantine_lines
from ragstate.reconcile.doctor import DoctorReport
from ragstate.reconcile.history import HistoryReport
from ragstate.reconcile.reports import CacheReport, StatusReport, VerifyReport
from ragstate.stores.quarantine import Entry


def _texts(n: int) -> str:
    return f"{n} text" if n == 1 else f"{n} texts"


def render_run(record: RunRecord) -> str:
    lines = [f"Run {record.run_id} ({record.command}): {record.status}"]
    if record.schema_repaired:
        lines.append("  repaired: " + "; ".join(record.schema_repaired))
    for name, k in record.kinds.items() if record.rollback is None else ():
        parts = [f"built {k.built}"]
        if k.deleted or k.purged:
            parts.append(f"deleted {k.deleted + k.purged}")
        if k.embedded:
            rate = k.built / k.build_seconds if k.build_seconds else 0.0
            # A rate over a handful of documents measures start-up, not throughput.
            parts.append(f"embedded {_texts(k.embedded)}" + (f" ({rate:.1f} docs/s)" if k.built >= 20 else ""))
        if k.cache_hits:
            parts.append(f"{_texts(k.cache_hits)} from the embedding cache")
        if k.reused:
            parts.append(f"kept {k.reused} unchanged")
        if k.past_window:
            parts.append(f"{k.past_window} changed past the model's window: no re-embedding")
        if k.truncated:
            parts.append(f"{k.truncated} of them longer than the model's window (cut)")
        if k.cost is not None and k.tokens:
            parts.append(f"{k.tokens} tokens, cost ~{format_cost(k.cost)}")
        if k.created_generation:
            parts.append(f"new generation {k.generation}")
        if k.switched:
            parts.append(f"generation {k.generation} now active")
        lines.append(f"  {name}: " + ", ".join(parts))
    for v in record.verification:
        lines += _verification_lines(v)
    for g in record.gc:
        lines.append(f"  gc: dropped {g['kind']} generation {g['generation']} ({g['documents']} documents)")
    if record.rollback is not None:
        rb = record.rollback
        for name, change in rb["switched"].items():
            lines.append(f"  {name}: generation {change['from']} → {change['to']} (rolled back, nothing recomputed)")
        if not rb["switched"]:
            lines.append(f"  {rb['kind']}: already at that generation; nothing switched")
        if rb["held"]:
            lines.append(
                f"  held: {', '.join(rb['held'])} (apply keeps them in sync with the source under the recipe rolled "
                "back to, and never switches back, while the spec asks for the recipe rolled back from; edit the "
                "spec or roll forward with --to to release them)"
            )
    if not record.kinds and record.converged:
        lines.append("  nothing to do")
    set_aside = sum(k.quarantined for k in record.kinds.values())
    if set_aside:
        lines.append(f"  {set_aside} document(s) failed and were set aside in quarantine")
    gone = sum((record.faults.get("gone") or {}).values())
    if gone:
        lines.append(
            f"  {gone} document(s) deleted from the source during the run: not built, not a failure "
            "(their artifacts, if any, are orphaned and removed by the next apply)"
        )
    if record.quarantined_total:
        lines.append(
            f"  in quarantine: {counts_text(record.quarantined)} (see `ragstate quarantine list`; "
            "fix and `ragstate quarantine retry`, or `drop`)"
        )
    retries = record.faults.get("retries") or {}
    if retries:
        lines.append("  retried after transient errors: " + ", ".join(f"{t} {n}" for t, n in sorted(retries.items())))
    sched = record.schedule
    if sched and len(sched.get("kinds", {})) > 1:
        lines.append(
            f"  {len(sched['kinds'])} kinds built concurrently: {sched['work_s']:.1f} s of work in "
            f"{sched['wall_s']:.1f} s (overlap {sched['overlap']:.2f})"
        )
    if record.cache.get("evicted") or record.cache.get("purged"):
        lines.append(
            f"  embedding cache: {record.cache.get('purged', 0)} bad entries removed, "
            f"{record.cache.get('evicted', 0)} evicted ({record.cache.get('evicted_bytes', 0) / 2**20:.1f} MiB)"
        )
    total = record.timings.get("total_s")
    if total is not None:
        lines.append(f"  took {total:.1f} s")
    if record.error:
        lines.append(f"  {record.error}")
    return "\n".join(lines)


def _verification_lines(v: dict) -> list[str]:
    """One verification of a switch group: the outcome, then each kind's comparison."""
    group = ", ".join(v["group"])
    lines = [f"  verified {group}: " + ("passed" if v["passed"] else "FAILED, not switched")]
    for c in v["checks"]:
        found = ", ".join(f"{n} {cls}" for cls, n in c["problems"].items()) or "complete and clean"
        held = f" ({c['quarantined']} in quarantine)" if c.get("quarantined") else ""
        line = (
            f"    {c['kind']} generation {c['generation']}: {c['documents']}/{c['in_scope']} documents{held}, {found}"
        )
        g = c.get("golden")
        if g and g["active_generation"] is None:
            line += f"; golden recall@{g['k']} {g['recall']:.2f} over {g['queries']} queries (the baseline)"
        elif g:
            active = g["active_recall"]
            versus = f"{active:.2f} of generation {g['active_generation']}" if active is not None else "no baseline"
            line += (
                f"; golden recall@{g['k']} {g['recall']:.2f} vs {versus} over {g['queries']} queries "
                f"(needs ≥ {g['needed']:.2f}: {'ok' if g['passed'] else 'too low'})"
            )
            if g.get("note"):
                line += f" [{g['note']}]"
        lines.append(line)
    return lines


def render_history(report: HistoryReport) -> str:
    lines = [f"Store: {report.store}", "Generations:"]
    if not report.generations:
        lines.append("  none yet")
    for kind, gens in report.generations.items():
        lines.append(f"  {kind}")
        for g in gens:
            size = f"{g['documents']} documents" + (f", {g['items']} rows" if g["items"] != g["documents"] else "")
            times = [f"created {_when(g['created_at'])}"]
            for what in ("activated", "retired", "dropped"):
                if g[f"{what}_at"] is not None:
                    times.append(f"{what} {_when(g[f'{what}_at'])}")
            lines.append(
                f"    g{g['generation']:<3} {g['state']:<9} {size}; recipe {g['recipe_fp']}; {', '.join(times)}"
            )
            lines += [f"         {c}" for c in g["changes"]]
            check = (g.get("verification") or {}).get("check") or {}
            golden = check.get("golden")
            if check:
                outcome = "passed" if check.get("passed") else "failed"
                if golden:
                    outcome += f", golden recall@{golden['k']} {golden['recall']:.2f}"
                    if golden.get("active_recall") is not None:
                        outcome += f" vs {golden['active_recall']:.2f} of g{golden['active_generation']}"
                lines.append(f"         verification: {outcome}")
            if g.get("hold"):
                lines.append(f"         held by rollback run {g['hold'].get('run_id')}")
    lines.append("Runs (newest first):")
    for r in report.runs:
        took = f", {r['seconds']:.1f} s" if r["seconds"] is not None else ""
        lines.append(f"  {_when(r['started_at'])} {r['command']:<9} {r['status']:<13} {r['run_id']}{took}")
        for name, k in r["kinds"].items():
            did = [f"built {k['built']}"] if k.get("built") else []
            if k.get("created_generation"):
                did.append(f"new generation {k['generation']}")
            if k.get("switched"):
                did.append(f"switched to generation {k['generation']}")
            if did:
                lines.append(f"    {name}: " + ", ".join(did))
        for name, changes in r["changes"].items():
            lines.append(f"    {name} recipe: " + "; ".join(changes))
        for v in r["verification"]:
            if not v["passed"]:
                lines += [f"    rejected: {reason}" for reason in v["reasons"]]
        for g in r["gc"]:
            lines.append(f"    gc: dropped {g['kind']} generation {g['generation']}")
        if r["error"] and not any(not v["passed"] for v in r["verification"]):
            lines.append(f"    {r['error']}")
    return "\n".join(lines)


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


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


def _observe_time(timing: dict) -> str:
    if "seconds" not in timing:
        return ""
    parts = [f"{k.removesuffix('_s')} {timing[k]:.2f} s" for k in ("sync_s", "stage_s") if k in timing]
    mode = f"mode {timing['mode']}: " if "mode" in timing else ""
    return f", observed in {timing['seconds']:.2f} s" + (f" ({mode}{', '.join(parts)})" if parts else "")


def render_duplicates(groups: dict[str, list[tuple[str, ...]]]) -> str:
    """Lines for ``status --duplicates`` (starting with a newline)."""
    if not groups:
        return "\nDuplicates: none (no two documents hold the same model input)."
    lines = ["", "Duplicates (the same model input in several documents; not drift):"]
    for kind, found in groups.items():
        lines.append(f"  {kind}: {len(found)} groups")
        lines += [f"    - {', '.join(g)}" for g in found[:20]]
        if len(found) > 20:
            lines.append(f"    … and {len(found) - 20} more groups")
    return "\n".join(lines)


def render_status(status: StatusReport) -> str:
    lines = [
        f"Store: {status.store}",
        f"Source: {status.source} ({status.scope_size} documents in scope{_observe_time(status.source_observe)})",
    ]
    lines += [f"  schema drift: {p}" for p in status.source_schema]
    lines += [f"Note: {n}" for n in status.notes]
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
            + (f" (the spec's: {k.spec_recipe_fp})" if k.spec_recipe_fp and k.spec_recipe_fp != k.recipe_fp else "")
        )
        if k.note:
            lines.append(f"    {k.note}")
        if k.held:
            lines.append(f"    held: {k.held}")
        for g in k.generations:
            lines.append(f"    g{g['generation']}: {g['state']}, {g['documents']} documents, recipe {g['recipe_fp']}")
    lines += condition_lines(status.conditions, status.spec_hash)
    for r in status.running:
        gone = "" if r.get("alive", True) else " [its process is gone; the next apply marks it interrupted]"
        lines.append(f"Running: {r['command']} {r['run_id']} (pid {r['pid']} on {r['host']}){gone}: {_live(r)}")
    if status.daemon:
        lines.append(daemon_line(status.daemon))
    if status.last_run:
        lr = status.last_run
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lr["started_at"]))
        lines.append(f"Last run: {lr['command']} {lr['run_id']} at {when}: {lr['status']}")
        if lr.get("error"):
            lines.append(f"  {lr['error']}")
    lines += quarantine_lines(status.quarantine)
    return "\n".join(lines)


#: the status of each condition type when all is well
_NOMINAL = {"Ready": "True", "Reconciling": "False", "Degraded": "False", "Stalled": "False"}


def condition_lines(conditions: dict[str, dict[str, list[dict]]], spec_hash: str = "") -> list[str]:
    """One line per pipeline and kind with its four conditions, and a line for each one
    that is not as it is when all is well (reason, since when, message)."""
    if not conditions:
        return []
    lines = [f"Conditions (observed against spec {spec_hash[:12]}):" if spec_hash else "Conditions:"]
    for scope, label in (("pipelines", "pipeline"), ("kinds", "kind")):
        for name, conds in conditions.get(scope, {}).items():
            summary = "  ".join(f"{c['type']}={c['status']}" for c in conds)
            lines.append(f"  {label:<8} {name:<17} {summary}")
            for c in conds:
                if _NOMINAL.get(c["type"]) != c["status"]:
                    since = time.strftime("%H:%M:%S", time.localtime(c["last_transition_at"]))
                    message = f": {c['message']}" if c.get("message") else ""
                    lines.append(f"      {c['type']} {c['status']} ({c['reason']}, since {since}){message}")
    return lines


def daemon_line(d: dict) -> str:
    """What the daemon last recorded about itself."""
    holder = d.get("holder") or {}
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
    state = d.get("state", "?")
    text = f"Daemon: {who}, {state}, cycle {d.get('cycle', 0)}"
    if state == "stopped":
        text += ", stopped at " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d["updated_at"]))
        return text
    failures = d.get("consecutive_failures") or 0
    if failures:
        text += f", {failures} failed cycle(s) in a row"
    if d.get("next_cycle_at"):
        text += f", next cycle in {max(0.0, d['next_cycle_at'] - time.time()):.0f} s"
    if d.get("last_success_at"):
        text += ", last converged " + time.strftime("%H:%M:%S", time.localtime(d["last_success_at"]))
    if failures and d.get("last_error"):
        text += f"\n  last error: {d['last_error']}"
    return text


def _live(run: dict) -> str:
    live = run.get("live")
    if not live:
        return "planning"
    text = f"{live['kind']} {live['done']}/{live['total']} documents"
    if live.get("rate"):
        text += f", {live['rate']:.1f} docs/s"
    if live.get("eta_s") is not None:
        text += f", ETA {live['eta_s']:.0f} s"
    if live.get("run_total") and live["run_total"] != live["total"]:
        text += f" (whole run: {live['run_done']}/{live['run_total']}"
        text += f", ETA {live['run_eta_s']:.0f} s)" if live.get("run_eta_s") is not None else ")"
    if live.get("quarantined"):
        text += f", {live['quarantined']} set aside"
    return text


def render_cache(report: CacheReport) -> str:
    mib = 2**20
    state = "on" if report.enabled else "off (cache.enabled)"
    lines = [
        f"Embedding cache ({state}): {report.entries} entries, {report.bytes / mib:.1f} MiB of "
        f"{report.max_bytes / mib:.0f} MiB; {report.unreferenced} referenced by no artifact"
    ]
    if report.evicted:
        lines.append(f"  evicted {report.evicted} entries ({report.evicted_bytes / mib:.1f} MiB)")
    for fp, n in sorted(report.per_recipe.items()):
        lines.append(f"  recipe {fp}: {n['entries']} entries, {n['bytes'] / mib:.1f} MiB")
    for r in report.recent_runs[:5]:
        lines.append(f"  run {r['run_id']} ({r['command']}): {r['hits']} hits, {r['misses']} misses")
    return "\n".join(lines)


def render_doctor(report: DoctorReport) -> str:
    marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "skipped": "skip"}
    width = max((len(c.name) for c in report.checks), default=0)
    lines = []
    for c in report.checks:
        lines.append(f"  {marks.get(c.status, c.status)}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status != "ok":
            lines.append(f"        {'':<{width}}  fix: {c.fix}")
    failed = len(report.failures)
    lines.append("All checks passed." if report.ok else f"{failed} check{'s' if failed > 1 else ''} failed.")
    return "\n".join(lines)
