"""The ``sections`` chunker with the real model's tokenizer: windows, offsets, stable ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SAMPLE
from ragstate.artifacts.chunks import ModelTokens, piece_ids
from ragstate.compute.chunkers import make_chunker
from ragstate.compute.embedders import make_embedder
from ragstate.errors import PluginError
from ragstate.sources.base import Document
from ragstate.sources.loaders import parse_jats, parse_markdown
from ragstate.spec.model import ModelSpec


@pytest.fixture(scope="module")
def tokens() -> ModelTokens:
    return ModelTokens(make_embedder("default", ModelSpec()))


def article() -> Document:
    path = "markdown/PMC12429712.md"
    return parse_markdown((SAMPLE / path).read_bytes(), path)[0]


def chunks_of(doc: Document, tokens: ModelTokens, max_tokens: int = 254, min_tokens: int = 64):
    return make_chunker("sections", max_tokens=max_tokens, min_tokens=min_tokens).chunk(doc, tokens)


def test_chunks_fit_the_window_and_point_into_the_document(tokens: ModelTokens) -> None:
    doc = article()
    pieces = chunks_of(doc, tokens)
    leaves = [p for p in pieces if p.level == 1]
    assert tokens.special == 2 and len(leaves) > 20
    assert all(doc.text[p.start : p.end] == p.text for p in leaves)
    # Counted with the model's own tokenizer, nothing exceeds what the model reads.
    assert max(tokens.count_tokens([p.text for p in leaves])) <= 254
    assert all(p.parent is not None and pieces[p.parent].level == 0 for p in leaves)
    sections = [p for p in pieces if p.level == 0]
    assert sections[0].text.startswith("Influence of Tension") and "1. Introduction" in [s.text for s in sections]
    # Every paragraph character is covered by a chunk, in order, without overlap.
    spans = [(p.start, p.end) for p in leaves]
    assert spans == sorted(spans) and all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_a_small_window_splits_long_paragraphs_at_sentences_and_tokens(tokens: ModelTokens) -> None:
    doc = article()
    leaves = [p for p in chunks_of(doc, tokens, max_tokens=40, min_tokens=10) if p.level == 1]
    assert max(p.n_tokens for p in leaves) <= 40
    assert all(doc.text[p.start : p.end] == p.text for p in leaves)


def test_editing_one_paragraph_keeps_every_other_chunk_id(tokens: ModelTokens) -> None:
    doc = article()
    before = [p for p in chunks_of(doc, tokens)]
    sentence = "Figure 1 illustrates the polyester fiber spinning process"
    edit = "Figure 1 shows the polyester fiber spinning process"
    body = doc.body.replace(sentence, edit, 1)
    assert body != doc.body
    edited = Document(doc.doc_id, doc.title, doc.abstract, body, doc.path)
    after = chunks_of(edited, tokens)
    old = dict(zip(piece_ids(doc.doc_id, before), before, strict=True))
    new = dict(zip(piece_ids(doc.doc_id, after), after, strict=True))
    changed_chunks = [i for i in new if i not in old and new[i].level == 1]
    assert len(changed_chunks) == 1 and edit in new[changed_chunks[0]].text
    # Sections keep their ids (by heading) and every other chunk keeps its id and text.
    assert {i for i, p in old.items() if p.level == 0} == {i for i, p in new.items() if p.level == 0}
    assert len([i for i in old if i not in new]) == 1


def test_jats_sections_come_from_title_paragraphs(tokens: ModelTokens) -> None:
    path = "jats/PMC12429890.xml"
    doc = parse_jats((SAMPLE / path).read_bytes(), path)[0]
    headings = [p.text for p in chunks_of(doc, tokens) if p.level == 0]
    assert "1. Introduction" in headings and len(headings) > 5


def test_unknown_chunker_is_named() -> None:
    with pytest.raises(PluginError, match="artifacts.chunks.chunker: unknown plugin 'nope'"):
        make_chunker("nope", max_tokens=10, min_tokens=1)


def test_sample_exists() -> None:
    assert Path(SAMPLE).is_dir()
