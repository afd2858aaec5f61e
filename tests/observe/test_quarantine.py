"""Poison documents, end to end through the CLI with the real model, on both backends.

Invalid UTF-8, an empty file, a 20 MB file, a JATS file that is not XML and a bad JSONL
line are quarantined with the right reason; every other document converges; apply exits
4; after the files are fixed, ``quarantine retry`` converges with exit 0.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from conftest import SAMPLE
from helpers import HASH_MODELS, artifact_ids, check_store
from ragstate.cli import app

N = 18  # documents in the small corpus
runner = CliRunner()


def ragstate(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, [*args, "--json"])
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {result.exit_code}): {result.stdout}\n{result.stderr}") from None
    return result.exit_code, data


def add_poison(corpus: Path) -> None:
    (corpus / "text/bad-utf8.txt").write_bytes(b"A title\n\nLatin-1 text: caf\xe9 au lait\n")
    (corpus / "markdown/empty.md").write_text("")
    with open(corpus / "text/huge.txt", "wb") as f:
        f.truncate(20 * 2**20)  # 20 MiB, over the default limit of 20,000,000 bytes
    (corpus / "jats/not-xml.xml").write_text("<article><front><article-meta>unclosed")
    with open(corpus / "jsonl/articles.jsonl", "a", encoding="utf-8") as f:
        f.write('{"doc_id": "PMC-bad", "title": "cut short\n')


def fix_poison(corpus: Path) -> None:
    (corpus / "text/bad-utf8.txt").write_text("A title\n\nUTF-8 text: café au lait\n", encoding="utf-8")
    (corpus / "markdown/empty.md").write_text("# Seed banks\n\nWhy seed banks keep seeds dry and cold.\n")
    (corpus / "text/huge.txt").write_text("Germination\n\nA short text at last.\n")
    shutil.copy(SAMPLE / "jats/PMC12430116.xml", corpus / "jats/not-xml.xml")
    lines = (corpus / "jsonl/articles.jsonl").read_text(encoding="utf-8").splitlines()
    lines[-1] = json.dumps({"doc_id": "PMC-fixed", "title": "Repaired", "abstract": "A record written in full."})
    (corpus / "jsonl/articles.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_poison_documents_are_quarantined_and_retry_converges(spec_file, corpus: Path) -> None:
    add_poison(corpus)
    cfg = str(spec_file())

    code, plan = ragstate("plan", "-c", cfg)
    assert code == 2
    found = {e["item"]: e["reason"] for e in plan["quarantine"]["new"]}
    assert found == {
        "text/bad-utf8.txt": "undecodable",
        "markdown/empty.md": "empty",
        "text/huge.txt": "too_large",
        "jats/not-xml.xml": "malformed",
        "jsonl/articles.jsonl:9": "malformed",
    }
    assert plan["drift"] == {"doc_embeddings": {"missing": N}}

    code, record = ragstate("apply", "-c", cfg)
    assert code == 4, record
    assert record["status"] == "converged" and record["built"] == N
    assert record["quarantined"] == {"source": 5}

    code, listed = ragstate("quarantine", "list", "-c", cfg)
    assert code == 0
    entries = {e["item"]: e for e in listed["entries"]}
    assert {k: e["reason"] for k, e in entries.items()} == found
    e = entries["text/bad-utf8.txt"]
    assert e["kind"] == "source" and e["state"] == "quarantined" and e["attempts"] == 1
    assert e["doc_id"] == "text/bad-utf8.txt" and "not UTF-8" in e["message"] and e["first_seen"] <= e["last_seen"]
    assert entries["text/huge.txt"]["error_type"] == "DocumentTooLarge"

    code, plan = ragstate("plan", "-c", cfg)
    assert code == 0 and plan["in_sync"] and plan["quarantine"]["quarantined"] == {"source": 5}
    code, status = ragstate("status", "-c", cfg)
    assert code == 0 and status["quarantine"]["quarantined"] == {"source": 5}
    code, again = ragstate("apply", "-c", cfg)
    assert code == 4 and again["built"] == 0

    fix_poison(corpus)
    code, record = ragstate("quarantine", "retry", "--all", "-c", cfg)
    assert code == 0, record
    assert record["converged"] and record["built"] == 5 and record["quarantined"] == {}
    code, listed = ragstate("quarantine", "list", "-c", cfg)
    assert listed["entries"] == []
    code, report = ragstate("verify", "-c", cfg)
    assert code == 0 and report["in_sync"] and report["scope_size"] == N + 5


def test_quarantine_commands_name_unknown_items(spec_file) -> None:
    cfg = str(spec_file(models=HASH_MODELS))
    code, out = ragstate("quarantine", "retry", "no/such.txt", "-c", cfg)
    assert code == 1 and out["error_type"] == "QuarantineNotFound" and "no/such.txt" in out["error"]
    code, out = ragstate("quarantine", "drop", "-c", cfg)
    assert code == 1 and "--all" in out["error"]


def test_a_document_that_breaks_keeps_its_artifacts_until_fixed_or_removed(make_project, corpus: Path) -> None:
    project = make_project(models=HASH_MODELS)
    project.apply()
    target = corpus / "text/PMC12430510.txt"
    good = target.read_bytes()
    target.write_bytes(b"\xff\xfe" + good)

    record = project.apply()
    assert record.converged and record.quarantined == {"source": 1}
    assert record.kinds == {}, "nothing rebuilt, nothing deleted"
    assert "text/PMC12430510.txt" in artifact_ids(project), "the last good artifact stays"
    assert project.plan().in_sync and project.verify().in_sync

    target.write_bytes(good + b"\nA new last line.\n")
    record = project.apply()
    assert record.kinds["doc_embeddings"].built == 1 and record.quarantined == {}

    target.write_bytes(b"")
    project.apply()
    target.unlink()  # a broken file removed: its entry goes, its artifacts are orphans
    record = project.apply()
    assert record.kinds["doc_embeddings"].deleted == 1 and record.quarantined == {}
    assert project.quarantine_list() == [] and "text/PMC12430510.txt" not in artifact_ids(project)
    check_store(project)
