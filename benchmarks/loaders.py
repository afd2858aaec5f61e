"""Document loaders: pages (or files) per second against the bare library call, same files.

Writes PDF, DOCX and HTML files from real articles (the sample's, or ``--corpus`` JSONL
such as ``../shared/corpus/pmc_oa_898.jsonl.gz``) with the writers the tests use
(``tests/documents.py``: fpdf2 one- and two-column with running headers, python-docx, an
HTML template), then times, interleaved over R rounds:

* PDF: ragstate's loader (``sources.pdf``: pypdf with font sizes, running lines dropped,
  paragraphs, headings, pages) against bare ``pypdf`` ``extract_text`` per page, and
  bare ``pdfminer.six`` ``extract_text`` (the library not chosen), with the word
  similarity of each one's text to the source;
* DOCX: the loader against bare ``python-docx`` paragraph texts;
* HTML: the loader against bare ``trafilatura.extract``.

Prints medians and ratios (loader / bare). Pages: a PDF's pages; a DOCX or an HTML page
counts as one.

    python benchmarks/loaders.py -n 8 --repeats 3
    python benchmarks/loaders.py --corpus ../shared/corpus/pmc_oa_898.jsonl.gz -n 40 --repeats 3
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "src"))

import documents as D  # noqa: E402
from ragstate.sources.loaders import Limits, loader  # noqa: E402

LIMITS = Limits(max_document_bytes=50_000_000, max_pages=10_000)


def corpus_articles(path: str | None, n: int) -> list[dict]:
    if path is None:
        return D.articles()[:n]
    out = []
    with gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8") as f:
        for line in f:
            a = json.loads(line)
            if a.get("body") and a.get("abstract") and len(a["body"]) < 60_000:
                out.append(a)
            if len(out) == n:
                break
    return out


def bare_pypdf(data: bytes) -> str:
    import pypdf

    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)


def bare_pdfminer(data: bytes) -> str:
    from pdfminer.high_level import extract_text

    return extract_text(io.BytesIO(data))


def bare_docx(data: bytes) -> str:
    import docx

    return "\n".join(p.text for p in docx.Document(io.BytesIO(data)).paragraphs)


def bare_html(data: bytes) -> str:
    import trafilatura

    return trafilatura.extract(data) or ""


def ours(fmt: str):
    ld = loader(fmt)
    return lambda data: ld.read(data, "x." + fmt, LIMITS)[0].text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", help="JSONL(.gz) of articles (default: the shipped sample)")
    ap.add_argument("-n", type=int, default=8, help="articles")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    arts = corpus_articles(args.corpus, args.n)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files: dict[str, list[tuple[dict, bytes]]] = {"pdf": [], "docx": [], "html": []}
        for i, a in enumerate(arts):
            cols = 2 if i % 2 else 1
            files["pdf"].append((a, D.make_pdf(a, root / f"{i}.pdf", columns=cols, running=bool(i % 2)).read_bytes()))
            files["docx"].append((a, D.make_docx(a, root / f"{i}.docx").read_bytes()))
            files["html"].append((a, D.make_html(a, root / f"{i}.html").read_bytes()))
        import pypdf

        pages = {
            "pdf": sum(len(pypdf.PdfReader(io.BytesIO(b)).pages) for _, b in files["pdf"]),
            "docx": len(files["docx"]),
            "html": len(files["html"]),
        }
        cases = [
            ("pdf", "ragstate pdf loader", ours("pdf")),
            ("pdf", "bare pypdf extract_text", bare_pypdf),
            ("pdf", "bare pdfminer.six extract_text", bare_pdfminer),
            ("docx", "ragstate docx loader", ours("docx")),
            ("docx", "bare python-docx paragraphs", bare_docx),
            ("html", "ragstate html loader", ours("html")),
            ("html", "bare trafilatura.extract", bare_html),
        ]
        for fmt, _, fn in cases:  # warm up: imports and first-call caches are not measured
            fn(files[fmt][0][1])
        times: dict[str, list[float]] = {name: [] for _, name, _ in cases}
        sims: dict[str, float] = {}
        for r in range(args.repeats):
            for fmt, name, fn in cases:
                t0 = time.perf_counter()
                texts = [fn(b) for _, b in files[fmt]]
                times[name].append(time.perf_counter() - t0)
                if r == 0:
                    src = [D.title_abstract_body(a, latin=fmt == "pdf") for a, _ in files[fmt]]
                    sims[name] = statistics.mean(D.similarity(s, t) for s, t in zip(src, texts, strict=True))
        print(f"{len(arts)} articles; pages: {pages}; medians of {args.repeats} rounds")
        print(f"{'':34} {'pages/s':>9} {'ratio':>7} {'similarity':>10}")
        base: dict[str, float] = {}
        for fmt, name, _ in cases:
            rate = pages[fmt] / statistics.median(times[name])
            base.setdefault(fmt, rate)
            ratio = "" if name.startswith("ragstate") else f"{base[fmt] / rate:7.2f}"
            print(f"{name:34} {rate:9.1f} {ratio:>7} {sims[name]:10.3f}")
        print("ratio: the loader's pages/s over this bare call's (below 1: the loader is slower)")


if __name__ == "__main__":
    main()
