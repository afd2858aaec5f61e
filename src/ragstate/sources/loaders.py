"""Parsers from file bytes to ``Document`` values: plain text, Markdown, JATS XML, JSONL.

Document ids: a one-document file (``.txt``, ``.md``, ``.xml``) is identified by its path
relative to the source root, with POSIX separators (``jats/PMC12429890.xml``); a JSONL
record by its ``doc_id`` (or ``id``) field. Fields:

=========  ==========================================  ===============================
format     title                                       abstract / body
=========  ==========================================  ===============================
``.txt``   first non-empty line                        (none) / the rest
``.md``    first ``#`` heading (or front matter title)  section headed "Abstract" / rest
``.xml``   ``article-title`` (JATS)                    ``<abstract>`` / ``<body>`` text
``.jsonl`` ``title``                                   ``abstract`` / ``body`` or ``text``
=========  ==========================================  ===============================

Every parser raises a ``DocumentError`` leaf naming the file (and line) for input it
cannot read (its ``reason``: undecodable, empty, too_large, malformed); no other
exception escapes. The source turns these into quarantine entries, not failed plans.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
import yaml
from defusedxml import DefusedXmlException

from ragstate.errors import (
    DocumentError,
    DocumentTooLarge,
    EmptyDocument,
    MalformedDocument,
    UndecodableDocument,
)
from ragstate.sources.base import Document

FORMAT_OF_SUFFIX = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".xml": "xml", ".jsonl": "jsonl"}

#: JSONL fields that are document text rather than metadata
_JSONL_TEXT_FIELDS = {"doc_id", "id", "title", "abstract", "body", "text"}
_ATX_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


T = TypeVar("T")


def _nesting_bounded(parse: Callable[..., T]) -> Callable[..., T]:
    """Turn a parser's ``RecursionError`` (JSON, YAML front matter or XML nested thousands
    deep) into a ``MalformedDocument`` naming the file, like any other unreadable input."""

    @functools.wraps(parse)
    def bounded(data: bytes, path: str, *args: Any, **kwargs: Any) -> T:
        try:
            return parse(data, path, *args, **kwargs)
        except RecursionError:
            where = f"{path}:{args[0]}" if args else path
            raise MalformedDocument(f"{where}: nested too deeply to read", path=path) from None

    return bounded


def decode(data: bytes, path: str) -> str:
    """UTF-8 (a byte-order mark is dropped) or ``DocumentError`` naming the byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UndecodableDocument(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})", path=path) from None


def parse_text(data: bytes, path: str) -> list[Document]:
    text = decode(data, path)
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise EmptyDocument(f"{path}: empty document (no text)", path=path, doc_id=path)
    title = lines[first].strip()
    body = "\n".join(lines[first + 1 :]).strip("\n")
    return [Document(doc_id=path, title=title, abstract="", body=body, path=path)]


@_nesting_bounded
def parse_markdown(data: bytes, path: str) -> list[Document]:
    text = decode(data, path)
    metadata: dict[str, str] = {}
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end == -1:
            raise MalformedDocument(f"{path}: front matter opened with --- is never closed", path=path)
        try:
            front = yaml.safe_load(text[4:end]) or {}
        except yaml.YAMLError as exc:
            raise MalformedDocument(f"{path}: front matter is not valid YAML: {exc}", path=path) from None
        if not isinstance(front, dict):
            raise MalformedDocument(f"{path}: front matter must be a mapping", path=path)
        metadata = {str(k): str(v) for k, v in front.items() if isinstance(v, (str, int, float, bool))}
        text = text[end + 4 :].lstrip("\n")

    title = metadata.pop("title", "")
    abstract_lines: list[str] = []
    body_lines: list[str] = []
    section = "body"
    for line in text.splitlines():
        heading = _ATX_HEADING.match(line)
        if heading:
            level, name = len(heading.group(1)), heading.group(2)
            if level == 1 and not title:
                title, section = name, "body"
                continue
            if name.strip().rstrip(":").lower() == "abstract":
                section = "abstract"
                continue
            section = "body"
        (abstract_lines if section == "abstract" else body_lines).append(line)
    body = "\n".join(body_lines).strip("\n")
    if not title:
        # No heading: the first line is the title, as for plain text.
        lines = body.splitlines()
        first = next((i for i, line in enumerate(lines) if line.strip()), None)
        if first is not None:
            title, body = lines[first].strip(), "\n".join(lines[first + 1 :]).strip("\n")
    abstract = "\n".join(abstract_lines).strip("\n")
    if not (title or abstract or body):
        raise EmptyDocument(f"{path}: empty document (no text)", path=path, doc_id=path)
    return [Document(doc_id=path, title=title, abstract=abstract, body=body, path=path, metadata=metadata)]


@_nesting_bounded
def parse_jats(data: bytes, path: str) -> list[Document]:
    try:
        # defusedxml refuses entity expansion and external references: a JATS file is
        # untrusted input and must not make ragstate fetch DTDs or expand entity bombs.
        root = SafeET.fromstring(data)
    except (ParseError, DefusedXmlException) as exc:
        raise MalformedDocument(f"{path}: not well-formed XML: {exc}", path=path) from None
    article = root if _local(root.tag) == "article" else _first(root, "article")
    if article is None:
        raise MalformedDocument(f"{path}: no <article> element (expected JATS XML)", path=path)
    meta = _first(article, "article-meta")
    title_el = _first(meta, "article-title") if meta is not None else None
    title = _text(title_el) if title_el is not None else ""
    abstracts = [a for a in (meta.iter() if meta is not None else []) if _local(a.tag) == "abstract"]
    # Graphical and teaser abstracts repeat or replace the real one; keep the main one.
    main = [a for a in abstracts if a.get("abstract-type") in (None, "", "summary")] or abstracts
    abstract = "\n\n".join(_paragraphs(a) for a in main[:1])
    body_el = _first(article, "body")
    body = _paragraphs(body_el) if body_el is not None else ""
    if not (title or abstract or body):
        raise EmptyDocument(f"{path}: JATS article has no title, abstract or body text", path=path, doc_id=path)
    metadata: dict[str, str] = {}
    journal = _first(root, "journal-title")
    if journal is not None:
        metadata["journal"] = _text(journal)
    if meta is not None:
        for aid in meta.iter():
            if _local(aid.tag) == "article-id" and aid.get("pub-id-type") in ("doi", "pmcid", "pmid"):
                metadata[aid.get("pub-id-type", "")] = _text(aid)
    return [Document(doc_id=path, title=title, abstract=abstract, body=body, path=path, metadata=metadata)]


@dataclass(frozen=True)
class RecordError:
    """A line of a JSONL file that is not a readable document (the other lines still are)."""

    line: int
    error: DocumentError


def iter_jsonl(stream: BinaryIO, path: str, *, max_record_bytes: int) -> Iterator[Document | RecordError]:
    """Yield one document per non-empty line of a binary stream, with byte offsets.

    A line that cannot be read yields a ``RecordError`` and the lines after it are read
    as usual. Reads line by line, and skips an over-long line in bounded pieces, so
    memory stays flat however large the file or the line is.
    """
    offset = 0
    pos = 0
    lineno = 0
    while True:
        raw = stream.readline(max_record_bytes + 1)
        if not raw:
            return
        lineno += 1
        start, offset = offset, offset + len(raw)
        if len(raw) > max_record_bytes and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(1 << 20)
                offset += len(raw)
            error = DocumentTooLarge(
                f"{path}:{lineno}: record is over the limit (source.max_document_bytes) of {max_record_bytes} bytes",
                path=path,
            )
            yield RecordError(lineno, error)
            continue
        if not raw.strip():
            continue
        try:
            doc = parse_jsonl_record(raw, path, lineno, pos=pos, offset=start)
        except DocumentError as exc:
            yield RecordError(lineno, exc)
            continue
        yield doc
        pos += 1


@_nesting_bounded
def parse_jsonl_record(raw: bytes, path: str, lineno: int | str, *, pos: int, offset: int) -> Document:
    text = decode(raw, f"{path}:{lineno}")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedDocument(f"{path}:{lineno}: not valid JSON: {exc.msg} (column {exc.colno})", path=path) from None
    if not isinstance(record, dict):
        raise MalformedDocument(f"{path}:{lineno}: a record must be a JSON object", path=path)
    doc_id = record.get("doc_id", record.get("id"))
    if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool) or str(doc_id).strip() == "":
        raise MalformedDocument(f"{path}:{lineno}: record has no doc_id (or id) string", path=path)
    doc_id = str(doc_id)
    fields = {}
    for name in ("title", "abstract", "body", "text"):
        value = record.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise MalformedDocument(
                f"{path}:{lineno}: field '{name}' of document '{doc_id}' must be a string", path=path, doc_id=doc_id
            )
        fields[name] = value
    body = fields["body"] or fields["text"]
    if not (fields["title"].strip() or fields["abstract"].strip() or body.strip()):
        raise EmptyDocument(f"{path}:{lineno}: document '{doc_id}' is empty (no text)", path=path, doc_id=doc_id)
    metadata = {
        k: str(v) for k, v in record.items() if k not in _JSONL_TEXT_FIELDS and isinstance(v, (str, int, float, bool))
    }
    return Document(
        doc_id=doc_id,
        title=fields["title"],
        abstract=fields["abstract"],
        body=body,
        path=path,
        pos=pos,
        offset=offset,
        metadata=metadata,
    )


#: one-document parsers by format
SINGLE_DOCUMENT_PARSERS: dict[str, Callable[[bytes, str], list[Document]]] = {
    "txt": parse_text,
    "md": parse_markdown,
    "xml": parse_jats,
}


# --- XML helpers ----------------------------------------------------------------------

#: JATS elements whose text is not prose (formulas, tables, figures, references)
_SKIP = {
    "table-wrap",
    "table",
    "fig",
    "disp-formula",
    "inline-formula",
    "math",
    "graphic",
    "media",
    "supplementary-material",
    "ref-list",
    "fn-group",
    "alternatives",
    "tex-math",
}
_BLOCK = {"p", "title", "list-item", "caption", "def", "term"}


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _first(el: Element | None, name: str) -> Element | None:
    if el is None:
        return None
    for child in el.iter():
        if _local(child.tag) == name:
            return child
    return None


def _text(el: Element) -> str:
    return re.sub(r"\s+", " ", "".join(el.itertext())).strip()


def _paragraphs(el: Element) -> str:
    """Prose of ``el``: one line per title or paragraph, formulas and tables left out."""
    out: list[str] = []

    def walk(node: Element) -> None:
        name = _local(node.tag)
        if name in _SKIP:
            return
        if name in _BLOCK:
            text = _inline_text(node)
            if text:
                out.append(text)
            return
        for child in node:
            walk(child)

    walk(el)
    return "\n\n".join(out)


def _inline_text(node: Element) -> str:
    parts: list[str] = [node.text or ""]
    for child in node:
        if _local(child.tag) not in _SKIP:
            parts.append(_inline_text(child))
        parts.append(child.tail or "")
    return re.sub(r"\s+", " ", "".join(parts)).strip()
