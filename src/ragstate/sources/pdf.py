"""PDF files (``pypdf``, the ``pdf`` extra): text with pages, headings from font sizes.

``pypdf`` was chosen over ``pdfminer.six`` by measurement (BENCHMARKS.md, "Document
loaders"): on PDFs written from the sample's articles it extracted one- and two-column
pages at least as faithfully (word similarity with the source 0.996-1.000 against
0.96-0.998) and about five times faster. Both are permissively licensed; AGPL libraries
(PyMuPDF) are not an option.

How a file becomes blocks (``sources.layout``):

1. each page's text is read with the font size of every piece (pypdf's text visitor);
2. lines repeated at the top or bottom of most pages (running headers, footers, page
   numbers, digits aside) are dropped;
3. a line set larger than the body text (the size most characters have), or bold at
   body size and short, is a heading; its level follows its size (larger: higher);
   consecutive heading lines of one size are one heading (a title that wraps);
4. other lines join into paragraphs, which end where a line ends a sentence well short
   of the page's usual line length, at a heading, or at the end of a page.

The title is the document information's ``/Title`` when it has one (two words at least),
else the first heading. Bad input: encrypted (needs a password), no text on any page
(a scan: "no text layer: OCR is not configured"), more pages than ``source.max_pages``,
and a damaged or truncated file each raise a ``DocumentError`` leaf naming the file.
"""

from __future__ import annotations

import io
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ragstate.errors import DocumentTooLarge, EncryptedDocument, MalformedDocument, NoTextLayer
from ragstate.sources.base import Document
from ragstate.sources.layout import Block, assemble

_EDGE = 2  # lines at the top and at the bottom of a page that may be running text
_PAGE_NUMBER = re.compile(r"^(page\s*)?\d+(\s*(of|/)\s*\d+)?$", re.IGNORECASE)
_SENTENCE_END = (".", "!", "?", ":", '"', "'", ")", "]")


@dataclass
class _Line:
    text: str = ""
    size: float = 0.0
    bold_chars: int = 0
    chars: Counter[float] = field(default_factory=Counter)

    @property
    def bold(self) -> bool:
        return self.bold_chars * 2 > sum(self.chars.values())


def read_pdf(data: bytes, path: str, *, max_pages: int) -> Document:
    """The document of a PDF file's bytes (see the module doc).

    Raises:
        EncryptedDocument, NoTextLayer, DocumentTooLarge, MalformedDocument.
    """
    import pypdf
    from pypdf.errors import DependencyError, PyPdfError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # an owner password alone still lets anyone read it
            except (DependencyError, PyPdfError, NotImplementedError):
                opened = 0
            if not opened:
                raise EncryptedDocument(
                    f"{path}: the PDF is encrypted with a password; save a decrypted copy "
                    "(for example qpdf --decrypt --password=PASSWORD in.pdf out.pdf) in the source folder",
                    path=path,
                    doc_id=path,
                )
        n_pages = len(reader.pages)
        if n_pages > max_pages:
            raise DocumentTooLarge(
                f"{path}: the PDF has {n_pages} pages; the limit (source.max_pages) is {max_pages}",
                path=path,
                doc_id=path,
            )
        pages = [_page_lines(page) for page in reader.pages]
        info = reader.metadata or {}
        meta_title = str(info.get("/Title") or "").strip()
        author = str(info.get("/Author") or "").strip()
    except (EncryptedDocument, DocumentTooLarge):
        raise
    except Exception as exc:  # pypdf raises many kinds on damaged input; each is the file's fault
        raise MalformedDocument(
            f"{path}: damaged or truncated PDF ({type(exc).__name__}: {exc}); save it again from the "
            "application that made it, or repair it (qpdf in.pdf out.pdf)",
            path=path,
            doc_id=path,
        ) from None
    if not any(line.text.strip() for lines in pages for line in lines):
        raise NoTextLayer(
            f"{path}: no text layer: OCR is not configured; the {n_pages} page(s) hold images only "
            "(a scan). Run OCR on it first (for example ocrmypdf in.pdf out.pdf), or register a loader that does",
            path=path,
            doc_id=path,
        )
    blocks = _blocks(_drop_running(pages))
    title = meta_title if len(meta_title.split()) >= 2 else ""
    metadata = {"pages": str(n_pages)}
    if author:
        metadata["author"] = author
    return assemble(path, blocks, title=title, metadata=metadata)


def _page_lines(page: Any) -> list[_Line]:
    lines: list[_Line] = [_Line()]

    def visit(text: str, cm: Any, tm: Any, font: Any, size: float) -> None:
        scale = abs(tm[3] * cm[3]) or 1.0
        effective = round(size * scale * 2) / 2
        bold = "bold" in str((font or {}).get("/BaseFont", "")).lower()
        parts = text.split("\n")
        for i, part in enumerate(parts):
            if i:
                lines.append(_Line())
            if part.strip():
                line = lines[-1]
                line.text += part
                line.chars[effective] += len(part.strip())
                line.bold_chars += len(part.strip()) if bold else 0

    page.extract_text(visitor_text=visit)
    out = []
    for line in lines:
        line.text = line.text.strip()
        if line.text:
            line.size = line.chars.most_common(1)[0][0]
            out.append(line)
    return out


def _drop_running(pages: list[list[_Line]]) -> list[list[_Line]]:
    """Pages less the running headers and footers: edge lines repeated on most pages
    (digits aside, so "Page 3" matches "Page 4"), and lone page numbers at an edge."""
    keys: Counter[str] = Counter()
    for lines in pages:
        edge = {_key(line.text) for line in lines[:_EDGE] + lines[-_EDGE:]}
        keys.update(edge)
    repeated = {k for k, n in keys.items() if len(pages) >= 2 and n >= max(2, len(pages) / 2)}
    out = []
    for lines in pages:
        top, bottom = set(range(min(_EDGE, len(lines)))), set(range(max(0, len(lines) - _EDGE), len(lines)))
        out.append(
            [
                line
                for i, line in enumerate(lines)
                if not ((i in top or i in bottom) and (_key(line.text) in repeated or _PAGE_NUMBER.match(line.text)))
            ]
        )
    return out


def _key(text: str) -> str:
    return re.sub(r"\d+", "#", text.strip().lower())


def _blocks(pages: list[list[_Line]]) -> list[Block]:
    sizes: Counter[float] = Counter()
    for lines in pages:
        for line in lines:
            sizes.update(line.chars)
    body_size = sizes.most_common(1)[0][0]

    def heading(line: _Line) -> bool:
        words = len(line.text.split())
        if line.size >= body_size * 1.15 and words <= 25:
            return True
        return line.bold and line.size >= body_size and words <= 12 and not line.text.endswith((".", ",", ";"))

    heading_sizes = sorted({line.size for lines in pages for line in lines if heading(line)}, reverse=True)
    level_of = {size: i + 1 for i, size in enumerate(heading_sizes)}
    blocks: list[Block] = []
    for number, lines in enumerate(pages, start=1):
        usual = statistics.median([len(line.text) for line in lines if not heading(line)] or [0])
        para: list[str] = []
        last_heading: Block | None = None
        for line in lines:
            if heading(line):
                _flush(blocks, para, number)
                level = level_of[line.size]
                if last_heading is not None and last_heading.level == level and blocks and blocks[-1] is last_heading:
                    blocks[-1] = last_heading = Block(last_heading.text + " " + line.text, level, last_heading.page)
                else:
                    blocks.append(last_heading := Block(line.text, level, number))
                continue
            last_heading = None
            para.append(line.text)
            if line.text.endswith(_SENTENCE_END) and len(line.text) < 0.85 * usual:
                _flush(blocks, para, number)
        _flush(blocks, para, number)
    return blocks


def _flush(blocks: list[Block], para: list[str], page: int) -> None:
    """End the paragraph being read (if any): its lines become one block of ``page``."""
    if para:
        blocks.append(Block(_join(para), 0, page))
        para.clear()


def _join(lines: list[str]) -> str:
    """Lines of one paragraph as one line; a line broken after a hyphen joins without a space."""
    out = lines[0]
    for line in lines[1:]:
        out += line if out.endswith("-") else " " + line
    return out
