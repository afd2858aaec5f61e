"""From a structured format's blocks (headings and paragraphs, with pages) to a ``Document``.

The PDF, HTML and DOCX loaders each turn their file into ``Block`` values in reading
order; ``assemble`` makes the one ``Document`` of the file from them, the same way for
every format:

* title: the one the loader found (PDF metadata, a Title paragraph), else the first
  heading, which then leaves the body;
* abstract: the paragraphs under a heading named "Abstract" or "Summary" (until the next
  heading);
* body: every other block, one paragraph each (a heading is a paragraph of its own, so
  the ``sections`` chunker starts a section there too);
* layout: a ``Mark`` where each block starts, with its page and its section path (the
  headings above it by level, joined with " > ").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ragstate.errors import EmptyDocument
from ragstate.sources.base import Document, Mark

#: headings whose paragraphs are the document's abstract
ABSTRACT_HEADINGS = frozenset({"abstract", "summary", "executive summary"})
_SPACE = re.compile(r"[ \t\r\f\v]+")


@dataclass(frozen=True)
class Block:
    """A heading (``level`` 1 and deeper) or a paragraph (``level`` 0) of a file, with its page."""

    text: str
    level: int = 0
    page: int | None = None
    #: a table: one line per row, kept as lines ("cell | cell | cell")
    table: bool = False

    def clean(self) -> str:
        if self.table:
            return "\n".join(t for t in (clean(line) for line in self.text.splitlines()) if t)
        return clean(self.text)


def clean(text: str) -> str:
    """One paragraph's text: runs of spaces made one, lines joined, ends trimmed."""
    return _SPACE.sub(" ", " ".join(line.strip() for line in text.splitlines())).strip()


def assemble(
    path: str, blocks: Sequence[Block], *, title: str = "", metadata: dict[str, str] | None = None
) -> Document:
    """The document of ``path`` made of ``blocks`` (see the module doc).

    Raises:
        EmptyDocument: no block has text.
    """
    blocks = [b for b in blocks if b.text.strip()]
    title = clean(title)
    if not title:
        first = next((i for i, b in enumerate(blocks) if b.level > 0), None)
        if first is not None and first == 0:
            title = clean(blocks[0].text)
    if blocks and blocks[0].level > 0 and clean(blocks[0].text) == title:
        blocks = blocks[1:]  # the title heading is the title, not a section
    abstract: list[Block] = []
    body: list[Block] = []
    in_abstract = False
    abstract_page: int | None = None
    for b in blocks:
        if b.level > 0:
            in_abstract = clean(b.text).rstrip(":").lower() in ABSTRACT_HEADINGS
            if in_abstract:
                abstract_page = b.page
                continue
        (abstract if in_abstract else body).append(b)
    if not (title or abstract or body):
        raise EmptyDocument(f"{path}: no text found in the document", path=path, doc_id=path)
    first_page = blocks[0].page if blocks else None
    abstract_text = "\n\n".join(b.clean() for b in abstract)
    # Offsets into Document.text, which joins the present parts with a blank line.
    marks: list[Mark] = [Mark(0, first_page, "")]
    pos = len(title) + 2 if title else 0
    for b in abstract:
        marks.append(Mark(pos, b.page if b.page is not None else abstract_page, "Abstract"))
        pos += len(b.clean()) + 2
    if abstract_text:
        pos = (len(title) + 2 if title else 0) + len(abstract_text) + 2
    path_by_level: list[tuple[int, str]] = []
    paragraphs: list[str] = []
    for b in body:
        text = b.clean()
        if b.level > 0:
            while path_by_level and path_by_level[-1][0] >= b.level:
                path_by_level.pop()
            path_by_level.append((b.level, text))
        marks.append(Mark(pos, b.page, " > ".join(name for _, name in path_by_level)))
        paragraphs.append(text)
        pos += len(text) + 2
    return Document(
        doc_id=path,
        title=title,
        abstract=abstract_text,
        body="\n\n".join(paragraphs),
        path=path,
        metadata=metadata or {},
        layout=tuple(marks),
    )
