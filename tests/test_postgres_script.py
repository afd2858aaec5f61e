"""``scripts/postgres.sh``: one command starts a local PostgreSQL with pgvector, prints its
URL, serves ragstate until Ctrl-C, and stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import REPO
from ragstate.cli import app


@pytest.mark.slow
def test_the_script_starts_a_server_ragstate_can_use_and_stops_on_ctrl_c(tmp_path: Path, corpus: Path) -> None:
    proc = subprocess.Popen(
        ["bash", str(REPO / "scripts/postgres.sh"), str(tmp_path / "pg")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        url = lines[1].strip()
        assert lines[0].startswith("PostgreSQL with pgvector is running") and url.startswith("postgresql://"), lines
        spec = tmp_path / "ragstate.yaml"
        spec.write_text(
            yaml.safe_dump(
                {"store": url, "source": str(corpus), "models": {"default": {"provider": "hash", "dimension": 32}}}
            ),
            encoding="utf-8",
        )
        result = CliRunner().invoke(app, ["apply", "-c", str(spec)])
        assert result.exit_code == 0, result.output
        assert "postgres" in result.stdout.lower() or "converged" in result.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "PostgreSQL stopped" in out
