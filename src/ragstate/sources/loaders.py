"""Parsers from file bytes to ``Document`` values, and the loader registry (one per format).

Built in: plain text, Markdown, JATS XML, JSONL (here), and with their extras PDF
(``sources.pdf``), HTML (``sources.web``) and DOCX (``sources.word``), which keep pages
and sections (``Document.layout``). A package adds a format, or a heavier extractor for
one, through the entry-point group ``ragstate.loaders`` (see ``Loader``); the spec enables
formats by name (``source.formats``).

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
import importlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
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
    PluginError,
    UndecodableDocument,
)
from ragstate.plugins import load_plugin
from ragstate.sources.base import Document

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


# --- the loader registry ---------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What a loader may read of one file: its bytes (unpacked, for an archive) and pages."""

    max_document_bytes: int
    max_pages: int


@dataclass(frozen=True)
class Loader:
    """One file format: which files, how to read one, and what it needs installed.

    A plugin registers an instance (or a callable returning one) under the entry-point
    group ``ragstate.loaders``; its name is the format's name in ``source.formats``::

        [project.entry-points."ragstate.loaders"]
        pptx = "my_package.loaders:PPTX_LOADER"

    ``version`` is part of the ``chunks`` recipe: raising it re-chunks the documents as a
    new, verified generation (text that changes also changes the documents' content hash).
    ``read`` returns the file's documents or raises a ``DocumentError`` leaf naming the file;
    any other exception from it is reported as ``MalformedDocument``.
    """

    name: str
    suffixes: tuple[str, ...]
    read: Callable[[bytes, str, Limits], list[Document]]
    version: int = 1
    #: the ragstate extra that installs ``modules`` (None: part of the core install)
    extra: str | None = None
    #: modules the loader imports; a missing one makes the format unusable (``missing``)
    modules: tuple[str, ...] = ()

    def missing(self) -> str | None:
        """The first module it needs that is not installed, or None."""
        for module in self.modules:
            try:
                importlib.import_module(module)
            except ImportError:
                return module
        return None


def _read_pdf(data: bytes, path: str, limits: Limits) -> list[Document]:
    from ragstate.sources.pdf import read_pdf

    return [read_pdf(data, path, max_pages=limits.max_pages)]


def _read_html(data: bytes, path: str, limits: Limits) -> list[Document]:
    from ragstate.sources.web import read_html

    return [read_html(data, path)]


def _read_docx(data: bytes, path: str, limits: Limits) -> list[Document]:
    from ragstate.sources.word import read_docx

    return [read_docx(data, path, max_document_bytes=limits.max_document_bytes)]


def _read_jsonl(data: bytes, path: str, limits: Limits) -> list[Document]:
    docs = iter_jsonl(io.BytesIO(data), path, max_record_bytes=limits.max_document_bytes)
    return [d for d in docs if isinstance(d, Document)]


#: the formats ragstate ships, by name (checked before plugins: a package cannot replace one)
BUILTIN_LOADERS: dict[str, Loader] = {
    loader.name: loader
    for loader in (
        Loader("txt", (".txt", ".text"), lambda data, path, _: parse_text(data, path)),
        Loader("md", (".md", ".markdown"), lambda data, path, _: parse_markdown(data, path)),
        Loader("xml", (".xml",), lambda data, path, _: parse_jats(data, path)),
        Loader("jsonl", (".jsonl",), _read_jsonl),
        Loader("pdf", (".pdf",), _read_pdf, extra="pdf", modules=("pypdf",)),
        Loader("html", (".html", ".htm"), _read_html, extra="html", modules=("trafilatura",)),
        Loader("docx", (".docx",), _read_docx, extra="docx", modules=("docx",)),
    )
}


#: extension -> format, of the built-in loaders (what a skipped file could be read as)
FORMAT_OF_SUFFIX = {suffix: ld.name for ld in BUILTIN_LOADERS.values() for suffix in ld.suffixes}


def loader(name: str) -> Loader:
    """The loader of format ``name``: a built-in, else a ``ragstate.loaders`` plugin.

    Raises:
        PluginError: no such format, or its plugin failed to load or is not a ``Loader``.
    """
    found = load_plugin("ragstate.loaders", name, BUILTIN_LOADERS, field="source.formats")
    if not isinstance(found, Loader) and callable(found):
        found = found()
    if not isinstance(found, Loader):
        raise PluginError(f"source.formats: plugin '{name}' is not a ragstate.sources.loaders.Loader")
    return found


def loader_versions(formats: Iterable[str]) -> dict[str, int]:
    """``{format: loader version}`` of the enabled formats, for the ``chunks`` recipe."""
    return {name: loader(name).version for name in sorted(set(formats))}


def detect_formats(root: Path) -> list[str]:
    """The built-in formats of the files under ``root`` (hidden files left out), in
    registry order: what ``ragstate init`` enables."""
    found: set[str] = set()
    paths = [root] if root.is_file() else root.rglob("*")
    for p in paths:
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts):
            fmt = FORMAT_OF_SUFFIX.get(p.suffix.lower())
            if fmt is not None:
                found.add(fmt)
    return [name for name in BUILTIN_LOADERS if name in found]


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
