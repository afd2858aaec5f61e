"""``ragstate report --html``: one self-contained page a person would rather read than logs.

Pipelines and kinds with their conditions, the daemon and any running run, and three
charts over the recent runs (oldest on the left): drift found at the start of each run
by class, throughput (documents built per second of building), and duration coloured by
outcome. Everything is inline: CSS, SVG charts drawn here, and a short script that,
once the browser has laid the page out, counts the bars it really drew (non-empty
bounding boxes) into each chart's ``data-drawn`` attribute, so a headless browser can
check the charts. No external asset, font or request.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from typing import Any

from ragstate.plan.model import DRIFT_CLASSES
from ragstate.reconcile.reports import Report, RunPoint, StatusReport
from ragstate.redact import redact

DRIFT_COLOURS = {
    "missing": "#4e79a7",
    "stale": "#f28e2b",
    "orphaned": "#e15759",
    "recipe": "#76b7b2",
    "corrupt": "#59a14f",
    "mock": "#edc948",
    "incomplete": "#b07aa1",
    "schema": "#ff9da7",
}
OUTCOME_COLOURS = {
    "converged": "#59a14f",
    "partial": "#edc948",
    "not_converged": "#f28e2b",
    "failed": "#e15759",
    "refused": "#b07aa1",
    "interrupted": "#9c755f",
    "running": "#4e79a7",
}
_NOMINAL = {"Ready": "True", "Reconciling": "False", "Degraded": "False", "Stalled": "False"}


def render_html(report: Report) -> str:
    """The page, as one string (UTF-8 when written)."""
    s = report.status
    runs = report.runs
    overall = "ready" if s.ready else "not ready"
    body = [
        f"<header><h1>ragstate</h1><p class='where'>{_e(s.store)} · {_e(s.source)} · "
        f"{s.scope_size} documents in scope</p>"
        f"<p class='overall {'ok' if s.ready else 'bad'}'>{overall}</p>"
        f"<p class='when'>generated {_when(report.generated_at)} · spec {_e(s.spec_hash[:12])}</p></header>",
        _conditions_section(s),
        _activity_section(s),
        "<section><h2>Recent runs</h2>",
        _chart(
            "chart-drift",
            "Drift found at the start of each run (documents by class, the most in any one kind)",
            runs,
            lambda r: [(r.drift.get(c, 0), DRIFT_COLOURS[c], c) for c in DRIFT_CLASSES],
            legend={c: DRIFT_COLOURS[c] for c in DRIFT_CLASSES if any(r.drift.get(c) for r in runs)},
        ),
        _chart(
            "chart-throughput",
            "Throughput (documents built per second of building)",
            runs,
            lambda r: [(round(r.rate, 2), "#4e79a7", "documents/s")],
            robust=True,
        ),
        _chart(
            "chart-duration",
            "Duration of each run (seconds), by outcome",
            runs,
            lambda r: [(round(r.seconds, 2), OUTCOME_COLOURS.get(r.status, "#bab0ac"), r.status)],
            legend={o: OUTCOME_COLOURS[o] for o in OUTCOME_COLOURS if any(r.status == o for r in runs)},
            robust=True,
        ),
        _runs_table(runs),
        "</section>",
    ]
    return _PAGE.format(title=_e(f"ragstate: {overall}"), style=_STYLE, body="\n".join(body), script=_SCRIPT)


# --- sections -------------------------------------------------------------------------


def _conditions_section(s: StatusReport) -> str:
    out = ["<section><h2>Pipelines and artifact kinds</h2><table class='conditions'>"]
    out.append("<tr><th></th><th>name</th>" + "".join(f"<th>{t}</th>" for t in _NOMINAL) + "<th>details</th></tr>")
    for scope, label in (("pipelines", "pipeline"), ("kinds", "kind")):
        for name, conds in (s.conditions.get(scope) or {}).items():
            cells, notes = [], []
            for c in conds:
                good = _NOMINAL.get(c["type"]) == c["status"]
                cells.append(
                    f"<td><span class='badge {'ok' if good else 'bad'}' title='{_e(c['reason'])}'>"
                    f"{_e(c['status'])}</span></td>"
                )
                if not good:
                    notes.append(
                        f"<b>{_e(c['type'])}</b> {_e(c['reason'])} since {_when(c['last_transition_at'])}: "
                        f"{_e(c['message'])}"
                    )
            extra = ""
            if scope == "kinds" and name in s.kinds:
                k = s.kinds[name]
                gen = f"generation {k.active_generation}" if k.active_generation is not None else "no generation"
                extra = f"{gen}, {k.built}/{k.in_scope} documents, {k.complete:.0%} complete"
            details = "<br>".join([extra] * bool(extra) + notes)
            out.append(f"<tr><td class='scope'>{label}</td><td>{_e(name)}</td>{''.join(cells)}<td>{details}</td></tr>")
    out.append("</table>")
    q = s.quarantine.get("quarantined") or {}
    if q:
        items = ", ".join(f"{_e(k)}: {n}" for k, n in q.items())
        out.append(f"<p class='warn'>In quarantine: {items} (see <code>ragstate quarantine list</code>)</p>")
    out.append("</section>")
    return "\n".join(out)


def _activity_section(s: StatusReport) -> str:
    out = ["<section><h2>Now</h2>"]
    d = s.daemon
    if d:
        holder = d.get("holder") or {}
        line = f"Daemon pid {_e(holder.get('pid'))} on {_e(holder.get('host'))}: <b>{_e(d.get('state'))}</b>"
        line += f", cycle {_e(d.get('cycle'))}"
        if d.get("consecutive_failures"):
            line += f", {d['consecutive_failures']} failed cycle(s) in a row"
        if d.get("next_cycle_at") and d.get("state") != "stopped":
            line += f", next cycle at {_when(d['next_cycle_at'])}"
        if d.get("last_error") and d.get("consecutive_failures"):
            line += f"<br>last error: {_e(d['last_error'])}"
        out.append(f"<p>{line}</p>")
    else:
        out.append("<p>No daemon has run on this store.</p>")
    for r in s.running:
        live = r.get("live") or {}
        total, done = live.get("total") or 0, live.get("done") or 0
        share = done / total if total else 0.0
        text = f"{_e(r['command'])} {_e(r['run_id'])}: {_e(live.get('kind', 'planning'))} {done}/{total}"
        if live.get("rate"):
            text += f", {live['rate']:.1f} docs/s"
        if live.get("eta_s") is not None:
            text += f", ETA {live['eta_s']:.0f} s"
        out.append(
            f"<p>Running: {text}</p><svg class='progress' width='400' height='14' role='img'>"
            f"<rect width='400' height='14' fill='#eee'/><rect class='done' width='{400 * share:.1f}' height='14' "
            "fill='#4e79a7'/></svg>"
        )
    if not s.running:
        last = s.last_run
        if last:
            out.append(
                f"<p>No run in progress. Last: {_e(last['command'])} {_e(last['run_id'])}, {_e(last['status'])}</p>"
            )
    out.append("</section>")
    return "\n".join(out)


def _runs_table(runs: Sequence[RunPoint]) -> str:
    out = ["<table class='runs'><tr><th>run</th><th>command</th><th>outcome</th><th>started</th><th>seconds</th>"]
    out.append("<th>drift</th><th>built</th><th>docs/s</th><th>error</th></tr>")
    for r in reversed(runs):
        drift = ", ".join(f"{n} {c}" for c, n in r.drift.items() if n)
        out.append(
            f"<tr><td>{_e(r.run_id)}</td><td>{_e(r.command)}</td>"
            f"<td><span class='dot' style='background:{OUTCOME_COLOURS.get(r.status, '#bab0ac')}'></span>"
            f"{_e(r.status)}</td><td>{_when(r.started_at)}</td><td>{r.seconds:.2f}</td><td>{_e(drift)}</td>"
            f"<td>{r.built}</td><td>{r.rate:.1f}</td><td>{_e(r.error or '')}</td></tr>"
        )
    out.append("</table>")
    return "\n".join(out)


# --- charts ---------------------------------------------------------------------------

W, H, LEFT, BOTTOM, TOP = 720, 200, 52, 24, 10


def _chart(
    chart_id: str,
    title: str,
    runs: Sequence[RunPoint],
    segments,
    legend: dict[str, str] | None = None,
    *,
    robust: bool = False,
) -> str:
    """A stacked bar chart: one column per run, ``segments(run)`` → [(value, colour, label)].

    ``robust``: the axis ends at ``_robust_top`` of the columns, so one outlier (a run that
    built one document at 519 documents/s) does not flatten every other bar; a column above
    it is drawn to the top, marked ``clipped``, its value in its tooltip.
    """
    stacks = [segments(r) for r in runs]
    totals = [sum(v for v, _, _ in st) for st in stacks]
    top = max(totals + [0])
    scale_max = _nice(_robust_top(totals) if robust else top)
    plot_w, plot_h = W - LEFT - 8, H - BOTTOM - TOP
    n = max(1, len(runs))
    slot = plot_w / n
    bar_w = max(1.0, min(40.0, slot * 0.7))
    parts = [
        f"<figure class='chart' id='{chart_id}' data-bars='0'><figcaption>{_e(title)}</figcaption>",
        f"<svg class='chart' viewBox='0 0 {W} {H}' width='{W}' height='{H}' role='img' aria-label='{_e(title)}'>",
    ]
    for i in range(5):  # gridlines and their values
        value = scale_max * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f"<line class='grid' x1='{LEFT}' x2='{W - 8}' y1='{y:.1f}' y2='{y:.1f}'/>")
        parts.append(f"<text class='tick' x='{LEFT - 6}' y='{y + 4:.1f}' text-anchor='end'>{_num(value)}</text>")
    bars = 0
    for i, (run, stack) in enumerate(zip(runs, stacks, strict=True)):
        x = LEFT + slot * i + (slot - bar_w) / 2
        y = TOP + plot_h
        for value, colour, label in stack:
            if value <= 0 or scale_max <= 0:
                continue
            h = min(plot_h * value / scale_max, y - TOP)  # a clipped column stops at the top
            clipped = h < plot_h * value / scale_max - 0.05
            y -= h
            bars += 1
            tip = f"{run.run_id} ({run.status}): {_num(value)} {label}" + (" (above the axis)" if clipped else "")
            parts.append(
                f"<rect class='bar{' clipped' if clipped else ''}' x='{x:.1f}' y='{y:.1f}' width='{bar_w:.1f}' "
                f"height='{h:.1f}' fill='{colour}'><title>{_e(tip)}</title></rect>"
            )
            if clipped:
                parts.append(
                    f"<text class='tick' x='{x + bar_w / 2:.1f}' y='{TOP + 8:.1f}' text-anchor='middle'>"
                    f"{_num(value)}</text>"
                )
    if runs:
        parts.append(f"<text class='tick' x='{LEFT}' y='{H - 6}'>{_when(runs[0].started_at)}</text>")
        parts.append(
            f"<text class='tick' x='{W - 8}' y='{H - 6}' text-anchor='end'>{_when(runs[-1].started_at)}</text>"
        )
    else:
        parts.append(f"<text class='empty' x='{W / 2}' y='{H / 2}' text-anchor='middle'>no runs yet</text>")
    parts.append("</svg>")
    if legend:
        items = "".join(f"<span><i style='background:{c}'></i>{_e(name)}</span>" for name, c in legend.items())
        parts.append(f"<div class='legend'>{items}</div>")
    parts.append("</figure>")
    return "".join(parts).replace("data-bars='0'", f"data-bars='{bars}'", 1)


def _robust_top(values: Sequence[float]) -> float:
    """The largest value that is not an outlier (over three times the median): the bars
    above it are clipped."""
    positive = sorted(v for v in values if v > 0)
    if len(positive) < 3:
        return max(positive, default=0.0)
    median = positive[len(positive) // 2]
    return max(v for v in positive if v <= 3 * median)


def _nice(value: float) -> float:
    """An axis maximum at or above ``value`` whose quarters are round numbers."""
    if value <= 0:
        return 1.0
    quarter = value / 4
    exp = 10 ** math.floor(math.log10(quarter))
    for step in (1, 2, 2.5, 5, 10):
        if quarter <= step * exp + 1e-12:
            return 4 * step * exp
    return 40 * exp


def _num(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.2g}"


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "—"


def _e(value: Any) -> str:
    return html.escape(redact(str(value)), quote=True)


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1000px;color:#222}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:12px}h1{margin:0;font-size:22px}
.where,.when{color:#666;margin:0}.overall{font-weight:600;padding:2px 10px;border-radius:10px;margin:0}
.ok{background:#dff0d8;color:#2e6b2e}.bad{background:#f8d7da;color:#8a1f2b}
h2{font-size:16px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{padding:4px 6px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}.badge{padding:1px 7px;border-radius:8px;font-size:12px}.scope{color:#888}
figure{margin:16px 0}figcaption{font-weight:600;margin-bottom:4px}svg.chart{max-width:100%;height:auto}
.grid{stroke:#e5e5e5}.tick,.empty{font-size:11px;fill:#777}.legend span{margin-right:12px;font-size:12px}
.legend i,.dot{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.warn{color:#8a5a00}code{background:#f4f4f4;padding:0 3px}
"""

# Runs once the page is laid out: each chart records how many of its bars the browser
# really drew (non-empty boxes), for people (a note under an empty chart) and for tests.
_SCRIPT = """
document.querySelectorAll('figure.chart').forEach(function (fig) {
  var drawn = 0;
  fig.querySelectorAll('rect.bar').forEach(function (bar) {
    var box = bar.getBBox();
    if (box.width > 0 && box.height > 0) { drawn += 1; }
  });
  fig.setAttribute('data-drawn', String(drawn));
});
document.body.setAttribute('data-charts', String(document.querySelectorAll('figure.chart[data-drawn]').length));
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title><style>{style}</style></head>
<body>
{body}
<script>{script}</script>
</body></html>
"""
