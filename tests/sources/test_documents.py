"""PDF, HTML and DOCX loaders on real files written from the sample's articles.

Extracted text is compared with the source text (word similarity, not equality), and so
are titles, abstracts, sections and pages; bad input (encrypted, scanned, truncated, a
zip bomb, an oversized page, too many pages) becomes a quarantine reason, never a crash.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from documents import (
    articles,
    latin,
    make_docx,
    make_html,
    make_image_only_pdf,
    make_pdf,
    sections,
    similarity,
)
from ragstate import plugins
from ragstate.errors import MissingExtra, SourceError
from ragstate.sources.folder import FolderSource
from ragstate.sources.loaders import detect_formats, loader, loader_versions
from ragstate.spec.model import SourceSpec

ALL = ("txt", "md", "xml", "jsonl", "pdf", "html", "docx")
ARTICLE = articles()[0]


def source(root: Path, **kw) -> FolderSource:
    return FolderSource(SourceSpec(path=root, formats=kw.pop("formats", ALL), **kw))


def read(path: Path, **kw):
    snap = source(path.parent, **kw).snapshot({})
    assert not snap.problems, snap.problems
    (doc,) = source(path.parent, **kw).load([r for r in snap.fresh if r.path == path.name])
    return doc


def body_text(article: dict, n: int | None = None) -> str:
    return "\n".join(h + "\n" + "\n".join(ps) for h, ps in sections(article, max_sections=n))


@pytest.mark.parametrize("columns,running", [(1, False), (2, True)])
def test_pdf_text_title_abstract_sections_and_pages(tmp_path: Path, columns: int, running: bool) -> None:
    path = make_pdf(ARTICLE, tmp_path / "a.pdf", columns=columns, running=running)
    doc = read(path)
    assert doc.title == latin(ARTICLE["title"])
    assert similarity(doc.abstract, latin(ARTICLE["abstract"])) > 0.98
    assert similarity(doc.body, latin(body_text(ARTICLE))) > 0.97
    # the running header and footer are not text of the article
    assert "Sample Journal of Medicine" not in doc.text and "Page 2" not in doc.text
    headings = [h for h, _ in sections(ARTICLE) if h]
    found = {m.section.split(" > ")[-1] for m in doc.layout}
    assert {latin(h) for h in headings} <= found
    pages = [m.page for m in doc.layout]
    assert pages == sorted(pages) and pages[0] == 1 and pages[-1] == int(doc.metadata["pages"]) > 1
    # a place in the text maps back to its page and section
    methods = next(m for m in doc.layout if m.section == latin(headings[1]))
    first, last, section = doc.place(methods.offset, methods.offset + 10)
    assert (first, last, section) == (methods.page, methods.page, latin(headings[1]))


def test_pdf_resaved_with_new_metadata_is_not_a_change(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = read(make_pdf(ARTICLE, tmp_path / "a" / "x.pdf", max_sections=2))
    resaved = {"author": "Someone Else", "producer": "Another Writer 9.1", "subject": "re-saved"}
    b = read(make_pdf(ARTICLE, tmp_path / "b" / "x.pdf", max_sections=2, metadata=resaved))
    assert (tmp_path / "a" / "x.pdf").read_bytes() != (tmp_path / "b" / "x.pdf").read_bytes()
    assert a.content_hash == b.content_hash and b.metadata["author"] == "Someone Else"


def test_docx_headings_paragraphs_and_tables(tmp_path: Path) -> None:
    doc = read(make_docx(ARTICLE, tmp_path / "a.docx"))
    assert doc.title == ARTICLE["title"]
    assert similarity(doc.abstract, ARTICLE["abstract"]) > 0.99
    assert similarity(doc.body, body_text(ARTICLE)) > 0.97
    assert "Control | 41 | 3.2" in doc.body
    headings = [h for h, _ in sections(ARTICLE) if h]
    assert [m.section for m in doc.layout if m.section not in ("", "Abstract")][0] == headings[0]
    assert all(m.page is None for m in doc.layout)


def test_html_main_text_without_the_site_around_it(tmp_path: Path) -> None:
    doc = read(make_html(ARTICLE, tmp_path / "a.html"))
    assert doc.title == ARTICLE["title"]
    assert similarity(doc.abstract, ARTICLE["abstract"]) > 0.99
    assert similarity(doc.body, body_text(ARTICLE)) > 0.97
    for chrome in ("Archive", "Most read", "All rights reserved", "Privacy"):
        assert chrome not in doc.text
    assert {h for h, _ in sections(ARTICLE) if h} <= {m.section for m in doc.layout}


def test_html_without_a_heading_takes_its_title_from_the_title_tag(tmp_path: Path) -> None:
    para = "<p>" + "A paragraph long enough to be the main text of the page, not navigation. " * 4 + "</p>"
    html = f"<html><head><title>The page title</title></head><body><article><h2>Part one</h2>{para}</article></body>"
    (tmp_path / "p.html").write_text(html)
    doc = read(tmp_path / "p.html")
    assert doc.title == "The page title" and doc.layout[-1].section == "Part one"


def zip_bomb(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\0" * (64 * 2**20))  # 64 MiB of zeros, 64 KiB on disk
    return path


def test_bad_input_is_a_problem_with_a_reason_that_says_what_to_do(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    make_pdf(ARTICLE, root / "encrypted.pdf", max_sections=1, password="secret")
    make_image_only_pdf(root / "scanned.pdf")
    whole = make_pdf(ARTICLE, root / "whole.pdf", max_sections=2).read_bytes()
    (root / "truncated.pdf").write_bytes(whole[: len(whole) // 3])
    zip_bomb(root / "bomb.docx")
    (root / "notzip.docx").write_bytes(b"PK\x03\x04 this is not really a zip archive")
    with open(root / "huge.html", "wb") as f:
        f.write(b"<html><body><p>" + b"word " * (10 * 2**20) + b"</p></body></html>")  # 50 MiB
    make_pdf(ARTICLE, root / "long.pdf")  # three pages, over a limit of 2
    (root / "fine.txt").write_text("A title\n\nSome text.\n")
    snap = source(root, max_pages=2).snapshot({})
    problems = {p.key: p for p in snap.problems}
    assert {k: p.reason for k, p in problems.items()} == {
        "encrypted.pdf": "encrypted",
        "scanned.pdf": "no_text_layer",
        "truncated.pdf": "malformed",
        "bomb.docx": "too_large",
        "notzip.docx": "malformed",
        "huge.html": "too_large",
        "long.pdf": "too_large",
    }
    assert "no text layer: OCR is not configured" in problems["scanned.pdf"].message
    assert "password" in problems["encrypted.pdf"].message and "qpdf --decrypt" in problems["encrypted.pdf"].message
    assert "source.max_document_bytes" in problems["bomb.docx"].message
    assert "source.max_pages" in problems["long.pdf"].message
    assert all(p.doc_id == p.key for p in problems.values())
    assert [r.doc_id for r in snap.fresh] == ["fine.txt", "whole.pdf"]


def test_a_missing_extra_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_pdf(ARTICLE, tmp_path / "a.pdf", max_sections=1)
    monkeypatch.setitem(sys.modules, "pypdf", None)  # what an install without the extra imports
    with pytest.raises(MissingExtra, match=r"a\.pdf: .*pypdf.*pip install 'ragstate\[pdf\]'"):
        source(tmp_path).snapshot({})
    # a format that is not enabled is not read, so nothing is needed for it
    assert source(tmp_path, formats=("txt",)).snapshot({}).fresh == ()


def test_a_loader_plugin_registered_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "site"
    (pkg / "rst_loader-1.0.dist-info").mkdir(parents=True)
    metadata = "Metadata-Version: 2.1\nName: rst-loader\nVersion: 1.0\n"
    (pkg / "rst_loader-1.0.dist-info" / "METADATA").write_text(metadata)
    (pkg / "rst_loader-1.0.dist-info" / "entry_points.txt").write_text("[ragstate.loaders]\nrst = rst_loader:LOADER\n")
    (pkg / "rst_loader.py").write_text(
        "from ragstate.sources.loaders import Loader, parse_text\n"
        "LOADER = Loader('rst', ('.rst',), lambda data, path, limits: parse_text(data, path), version=3)\n"
    )
    monkeypatch.syspath_prepend(str(pkg))
    plugins._entry_points.cache_clear()
    try:
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "a.rst").write_text("Title\n=====\n\nText.\n")
        snap = source(tmp_path / "docs", formats=("rst",)).snapshot({})
        assert [r.doc_id for r in snap.fresh] == ["a.rst"]
        assert loader("rst").version == 3 and loader_versions(["rst", "txt"]) == {"rst": 3, "txt": 1}
        with pytest.raises(SourceError, match="unknown plugin 'nope'.*rst"):
            source(tmp_path / "docs", formats=("nope",))
    finally:
        plugins._entry_points.cache_clear()


def test_detect_formats(tmp_path: Path) -> None:
    make_docx(ARTICLE, tmp_path / "a.docx", max_sections=1)
    (tmp_path / "sub").mkdir()
    make_html(ARTICLE, tmp_path / "sub" / "b.htm", max_sections=1)
    (tmp_path / "c.txt").write_text("x")
    (tmp_path / ".hidden.pdf").write_text("x")
    assert detect_formats(tmp_path) == ["txt", "html", "docx"]


def test_the_shipped_mixed_sample(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ragstate.cli import app
    from ragstate.spec.load import load_spec

    mixed = Path(__file__).resolve().parents[2] / "samples" / "mixed"
    snap = source(mixed).snapshot({})
    assert not snap.problems and sorted(r.path for r in snap.fresh) == [
        "PMC12430912.html",
        "PMC12431569.pdf",
        "PMC12431823.docx",
    ]
    titles = {a["doc_id"]: a["title"] for a in articles()}
    for ref in snap.fresh:
        assert similarity(ref.title, titles[ref.path.split(".")[0]]) > 0.95
    # ragstate init enables the formats it finds
    out = tmp_path / "ragstate.yaml"
    result = CliRunner().invoke(app, ["init", "--source", str(mixed), "--output", str(out)])
    assert result.exit_code == 0, result.stdout
    assert load_spec(out).source.formats == ("pdf", "html", "docx")
