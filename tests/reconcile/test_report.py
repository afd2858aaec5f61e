"""``ragstate report --html``: one self-contained page whose charts a real browser draws.

The page is rendered by headless Chromium (Debian's ``chromium``, which ``scripts/test.sh``
installs); the page's own script counts, after layout, the bars the browser really drew
into each chart's ``data-drawn``, which must match the bars the page holds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import edit
from helpers import HASH_MODELS
from ragstate import Project
from ragstate.apply.budget import Budget
from ragstate.cli import app

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("headless Chromium is needed to render the report: apt-get install chromium (scripts/test.sh does)")


def render(page: Path, tmp_path: Path) -> str:
    """The page's DOM after Chromium loaded it and ran its script."""
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@SQLITE_ONLY
def test_the_report_is_one_page_whose_charts_are_drawn(spec_file, corpus: Path, tmp_path: Path) -> None:
    path = spec_file(models=HASH_MODELS)
    with Project.from_file(path) as project:  # a history: build, edit, a partial run, its end
        project.apply()
        edit(corpus / "markdown/PMC12429712.md", old="Polyester Fibers", new="Polyester Fibres")  # a title: stale
        (corpus / "text/PMC12429868.txt").unlink()
        project.apply()
        for i in range(3):
            (corpus / f"text/new{i}.txt").write_text(f"New {i}\n\nA short new document {i}.\n")
        assert project.apply(budget=Budget(max_items=1)).status == "partial"
        project.apply()
    page = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "--html", str(page), "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "Wrote" in result.stdout and "(4 runs)" in result.stdout

    html = page.read_text(encoding="utf-8")
    assert not re.search(r"\s(src|href)=|@import|url\(|https?://", html), "self-contained: nothing fetched"
    dom = render(page, tmp_path)
    figures = dict(re.findall(r'<figure class="chart" id="([a-z-]+)" data-bars="(\d+)" data-drawn="\d+"', dom))
    drawn = dict(re.findall(r'<figure class="chart" id="([a-z-]+)" data-bars="\d+" data-drawn="(\d+)"', dom))
    assert set(figures) == {"chart-drift", "chart-throughput", "chart-duration"}, dom[:3000]
    assert drawn == figures, "every bar of every chart was laid out by the browser"
    # drift: 18 missing; 1 stale + 1 orphaned; 3 missing; 2 missing: one bar per class found
    assert figures == {"chart-drift": "5", "chart-throughput": "4", "chart-duration": "4"}
    assert 'data-charts="3"' in dom
    assert "Pipelines and artifact kinds" in dom and "doc_embeddings" in dom and "partial" in dom


# --- scales (issue 23): no chart lets one run flatten the others, nor counts kinds as documents ---


def _status():
    from ragstate.reconcile.reports import StatusReport

    return StatusReport(
        store="sqlite x",
        source="folder y",
        scope_size=160,
        pipelines={},
        kinds={},
        schema=[],
        last_run=None,
        running=[],
    )


def _heights(page: str, chart: str) -> list[float]:
    figure = page.split(f"id='{chart}'", 1)[1].split("</figure>", 1)[0]
    return [float(h) for h in re.findall(r"<rect class='bar[^']*'[^>]*height='([\d.]+)'", figure)]


def test_one_fast_tiny_run_does_not_flatten_the_throughput_chart() -> None:
    from ragstate.reconcile.html import render_html
    from ragstate.reconcile.reports import Report, RunPoint

    rates = [(160, 20.0), (150, 18.0), (1, 1 / 519), (140, 19.0)]  # (built, build seconds): the third is 519/s
    runs = [
        RunPoint(
            run_id=f"r{i}", command="apply", status="converged", started_at=1e9 + i, seconds=s, built=b, build_seconds=s
        )
        for i, (b, s) in enumerate(rates)
    ]
    page = render_html(Report(status=_status(), runs=runs, generated_at=1e9))
    heights = _heights(page, "chart-throughput")
    assert len(heights) == 4
    assert min(heights[0], heights[1], heights[3]) > 0.25 * heights[2], "the others are not squashed"
    assert page.count("class='bar clipped'") == 1 and "519 documents/s (above the axis)" in page


def test_drift_counts_documents_not_kinds_times_documents() -> None:
    from types import SimpleNamespace

    from ragstate.reconcile.reports import RunPoint

    kinds = ["doc_embeddings", "chunks", "fulltext", "entities", "entity_embeddings", "chunk_embeddings", "tokens"]
    row = SimpleNamespace(
        run_id="r",
        command="apply",
        status="converged",
        started_at=1.0,
        finished_at=2.0,
        heartbeat_at=None,
        timings={"total_s": 1.0},
        error=None,
        plan=None,
        counts={"drift": {k: {"missing": 160} for k in kinds} | {"chunks": {"missing": 160, "stale": 3}}, "kinds": {}},
    )
    assert RunPoint.from_row(row).drift == {"missing": 160, "stale": 3}
