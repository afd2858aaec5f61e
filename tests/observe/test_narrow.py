"""A narrowed observation (``observe.narrow``, live mode): only the hinted paths are looked
at; every other file is taken as the store recorded it."""

from __future__ import annotations

from pathlib import Path

from ragstate.observe.narrow import NarrowedSource, narrowed
from ragstate.sources.folder import FolderSource
from ragstate.spec.model import SourceSpec


def folder(root: Path) -> FolderSource:
    (root / "sub").mkdir(parents=True)
    for name in ("a.txt", "b.txt", "sub/c.txt", "sub/d.txt"):
        (root / name).write_text(f"Title {name}\n\nBody of {name}.\n")
    return FolderSource(SourceSpec(path=root))


def test_only_the_hinted_paths_are_read(tmp_path: Path) -> None:
    source = folder(tmp_path / "docs")
    full = source.snapshot({})
    known = {f.path: f for f in full.files}
    (tmp_path / "docs/a.txt").write_text("Title a\n\nEdited.\n")
    (tmp_path / "docs/b.txt").write_text("Title b\n\nEdited too, but no event said so.\n")
    (tmp_path / "docs/new.txt").write_text("New\n\nA new file.\n")

    snap = narrowed(source, frozenset({"a.txt", "new.txt", ".hidden.swp"})).snapshot(known)
    assert sorted(r.doc_id for r in snap.fresh) == ["a.txt", "new.txt"]
    assert snap.unchanged == {"b.txt", "sub/c.txt", "sub/d.txt"}, "b.txt is taken as recorded"
    assert [f.path for f in snap.files] == ["a.txt", "b.txt", "new.txt", "sub/c.txt", "sub/d.txt"]
    assert {f.path: f for f in snap.files}["b.txt"] == known["b.txt"]

    # a deep observation is never narrowed: it reads everything
    deep = narrowed(source, frozenset({"a.txt"})).snapshot(known, rehash=True)
    assert sorted(r.doc_id for r in deep.fresh) == ["a.txt", "b.txt", "new.txt", "sub/c.txt", "sub/d.txt"]


def test_a_removed_file_or_folder_leaves_and_a_folder_moved_in_is_observed_whole(tmp_path: Path) -> None:
    source = folder(tmp_path / "docs")
    known = {f.path: f for f in source.snapshot({}).files}
    (tmp_path / "docs/a.txt").unlink()
    for name in ("c.txt", "d.txt"):
        (tmp_path / "docs/sub" / name).unlink()
    (tmp_path / "docs/sub").rmdir()
    snap = NarrowedSource(source, frozenset({"a.txt", "sub"})).snapshot(known)
    assert [f.path for f in snap.files] == ["b.txt"] and not snap.fresh

    (tmp_path / "docs/moved").mkdir()
    (tmp_path / "docs/moved/e.txt").write_text("E\n\nMoved in with its folder.\n")
    assert source.snapshot_paths(known, {"moved"}) is None, "a folder: the caller observes the source"
    whole = NarrowedSource(source, frozenset({"moved"})).snapshot(known)
    assert "moved/e.txt" in {r.doc_id for r in whole.fresh}
