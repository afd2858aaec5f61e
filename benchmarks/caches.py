"""In-process caches: a no-op plan with and without them, same store, same run, interleaved.

A no-op plan (nothing drifted) is what a daemon runs most: observe the source and the
store, diff, find nothing. Two caches serve it:

* the catalog snapshot: within an observation, the columns and indexes of ragstate's
  tables come from one read of the catalog instead of a query per table;
* rendered statements: each template is rendered once per dialect (so the drivers'
  prepared-statement caches see the same text).

Builds every pipeline over N documents (the deterministic ``hash`` embedder: this
measures the engine, not the model), then alternates R times a plan with the caches and
one with both disabled, and prints medians and the ratio.

    python benchmarks/caches.py --backend sqlite -n 200 --repeats 15
    python benchmarks/caches.py --backend postgres -n 200 --repeats 15
"""

from __future__ import annotations

import argparse
import contextlib
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


@contextlib.contextmanager
def caches_off():
    """Both caches disabled: a snapshot that never starts, rendering every time."""
    from ragstate.stores.base import Store
    from ragstate.stores.dialect import Dialect

    snapshot, render = Store.catalog_snapshot, Dialect.render

    @contextlib.contextmanager
    def no_snapshot(self, session):
        yield

    Store.catalog_snapshot = no_snapshot  # type: ignore[method-assign]
    Dialect.render = Dialect.render_uncached  # type: ignore[method-assign]
    try:
        yield
    finally:
        Store.catalog_snapshot = snapshot  # type: ignore[method-assign]
        Dialect.render = render  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="documents")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    from heal import load_records, start_postgres

    from ragstate import Project, spec_from_dict

    root = Path(tempfile.mkdtemp(prefix="ragstate-caches-"))
    server = None
    try:
        corpus = root / "corpus"
        corpus.mkdir()
        import json

        with open(corpus / "articles.jsonl", "w", encoding="utf-8") as f:
            for r in load_records(args.n):
                r = dict(r)
                r["body"] = r.get("body", "")[:6000]
                f.write(json.dumps(r) + "\n")
        if args.backend == "sqlite":
            store = {"url": f"sqlite:///{root / 'store.db'}"}
        else:
            server = start_postgres(root / "pg")
            store = {"url": server.get_uri(), "schema": "bench"}
        spec = {
            "store": store,
            "source": str(corpus),
            "pipelines": ALL,
            "models": {"default": {"provider": "hash", "dimension": 384, "max_tokens": 256}},
        }
        with Project(spec_from_dict(spec, base_dir=root)) as project:
            assert project.apply().converged
            assert project.plan().in_sync
            on, off = [], []
            for _ in range(args.repeats):
                t = time.perf_counter()
                assert project.plan().in_sync
                on.append(time.perf_counter() - t)
                with caches_off():
                    t = time.perf_counter()
                    assert project.plan().in_sync
                    off.append(time.perf_counter() - t)
        m_on, m_off = statistics.median(on), statistics.median(off)
        print(f"backend {args.backend}, {args.n} documents, 7 pipelines, {args.repeats} repeats")
        print(f"no-op plan without caches: {m_off * 1000:.1f} ms")
        print(f"no-op plan with caches:    {m_on * 1000:.1f} ms")
        print(f"ratio without / with:      {m_off / m_on:.2f}")
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
