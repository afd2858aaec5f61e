"""Write samples/mixed/: three of the sample's articles as a PDF, a Word file and a web page.

Made with the same writers as the tests (tests/documents.py: fpdf2, python-docx, an HTML
template), cut to their first sections so the files stay small. Needs the dev extra.

    python scripts/make_mixed_sample.py
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import documents as D  # noqa: E402


def main() -> None:
    out = REPO / "samples" / "mixed"
    out.mkdir(exist_ok=True)
    arts = {a["doc_id"]: a for a in D.articles()}
    D.make_pdf(arts["PMC12431569"], out / "PMC12431569.pdf", columns=2, running=True, max_sections=5)
    D.make_docx(arts["PMC12431823"], out / "PMC12431823.docx", max_sections=4)
    D.make_html(arts["PMC12430912"], out / "PMC12430912.html", max_sections=4)
    for p in sorted(out.iterdir()):
        print(p.relative_to(REPO), p.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
