"""Rebuild the sample corpus shipped in samples/pmc from ../shared/corpus.

The sample is 48 open-access PubMed Central articles in the four source formats
ragstate reads: the 12 original JATS XML files, 24 as Markdown, 4 as plain text and
8 as one JSONL file. It is committed, so users never need ../shared; this script only
documents (and can repeat) how it was made.

Usage: python scripts/make_sample.py [CORPUS_DIR] [OUT_DIR]
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

N_MARKDOWN, N_TEXT, N_JSONL = 24, 4, 8


def main(corpus: Path, out: Path) -> None:
    records = [json.loads(line) for line in gzip.open(corpus / "pmc_oa_898.jsonl.gz", "rt", encoding="utf-8")]
    jats_ids = sorted(p.stem for p in (corpus / "jats").glob("*.xml"))
    by_id = {r["doc_id"]: r for r in records}
    # Mid-length articles with an abstract, one journal at a time round-robin, so the
    # sample spans fields rather than one publisher's house style.
    candidates = sorted(
        (r for r in records if r["abstract"] and 8_000 < len(r["body"]) < 30_000 and r["doc_id"] not in jats_ids),
        key=lambda r: r["doc_id"],
    )
    by_journal: dict[str, list[dict]] = {}
    for r in candidates:
        by_journal.setdefault(r["journal"], []).append(r)
    picked: list[dict] = []
    while len(picked) < N_MARKDOWN + N_TEXT + N_JSONL:
        for journal in sorted(by_journal):
            if by_journal[journal] and len(picked) < N_MARKDOWN + N_TEXT + N_JSONL:
                picked.append(by_journal[journal].pop(0))

    if out.exists():
        shutil.rmtree(out)
    (out / "jats").mkdir(parents=True)
    (out / "markdown").mkdir()
    (out / "text").mkdir()
    (out / "jsonl").mkdir()
    for doc_id in jats_ids:
        shutil.copy(corpus / "jats" / f"{doc_id}.xml", out / "jats" / f"{doc_id}.xml")
    for r in picked[:N_MARKDOWN]:
        (out / "markdown" / f"{r['doc_id']}.md").write_text(
            f"# {r['title']}\n\n## Abstract\n\n{r['abstract']}\n\n{_markdown_headings(r['body'])}\n", encoding="utf-8"
        )
    for r in picked[N_MARKDOWN : N_MARKDOWN + N_TEXT]:
        (out / "text" / f"{r['doc_id']}.txt").write_text(
            f"{r['title']}\n\n{r['abstract']}\n\n{r['body']}\n", encoding="utf-8"
        )
    with open(out / "jsonl" / "articles.jsonl", "w", encoding="utf-8") as f:
        for r in picked[N_MARKDOWN + N_TEXT :]:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    rows = [by_id[i] for i in jats_ids] + picked
    lines = [
        "# Sample corpus: attribution and licences",
        "",
        "48 open-access articles from PubMed Central, each under the licence named below",
        "(CC BY 4.0 or CC0). Text is reproduced unchanged apart from format conversion",
        "(Markdown, plain text and JSONL were made from the PMC records by `scripts/make_sample.py`;",
        "in Markdown, section titles were marked as headings).",
        "",
        "| id | title | journal | DOI | licence |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        title = r["title"].replace("|", "\\|")
        lines.append(f"| {r['doc_id']} | {title} | {r['journal']} | https://doi.org/{r['doi']} | {r['license_url']} |")
    (out.parent / "ATTRIBUTION.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _markdown_headings(body: str) -> str:
    """Mark the PMC body's section titles (short lines standing alone) as ## headings."""
    paragraphs = body.split("\n\n")
    for i, para in enumerate(paragraphs):
        line = para.strip()
        if line and "\n" not in line and len(line) <= 100 and not line.endswith((".", ":", ";", ",")):
            paragraphs[i] = "## " + line
    return "\n\n".join(paragraphs)


if __name__ == "__main__":
    corpus = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
    )
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[1] / "samples" / "pmc"
    main(corpus, out)
