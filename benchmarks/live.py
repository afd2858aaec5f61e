"""Live mode (issue 21): from saving one document to ``Project.query`` returning it, against
one bare ``model.encode`` of that text, measured in the same run.

A folder store (SQLite) holds ``--base`` real articles, built with the real model
(all-MiniLM-L6-v2, CPU). A daemon runs in live mode in a thread (its interval an hour, so
only the live path can answer in time). Each round saves one new article (title and
abstract as a ``.txt`` file) and polls ``Project.query("basic", title)`` from a second
project (a reader, as an application would; ``readiness: warn``) until the article is
among the hits. Two conditions:

* ``quiet``: nothing else changes;
* ``backlog``: ``--backlog`` new articles are saved at once just before the probe (a
  burst the daemon works through, oldest first, in batches of ``daemon.live_batch``).

The baseline is one bare ``SentenceTransformer.encode`` of each probe's text (the model
loaded once). Prints the median and p95 of each and their ratios to the baseline's
median. Usage:

    python benchmarks/live.py [--rounds 10] [--backlog 1000] [--backlog-rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import base_records, derive  # noqa: E402

from ragstate import Project, spec_from_dict  # noqa: E402
from ragstate.reconcile.daemon import Daemon  # noqa: E402


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def write(folder: Path, name: str, record: dict[str, str], *, title_only: bool = False) -> None:
    # written to a hidden name, then renamed: how editors save (the rename is the event)
    tmp = folder / f".{name}.tmp"
    text = record["title"] if title_only else f"{record['title']}\n\n{record['abstract']}"
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.rename(folder / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=int, default=100, help="articles in the store before the rounds")
    parser.add_argument("--rounds", type=int, default=10, help="probes on a quiet store")
    parser.add_argument("--backlog", type=int, default=1000, help="articles saved at once before a backlog probe")
    parser.add_argument("--backlog-rounds", type=int, default=3)
    parser.add_argument(
        "--backlog-text",
        choices=("abstract", "title"),
        default="abstract",
        help="what a backlog article holds: title and abstract, or its title alone (a cheaper backlog)",
    )
    parser.add_argument("--debounce", type=float, default=0.5, help="daemon.live_debounce_s")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    base = base_records()
    needed = args.base + args.rounds + args.backlog_rounds * (args.backlog + 1)
    records = [derive(base, i, 0) for i in range(needed)]
    work = Path(tempfile.mkdtemp(prefix="ragstate-live-"))
    docs = work / "docs"
    docs.mkdir()
    for i in range(args.base):
        write(docs, f"a{i:06d}.txt", records[i])
    spec = {
        "store": {"url": f"sqlite:///{work / 'rag.db'}"},
        "source": {"path": str(docs)},
        "pipelines": ["basic"],
        "daemon": {"interval_s": 3600, "verify_interval_s": None, "live": True, "live_debounce_s": args.debounce},
        "query": {"readiness": "warn"},
    }
    writer = Project(spec_from_dict(spec, base_dir=work))
    t0 = time.perf_counter()
    writer.apply()
    print(f"built {args.base} base articles in {time.perf_counter() - t0:.1f} s", flush=True)

    from sentence_transformers import SentenceTransformer

    from ragstate.compute.embedders import resolve_model_path

    model = SentenceTransformer(str(resolve_model_path("all-MiniLM-L6-v2", field="m")), device="cpu")
    reader = Project(spec_from_dict(spec, base_dir=work))
    daemon = Daemon(writer, live=True)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    while daemon.state != "idle":
        time.sleep(0.05)
    reader.query("basic", "warm up", k=1)

    next_id = args.base

    def probe() -> tuple[float, float]:
        """Save one article; seconds until the reader's query returns it, and one bare encode."""
        nonlocal next_id
        record, name = records[next_id], f"a{next_id:06d}.txt"
        next_id += 1
        saved = time.perf_counter()
        write(docs, name, record)
        while True:
            hits = reader.query("basic", record["title"], k=20)
            if any(h.doc_id == name for h in hits):
                latency = time.perf_counter() - saved
                break
            if time.perf_counter() - saved > 900:
                raise SystemExit(f"{name} not returned after 900 s")
            time.sleep(0.02)
        e0 = time.perf_counter()
        model.encode([f"{record['title']}\n\n{record['abstract']}"])
        return latency, time.perf_counter() - e0

    quiet, encodes = [], []
    for _ in range(args.rounds):
        latency, encode = probe()
        quiet.append(latency)
        encodes.append(encode)
        time.sleep(0.2)
    backlog = []
    for _ in range(args.backlog_rounds):
        start = next_id
        for i in range(start, start + args.backlog):
            write(docs, f"a{i:06d}.txt", records[i], title_only=args.backlog_text == "title")
        next_id += args.backlog
        latency, encode = probe()
        backlog.append(latency)
        encodes.append(encode)
        while daemon.live is not None and len(daemon.live.queue) or daemon.state != "idle":
            time.sleep(0.1)  # the backlog done before the next round
    daemon.stop("benchmark over")
    thread.join(60)

    base_encode = statistics.median(encodes)
    print(f"bare model.encode of one probe: median {base_encode * 1000:.1f} ms ({len(encodes)} probes)")
    for label, values in (("quiet", quiet), (f"backlog of {args.backlog} ({args.backlog_text})", backlog)):
        if not values:
            continue
        med, tail = statistics.median(values), p95(values)
        print(
            f"{label:>18}: save → query returns it: median {med:.2f} s, p95 {tail:.2f} s "
            f"({len(values)} probes); {med / base_encode:.0f}× / {tail / base_encode:.0f}× one bare encode"
        )
    print(f"debounce {args.debounce} s; work folder {work}")


if __name__ == "__main__":
    main()
