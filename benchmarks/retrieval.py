"""Retrieval quality and latency of each pipeline, with known-item queries.

Builds every pipeline over a corpus of real articles (the shipped sample, 48 articles, by
default; ``--shared N`` takes the first N of ../shared/corpus instead), then asks, for each
article, its title and one sentence of its abstract (``ragstate.pipelines.known_items``):
the article is the one right answer. Reports per pipeline recall@1 and recall@10 (all
queries, titles, sentences) and query latency: the median of ``retrieve`` (readiness check
included) and of the readiness check alone, and the ratio of the median to basic's,
measured in the same run with the pipelines interleaved query by query.

HyDE needs a text generator: with ``--generator-url`` (an OpenAI-compatible server) it is
measured too; otherwise it is listed as not run.

    python benchmarks/retrieval.py --backend sqlite
    python benchmarks/retrieval.py --backend postgres --body-chars 3000
    python benchmarks/retrieval.py --shared 200 --pipelines basic,hybrid,crag
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "corpus" / "pmc_oa_898.jsonl.gz"
ALL = ("basic", "crag", "hyde", "colbert", "noderag", "graphrag", "hybrid")


def write_corpus(folder: Path, shared: int | None, body_chars: int | None) -> Path:
    """One JSONL file of the articles (bodies cut to ``body_chars`` when given)."""
    if shared:
        with gzip.open(SHARED, "rt", encoding="utf-8") as f:
            records = [json.loads(line) for _, line in zip(range(shared), f, strict=False)]
    else:
        from ragstate.sources.folder import FolderSource
        from ragstate.spec.model import SourceSpec

        source = FolderSource(SourceSpec(path=REPO / "samples" / "pmc"))
        docs = list(source.load(list(source.snapshot({}).fresh)))
        records = [
            {
                "doc_id": d.doc_id.rsplit("/", 1)[-1].split(".")[0],
                "title": d.title,
                "abstract": d.abstract,
                "body": d.body,
            }
            for d in docs
        ]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "articles.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            body = r["body"]
            if body_chars is not None and len(body) > body_chars:
                cut = body.rfind("\n\n", 0, body_chars)
                body = body[: cut if cut > 0 else body_chars]
            f.write(json.dumps({"doc_id": r["doc_id"], "title": r["title"], "abstract": r["abstract"], "body": body}))
            f.write("\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--shared", type=int, default=None, help="first N articles of ../shared/corpus")
    parser.add_argument("--body-chars", type=int, default=None, help="cut article bodies to this many characters")
    parser.add_argument("--pipelines", default=",".join(ALL))
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the corpus and store here (reused)")
    parser.add_argument("--generator-url", default=None, help="OpenAI-compatible server for HyDE")
    parser.add_argument("--generator-model", default="default")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from heal import start_postgres  # the same throwaway server (benchmarks/ is on the path)

    from ragstate import Project, spec_from_dict
    from ragstate.pipelines.known_items import known_items, rank_of, recall_at

    names = [p for p in args.pipelines.split(",") if p]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ragstate-retrieval-"))
    corpus = write_corpus(work / "corpus", args.shared, args.body_chars)
    server = None
    if args.backend == "sqlite":
        store = {"url": f"sqlite:///{work / 'store.db'}"}
    else:
        server = start_postgres(work / "pg")
        store = {"url": server.get_uri(), "schema": "bench"}
    if args.generator_url is None and "hyde" in names:
        names.remove("hyde")
        print("hyde: not run (no --generator-url)")
    # Only what the measured pipelines read is built.
    spec = {
        "store": store,
        "source": {"path": str(corpus)},
        "pipelines": names,
        "models": {"default": {"threads": args.threads}},
    }
    if args.generator_url:
        spec["generators"] = {"bench": {"url": args.generator_url, "model": args.generator_model}}
        spec["query"] = {"hyde": {"generator": "bench"}}
    try:
        with Project(spec_from_dict(spec, base_dir=work)) as project:
            t0 = time.perf_counter()
            record = project.apply()
            print(f"build: {record.status} in {time.perf_counter() - t0:.1f} s ({work})")
            source = project.source()
            docs = list(source.load(list(source.snapshot({}).fresh)))
            items = known_items(docs)
            pipelines = {name: project.pipeline(name) for name in names}
            for name in names:  # warm up: models loaded, caches filled
                pipelines[name].retrieve(items[0].query, args.k)
            ranks: dict[str, dict[str, list[int | None]]] = {n: {"title": [], "sentence": []} for n in names}
            total: dict[str, list[float]] = {n: [] for n in names}
            check: dict[str, list[float]] = {n: [] for n in names}
            for item in items:  # interleaved: every pipeline answers each query in turn
                for name in names:
                    result = pipelines[name].retrieve(item.query, args.k)
                    ranks[name][item.form].append(rank_of(result.doc_ids, item.doc_id))
                    total[name].append(result.timings["total_s"])
                    check[name].append(result.timings["readiness_s"])
            base = statistics.median(total[names[0]])
            print(
                f"\n{len(docs)} articles, {len(items)} known-item queries "
                f"({sum(i.form == 'title' for i in items)} titles, {sum(i.form == 'sentence' for i in items)} "
                f"sentences), k = {args.k}, backend {args.backend}\n"
            )
            print(
                "| pipeline | recall@1 | recall@10 | titles r@1 / r@10 | sentences r@1 / r@10 | "
                f"median query | of which readiness | ratio to {names[0]} |"
            )
            print("|---|---|---|---|---|---|---|---|")
            for name in names:
                every = ranks[name]["title"] + ranks[name]["sentence"]
                t, s = ranks[name]["title"], ranks[name]["sentence"]
                median = statistics.median(total[name])
                cells = [f"{recall_at(every, 1):.3f}", f"{recall_at(every, 10):.3f}"]
                cells += [f"{recall_at(r, 1):.3f} / {recall_at(r, 10):.3f}" for r in (t, s)]
                cells += [f"{1000 * median:.0f} ms", f"{1000 * statistics.median(check[name]):.0f} ms"]
                print(f"| {name} | " + " | ".join(cells) + f" | {median / base:.2f} |")
    finally:
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    main()
