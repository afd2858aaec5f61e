"""What a source yields, and the contract every source keeps.

A source is the truth about which documents exist and what they say. ragstate never
copies the full text into its own tables: it records each document's identity, position
and content hash (a ``DocRef``), and reads the text again (``load``) only for the
documents a plan says to build.

Observing must be cheap when nothing changed, so a source compares what it finds with
what was recorded the last time (``KnownFile`` rows kept by the store) and re-reads only
what differs.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ragstate.errors import DuplicateDocumentId
from ragstate.hashing import content_hash
from ragstate.stores.documents import DocRef, FileStat, Snapshot

if TYPE_CHECKING:
    from ragstate.stores.base import Session

#: how many characters of body text stand in for a missing abstract in ``summary``
SUMMARY_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Mark:
    """From ``offset`` in ``Document.text`` on, the text is on ``page`` (1-based; ``None``
    where the format has no pages) under the section path ``section`` ("Methods > Design")."""

    offset: int
    page: int | None
    section: str


@dataclass(frozen=True, slots=True)
class Document:
    """One document as the source holds it now.

    ``path`` is the file (relative to the source root, POSIX separators), ``pos`` the
    document's position inside it (0 for one-document files, the record number in a
    JSONL file) and ``offset`` the byte offset to read it again from.
    """

    doc_id: str
    title: str
    abstract: str
    body: str
    path: str
    pos: int = 0
    offset: int = 0
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: the content hash as the source computed it, when it hashes elsewhere (an
    #: in-place source hashes inside the database); None: computed here from the fields
    source_hash: str | None = None
    #: where pages and sections start in ``text`` (PDF, HTML, DOCX loaders); empty when
    #: the format keeps none. Not hashed: the content hash is over the text fields alone.
    layout: tuple[Mark, ...] = ()

    def place(self, start: int, end: int) -> tuple[int | None, int | None, str | None]:
        """``(first page, last page, section path)`` of ``text[start:end]``, from ``layout``
        (``None`` for what the format does not keep)."""
        if not self.layout:
            return None, None, None
        offsets = [m.offset for m in self.layout]
        first = self.layout[max(0, bisect_right(offsets, start) - 1)]
        last = self.layout[max(0, bisect_right(offsets, max(start, end - 1)) - 1)]
        return first.page, last.page, first.section

    @property
    def content_hash(self) -> str:
        if self.source_hash is not None:
            return self.source_hash
        return content_hash(self.title, self.abstract, self.body)

    @property
    def summary(self) -> str:
        """The abstract, or the opening of the body when there is none."""
        if self.abstract.strip():
            return self.abstract
        body = self.body.strip()
        if len(body) <= SUMMARY_CHARS:
            return body
        cut = body.rfind("\n\n", 0, SUMMARY_CHARS)
        return body[: cut if cut > SUMMARY_CHARS // 2 else SUMMARY_CHARS]

    @property
    def text(self) -> str:
        """Title, abstract and body, each present part separated by a blank line."""
        return "\n\n".join(part for part in (self.title, self.abstract, self.body) if part.strip())

    def field(self, name: str) -> str:
        """A text field by name (``title``, ``abstract``, ``body``, ``summary``, ``text``)."""
        if name in ("summary", "text"):
            return getattr(self, name)
        if name in ("title", "abstract", "body"):
            return getattr(self, name)
        raise KeyError(name)

    def ref(self) -> DocRef:
        return DocRef(
            doc_id=self.doc_id,
            content_hash=self.content_hash,
            title=self.title,
            path=self.path,
            pos=self.pos,
            offset=self.offset,
            title_chars=len(self.title),
            abstract_chars=len(self.abstract),
            body_chars=len(self.body),
        )


class Source(Protocol):
    """The contract of a document source (a folder of files; a user's table also has the
    ``InPlaceSource`` capability, and observe stages its scope through that instead of
    ``snapshot``)."""

    #: short description for messages and status, e.g. ``folder /data/pmc``
    description: str

    def snapshot(self, known: Mapping[str, FileStat], *, rehash: bool = False) -> Snapshot:
        """Observe the source: stat everything, read only what changed since ``known``.

        Args:
            known: the file stats recorded by the last apply, by path.
            rehash: read and hash every file, trusting no recorded stat (``verify``).

        A document that cannot be read (undecodable, empty, too large, malformed) is
        reported in ``Snapshot.problems``, never raised: one poison document must not
        stop the others.

        Raises:
            SourceError: the source as a whole cannot be read.
            DuplicateDocumentId: two documents declare the same id.
        """
        ...

    def load(self, refs: Sequence[DocRef]) -> Iterator[Document]:
        """Read the full text of ``refs`` again, in the given order.

        A document that changed since it was observed is returned as it is now (its
        ``content_hash`` tells); one that disappeared or cannot be read any more raises
        a ``DocumentError`` leaf.
        """
        ...


@dataclass(frozen=True)
class SourceProblem:
    """Why an in-place source cannot be read as mapped now: ``schema`` drift of the source.

    ``what``: ``view_missing``, ``view_differs`` (apply recreates the view: repairable),
    ``table_missing``, ``column_missing``, ``column_type`` (the user's table no longer
    fits the mapping: the spec's mapping must change).
    """

    what: str
    message: str

    @property
    def repairable(self) -> bool:
        return self.what in ("view_missing", "view_differs")

    def __str__(self) -> str:
        return self.message


@runtime_checkable
class InPlaceSource(Protocol):
    """Capability of a source that lives in the store's own database (a user's table).

    There are no files to stat: observe asks the source for its problems, then lets it
    fill the plan's temporary ``scope`` table inside the database, content hashes
    included, so no text reaches Python until ``load`` reads the documents a plan builds.

    ===================  ==============================================================
    ``problems(s)``      what keeps the source from being read as mapped (cheap:
                         catalog lookups); empty when it can be staged
    ``sync(s)``          bring what it reads from in step with the source (a copy or
                         a materialised view of a slow view), before the snapshot;
                         ``timing`` then says how long that and staging took
    ``stage_scope``      fill ``scope`` (created by the caller) in the database;
                         return the number of documents in scope
    ``repair()``         (re)create what ``problems`` found missing, after checking
                         compatibility; raises ``MappingError`` when the table no
                         longer fits the mapping; returns what was done
    ===================  ==============================================================
    """

    description: str

    timing: dict[str, Any]

    def problems(self, session: Session) -> list[SourceProblem]: ...

    def sync(self, session: Session) -> None: ...

    def stage_scope(self, session: Session, limit: int | None) -> int: ...

    def repair(self) -> list[str]: ...

    def load(self, refs: Sequence[DocRef]) -> Iterator[Document]: ...


def check_unique_ids(docs: Iterable[Document | DocRef]) -> None:
    """Raise ``DuplicateDocumentId`` naming both places when two documents share an id."""
    seen: dict[str, str] = {}
    for doc in docs:
        where = f"{doc.path}#{doc.pos}" if doc.pos else doc.path
        if doc.doc_id in seen:
            raise DuplicateDocumentId(
                f"document id '{doc.doc_id}' appears twice: in {seen[doc.doc_id]} and in {where}",
                path=doc.path,
                doc_id=doc.doc_id,
            )
        seen[doc.doc_id] = where


def skipped_note(skipped: Sequence[tuple[str, int]], known_suffixes: Mapping[str, str]) -> str:
    """A sentence on the files a folder source left out, by extension with counts, or "".

    Args:
        skipped: ``(extension, count)`` pairs (``Snapshot.skipped``).
        known_suffixes: extension -> format, of the formats a loader exists for.
    """
    unread = [(ext, n) for ext, n in skipped if ext not in known_suffixes]
    excluded = [(ext, n) for ext, n in skipped if ext in known_suffixes]
    parts = []
    if unread:
        parts.append("no loader reads " + ", ".join(f"{n} {ext}" for ext, n in unread))
    if excluded:
        parts.append("source.formats leaves out " + ", ".join(f"{n} {ext}" for ext, n in excluded))
    total = sum(n for _, n in skipped)
    return f"{total} file{'s' * (total != 1)} in the source skipped: " + "; ".join(parts) if parts else ""
