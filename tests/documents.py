"""Real PDF, DOCX and HTML files made from the sample's articles, with real writers.

``fpdf2`` writes the PDFs (one column, two columns, running headers and footers, an
encrypted one, one with no text layer), ``python-docx`` the Word files and a plain HTML
template (navigation, header and footer around an ``<article>``) the web pages. The
articles are the shipped sample's (``samples/pmc/jsonl/articles.jsonl``), so nothing here
needs ``../shared``. PDFs use the core fonts, which hold Latin-1 only: ``latin`` maps the
rest (curly quotes, dashes) to the nearest Latin-1 text, and extracted text is compared
with the mapped source.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "pmc"
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_SUBSTITUTES = {
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
    "–": "-",
    "—": "-",
    "‐": "-",
    "−": "-",
    "…": "...",
    "\u00a0": " ",
}


def articles() -> list[dict[str, Any]]:
    """The sample's JSONL articles: doc_id, title, abstract, body (headings as short paragraphs)."""
    path = SAMPLE / "jsonl" / "articles.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def latin(text: str) -> str:
    """``text`` in Latin-1 (what the PDF core fonts can show): look-alikes, then decomposition."""
    text = "".join(_SUBSTITUTES.get(c, c) for c in text)
    out = []
    for c in text:
        if ord(c) < 256:
            out.append(c)
        else:
            base = unicodedata.normalize("NFKD", c).encode("latin-1", "ignore").decode("latin-1")
            out.append(base or "?")
    return "".join(out)


_latin = latin


def is_heading(para: str) -> bool:
    """The sample's section headings: one short line without sentence punctuation."""
    return "\n" not in para and len(para) <= 100 and len(para.split()) <= 12 and not para.endswith((".", ":", ","))


def sections(article: dict[str, Any], *, max_sections: int | None = None) -> list[tuple[str, list[str]]]:
    """``(heading, paragraphs)`` of the article's body, in order ("" before the first heading)."""
    out: list[tuple[str, list[str]]] = [("", [])]
    for para in (p.strip() for p in _PARAGRAPH_BREAK.split(article["body"])):
        if not para:
            continue
        if is_heading(para):
            out.append((para, []))
        else:
            out[-1][1].append(re.sub(r"\s+", " ", para))
    out = [(h, ps) for h, ps in out if ps]
    return out[:max_sections] if max_sections else out


def title_abstract_body(article: dict[str, Any], *, latin: bool = False) -> str:
    """The article's text as the writers here lay it out (``latin``: as the PDFs hold it)."""
    body = (h + "\n" + "\n".join(ps) for h, ps in sections(article))
    text = "\n".join([article["title"], article["abstract"], *body])
    return _latin(text) if latin else text


def similarity(a: str, b: str) -> float:
    """How alike two texts are, word by word (1.0: the same words in the same order)."""
    wa, wb = re.findall(r"\w+", a.lower()), re.findall(r"\w+", b.lower())
    return difflib.SequenceMatcher(None, wa, wb, autojunk=False).ratio()


# --- PDF ---------------------------------------------------------------------------------


def make_pdf(
    article: dict[str, Any],
    path: Path,
    *,
    columns: int = 1,
    running: bool = False,
    max_sections: int | None = None,
    metadata: dict[str, str] | None = None,
    password: str | None = None,
) -> Path:
    """Write ``article`` as a PDF: title, an "Abstract" heading and its text, then each section.

    Args:
        columns: 1, or 2 for a two-column body (fpdf2's text columns).
        running: a running header (journal and title) and footer ("Page N") on every page.
        metadata: document information (``title``, ``author``, ``producer``...); the title
            defaults to the article's.
        password: encrypt with this user password.
    """
    from fpdf import FPDF

    title = latin(article["title"])

    class Doc(FPDF):
        def header(self) -> None:
            if running:
                self.set_font("Helvetica", "I", 8)
                self.cell(0, 5, latin(f"Sample Journal of Medicine - {article['doc_id']}"), align="R")
                self.ln(8)

        def footer(self) -> None:
            if running:
                self.set_y(-12)
                self.set_font("Helvetica", "I", 8)
                self.cell(0, 5, f"Page {self.page_no()}", align="C")

    pdf = Doc()
    pdf.set_auto_page_break(auto=True, margin=18)
    info = {"title": article["title"], **(metadata or {})}
    for key, value in info.items():
        getattr(pdf, f"set_{key}")(latin(value))
    if password is not None:
        pdf.set_encryption(owner_password="owner-" + password, user_password=password)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.multi_cell(0, 6, "Abstract", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(0, 5, latin(re.sub(r"\s+", " ", article["abstract"])), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    body = sections(article, max_sections=max_sections)
    if columns == 1:
        for heading, paras in body:
            if heading:
                pdf.set_font("Helvetica", "B", 12)
                pdf.multi_cell(0, 6, latin(heading), new_x="LMARGIN", new_y="NEXT")
                pdf.ln(1)
            pdf.set_font("Helvetica", "", 10)
            for para in paras:
                pdf.multi_cell(0, 5, latin(para), new_x="LMARGIN", new_y="NEXT")
                pdf.ln(2)
    else:
        with pdf.text_columns(ncols=columns, gutter=8, text_align="L") as cols:
            for heading, paras in body:
                if heading:
                    pdf.set_font("Helvetica", "B", 12)
                    with cols.paragraph(bottom_margin=1) as p:
                        p.write(latin(heading))
                pdf.set_font("Helvetica", "", 10)
                for para in paras:
                    with cols.paragraph(bottom_margin=2) as p:
                        p.write(latin(para))
    pdf.output(str(path))
    return path


def make_image_only_pdf(path: Path, pages: int = 2) -> Path:
    """A PDF of drawn shapes and no text (what a scanner makes, less the picture)."""
    from fpdf import FPDF

    pdf = FPDF()
    for i in range(pages):
        pdf.add_page()
        for row in range(20):
            pdf.rect(20, 20 + row * 12, 160 - 5 * ((row + i) % 7), 6, style="F")
    pdf.output(str(path))
    return path


# --- DOCX --------------------------------------------------------------------------------


def make_docx(article: dict[str, Any], path: Path, *, max_sections: int | None = None, table: bool = True) -> Path:
    """Write ``article`` as a Word file: Title, "Abstract" (Heading 1), sections as Heading 1/2
    (a heading directly under another is its subsection), paragraphs, and one table."""
    import docx

    d = docx.Document()
    d.core_properties.title = article["title"]
    d.add_paragraph(article["title"], style="Title")
    d.add_heading("Abstract", level=1)
    d.add_paragraph(re.sub(r"\s+", " ", article["abstract"]))
    for i, (heading, paras) in enumerate(sections(article, max_sections=max_sections)):
        if heading:
            d.add_heading(heading, level=1)
        for para in paras:
            d.add_paragraph(para)
        if table and i == 1:
            t = d.add_table(rows=3, cols=3)
            for r, row in enumerate([("Group", "n", "Mean"), ("Control", "41", "3.2"), ("Treated", "39", "4.7")]):
                for c, value in enumerate(row):
                    t.cell(r, c).text = value
    d.save(str(path))
    return path


# --- HTML --------------------------------------------------------------------------------

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} | Sample Journal</title>
<meta name="author" content="Sample Authors"></head>
<body>
<header><nav><a href="/">Home</a> | <a href="/archive">Archive</a> | <a href="/about">About us</a></nav></header>
<aside class="sidebar"><h3>Most read</h3><ul><li><a href="/x">Another article entirely</a></li></ul></aside>
<main><article>
<h1>{title}</h1>
<section class="abstract"><h2>Abstract</h2><p>{abstract}</p></section>
{body}
</article></main>
<footer><p>Copyright 2025 Sample Journal. All rights reserved.</p><p><a href="/privacy">Privacy</a></p></footer>
</body></html>
"""


def make_html(article: dict[str, Any], path: Path, *, max_sections: int | None = None) -> Path:
    """Write ``article`` as a web page: site chrome around an ``<article>`` with h1, h2 and paragraphs."""
    from html import escape

    parts = []
    for heading, paras in sections(article, max_sections=max_sections):
        if heading:
            parts.append(f"<h2>{escape(heading)}</h2>")
        parts.extend(f"<p>{escape(p)}</p>" for p in paras)
    page = _PAGE.format(
        title=escape(article["title"]),
        abstract=escape(re.sub(r"\s+", " ", article["abstract"])),
        body="\n".join(parts),
    )
    path.write_text(page, encoding="utf-8")
    return path
