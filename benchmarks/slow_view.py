"""View fallbacks: a slow source view read directly, from a copy, or from a materialised view.

The user's documents live as paragraphs (``paragraphs(article_id, seq, text)``, one row a
paragraph of N real articles) and the mapped "table" is the user's own view that
reassembles each article with an aggregate (``string_agg`` / ``group_concat`` ordered by
``seq``): every read of it re-aggregates. For each ``source.mode`` (view; copy;
materialized on PostgreSQL), alternating R times on stores of their own, it times

* ``build``: the first apply (the deterministic ``hash`` embedder, so the figure is the
  engine's reading of the source, not a model), and
* ``plan``: a no-op plan afterwards (what a daemon runs every interval), and
* ``edit``: changing K articles' paragraphs, then apply (a refresh plus K loads).

    python benchmarks/slow_view.py -n 300 --repeats 3 --backend sqlite
    python benchmarks/slow_view.py -n 300 --repeats 3 --backend postgres
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=300, help="articles")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--edits", type=int, default=10, help="articles changed before the last apply")
    args = parser.parse_args()

    from heal import load_records, start_postgres

    from ragstate import Project, spec_from_dict

    records = load_records(args.n)
    root = Path(tempfile.mkdtemp(prefix="ragstate-slowview-"))
    server = None
    try:
        if args.backend == "sqlite":
            import apsw

            db = root / "store.db"

            def run(sql: str, rows: list[tuple] | None = None) -> None:
                conn = apsw.Connection(str(db))
                try:
                    if rows is None:
                        conn.execute(sql)
                    else:
                        with conn:
                            conn.executemany(sql, rows)
                finally:
                    conn.close()

            agg = "group_concat(p.text, char(10) || char(10) ORDER BY p.seq)"
            table = "articles_v"
            store_of = {"url": f"sqlite:///{db}"}
        else:
            import psycopg

            server = start_postgres(root / "pg")
            url = server.get_uri()

            def run(sql: str, rows: list[tuple] | None = None) -> None:
                with psycopg.connect(url, autocommit=True) as conn:
                    if rows is None:
                        conn.execute(sql)
                    else:
                        with conn.cursor() as cur:
                            cur.executemany(sql.replace("?", "%s"), rows)

            run("CREATE SCHEMA app")
            agg = "string_agg(p.text, chr(10) || chr(10) ORDER BY p.seq)"
            table = "app.articles_v"
            store_of = {"url": url}
        prefix = "" if args.backend == "sqlite" else "app."
        run(f"CREATE TABLE {prefix}articles (id INTEGER PRIMARY KEY, title TEXT, abstract TEXT)")
        run(
            f"CREATE TABLE {prefix}paragraphs "
            "(article_id INTEGER, seq INTEGER, text TEXT, PRIMARY KEY (article_id, seq))"
        )
        articles = [(i, r["title"], r["abstract"]) for i, r in enumerate(records)]
        run(f"INSERT INTO {prefix}articles VALUES (?, ?, ?)", articles)
        paragraphs = [
            (i, j, p) for i, r in enumerate(records) for j, p in enumerate(r.get("body", "").split("\n\n")) if p.strip()
        ]
        run(f"INSERT INTO {prefix}paragraphs VALUES (?, ?, ?)", paragraphs)
        run(
            f"CREATE VIEW {prefix}articles_v AS SELECT a.id, a.title, a.abstract, {agg} AS body "
            f"FROM {prefix}articles a JOIN {prefix}paragraphs p ON p.article_id = a.id "
            "GROUP BY a.id, a.title, a.abstract"
        )
        modes = ["view", "copy"] + (["materialized"] if args.backend == "postgres" else [])
        results: dict[str, dict[str, list[float]]] = {m: {"build": [], "plan": [], "edit": []} for m in modes}
        for i in range(args.repeats):
            for mode in modes if i % 2 == 0 else list(reversed(modes)):
                name = f"r{i}_{mode[:4]}"
                store = dict(store_of)
                if args.backend == "sqlite":
                    store["prefix"] = name + "_"
                else:
                    store["schema"] = name
                spec = {
                    "store": store,
                    "source": {
                        "table": table,
                        "id": "id",
                        "text": "body",
                        "title": "title",
                        "abstract": "abstract",
                        "mode": mode,
                        "name": "articles",
                    },
                    "pipelines": ["basic"],
                    "models": {"default": {"provider": "hash", "dimension": 384}},
                }
                with Project(spec_from_dict(spec, base_dir=root)) as project:
                    t = time.perf_counter()
                    assert project.apply().converged
                    results[mode]["build"].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    assert project.plan().in_sync
                    results[mode]["plan"].append(time.perf_counter() - t)
                    edited = [(f"edit {name}", k, 0) for k in range(args.edits)]
                    run(f"UPDATE {prefix}paragraphs SET text = ? WHERE article_id = ? AND seq = ?", edited)
                    t = time.perf_counter()
                    record = project.apply()
                    results[mode]["edit"].append(time.perf_counter() - t)
                    assert record.converged and record.kinds["doc_embeddings"].built == args.edits, record.to_dict()
        chars = sum(len(p[2]) for p in paragraphs)
        print(
            f"backend {args.backend}: {args.n} articles as {len(paragraphs):,} paragraphs ({chars:,} characters), "
            f"{args.repeats} repeats; medians"
        )
        base = {k: statistics.median(results["view"][k]) for k in ("build", "plan", "edit")}
        for mode in modes:
            m = {k: statistics.median(results[mode][k]) for k in ("build", "plan", "edit")}
            print(
                f"  {mode:<13} build {m['build']:6.2f} s ({base['build'] / m['build']:.2f}x)   "
                f"no-op plan {m['plan']:6.2f} s ({base['plan'] / m['plan']:.2f}x)   "
                f"edit {args.edits} + apply {m['edit']:6.2f} s ({base['edit'] / m['edit']:.2f}x)"
            )
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
