"""Large corpora from real text: N documents derived deterministically from PMC articles.

The base is ``../shared/corpus/pmc_oa_898.jsonl.gz`` when it exists, else the sample
shipped in ``samples/pmc`` (48 articles). Document ``i`` is derived from base article
``i mod B`` (variant ``v = i div B``): variant 0 is the article itself; a later variant
rotates the sentences of its abstract by ``v``, adds one sentence of another article's
abstract and takes other paragraphs of its body, so every document is real text and
(nearly) every embedded text is distinct. Bodies are cut to ``body_chars`` so that a
million documents fit on a disk (~3 KB a document).

Written streaming, never holding more than one document: JSONL shards of
``per_file`` documents (``layout="jsonl"``) or one Markdown file per document
(``layout="files"``), in a stable order. The same arguments always give the same bytes.

    python benchmarks/corpus.py OUT -n 100000              # 100 shards of 1,000
    python benchmarks/corpus.py OUT -n 10000 --layout files
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "corpus" / "pmc_oa_898.jsonl.gz"
SAMPLE = REPO / "samples" / "pmc"

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def base_records() -> list[dict[str, str]]:
    """The real articles every derived document comes from (doc_id, title, abstract, body)."""
    if SHARED.exists():
        with gzip.open(SHARED, "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
    else:
        from ragstate.sources.folder import FolderSource
        from ragstate.spec.model import SourceSpec

        source = FolderSource(SourceSpec(path=SAMPLE))
        rows = [
            {"doc_id": d.doc_id.replace("/", "_"), "title": d.title, "abstract": d.abstract, "body": d.body}
            for d in source.load(list(source.snapshot({}).fresh))
        ]
    out = []
    for r in sorted(rows, key=lambda r: r["doc_id"]):
        title = (r.get("title") or "").strip()
        abstract = (r.get("abstract") or "").strip()
        body = (r.get("body") or "").strip()
        if title and (abstract or body):
            out.append({"doc_id": r["doc_id"], "title": title, "abstract": abstract, "body": body})
    return out


def derive(base: list[dict[str, str]], i: int, body_chars: int) -> dict[str, str]:
    """Document ``i`` (deterministic: a function of the base and ``i`` only)."""
    n = len(base)
    r = base[i % n]
    v = i // n
    paragraphs = [p for p in r["body"].split("\n\n") if p.strip()] or [""]
    if v == 0:
        return {
            "doc_id": r["doc_id"],
            "title": r["title"],
            "abstract": r["abstract"],
            "body": _cut(paragraphs, 0, body_chars),
        }
    donor = base[(i * 7919 + 13) % n]
    sentences = _SENTENCE.split(r["abstract"]) if r["abstract"] else [p for p in paragraphs[:3]]
    k = v % max(1, len(sentences))
    donor_sentences = _SENTENCE.split(donor["abstract"] or donor["body"][:600])
    extra = donor_sentences[v % len(donor_sentences)]
    abstract = " ".join(sentences[k:] + sentences[:k] + [extra]).strip()
    return {
        "doc_id": f"{r['doc_id']}-v{v}",
        "title": r["title"],
        "abstract": abstract,
        "body": _cut(paragraphs, v, body_chars),
    }


def _cut(paragraphs: list[str], start: int, limit: int) -> str:
    out: list[str] = []
    size = 0
    for j in range(len(paragraphs)):
        p = paragraphs[(start + j) % len(paragraphs)]
        if out and size + len(p) > limit:
            break
        out.append(p[:limit])
        size += len(p) + 2
    return "\n\n".join(out)


def documents(n: int, *, body_chars: int = 1500) -> Iterator[dict[str, str]]:
    base = base_records()
    for i in range(n):
        yield derive(base, i, body_chars)


def write_corpus(
    out: Path, n: int, *, layout: str = "jsonl", per_file: int = 1000, body_chars: int = 1500, start: int = 0
) -> Path:
    """Write documents ``start`` … ``n - 1`` under ``out`` (created); returns ``out``.

    ``start`` > 0 appends to a corpus written before with the same arguments (the
    shards or files of documents below ``start`` are left as they are).
    """
    out.mkdir(parents=True, exist_ok=True)
    base = base_records()
    if layout == "jsonl":
        f = None
        try:
            for i in range(start, n):
                if f is None or i % per_file == 0:
                    if f is not None:
                        f.close()
                    f = open(out / f"shard-{i // per_file:05d}.jsonl", "a", encoding="utf-8")
                f.write(json.dumps(derive(base, i, body_chars), ensure_ascii=False) + "\n")
        finally:
            if f is not None:
                f.close()
    elif layout == "files":
        for i in range(start, n):
            d = derive(base, i, body_chars)
            folder = out / f"d{i // per_file:05d}"
            folder.mkdir(exist_ok=True)
            (folder / f"{d['doc_id']}.md").write_text(
                f"# {d['title']}\n\n## Abstract\n\n{d['abstract']}\n\n{d['body']}\n", encoding="utf-8"
            )
    else:
        raise ValueError(f"layout {layout!r}: jsonl or files")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("-n", type=int, default=100_000, help="documents")
    parser.add_argument("--layout", choices=["jsonl", "files"], default="jsonl")
    parser.add_argument("--per-file", type=int, default=1000, help="documents per JSONL shard (or per folder)")
    parser.add_argument("--body-chars", type=int, default=1500, help="body characters kept per document")
    args = parser.parse_args()
    write_corpus(args.out, args.n, layout=args.layout, per_file=args.per_file, body_chars=args.body_chars)
    print(f"wrote {args.n} documents to {args.out} ({args.layout})")


if __name__ == "__main__":
    main()
