"""Word files (``python-docx``, the ``docx`` extra): headings, paragraphs and tables as text.

The body is read in order: a paragraph in a ``Heading N`` style is a heading of level N,
one in the ``Title`` style the title (else the file's core-properties title, else the
first heading); a table is one block with one line per row, its cells joined with
`` | ``. Word files have no fixed pages, so none are recorded.

A ``.docx`` is a zip archive: before anything is unpacked, the sizes its entries declare
are added up, and an archive that would expand beyond ``source.max_document_bytes`` (a
zip bomb) is refused as ``DocumentTooLarge``; the zip reader never reads an entry past
its declared size. A file that is not a zip, or not a Word document, is ``MalformedDocument``.
"""

from __future__ import annotations

import io
import zipfile

from ragstate.errors import DocumentTooLarge, MalformedDocument
from ragstate.sources.base import Document
from ragstate.sources.layout import Block, assemble


def read_docx(data: bytes, path: str, *, max_document_bytes: int) -> Document:
    """The document of a ``.docx`` file's bytes (see the module doc).

    Raises:
        DocumentTooLarge, MalformedDocument, EmptyDocument.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise MalformedDocument(
            f"{path}: not a Word document (not a readable zip archive: {exc}); save it again as .docx",
            path=path,
            doc_id=path,
        ) from None
    if expanded > max_document_bytes:
        raise DocumentTooLarge(
            f"{path}: the .docx expands to {expanded} bytes when unzipped; the limit "
            f"(source.max_document_bytes) is {max_document_bytes}",
            path=path,
            doc_id=path,
        )
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        # Paragraph.style looks the style up in the styles part on every call (most of
        # the loader's time); the id each paragraph names is mapped to its name once.
        names = {style.style_id: style.name for style in document.styles}
        normal = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
        default = normal.name if normal is not None else "Normal"
        title = ""
        blocks: list[Block] = []
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                rows = []
                for row in item.rows:
                    cells = list(dict.fromkeys(c.text.strip() for c in row.cells))  # merged cells repeat
                    rows.append(" | ".join(cells))
                blocks.append(Block("\n".join(r for r in rows if r.strip(" |")), table=True))
                continue
            style = names.get(item._p.style, default) if item._p.style is not None else default
            if style == "Title" and not title:
                title = item.text
            elif style.startswith("Heading") and style[7:].strip().isdigit():
                blocks.append(Block(item.text, int(style[7:])))
            else:
                blocks.append(Block(item.text))
        title = title or (document.core_properties.title or "")
    except Exception as exc:  # python-docx and lxml raise many kinds on damaged parts
        raise MalformedDocument(
            f"{path}: damaged Word document ({type(exc).__name__}: {exc}); save it again as .docx",
            path=path,
            doc_id=path,
        ) from None
    return assemble(path, blocks, title=title)
