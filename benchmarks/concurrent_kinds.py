"""Concurrent artifact kinds: all seven pipelines, built one kind at a time vs concurrently.

Builds N real articles (from ../shared/corpus when present, else the shipped sample) with
every pipeline enabled (document, chunk, token and entity embeddings, chunks, entities
with relations, full text) into an empty store, alternating R times between
``reconcile.concurrent_kinds: 1`` (each kind to completion before the next) and the
default (kinds at once; dependents per document), each on a fresh store, with the real
model loaded once beforehand. Prints the wall time of ``Project.apply()`` (observe, plan,
build, verify convergence), medians and the ratio, and the overlap the run record shows.

    python benchmarks/concurrent_kinds.py -n 24 --repeats 2 --backend sqlite
    python benchmarks/concurrent_kinds.py -n 24 --repeats 2 --backend postgres
"""

from __future__ import annotations

import argparse
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
sys.path.insert(0, str(REPO / "benchmarks"))

ALL = ["basic", "crag", "hyde", "colbert", "noderag", "graphrag", "hybrid"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=24, help="articles")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--body-chars", type=int, default=0, help="cut bodies to this many characters (0: whole)")
    parser.add_argument("--concurrent-kinds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from heal import load_records, start_postgres

    from ragstate import Project, spec_from_dict
    from ragstate.compute.embedders import make_embedder
    from ragstate.spec.model import ModelSpec

    model = {"device": args.device} | ({"threads": args.threads} if args.threads else {})
    make_embedder("default", ModelSpec(**model)).load()  # once, outside the clock, for both sides
    root = Path(tempfile.mkdtemp(prefix="ragstate-kinds-"))
    server = None
    try:
        corpus = root / "corpus"
        corpus.mkdir()
        chars = 0
        with open(corpus / "articles.jsonl", "w", encoding="utf-8") as f:
            for r in load_records(args.n):
                if args.body_chars:
                    r = {**r, "body": r.get("body", "")[: args.body_chars]}
                chars += sum(len(r.get(k) or "") for k in ("title", "abstract", "body"))
                f.write(json.dumps(r) + "\n")
        if args.backend == "postgres":
            server = start_postgres(root / "pg")
        times: dict[int, list[float]] = {1: [], args.concurrent_kinds: []}
        overlaps: list[float] = []
        for i in range(args.repeats):
            for n in (1, args.concurrent_kinds) if i % 2 == 0 else (args.concurrent_kinds, 1):
                name = f"r{i}_{n}"
                if server is None:
                    store = {"url": f"sqlite:///{root / (name + '.db')}"}
                else:
                    store = {"url": server.get_uri(), "schema": name}
                spec = {
                    "store": store,
                    "source": str(corpus),
                    "pipelines": ALL,
                    "models": {"default": model},
                    "reconcile": {"concurrent_kinds": n},
                }
                with Project(spec_from_dict(spec, base_dir=root)) as project:
                    t = time.perf_counter()
                    record = project.apply()
                    elapsed = time.perf_counter() - t
                assert record.converged, record.error
                times[n].append(elapsed)
                if record.schedule:
                    overlaps.append(record.schedule["overlap"])
                built = {k: c.rows for k, c in record.kinds.items()}
                print(f"  run {name}: {elapsed:.1f} s, rows {built}", flush=True)
        seq, conc = statistics.median(times[1]), statistics.median(times[args.concurrent_kinds])
        print(f"backend {args.backend}, {args.n} articles ({chars:,} characters), 7 pipelines, {args.repeats} repeats")
        print(f"one kind at a time (concurrent_kinds 1):  {seq:.1f} s")
        print(f"concurrent (concurrent_kinds {args.concurrent_kinds}):        {conc:.1f} s")
        print(f"ratio sequential / concurrent:            {seq / conc:.2f}")
        print(f"overlap in the run records (work / wall): {statistics.median(overlaps):.2f}")
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
