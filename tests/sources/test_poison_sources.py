"""Poison documents are reported per document by the folder source, never raised for the folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragstate.errors import DuplicateDocumentId, SourceError
from ragstate.sources.folder import FolderSource
from ragstate.spec.model import SourceSpec


def source(root: Path, **kw) -> FolderSource:
    return FolderSource(SourceSpec(path=root, **kw))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "good.txt").write_text("A title\n\nSome text.\n")
    (root / "bad.txt").write_bytes(b"Title\n\xff\xfe not utf-8")
    (root / "empty.md").write_text("")
    (root / "broken.xml").write_text("<article><front>")
    (root / "notjats.xml").write_text("<html><body>hello</body></html>")
    with open(root / "huge.txt", "wb") as f:
        f.truncate(21 * 2**20)  # sparse: only its size is ever looked at
    lines = [
        json.dumps({"doc_id": "a", "title": "A", "body": "text a"}),
        "{not json",
        json.dumps({"doc_id": "empty", "title": "", "body": "  "}),
        json.dumps({"doc_id": "b", "title": "B", "body": "x" * 5000}),
        json.dumps({"doc_id": "c", "title": "C", "body": "text c"}),
    ]
    (root / "records.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_each_poison_document_is_a_problem_with_its_reason(folder: Path) -> None:
    snap = source(folder, max_document_bytes=4096).snapshot({})
    problems = {p.key: p for p in snap.problems}
    assert {k: p.reason for k, p in problems.items()} == {
        "bad.txt": "undecodable",
        "empty.md": "empty",
        "broken.xml": "malformed",
        "notjats.xml": "malformed",
        "huge.txt": "too_large",
        "records.jsonl:2": "malformed",
        "records.jsonl:3": "empty",
        "records.jsonl:4": "too_large",
    }
    assert problems["bad.txt"].doc_id == "bad.txt" and problems["bad.txt"].error_type == "UndecodableDocument"
    assert problems["records.jsonl:3"].doc_id == "empty"
    assert problems["records.jsonl:2"].doc_id is None
    assert "records.jsonl:2" in problems["records.jsonl:2"].message
    assert problems["huge.txt"].fingerprint.startswith(str(21 * 2**20) + ":")
    # everything else is read, including the records after the bad lines
    assert sorted(r.doc_id for r in snap.fresh) == ["a", "c", "good.txt"]


def test_an_over_long_jsonl_line_is_skipped_in_pieces(folder: Path) -> None:
    snap = source(folder, max_document_bytes=100).snapshot({})
    assert {p.key for p in snap.problems if p.reason == "too_large"} >= {"records.jsonl:4"}
    assert "c" in {r.doc_id for r in snap.fresh}, "the record after the long line is read"


def test_loading_a_document_that_became_poison_raises_its_leaf(folder: Path) -> None:
    src = source(folder)
    ref = next(r for r in src.snapshot({}).fresh if r.doc_id == "good.txt")
    (folder / "good.txt").write_bytes(b"\xff\xff")
    with pytest.raises(Exception) as err:
        list(src.load([ref]))
    assert type(err.value).__name__ == "UndecodableDocument"


def test_source_wide_failures_still_raise(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        source(tmp_path / "missing")
    root = tmp_path / "dup"
    root.mkdir()
    (root / "a.jsonl").write_text(json.dumps({"id": "x", "title": "T", "body": "b"}) + "\n")
    (root / "b.jsonl").write_text(json.dumps({"id": "x", "title": "T", "body": "c"}) + "\n")
    with pytest.raises(DuplicateDocumentId, match="appears twice"):
        source(root).snapshot({})
