"""What a new user trips over (issue 23): reading commands create nothing, nothing is skipped
silently, mistakes in the spec and the command line are named."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ragstate.cli import app
from ragstate.stores.migrations import MIGRATIONS, describe_applied

runner = CliRunner()
HASH = {"default": {"provider": "hash", "dimension": 32}}


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_plan_and_status_on_a_missing_store_say_so_and_create_nothing(tmp_path: Path, corpus: Path) -> None:
    spec = tmp_path / "ragstate.yaml"
    spec.write_text(f"store: sqlite:///{tmp_path / 'typo.db'}\nsource: {{path: {corpus}}}\n", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())

    code, out, _ = run("plan", "-c", str(spec))
    assert code == 2 and "missing" in out and "18 documents in scope" in out
    assert f"the store sqlite {tmp_path / 'typo.db'} does not exist yet: apply creates it" in out
    code, out, _ = run("status", "-c", str(spec), "--json")
    data = json.loads(out)
    assert code == 2 and data["ready"] is False and "does not exist yet" in data["notes"][0]
    code, out, _ = run("report", "-c", str(spec), "--html", str(tmp_path / "r.html"))
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "r.html"])  # no .db, no .lock

    code, out, _ = run("apply", "-c", str(spec), "--json")  # apply does create it
    record = json.loads(out)
    assert code == 0 and record["built"] == 18 and (tmp_path / "typo.db").exists()
    assert record["schema_repaired"] == [describe_applied([m.version for m in MIGRATIONS])]
    code, out, _ = run("status", "-c", str(spec), "--json")
    assert code == 0 and json.loads(out)["notes"] == []


def test_status_after_rollback_shows_the_active_generations_recipe(make_project) -> None:
    first = make_project(models=HASH)
    first.apply()
    changed = make_project(models=HASH, artifacts={"doc_embeddings": {"text": "{title}"}})
    assert changed.apply().converged
    fp1, fp2 = first.plan().kind("doc_embeddings").recipe_fp, changed.plan().kind("doc_embeddings").recipe_fp
    assert fp1 != fp2
    changed.rollback("doc_embeddings")
    kind = changed.status().kinds["doc_embeddings"]
    assert kind.active_generation == 1 and kind.recipe_fp == fp1 and kind.spec_recipe_fp == fp2


def test_init_refuses_a_missing_folder_and_a_two_slash_sqlite_url(tmp_path: Path, corpus: Path) -> None:
    out_file = tmp_path / "spec.yaml"
    code, _, err = run("init", "--source", str(tmp_path / "nope"), "--output", str(out_file))
    assert code == 1 and f"--source: {tmp_path / 'nope'} does not exist" in err and not out_file.exists()
    code, _, err = run("init", "--source", str(corpus), "--store", "sqlite://typo.db", "--output", str(out_file))
    assert code == 1 and "'sqlite://typo.db' is not a SQLite URL" in err and not out_file.exists()
