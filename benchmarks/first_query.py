"""Process start to answer of one `ragstate query` (issue 23), against baselines in the same run.

Each round runs, as fresh processes, interleaved:

* ``import``: ``python -c "import ragstate"`` (the floor any command pays);
* ``query``: ``ragstate query basic TEXT`` on a store built once (the numpy encoder path);
* ``query-torch``: the same query with the model loaded through sentence-transformers first
  (what every query paid before: ``RAGSTATE_BENCH_TORCH=1`` makes the query load it);
* ``model``: ``SentenceTransformer(path)`` alone and one ``encode`` (the bare model load).

Prints the median seconds of each and the ratios. Usage:
    python benchmarks/first_query.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUERY = "seed dormancy and germination"
TORCH_FIRST = (
    "import sys\n"
    "from ragstate.compute.embedders import SentenceTransformerEmbedder\n"
    "from ragstate.spec.model import ModelSpec\n"
    "SentenceTransformerEmbedder(ModelSpec(name='all-MiniLM-L6-v2')).load()\n"
    "from ragstate.cli import main\n"
    "sys.argv = ['ragstate', 'query', 'basic', sys.argv[1], '-c', sys.argv[2]]\n"
    "main()\n"
)
MODEL = (
    "from sentence_transformers import SentenceTransformer\n"
    "from ragstate.compute.embedders import resolve_model_path\n"
    "SentenceTransformer(str(resolve_model_path('all-MiniLM-L6-v2', field='m')), device='cpu').encode(['x'])\n"
)


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    work = Path(tempfile.mkdtemp(prefix="ragstate-first-query-"))
    corpus = Path(__file__).resolve().parent.parent / "samples" / "pmc"
    spec = work / "ragstate.yaml"
    spec.write_text(f"store: sqlite:///{work / 'rag.db'}\nsource: {corpus}\n", encoding="utf-8")
    py = sys.executable
    subprocess.run([py, "-m", "ragstate.cli", "apply", "-c", str(spec)], check=True, capture_output=True, env=env)
    commands = {
        "import": [py, "-c", "import ragstate"],
        "query": [py, "-m", "ragstate.cli", "query", "basic", QUERY, "-c", str(spec)],
        "query-torch": [py, "-c", TORCH_FIRST, QUERY, str(spec)],
        "model": [py, "-c", MODEL],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, command in commands.items():
            times[name].append(timed(command, env))
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in median.items():
        print(f"{name:<12} median {seconds:6.2f} s   ({', '.join(f'{t:.2f}' for t in times[name])})")
    print(f"query / import          {median['query'] / median['import']:.2f}")
    print(f"query / query-torch     {median['query'] / median['query-torch']:.2f}")
    print(f"query / bare model load {median['query'] / median['model']:.2f}")


if __name__ == "__main__":
    main()
