"""The CLI: exit codes, JSON shapes, and clear errors for bad input with nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import edit
from ragstate import __version__
from ragstate.apply.record import RunRecord
from ragstate.cli import _run_exit, app

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def as_json(stdout: str) -> dict:
    return json.loads(stdout)


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and out.strip() == f"ragstate {__version__}"


def test_installed_script_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "ragstate.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_every_command_has_help() -> None:
    for command in ("init", "plan", "apply", "reconcile", "verify", "status", "history", "rollback"):
        code, out, _ = run(command, "--help")
        assert code == 0 and "--config" in out or command == "init"
        assert "--json" in out


def test_plan_apply_verify_exit_codes_and_json(spec_file, corpus: Path) -> None:
    spec = str(spec_file())
    code, out, _ = run("plan", "-c", spec, "--json")
    plan = as_json(out)
    assert code == 2 and plan["in_sync"] is False
    assert plan["drift"] == {"doc_embeddings": {"missing": 18}}

    code, out, _ = run("apply", "-c", spec, "--json")
    record = as_json(out)
    assert code == 0 and record["status"] == "converged" and record["built"] == 18

    code, out, _ = run("plan", "-c", spec, "--json")
    assert code == 0 and as_json(out)["in_sync"] is True and as_json(out)["drift"] == {}
    code, out, _ = run("verify", "-c", spec, "--json")
    assert code == 0 and as_json(out)["in_sync"] is True

    # an edit of what the model reads (the title; one past it is a restamp, not drift)
    edit(corpus / "text/PMC12430510.txt", old="Trap Engineering", new="Trap-Engineering")
    code, out, _ = run("verify", "-c", spec, "--json")
    assert code == 2 and as_json(out)["drift"] == {"doc_embeddings": {"stale": 1}}

    code, out, _ = run("status", "-c", spec, "--json")
    status = as_json(out)
    assert code == 2 and status["pipelines"]["basic"]["ready"] is False
    assert "stale" in status["pipelines"]["basic"]["reasons"][0]

    code, out, _ = run("reconcile", "-c", spec, "--json")
    assert code == 0 and as_json(out)["verify"]["in_sync"] is True
    code, out, _ = run("status", "-c", spec, "--json")
    assert code == 0 and as_json(out)["pipelines"]["basic"]["ready"] is True


def test_text_output_names_drift(spec_file, corpus: Path) -> None:
    spec = str(spec_file())
    assert run("apply", "-c", spec)[0] == 0
    (corpus / "text/PMC12429868.txt").unlink()
    code, out, _ = run("plan", "-c", spec)
    assert code == 2
    assert "orphaned" in out and "text/PMC12429868.txt" in out


def test_saved_plan_round_trip(spec_file, tmp_path: Path) -> None:
    spec = str(spec_file())
    saved = tmp_path / "plan.json"
    code, _, _ = run("plan", "-c", spec, "--out", str(saved))
    assert code == 2 and saved.exists()
    code, out, _ = run("apply", str(saved), "-c", spec, "--json")
    assert code == 0 and as_json(out)["built"] == 18
    code, out, _ = run("apply", str(saved), "-c", spec, "--json")
    assert code == 1 and as_json(out)["error_type"] == "StalePlanError"


def test_destructive_plan_exits_3(spec_file) -> None:
    assert run("apply", "-c", str(spec_file()))[0] == 0
    narrow = str(spec_file(scope={"first": 1}))
    code, out, _ = run("apply", "-c", narrow, "--json")
    assert code == 3 and as_json(out)["error_type"] == "DestructiveRefused"
    code, out, _ = run("apply", "-c", narrow, "--allow-destructive", "--json")
    assert code == 0 and as_json(out)["kinds"]["doc_embeddings"]["deleted"] == 17


def test_init_writes_a_working_spec(tmp_path: Path, corpus: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, _ = run("init", "--source", "corpus", "--store", "sqlite:///rag.db", "--pipelines", "basic,hyde")
    assert code == 0
    spec = yaml.safe_load((tmp_path / "ragstate.yaml").read_text())
    assert spec == {"store": "sqlite:///rag.db", "source": {"path": "corpus"}, "pipelines": ["basic", "hyde"]}
    code, out, _ = run("plan", "--json")
    assert code == 2 and as_json(out)["scope_size"] == 18
    code, _, err = run("init", "--source", "corpus")
    assert code == 1 and "exists" in err


def test_init_refuses_unknown_pipeline(tmp_path: Path, corpus: Path) -> None:
    code, _, err = run(
        "init", "--source", str(corpus), "--pipelines", "basic,telepathy", "-o", str(tmp_path / "s.yaml")
    )
    assert code == 1 and "pipelines" in err and "telepathy" in err
    assert not (tmp_path / "s.yaml").exists()


# --- bad input: a clear message, exit 1, nothing half-written --------------------------


def _write(path: Path, data: dict | str) -> str:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def test_unknown_key_names_file_line_and_field(tmp_path: Path, corpus: Path) -> None:
    spec = _write(
        tmp_path / "s.yaml",
        f"store: sqlite:///s.db\nsource: {corpus}\nreconcile:\n  batch_sise: 10\n",
    )
    code, _, err = run("plan", "-c", spec)
    assert code == 1
    assert f"{spec}:4" in err and "reconcile.batch_sise" in err and "unknown field" in err
    assert not (tmp_path / "s.db").exists()


def test_wrong_type_names_field(tmp_path: Path, corpus: Path) -> None:
    spec = _write(tmp_path / "s.yaml", {"store": "sqlite:///s.db", "source": str(corpus), "scope": {"first": "many"}})
    code, _, err = run("plan", "-c", spec)
    assert code == 1 and "scope.first" in err and "valid integer" in err
    assert not (tmp_path / "s.db").exists()


def test_environment_override_is_validated_and_named(tmp_path: Path, corpus: Path, monkeypatch) -> None:
    spec = _write(tmp_path / "s.yaml", {"store": "sqlite:///s.db", "source": str(corpus)})
    monkeypatch.setenv("RAGSTATE_RECONCILE__BATCH_SIZE", "-3")
    code, _, err = run("plan", "-c", spec)
    assert code == 1 and "RAGSTATE_RECONCILE__BATCH_SIZE" in err and "reconcile.batch_size" in err
    monkeypatch.delenv("RAGSTATE_RECONCILE__BATCH_SIZE")
    monkeypatch.setenv("RAGSTATE_RECONCILE__BATCHSIZE", "3")
    code, _, err = run("plan", "-c", spec)
    assert code == 1 and "RAGSTATE_RECONCILE__BATCHSIZE" in err and "batchsize" in err


def test_missing_spec_file(tmp_path: Path) -> None:
    code, _, err = run("plan", "-c", str(tmp_path / "nope.yaml"))
    assert code == 1 and "nope.yaml" in err and "not found" in err


def test_missing_source_folder(tmp_path: Path) -> None:
    spec = _write(tmp_path / "s.yaml", {"store": "sqlite:///s.db", "source": "missing-folder"})
    code, out, _ = run("plan", "-c", spec, "--json")
    assert code == 1 and "missing-folder" in as_json(out)["error"] and "does not exist" in as_json(out)["error"]


def test_unreachable_sqlite_folder(tmp_path: Path, corpus: Path) -> None:
    spec = _write(tmp_path / "s.yaml", {"store": "sqlite:///no/such/dir/s.db", "source": str(corpus)})
    code, _, err = run("plan", "-c", spec)
    assert code == 1 and "no/such/dir" in err and "does not exist" in err


def test_unreachable_postgres(tmp_path: Path, corpus: Path) -> None:
    url = "postgresql://ragstate:Sup3rSecret@127.0.0.1:9/rag"
    spec = _write(tmp_path / "s.yaml", {"store": {"url": url, "connect_timeout_s": 2}, "source": str(corpus)})
    code, _, err = run("plan", "-c", spec)
    assert code == 1 and "cannot connect" in err and "127.0.0.1" in err
    assert "Sup3rSecret" not in err


@pytest.mark.parametrize(
    ("name", "content", "expect"),
    [
        ("jsonl/bad.jsonl", b'{"doc_id": "x1", "title": "ok"}\n{not json\n', "jsonl/bad.jsonl:2: not valid JSON"),
        ("text/latin1.txt", "Caf\xe9 society\n\nbody".encode("latin-1"), "text/latin1.txt: not UTF-8"),
        ("jats/broken.xml", b"<article><front>", "jats/broken.xml: not well-formed XML"),
        ("text/empty.txt", b"   \n\n", "text/empty.txt: empty document"),
    ],
    ids=["jsonl", "utf8", "xml", "empty"],
)
def test_malformed_document_is_named_and_quarantined(spec_file, corpus: Path, name, content, expect) -> None:
    # One bad document does not stop the others (docs/failures.md): it is named by plan,
    # quarantined by apply (exit 4), and everything else is built.
    (corpus / name).write_bytes(content)
    spec = str(spec_file(models={"default": {"provider": "hash", "dimension": 32}}))
    code, out, _ = run("plan", "-c", spec)
    assert code == 2 and expect in out
    code, out, _ = run("apply", "-c", spec, "--json")
    assert code == 4 and as_json(out)["quarantined"] == {"source": 1}
    code, out, _ = run("quarantine", "list", "-c", spec)
    assert code == 0 and expect in out
    from ragstate import Project

    good = 19 if name.endswith(".jsonl") else 18  # bad.jsonl holds one good record too
    with Project.from_file(spec) as project, project.store.session() as s:
        assert s.scalar("SELECT count(*) FROM {ledger}") == good
        assert s.scalar("SELECT count(*) FROM {documents}") == good


def test_duplicate_document_id_names_both_places(spec_file, corpus: Path) -> None:
    (corpus / "jsonl/more.jsonl").write_text(
        (corpus / "jsonl/articles.jsonl").read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8"
    )
    code, _, err = run("plan", "-c", str(spec_file()))
    assert code == 1 and "appears twice" in err and "jsonl/articles.jsonl" in err and "jsonl/more.jsonl" in err


def test_malformed_saved_plan(spec_file, tmp_path: Path) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text('{"format": 1, "kinds": 3}')
    code, _, err = run("apply", str(bad), "-c", str(spec_file()))
    assert code == 1 and "malformed plan" in err


@pytest.mark.parametrize(
    ("status", "quarantined", "code"),
    [
        ("converged", {}, 0),
        ("converged", {"doc_embeddings": 1}, 4),
        ("rejected", {"doc_embeddings": 1}, 5),
        ("failed", {}, 1),
    ],
)
def test_run_exit_codes(status: str, quarantined: dict[str, int], code: int) -> None:
    # a rejected generation is the news even when items are also in quarantine
    record = RunRecord(run_id="r", command="apply", status=status, quarantined=quarantined)
    assert _run_exit(record) == code
