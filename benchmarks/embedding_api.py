"""Healing through an embedding API: ragstate's apply against the server's own throughput.

Starts the test suite's OpenAI-compatible server (``tests/openai_server.py``: the installed
all-MiniLM-L6-v2 behind ``POST /v1/embeddings``, one forward pass at a time) in its own
process on 127.0.0.1, builds a corpus of N real articles, and measures, in the same run:

* server: the exact texts ragstate embeds, sent straight to the server in requests of
  ``--batch`` texts, one after another (its own throughput, no ragstate);
* ragstate: ``Project.apply()`` on an empty store with ``provider: openai``, for each
  ``max_concurrency`` given (observe, plan, read files, cut texts, send requests, write
  vectors and ledger rows, verify the new generation; the golden queries are off, so the
  work measured is the healing's).

Prints docs/s and the ratio ragstate / server for each concurrency (machines here are shared
and noisy: only ratios of figures measured side by side mean anything).

    python benchmarks/embedding_api.py -n 64 --concurrency 1 4 16 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from heal import load_records, write_corpus  # noqa: E402


def start_server(threads: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "openai_server.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit("the embedding server did not start")
    return proc, url


def post(url: str, texts: list[str]) -> None:
    body = json.dumps({"model": "all-MiniLM-L6-v2", "input": texts, "encoding_format": "float"}).encode()
    request = urllib.request.Request(url + "/embeddings", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        data = json.loads(response.read())
    assert len(data["data"]) == len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=96, help="documents to heal")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--batch", type=int, default=16, help="texts per request (both sides)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    parser.add_argument("--repeats", type=int, default=2, help="rounds (server, then each concurrency); medians")
    args = parser.parse_args()

    from ragstate import Project, spec_from_dict
    from ragstate.artifacts.doc_embeddings import DocEmbeddings
    from ragstate.compute.embedders import make_embedder
    from ragstate.sources.loaders import parse_jsonl_record

    work = Path(tempfile.mkdtemp(prefix="ragstate-bench-api-"))
    proc, url = start_server(args.threads)
    try:
        records = load_records(args.n)
        corpus = write_corpus(work / "corpus", records)

        def spec(name: str, concurrency: int) -> dict:
            model = {
                "provider": "openai",
                "url": url,
                "model": "all-MiniLM-L6-v2",
                "dimension": 384,
                "tokenizer": "all-MiniLM-L6-v2",
                "max_batch_texts": args.batch,
                "max_concurrency": concurrency,
            }
            return {
                "store": {"url": f"sqlite:///{work / f'{name}.db'}"},
                "source": str(corpus),
                "models": {"default": model},
                "reconcile": {"batch_size": 256},
                "generations": {"golden": {"queries": 0}},
            }

        # The exact texts ragstate sends: the kind's own text, cut by the embedder.
        probe = Project(spec_from_dict(spec("probe", 1)))
        kind = DocEmbeddings()
        recipe = kind.recipe(probe.spec)
        docs = [parse_jsonl_record(json.dumps(r).encode(), "docs.jsonl", 0, pos=0, offset=0) for r in records]
        texts, _ = make_embedder("default", probe.spec.models["default"]).cut([kind.text(d, recipe) for d in docs])
        probe.close()
        post(url, texts[: args.batch])  # warm the server up

        # Rounds alternate the server alone and each concurrency, so that a busy spell of a
        # shared machine falls on all of them alike.
        server_times: list[float] = []
        times: dict[int, list[float]] = {c: [] for c in args.concurrency}
        for r in range(args.repeats):
            t0 = time.perf_counter()
            for i in range(0, len(texts), args.batch):
                post(url, texts[i : i + args.batch])
            server_times.append(time.perf_counter() - t0)
            for c in args.concurrency:
                project = Project(spec_from_dict(spec(f"r{r}c{c}", c)))
                t0 = time.perf_counter()
                record = project.apply()
                times[c].append(time.perf_counter() - t0)
                assert record.converged and record.kinds["doc_embeddings"].built == args.n, record
                project.close()
        server_s = statistics.median(server_times)
        rows = [(c, statistics.median(ts)) for c, ts in times.items()]

        print(
            f"documents={args.n} batch={args.batch} server_threads={args.threads} repeats={args.repeats} "
            f"python={sys.version.split()[0]}"
        )
        print(
            f"server alone (sequential requests): {server_s:7.2f} s  {args.n / server_s:6.2f} docs/s  (runs: "
            + ", ".join(f"{t:.2f}" for t in server_times)
            + ")"
        )
        for c, seconds in rows:
            print(
                f"ragstate apply, max_concurrency {c:>2}: {seconds:7.2f} s  {args.n / seconds:6.2f} docs/s  "
                f"ratio ragstate/server {seconds / server_s:.3f}  (runs: "
                + ", ".join(f"{t:.2f}" for t in times[c])
                + ")"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
