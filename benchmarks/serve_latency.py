"""Query latency through the HTTP service (``ragstate serve``) against the library call.

Builds the pipelines over every other one of the 48 sample articles (``--stride``; bodies
cut to ``--body-chars``, 1,500 by default, to keep the build short: the corpus the
retrieval tests search), starts the service with uvicorn on 127.0.0.1 in this
process (a real socket; the client keeps its connection open, as an application would),
then asks known-item queries (``ragstate.pipelines.known_items``: titles and abstract
sentences). Each query is asked of each pipeline twice in turn, interleaved: once by
``Pipeline.retrieve`` and once by ``POST /query`` (readiness ``fail`` both ways), so both
see the same machine load. Reports per pipeline p50 and p95 of the wall time each way and
their ratio (service / library); the documents must be the same both ways.

    python benchmarks/serve_latency.py --backend sqlite
    python benchmarks/serve_latency.py --backend postgres --queries 48
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

OFFLINE = ("basic", "crag", "colbert", "noderag", "graphrag", "hybrid")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, by linear interpolation."""
    ordered = sorted(values)
    at = q * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--body-chars", type=int, default=1500, help="cut article bodies to this many characters")
    parser.add_argument("--stride", type=int, default=2, help="take every n-th sample article")
    parser.add_argument("--pipelines", default=",".join(OFFLINE))
    parser.add_argument("--queries", type=int, default=40, help="known-item queries asked of each pipeline")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the corpus and store here (reused)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import httpx
    from heal import start_postgres  # the same throwaway server (benchmarks/ is on the path)
    from retrieval import write_corpus

    from ragstate import Project, spec_from_dict
    from ragstate.pipelines.known_items import known_items
    from ragstate.serve.app import ServeOptions, create_app, running

    names = [p for p in args.pipelines.split(",") if p]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ragstate-serve-"))
    corpus = write_corpus(work / "corpus", None, args.body_chars)
    articles = corpus.read_text(encoding="utf-8").splitlines(keepends=True)
    corpus.write_text("".join(articles[:: args.stride]), encoding="utf-8")
    server = None
    if args.backend == "sqlite":
        store = {"url": f"sqlite:///{work / 'store.db'}"}
    else:
        server = start_postgres(work / "pg")
        store = {"url": server.get_uri(), "schema": "bench"}
    spec = {
        "store": store,
        "source": {"path": str(corpus)},
        "pipelines": names,
        "models": {"default": {"threads": args.threads}},
    }
    try:
        with Project(spec_from_dict(spec, base_dir=work)) as project:
            t0 = time.perf_counter()
            record = project.apply()
            print(f"build: {record.status} in {time.perf_counter() - t0:.1f} s ({work})")
            if not record.converged:
                raise SystemExit(f"the build did not converge: {record.error}")
            source = project.source()
            items = known_items(list(source.load(list(source.snapshot({}).fresh))))[: args.queries]
            pipelines = {name: project.pipeline(name) for name in names}
            app = create_app(project, ServeOptions(max_k=max(100, args.k)))
            library: dict[str, list[float]] = {n: [] for n in names}
            service: dict[str, list[float]] = {n: [] for n in names}
            with running(app) as url, httpx.Client(base_url=url, timeout=120) as client:
                for name in names:  # warm up: models loaded, caches filled, the connection open
                    pipelines[name].retrieve(items[0].query, args.k)
                    client.post("/query", json={"pipeline": name, "text": items[0].query, "k": args.k})
                for item in items:
                    for name in names:
                        t = time.perf_counter()
                        direct = pipelines[name].retrieve(item.query, args.k)
                        library[name].append(time.perf_counter() - t)
                        t = time.perf_counter()
                        reply = client.post("/query", json={"pipeline": name, "text": item.query, "k": args.k})
                        service[name].append(time.perf_counter() - t)
                        reply.raise_for_status()
                        served = [r["doc_id"] for r in reply.json()["results"]]
                        assert served == direct.doc_ids, (name, item.query, served, direct.doc_ids)
            print(f"\n{len(items)} queries per pipeline, k = {args.k}, backend {args.backend}\n")
            print("| pipeline | library p50 | library p95 | service p50 | service p95 | ratio p50 | ratio p95 |")
            print("|---|---|---|---|---|---|---|")
            for name in names:
                lib = (statistics.median(library[name]), percentile(library[name], 0.95))
                srv = (statistics.median(service[name]), percentile(service[name], 0.95))
                cells = [f"{1000 * v:.0f} ms" for v in (*lib, *srv)]
                cells += [f"{srv[0] / lib[0]:.2f}", f"{srv[1] / lib[1]:.2f}"]
                print(f"| {name} | " + " | ".join(cells) + " |")
    finally:
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    main()
