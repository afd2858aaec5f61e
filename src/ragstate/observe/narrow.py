"""A narrowed observation (live mode): observe only the documents of the paths a change
notification named, and take the rest of the source as the store recorded it.

``observe`` itself is unchanged: it is given a source whose ``snapshot`` stats and reads the
hinted paths alone (``FolderSource.snapshot_paths``) and reports every other recorded file
as unchanged, so the scope, the drift and the registry it computes are those of a full
observation in which only those files changed. What the hint missed, the daemon's next full
observation finds. A deep observation (``rehash``) is never narrowed, and neither is a
source that cannot narrow (a table, a single file): they are observed whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ragstate.sources.base import Document, Source
from ragstate.stores.documents import DocRef, FileStat, Snapshot


class NarrowedSource:
    """``source`` observed at ``paths`` only (see the module docstring)."""

    def __init__(self, source: Any, paths: frozenset[str]):
        self.inner = source
        self.paths = paths
        self.description = source.description

    def snapshot(self, known: Mapping[str, FileStat], *, rehash: bool = False) -> Snapshot:
        if not rehash:
            narrowed = self.inner.snapshot_paths(known, self.paths)
            if narrowed is not None:
                return narrowed
        return self.inner.snapshot(known, rehash=rehash)

    def load(self, refs: Sequence[DocRef]) -> Iterator[Document]:
        return self.inner.load(refs)


def narrowed(source: Source, paths: frozenset[str] | None) -> Source:
    """``source`` observing only ``paths`` when it can (a folder), else ``source`` itself
    (``paths`` None: no hint, observe everything)."""
    if paths is None or not hasattr(source, "snapshot_paths"):
        return source
    return NarrowedSource(source, paths)
