"""What a verified switch costs beside the build, and what a rollback costs: same run.

Builds a corpus of N real articles (as ``heal.py``), then R times, each on a fresh store:
apply (generation 1), change the embedded text and apply again (generation 2: build,
vector index, verification with the golden queries, switch), roll back (generation 1).
Prints, from the run records, the medians of the build, the verification and the switch
of generation 2, and of the rollback, each as a ratio to the build of generation 2.

    python benchmarks/switch.py -n 200 --backend sqlite
    python benchmarks/switch.py -n 200 --backend postgres
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from heal import load_records, start_postgres, write_corpus  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="documents")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()

    from ragstate import Project, spec_from_dict

    work = Path(tempfile.mkdtemp(prefix="ragstate-bench-"))
    server = start_postgres(work / "pg") if args.backend == "postgres" else None
    try:
        corpus = write_corpus(work / "corpus", load_records(args.n))

        def spec(i: int, text: str) -> dict:
            store = (
                {"url": f"sqlite:///{work / f'store{i}.db'}"}
                if server is None
                else {"url": server.get_uri(), "schema": f"bench{i}"}
            )
            return {
                "store": store,
                "source": str(corpus),
                "models": {"default": {"threads": args.threads}},
                "artifacts": {"doc_embeddings": {"text": text}},
                "reconcile": {"batch_size": 256},
            }

        rows: dict[str, list[float]] = {"build": [], "verify": [], "index": [], "switch": [], "rollback": []}
        for i in range(args.repeats):
            with Project(spec_from_dict(spec(i, "{title}\n\n{summary}"))) as first:
                assert first.apply().converged
            with Project(spec_from_dict(spec(i, "{title}\n\n{abstract}"))) as second:
                record = second.apply()
                assert record.converged and record.kinds["doc_embeddings"].switched, record.error
                back = second.rollback("doc_embeddings")
            rows["build"].append(record.kinds["doc_embeddings"].build_seconds)
            for what in ("verify", "index", "switch"):
                rows[what].append(record.timings.get(f"{what}_s", 0.0))
            rows["rollback"].append(back.timings["total_s"])
            golden = record.verification[0]["checks"][0]["golden"]
            print(
                f"  run {i + 1}: golden recall@{golden['k']} {golden['recall']:.2f} vs {golden['active_recall']:.2f} "
                f"over {golden['queries']} queries"
            )

        build = statistics.median(rows["build"])
        print(f"backend={args.backend} documents={args.n} repeats={args.repeats} python={sys.version.split()[0]}")
        for what, times in rows.items():
            t = statistics.median(times)
            print(
                f"{what:<9}: {t:8.3f} s  ({t / build:.3f} of the build)  runs: " + ", ".join(f"{x:.3f}" for x in times)
            )
    finally:
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    main()
