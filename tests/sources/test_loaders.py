"""Loaders: each format's fields, ids, hashing, and errors that name the file and line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from conftest import SAMPLE
from ragstate.errors import DocumentError
from ragstate.hashing import content_hash, normalise_text
from ragstate.sources.loaders import RecordError, iter_jsonl, parse_jats, parse_markdown, parse_text


def test_content_hash_ignores_line_endings_and_trailing_space() -> None:
    assert content_hash("T", "a\r\nb  \n\n", "c") == content_hash("T", "a\nb", "c")
    assert content_hash("T", "a b", "c") != content_hash("T", "a  b", "c")
    assert content_hash("T", "", "body") != content_hash("", "T", "body"), "fields are not interchangeable"
    assert normalise_text("e\u0301") == "\u00e9", "NFC"


def test_jats_fields() -> None:
    (doc,) = parse_jats((SAMPLE / "jats/PMC12429890.xml").read_bytes(), "jats/PMC12429890.xml")
    assert doc.doc_id == "jats/PMC12429890.xml"
    assert doc.title.startswith("Species-Specific Responses of Kiwifruit Seed Germination")
    assert doc.abstract.startswith("Climate change is reshaping plant reproductive processes")
    assert "Introduction" in doc.body and len(doc.body) > 10_000
    assert doc.metadata["doi"] == "10.3390/plants14172665" and doc.metadata["journal"] == "Plants"


def test_jats_refuses_entity_expansion() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;">]><article>&y;</article>'
    with pytest.raises(DocumentError, match="not well-formed XML"):
        parse_jats(bomb, "bomb.xml")


def test_markdown_sections_and_front_matter() -> None:
    text = (
        b"---\ntitle: From front matter\nauthor: A. N. Other\n---\n"
        b"## Abstract\n\nShort abstract.\n\n## Methods\n\nWe did it.\n"
    )
    (doc,) = parse_markdown(text, "a.md")
    assert doc.title == "From front matter" and doc.abstract == "Short abstract."
    assert "## Methods" in doc.body and doc.metadata == {"author": "A. N. Other"}
    (doc,) = parse_markdown(b"# Heading title\n\nJust a body.\n", "b.md")
    assert (doc.title, doc.abstract, doc.body) == ("Heading title", "", "Just a body.")
    assert doc.summary == "Just a body."


def test_text_title_is_first_line() -> None:
    (doc,) = parse_text(b"\n\nThe title\n\nFirst paragraph.\n\nSecond.\n", "t.txt")
    assert doc.title == "The title" and doc.body == "First paragraph.\n\nSecond."


def test_jsonl_records_offsets_and_errors() -> None:
    data = b'{"doc_id": "a", "title": "A", "abstract": "x", "body": "y", "journal": "J"}\n\n{"id": 7, "text": "t"}\n'
    docs = list(iter_jsonl(io.BytesIO(data), "f.jsonl", max_record_bytes=1000))
    assert [(d.doc_id, d.pos, d.offset) for d in docs] == [("a", 0, 0), ("7", 1, data.index(b'{"id"'))]
    assert docs[0].metadata == {"journal": "J"} and docs[1].body == "t"
    for bad, message in [
        (b'{"title": "no id"}\n', "f.jsonl:1: record has no doc_id"),
        (b"[1, 2]\n", "must be a JSON object"),
        (b'{"doc_id": "x", "title": 3}\n', "field 'title' of document 'x' must be a string"),
        (b'{"doc_id": "x"}\n', "document 'x' is empty"),
        (b'{"doc_id": "x", "body": "' + b"a" * 2000 + b'"}\n', "over the limit (source.max_document_bytes) of 1000"),
    ]:
        # A bad line is reported, and the lines after it are still read.
        items = list(iter_jsonl(io.BytesIO(bad + b'{"id": "next", "text": "t"}\n'), "f.jsonl", max_record_bytes=1000))
        (error,) = [i for i in items if isinstance(i, RecordError)]
        assert error.line == 1 and isinstance(error.error, DocumentError) and message in str(error.error)
        assert [d.doc_id for d in items if not isinstance(d, RecordError)] == ["next"]


def test_every_sample_document_loads(tmp_path: Path) -> None:
    from ragstate.sources.folder import FolderSource
    from ragstate.spec.model import SourceSpec

    source = FolderSource(SourceSpec(path=SAMPLE))
    snapshot = source.snapshot({})
    assert len(snapshot.fresh) == 48
    assert all(r.title_chars > 0 and r.abstract_chars + r.body_chars > 500 for r in snapshot.fresh)
