"""A folder of PDF, Word and HTML files reconciled end to end through the CLI, on both backends,
with the real model.

Bad files are quarantined with their reasons (exit 4) while the rest converges; a query's
``--json`` results carry the page and section of the chunk that matched; re-saving a PDF
with new metadata and the same text is no drift.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from typer.testing import CliRunner

from documents import articles, latin, make_docx, make_html, make_image_only_pdf, make_pdf, sections
from helpers import artifact_ids
from ragstate.cli import app
from ragstate.project import Project

runner = CliRunner()


def ragstate(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, [*args, "--json"])
    try:
        return result.exit_code, json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {result.exit_code}): {result.stdout}\n{result.stderr}") from None


def test_mixed_folder_reconciles_with_pages_and_sections(spec_file, tmp_path: Path) -> None:
    docs = tmp_path / "mixed"
    docs.mkdir()
    arts = articles()
    make_pdf(arts[0], docs / "report.pdf", max_sections=4, running=True)
    make_docx(arts[1], docs / "memo.docx", max_sections=3)
    make_html(arts[2], docs / "page.html", max_sections=3)
    make_image_only_pdf(docs / "scan.pdf")
    (docs / "cut.docx").write_bytes((docs / "memo.docx").read_bytes()[:2000])
    make_pdf(arts[3], docs / "locked.pdf", max_sections=1, password="secret")
    with zipfile.ZipFile(docs / "bomb.docx", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"\0" * (64 * 2**20))
    with open(docs / "huge.html", "wb") as f:
        f.write(b"<html><body><p>" + b"word " * (10 * 2**20) + b"</p></body></html>")  # 50 MiB
    cfg = str(
        spec_file(
            source={"path": str(docs), "formats": ["pdf", "docx", "html"]},
            pipelines=["noderag"],
        )
    )
    code, record = ragstate("apply", "-c", cfg)
    assert code == 4, record
    code, listed = ragstate("quarantine", "list", "-c", cfg)
    reasons = {e["item"]: e["reason"] for e in listed["entries"]}
    assert reasons == {
        "scan.pdf": "no_text_layer",
        "cut.docx": "malformed",
        "locked.pdf": "encrypted",
        "bomb.docx": "too_large",
        "huge.html": "too_large",
    }
    # nothing of a quarantined file was written
    with Project.from_file(cfg) as project:
        for kind in ("chunks", "chunk_embeddings"):
            assert set(artifact_ids(project, kind)) == {"report.pdf", "memo.docx", "page.html"}

    # a paragraph of the PDF's last section, asked word for word, is found with its place
    heading, paras = sections(arts[0], max_sections=4)[-1]
    code, result = ragstate("query", "noderag", latin(paras[0])[:300], "-k", "1", "-c", cfg)
    assert code == 0, result
    (hit,) = result["results"]
    assert hit["doc_id"] == "report.pdf"
    assert hit["section"] == latin(heading), (hit["passage"][:200], hit["details"])
    assert isinstance(hit["page"], int) and hit["page"] >= 2 and hit["page_end"] >= hit["page"]
    text = runner.invoke(app, ["query", "noderag", latin(paras[0])[:300], "-k", "1", "-c", cfg]).stdout
    assert re.search(rf"\(pp?\. {hit['page']}\S*, {re.escape(latin(heading))}\)", text), text

    # the same text saved again with other metadata: nothing to do
    make_pdf(arts[0], docs / "report.pdf", max_sections=4, running=True, metadata={"author": "New Author"})
    code, plan = ragstate("plan", "-c", cfg)
    assert code == 0 and plan["in_sync"], plan
