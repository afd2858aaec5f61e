"""Where documents come from; each source yields ``(doc_id, text, metadata, content_hash)``."""

from ragstate.sources.base import DocRef, Document, FileStat, Snapshot, Source
from ragstate.sources.folder import FolderSource
from ragstate.spec.model import Spec


def open_source(spec: Spec) -> Source:
    """The source the spec names (today: a folder of files, or one file)."""
    return FolderSource(spec.source)


__all__ = ["DocRef", "Document", "FileStat", "FolderSource", "Snapshot", "Source", "open_source"]
