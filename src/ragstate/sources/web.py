"""HTML pages (``trafilatura``, the ``html`` extra): the main text, its title and headings.

``trafilatura`` finds the page's main content and leaves navigation, sidebars, footers
and comments out; its XML output keeps the headings (``<head rend="h2">``), paragraphs,
list items and tables, which become blocks (``sources.layout``): ``h1``-``h6`` headings
at their level, a table one line per row. The title is the page's first heading when it
has one, else what ``trafilatura`` reads from ``<title>`` and the meta tags. A page is
not paged. A page with no main text is ``EmptyDocument``; one that does not parse is
``MalformedDocument``; the size limit is checked before it is read (``source.max_document_bytes``).
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET

from ragstate.errors import EmptyDocument, MalformedDocument
from ragstate.sources.base import Document
from ragstate.sources.layout import Block, assemble, clean


def read_html(data: bytes, path: str) -> Document:
    """The document of an HTML page's bytes (see the module doc).

    Raises:
        EmptyDocument, MalformedDocument.
    """
    import trafilatura

    try:
        xml = trafilatura.extract(
            data,
            output_format="xml",
            with_metadata=False,  # read below only when the page has no h1 (it costs a fifth of the time)
            include_tables=True,
            include_comments=False,
            include_images=False,
            favor_precision=False,
        )
    except Exception as exc:  # trafilatura and lxml raise many kinds on broken markup
        raise MalformedDocument(f"{path}: the HTML cannot be read ({type(exc).__name__}: {exc})", path=path) from None
    if not xml:
        raise EmptyDocument(
            f"{path}: no main text found in the page (only navigation or scripts?)", path=path, doc_id=path
        )
    try:
        root = SafeET.fromstring(xml)
    except Exception as exc:
        raise MalformedDocument(f"{path}: the extracted HTML text is not readable: {exc}", path=path) from None
    main = root.find("main")
    blocks: list[Block] = []
    for el in main if main is not None else []:
        blocks.extend(_blocks(el))
    title = ""
    if not (blocks and blocks[0].level == 1):
        try:
            title = trafilatura.extract_metadata(data).title or ""
        except Exception:  # a page without readable metadata simply has no title from it
            title = ""
    return assemble(path, blocks, title=title)


def _blocks(el: Element) -> list[Block]:
    tag = el.tag
    if tag == "head":
        rend = el.get("rend") or "h2"
        level = int(rend[1]) if len(rend) == 2 and rend[1].isdigit() else 2
        return [Block(_text(el), level)]
    if tag == "table":
        rows = [" | ".join(_text(c) for c in row) for row in el.iter("row")]
        return [Block("\n".join(r for r in rows if r.strip(" |")), table=True)]
    if tag == "list":
        return [Block(_text(item)) for item in el.iter("item")]
    return [Block(_text(el))]


def _text(el: Element) -> str:
    return clean("".join(el.itertext()))
