"""Which SQLite driver ragstate uses: apsw, pysqlite3-binary or sqlean.py, measured.

This Python's built-in ``sqlite3`` cannot load extensions, so sqlite-vec needs a drop-in
that can. Each candidate runs the operations ragstate does in bulk, on the same data,
interleaved, several times; the table prints medians and each driver's time relative to
apsw (the one chosen).

    pip install pysqlite3-binary sqlean.py   # the extra `bench` has them
    python benchmarks/sqlite_drivers.py -n 50000
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import tempfile
import time

import numpy as np
import sqlite_vec


def dbapi(module: str):
    def connect(path: str):
        m = importlib.import_module(module)
        conn = m.connect(path, isolation_level=None)
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        return conn

    return connect


def apsw_connect(path: str):
    import apsw

    conn = apsw.Connection(path)
    conn.enable_load_extension(True)
    conn.load_extension(sqlite_vec.loadable_path())
    return conn


DRIVERS = {"apsw": apsw_connect, "pysqlite3": dbapi("pysqlite3.dbapi2"), "sqlean": dbapi("sqlean")}


def run(connect, path: str, rows, query: bytes) -> dict[str, float]:
    if os.path.exists(path):
        os.remove(path)
    conn = connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (doc_id TEXT PRIMARY KEY, h TEXT, v BLOB)")
    out = {}
    t = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    conn.execute("COMMIT")
    out["insert"] = time.perf_counter() - t
    t = time.perf_counter()
    list(conn.execute("SELECT doc_id, h FROM t"))
    out["read ids+hashes"] = time.perf_counter() - t
    t = time.perf_counter()
    list(conn.execute("SELECT doc_id, vec_distance_cosine(v, ?) AS d FROM t ORDER BY d LIMIT 10", (query,)))
    out["knn (sqlite-vec)"] = time.perf_counter() - t
    t = time.perf_counter()
    blobs = [r[0] for r in conn.execute("SELECT v FROM t")]
    np.frombuffer(b"".join(blobs), dtype=np.float32)
    out["read vectors"] = time.perf_counter() - t
    conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vecs = rng.random((args.n, args.dim), dtype=np.float32)
    rows = [(f"doc{i:08d}", f"{i:032x}", vecs[i].tobytes()) for i in range(args.n)]
    folder = tempfile.mkdtemp(prefix="ragstate-sqlite-")
    results: dict[str, dict[str, list[float]]] = {d: {} for d in DRIVERS}
    for _ in range(args.repeats):
        for name, connect in DRIVERS.items():
            for op, seconds in run(connect, os.path.join(folder, f"{name}.db"), rows, vecs[0].tobytes()).items():
                results[name].setdefault(op, []).append(seconds)
    ops = list(results["apsw"])
    print(f"{args.n} rows of {args.dim}-dim float32, {args.repeats} interleaved repeats; median ms (× apsw)")
    print(f"{'operation':<18}" + "".join(f"{d:>22}" for d in DRIVERS))
    for op in ops:
        base = statistics.median(results["apsw"][op])
        cells = []
        for d in DRIVERS:
            m = statistics.median(results[d][op])
            cells.append(f"{m * 1000:9.1f} ({m / base:4.2f}×)")
        print(f"{op:<18}" + "".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
