"""The folder source: stable ids and order, change detection by stat, symlinks, reloads."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from ragstate.errors import SourceError, VanishedDocument
from ragstate.sources.folder import FolderSource
from ragstate.spec.model import SourceSpec


def make(root: Path, **kw) -> FolderSource:
    return FolderSource(SourceSpec(path=root, **kw))


def test_ids_order_and_hidden_files(corpus: Path) -> None:
    (corpus / ".hidden.txt").write_text("secret\n\nnot a document")
    (corpus / "notes.csv").write_text("a,b")
    refs = make(corpus).snapshot({}).fresh
    ids = [r.doc_id for r in refs]
    assert len(ids) == 18 and ".hidden.txt" not in ids and "notes.csv" not in ids
    assert ids[:3] == ["jats/PMC12429890.xml", "jats/PMC12429894.xml", "jats/PMC12430055.xml"]
    assert [r.path for r in refs] == sorted(r.path for r in refs)
    assert make(corpus, formats=("md",)).snapshot({}).fresh[0].doc_id == "markdown/PMC12429712.md"


def test_unchanged_files_are_not_read_again(corpus: Path) -> None:
    source = make(corpus)
    first = source.snapshot({})
    known = {f.path: f for f in first.files}
    again = source.snapshot(known)
    assert again.fresh == () and again.unchanged == frozenset(known)
    target = corpus / "text/PMC12430510.txt"
    target.write_text(target.read_text() + "\nmore\n")
    changed = source.snapshot(known)
    assert [r.doc_id for r in changed.fresh] == ["text/PMC12430510.txt"]
    assert len(source.snapshot(known, rehash=True).fresh) == 18


def test_load_reads_current_text_and_jsonl_by_offset(corpus: Path) -> None:
    source = make(corpus)
    refs = {r.doc_id: r for r in source.snapshot({}).fresh}
    jsonl = [r for r in refs.values() if r.path.endswith(".jsonl")]
    docs = list(source.load(jsonl[::-1]))
    assert [d.doc_id for d in docs] == [r.doc_id for r in jsonl[::-1]]
    assert all(d.content_hash == refs[d.doc_id].content_hash for d in docs)
    (corpus / "text/PMC12430510.txt").unlink()
    # deleted since observed: gone, not a poison document (apply neither quarantines nor fails it)
    with pytest.raises(VanishedDocument, match="text/PMC12430510.txt: deleted from the source during the run"):
        list(source.load([refs["text/PMC12430510.txt"]]))


def test_jsonl_rewritten_after_observe_is_found_by_id(corpus: Path) -> None:
    source = make(corpus)
    refs = [r for r in source.snapshot({}).fresh if r.path.endswith(".jsonl")]
    path = corpus / "jsonl/articles.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(reversed(lines)) + "\n")
    docs = list(source.load(refs[:2]))
    assert [d.doc_id for d in docs] == [r.doc_id for r in refs[:2]]


def test_symlink_outside_the_source_is_refused(tmp_path: Path, corpus: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("Secret\n\nnot for indexing")
    os.symlink(outside / "secret.txt", corpus / "text/link.txt")
    snapshot = make(corpus).snapshot({})
    (problem,) = snapshot.problems
    assert (problem.key, problem.doc_id, problem.reason) == ("text/link.txt", "text/link.txt", "outside_source")
    assert re.search("outside the source folder .*follow_symlinks", problem.message)
    assert len(snapshot.fresh) == 18 and "text/link.txt" not in [r.doc_id for r in snapshot.fresh]
    refs = make(corpus, follow_symlinks=True).snapshot({}).fresh
    assert "text/link.txt" in [r.doc_id for r in refs]


def test_a_dangling_symlink_is_a_problem_of_its_own(tmp_path: Path, corpus: Path) -> None:
    os.symlink(corpus / "text/gone.txt", corpus / "text/dangling.txt")  # inside the folder, but gone
    for follow in (False, True):
        snapshot = make(corpus, follow_symlinks=follow).snapshot({})
        (problem,) = snapshot.problems
        assert (problem.key, problem.reason) == ("text/dangling.txt", "unreadable") and "symlink" in problem.message
        assert len(snapshot.fresh) == 18
    known = {f.path: f for f in snapshot.files}
    assert make(corpus).snapshot(known).problems == (), "an unchanged link is not reported again"


def test_symlinked_folder_outside_is_refused(tmp_path: Path, corpus: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.txt").write_text("Secret\n\nnot for indexing")
    os.symlink(outside, corpus / "escape")
    snapshot = make(corpus).snapshot({})
    (problem,) = snapshot.problems
    assert (problem.key, problem.doc_id, problem.reason) == ("escape", None, "outside_source")
    assert "escape is a symlink" in problem.message and len(snapshot.fresh) == 18


def test_single_file_source_and_missing_path(corpus: Path, tmp_path: Path) -> None:
    refs = make(corpus / "jsonl/articles.jsonl").snapshot({}).fresh
    assert len(refs) == 8 and refs[0].path == "articles.jsonl"
    with pytest.raises(SourceError, match="does not exist"):
        make(tmp_path / "nothing")


def test_oversized_document_is_named(corpus: Path) -> None:
    # A per-document problem is reported (and quarantined by apply), not raised for the folder.
    problems = {p.key: p for p in make(corpus, max_document_bytes=10_000).snapshot({}).problems}
    big = problems["jats/PMC12429890.xml"]
    assert big.reason == "too_large" and big.doc_id == "jats/PMC12429890.xml"
    assert (
        big.message == "jats/PMC12429890.xml: document is 93199 bytes; the limit (source.max_document_bytes) is 10000"
    )


def test_touch_without_change_is_not_drift(corpus: Path) -> None:
    source = make(corpus)
    first = source.snapshot({})
    known = {f.path: f for f in first.files}
    path = corpus / "text/PMC12430510.txt"
    later = time.time() + 5
    os.utime(path, (later, later))
    again = source.snapshot(known)
    (ref,) = again.fresh
    assert ref.content_hash == next(r for r in first.fresh if r.doc_id == ref.doc_id).content_hash
