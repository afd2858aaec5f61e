"""Where documents come from; each source yields ``(doc_id, text, metadata, content_hash)``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ragstate.sources.base import Document, InPlaceSource, Source, SourceProblem
from ragstate.sources.folder import FolderSource
from ragstate.spec.model import Spec, TableSourceSpec
from ragstate.stores.documents import DocRef, FileStat, Snapshot

if TYPE_CHECKING:
    from ragstate.stores.base import Store


def open_source(spec: Spec, store: Store | None = None) -> Source:
    """The source the spec names: a folder of files (or one file), or a user's table.

    A table is read in place, through a view in ``store``'s database, so it needs the store.
    """
    if isinstance(spec.source, TableSourceSpec):
        from ragstate.sources.table import TableSource

        if store is None:
            raise ValueError("a table source needs the store it lives in")
        return TableSource(spec.source, store)
    return FolderSource(spec.source)


__all__ = [
    "DocRef",
    "Document",
    "FileStat",
    "FolderSource",
    "InPlaceSource",
    "Snapshot",
    "Source",
    "SourceProblem",
    "open_source",
]
