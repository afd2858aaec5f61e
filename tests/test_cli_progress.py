"""The CLI's progress: an overall bar over every kind, whose ETA starts from the plan's
estimate (throughput measured by earlier runs), and a warning before a long CPU run."""

from __future__ import annotations

import logging

from rich.progress import Progress

from ragstate.apply.apply import LONG_RUN_S, _warn_if_long
from ragstate.cli import _Bar, _Eta
from ragstate.plan.model import Estimate, Plan
from ragstate.spec import spec_from_dict


def test_the_eta_counts_down_from_the_estimate_before_any_rate_is_measured() -> None:
    with Progress() as progress:
        task = progress.add_task("all kinds", total=100, estimate_s=3725.0)
        assert str(_Eta().render(progress.tasks[task])).startswith("ETA 1:02:0")
        plain = progress.add_task("chunks", total=10)
        assert str(_Eta().render(progress.tasks[plain])) == "ETA -:--:--"
        progress.update(plain, completed=10)
        assert str(_Eta().render(progress.tasks[plain])) == "done"


def test_the_overall_bar_counts_every_kind() -> None:
    with _Bar(enabled=True) as bar:
        bar.planned(Estimate(items=30, tokens=0, seconds=60.0))
        bar.start("doc_embeddings", 10)
        bar.start("chunks", 20)
        bar.advance("doc_embeddings", 10)
        bar.advance("chunks", 5)
        assert bar._progress is not None
        tasks = {t.description: t for t in bar._progress.tasks}
        assert tasks["all kinds"].completed == 15 and tasks["all kinds"].total == 30
        assert tasks["chunks"].completed == 5


def _plan(seconds: float) -> Plan:
    return Plan(
        spec_hash="x", created_at=0.0, depth="shallow", scope_size=160, kinds=(), estimate=Estimate(160, 0, seconds)
    )


def test_a_long_cpu_run_is_announced(caplog, tmp_path) -> None:
    spec = spec_from_dict({"store": "sqlite:///x.db", "source": str(tmp_path)}, base_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="ragstate"):
        _warn_if_long(_plan(LONG_RUN_S - 1), spec)
        assert caplog.records == []
        _warn_if_long(_plan(17 * 60), spec)
    [record] = caplog.records
    assert "estimated at ~17 min (160 documents to build) with models on the CPU (default)" in record.getMessage()
