"""Chunkers: a document's text → parent sections and child chunks, with character offsets.

A chunker is a plugin (entry-point group ``ragstate.chunkers``) named in the spec
(``artifacts.chunks.chunker``). It counts tokens with the embedding model's own tokenizer
(``Tokens``), so no chunk is longer than the model reads.

The built-in ``sections`` chunker:

1. The text is ``Document.text`` (title, abstract and body joined by blank lines);
   every offset is a character offset into it.
2. Sections: the title and abstract form the first section; the body starts a new one,
   and so does every heading paragraph in it (a Markdown ``#`` line, or one short line,
   at most 12 words and 100 characters, not ending in sentence punctuation). A heading
   followed directly by another joins the next one's section; the section's heading is
   the last of them.
3. Within a section, each paragraph is a unit; a paragraph longer than the window is
   split at sentence ends, and a sentence longer than the window at token boundaries.
4. Units are merged forward while the chunk so far has fewer than ``min_tokens`` tokens
   and the merge fits the window. The decision depends only on the chunk being built,
   so an edit in one paragraph changes that paragraph's chunk (and at most the merge of
   its small neighbours): every other chunk keeps its text, hence its id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ragstate.plugins import load_plugin
from ragstate.sources.base import Document

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\[(])")
_HEADING_END = (".", "!", "?", ";", ",")


class Tokens(Protocol):
    """A model's tokenizer as chunkers use it (special tokens left out)."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]: ...


@dataclass(frozen=True)
class Piece:
    """A section (``level`` 0) or a chunk (``level`` 1) of a document.

    ``start``/``end`` are character offsets into ``Document.text``. A chunk's ``text`` is
    ``Document.text[start:end]``; a section's is its heading (its span covers the whole
    section). ``parent`` is the index of a chunk's section in the list.
    """

    level: int
    start: int
    end: int
    text: str
    n_tokens: int
    parent: int | None = None


class Chunker(Protocol):
    """What the ``chunks`` kind needs from a chunker plugin."""

    def identity(self) -> dict[str, Any]:
        """JSON-able identity for recipe fingerprints (name, version, parameters)."""
        ...

    def chunk(self, doc: Document, tokens: Tokens) -> list[Piece]:
        """Sections and chunks of ``doc``; every chunk has at most ``max_tokens`` tokens."""
        ...


def make_chunker(name: str, *, max_tokens: int, min_tokens: int) -> Chunker:
    """The chunker plugin ``name`` with its window.

    Raises:
        PluginError: no such chunker.
    """
    factory = load_plugin("ragstate.chunkers", name, BUILTIN, field="artifacts.chunks.chunker")
    return factory(max_tokens=max_tokens, min_tokens=min_tokens)


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    n: int


class SectionChunker:
    """Paragraph-aligned chunks inside heading-delimited sections (see the module doc)."""

    version = 1

    def __init__(self, *, max_tokens: int, min_tokens: int):
        self.max_tokens = max_tokens
        self.min_tokens = min(min_tokens, max_tokens)

    def identity(self) -> dict[str, Any]:
        return {
            "chunker": "sections",
            "version": self.version,
            "max_tokens": self.max_tokens,
            "min_tokens": self.min_tokens,
        }

    def chunk(self, doc: Document, tokens: Tokens) -> list[Piece]:
        text = doc.text
        sections = _sections(doc, text)
        paragraphs = [p for _, paras in sections for p in paras]
        counts = dict(zip(paragraphs, tokens.count_tokens([text[s:e] for s, e in paragraphs]), strict=True))
        pieces: list[Piece] = []
        for heading, paras in sections:
            units: list[_Span] = []
            for s, e in paras:
                if counts[(s, e)] <= self.max_tokens:
                    units.append(_Span(s, e, counts[(s, e)]))
                else:
                    units.extend(self._split(text, s, e, tokens))
            chunks = self._merge(units)
            parent = len(pieces)
            pieces.append(Piece(0, paras[0][0], paras[-1][1], heading, sum(c.n for c in chunks)))
            pieces.extend(Piece(1, c.start, c.end, text[c.start : c.end], c.n, parent) for c in chunks)
        return _enforce_window(pieces, text, tokens, self.max_tokens)

    def _merge(self, units: list[_Span]) -> list[_Span]:
        out: list[_Span] = []
        for u in units:
            last = out[-1] if out else None
            if last is not None and last.n < self.min_tokens and last.n + u.n <= self.max_tokens:
                out[-1] = _Span(last.start, u.end, last.n + u.n)
            else:
                out.append(u)
        return out

    def _split(self, text: str, start: int, end: int, tokens: Tokens) -> list[_Span]:
        """A paragraph longer than the window: sentences packed up to the window."""
        para = text[start:end]
        bounds = [0] + [m.end() for m in _SENTENCE_END.finditer(para)] + [len(para)]
        sentences = [(start + a, start + len(para[a:b].rstrip()) + a) for a, b in zip(bounds, bounds[1:], strict=False)]
        sentences = [(a, b) for a, b in sentences if b > a]
        counts = tokens.count_tokens([text[a:b] for a, b in sentences])
        pieces: list[_Span] = []
        for (a, b), n in zip(sentences, counts, strict=True):
            if n <= self.max_tokens:
                pieces.append(_Span(a, b, n))
            else:
                pieces.extend(_token_windows(text, a, b, tokens, self.max_tokens))
        packed: list[_Span] = []
        for p in pieces:
            last = packed[-1] if packed else None
            if last is not None and last.n + p.n <= self.max_tokens:
                packed[-1] = _Span(last.start, p.end, last.n + p.n)
            else:
                packed.append(p)
        return packed


def _sections(doc: Document, text: str) -> list[tuple[str, list[tuple[int, int]]]]:
    """``(heading, paragraph spans)`` of each section, in order (see the module doc)."""
    sections: list[tuple[str, list[tuple[int, int]]]] = []
    pos = 0
    for name in ("title", "abstract", "body"):
        part = getattr(doc, name)
        if not part.strip():
            continue
        paras = [(pos + a, pos + b) for a, b in _paragraphs(part)]
        pos += len(part) + 2  # Document.text joins the present parts with a blank line
        if not paras:
            continue
        if name == "title":
            sections.append((text[paras[0][0] : paras[0][1]], paras))
        elif name == "abstract":
            if sections:
                sections[-1][1].extend(paras)
            else:
                sections.append(("Abstract", paras))
        else:
            current: list[tuple[int, int]] = []
            heading = ""
            for span in paras:
                para = text[span[0] : span[1]]
                if _is_heading(para):
                    # A heading directly under another ("2. Methods", "2.1. Design")
                    # joins its section rather than making an empty one.
                    lone = len(current) == 1 and _is_heading(text[current[0][0] : current[0][1]])
                    if current and not lone:
                        sections.append((heading, current))
                        current = []
                    heading = para.lstrip("#").strip()
                elif not current:
                    heading = ""
                current.append(span)
            sections.append((heading, current))
    return sections


def _paragraphs(part: str) -> list[tuple[int, int]]:
    """Spans of the non-blank paragraphs of ``part``, surrounding whitespace excluded."""
    spans = []
    start = 0
    for m in [*_PARAGRAPH_BREAK.finditer(part), None]:
        end = m.start() if m is not None else len(part)
        chunk = part[start:end]
        stripped = chunk.strip()
        if stripped:
            lead = len(chunk) - len(chunk.lstrip())
            spans.append((start + lead, start + lead + len(stripped)))
        if m is not None:
            start = m.end()
    return spans


def _is_heading(para: str) -> bool:
    if "\n" in para:
        return False
    if para.startswith("#"):
        return True
    return len(para) <= 100 and len(para.split()) <= 12 and not para.endswith(_HEADING_END)


def _token_windows(text: str, start: int, end: int, tokens: Tokens, size: int) -> list[_Span]:
    """``text[start:end]`` cut at token boundaries into pieces of at most ``size`` tokens."""
    spans = tokens.token_spans([text[start:end]])[0]
    out = []
    for i in range(0, len(spans), size):
        window = spans[i : i + size]
        out.append(_Span(start + window[0][0], start + window[-1][1], len(window)))
    return out


def _enforce_window(pieces: list[Piece], text: str, tokens: Tokens, size: int) -> list[Piece]:
    """Recount every chunk's own text and cut any that exceeds the window (merged
    counts are sums, which a tokenizer may not respect exactly at the joins)."""
    chunk_idx = [i for i, p in enumerate(pieces) if p.level == 1]
    counts = tokens.count_tokens([pieces[i].text for i in chunk_idx])
    exact = dict(zip(chunk_idx, counts, strict=True))
    out: list[Piece] = []
    remap: dict[int, int] = {}
    for i, p in enumerate(pieces):
        if p.level == 0:
            remap[i] = len(out)
            out.append(p)
            continue
        parent = remap[p.parent] if p.parent is not None else None
        if exact[i] <= size:
            out.append(Piece(1, p.start, p.end, p.text, exact[i], parent))
            continue
        for w in _token_windows(text, p.start, p.end, tokens, size):
            out.append(Piece(1, w.start, w.end, text[w.start : w.end], w.n, parent))
    return out


BUILTIN: dict[str, Any] = {"sections": SectionChunker}
