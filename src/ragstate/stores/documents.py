"""What the store records of a source's documents: their refs, the files' stats, a snapshot.

Values only. A source produces them (``sources/``) and the registry persists them
(``stores/registry.py``), so they live here, below both.
"""

from __future__ import annotations

from dataclasses import dataclass

from ragstate.errors import DocumentError


@dataclass(frozen=True, slots=True)
class DocRef:
    """What ragstate records about a document: identity, place, hash, sizes (no text)."""

    doc_id: str
    content_hash: str
    title: str
    path: str
    pos: int
    offset: int
    title_chars: int
    abstract_chars: int
    body_chars: int


@dataclass(frozen=True, slots=True)
class FileStat:
    """A source file's identity and change markers, as ``os.stat`` reports them."""

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int


@dataclass(frozen=True, slots=True)
class DocumentProblem:
    """A document the source holds but cannot read (a poison document).

    It is quarantined, not a reason to fail the plan: every other document goes on.
    ``key`` identifies it across runs: the file's path, or ``path:line`` for one record
    of a multi-document file. ``fingerprint`` is the file's size and modification time
    when it was read; when it changes, the document is read (tried) again.
    """

    key: str
    path: str
    doc_id: str | None
    #: undecodable | empty | too_large | malformed | unreadable | outside_source | encrypted | no_text_layer
    reason: str
    error_type: str
    message: str
    fingerprint: str

    @classmethod
    def of(cls, key: str, error: DocumentError, stat: FileStat) -> DocumentProblem:
        return cls(
            key=key,
            path=stat.path,
            doc_id=error.doc_id,
            reason=error.reason,
            error_type=type(error).__name__,
            message=str(error),
            fingerprint=file_fingerprint(stat),
        )


def file_fingerprint(stat: FileStat) -> str:
    """What says a file changed, for quarantine entries: size and modification time."""
    return f"{stat.size}:{stat.mtime_ns}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The source's current state, relative to what the store recorded.

    ``unchanged`` names recorded files whose stat is identical, so their recorded
    ``DocRef`` rows still hold; ``fresh`` holds the documents of every file that is new
    or changed, read and hashed now. Files recorded but not found are simply absent from
    ``files``. ``problems`` are the documents of new or changed files that could not be
    read (they are in no ``fresh``).
    """

    files: tuple[FileStat, ...]
    unchanged: frozenset[str]
    fresh: tuple[DocRef, ...]
    problems: tuple[DocumentProblem, ...] = ()
    #: files left out, as ``(extension, count)``: no loader reads them, or ``source.formats``
    #: does not list their format (``skipped_note`` says which)
    skipped: tuple[tuple[str, int], ...] = ()

    @property
    def changed_paths(self) -> frozenset[str]:
        return frozenset(f.path for f in self.files) - self.unchanged
