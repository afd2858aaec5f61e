"""In-place sources: staging a table's scope inside the database vs through Python, same run.

Fills a user table with N real articles (title, abstract, body; from ../shared/corpus
when present, else the shipped sample, repeated with new ids), maps it, then alternates,
R times, each inside one read transaction as observe runs it:

* database: ``TableSource.stage_scope``, ``INSERT INTO scope SELECT …`` with the content
  hash computed by the database (what a plan does);
* python: the same rows read through the same view into Python, hashed there with the
  backend's algorithm, and copied into the same ``scope`` table (what a source without
  the in-place capability would have to do).

Prints medians and the ratio python / database. Both sides produce the same scope rows
(checked). Only the ratio of figures measured side by side means anything here.

    python benchmarks/in_place.py -n 2000 --backend sqlite
    python benchmarks/in_place.py -n 2000 --backend postgres
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from heal import load_records, start_postgres  # noqa: E402

THROUGH_VIEW = "SELECT doc_id, title, abstract, body FROM {view}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="rows in the user's table")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import apsw

    from ragstate import Project, spec_from_dict
    from ragstate.hashing import content_hash, content_hash_md5
    from ragstate.sources.base import Document
    from ragstate.stores import registry
    from ragstate.stores.schema import SCOPE

    work = Path(tempfile.mkdtemp(prefix="ragstate-bench-"))
    server = start_postgres(work / "pg") if args.backend == "postgres" else None
    try:
        records = load_records(args.n)
        rows = [(i, r["title"], r["abstract"], r["body"]) for i, r in enumerate(records, start=1)]
        chars = sum(len(r[1]) + len(r[2]) + len(r[3]) for r in rows)
        if server is None:
            store = {"url": f"sqlite:///{work / 'bench.db'}"}
            conn = apsw.Connection(str(work / "bench.db"))
            conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT, abstract TEXT, body TEXT)")
            with conn:
                conn.executemany("INSERT INTO docs VALUES (?, ?, ?, ?)", rows)
            conn.close()
            table, hash_of = "docs", content_hash
        else:
            import psycopg

            store = {"url": server.get_uri(), "schema": "rag"}
            with psycopg.connect(server.get_uri(), autocommit=True) as pg:
                pg.execute("CREATE SCHEMA app")
                pg.execute("CREATE TABLE app.docs (id integer PRIMARY KEY, title text, abstract text, body text)")
                with pg.cursor() as cur, cur.copy("COPY app.docs FROM STDIN") as copy:
                    for r in rows:
                        copy.write_row(r)
                pg.execute("ANALYZE app.docs")
            table, hash_of = "app.docs", content_hash_md5
        source = {"table": table, "id": "id", "text": "body", "title": "title", "abstract": "abstract"}
        project = Project(spec_from_dict({"store": store, "source": source}))
        assert project.map_table().created
        source_obj = project.source()

        def in_database(s) -> list[tuple]:
            source_obj.stage_scope(s, None)
            return s.query("SELECT doc_id, content_hash FROM {tmp_scope} ORDER BY doc_id")

        def through_python(s) -> list[tuple]:
            registry.create_scope(s)
            refs = []
            for doc_id, title, abstract, body in s.iter_query(THROUGH_VIEW, view="src_docs"):
                h = hash_of(title, abstract, body)
                doc = Document(doc_id, title, abstract, body, path=table, source_hash=h)
                r = doc.ref()
                refs.append(
                    (r.doc_id, r.content_hash, r.title, r.path, 0, 0, r.title_chars, r.abstract_chars, r.body_chars)
                )
            s.copy_rows(SCOPE, refs, temp=True)
            return s.query("SELECT doc_id, content_hash FROM {tmp_scope} ORDER BY doc_id")

        times: dict[str, list[float]] = {"database": [], "python": []}
        results = {}
        with project.store.session() as s:
            for _ in range(args.repeats):
                for name, stage in (("database", in_database), ("python", through_python)):
                    with s.read_transaction():
                        t0 = time.perf_counter()
                        results[name] = stage(s)
                        times[name].append(time.perf_counter() - t0)
                        registry.drop_scope(s)
        assert results["database"] == results["python"] and len(results["database"]) == args.n
        project.close()

        db, py = statistics.median(times["database"]), statistics.median(times["python"])
        print(
            f"backend={args.backend} rows={args.n} characters={chars} repeats={args.repeats} "
            f"python={sys.version.split()[0]}"
        )
        for label, key, median in (("in the database", "database", db), ("through Python", "python", py)):
            runs = ", ".join(f"{t:.2f}" for t in times[key])
            print(f"stage scope {label:16s}: {median:7.2f} s  {args.n / median:9.0f} rows/s  (runs: {runs})")
        print(f"ratio python/database: {py / db:.3f}")
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
