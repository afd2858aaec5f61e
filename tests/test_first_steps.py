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


def test_files_no_loader_reads_are_counted_by_extension(spec_file, corpus: Path) -> None:
    for name in ("a.pptx", "b.pptx", "c.zzz", "notes"):
        (corpus / name).write_bytes(b"PK or anything")
    spec = str(spec_file(models=HASH, source={"path": str(corpus), "formats": ["txt", "md", "jsonl"]}))
    code, out, _ = run("plan", "-c", spec, "--json")
    notes = json.loads(out)["notes"]
    skipped = next(n for n in notes if "skipped" in n)
    assert skipped.startswith("7 files in the source skipped: no loader reads 2 .pptx, 1 (no extension), 1 .zzz")
    assert skipped.endswith("source.formats leaves out 3 .xml")  # a format there is a loader for, not listed
    code, out, err = run("apply", "-c", spec)
    assert code == 0 and "WARNING" in err and "no loader reads 2 .pptx" in err


def test_an_empty_source_is_said_not_silently_converged(spec_file, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    spec = str(spec_file(models=HASH, source={"path": str(tmp_path / "empty")}))
    code, out, _ = run("plan", "-c", spec)
    assert "0 documents in scope" in out and f"the source {tmp_path / 'empty'} holds no document in scope" in out
    code, _, err = run("apply", "-c", spec)
    assert code == 0 and "holds no document in scope" in err


def test_hyde_without_a_generator_is_said_everywhere(spec_file, corpus: Path, tmp_path: Path) -> None:
    code, _, err = run(
        "init", "--source", str(corpus), "--pipelines", "basic,hyde", "--output", str(tmp_path / "init.yaml")
    )
    assert code == 0 and "pipeline hyde is enabled but no text generator is configured" in err

    spec = str(spec_file(models=HASH, pipelines=["basic", "hyde"]))
    assert run("apply", "-c", spec)[0] == 0
    code, out, _ = run("status", "-c", spec, "--json")
    pipelines = json.loads(out)["pipelines"]
    assert code == 2 and pipelines["basic"]["ready"] is True and pipelines["hyde"]["ready"] is False
    assert "hyde needs a text generator" in pipelines["hyde"]["reasons"][0]
    code, _, _ = run("report", "-c", spec, "--html", str(tmp_path / "r.html"))
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert code == 0 and "NotConfigured" in page and "hyde needs a text generator" in page
