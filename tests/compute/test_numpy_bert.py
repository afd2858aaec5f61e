"""The numpy BERT gives the vectors sentence-transformers gives, and a query in a fresh
process embeds through it without importing torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ragstate.compute import numpy_bert
from ragstate.compute.embedders import SentenceTransformerEmbedder, embed_query
from ragstate.spec.model import ModelSpec

TEXTS = [
    "seed dormancy and germination",
    "Muscle tension after exercise, measured twice. " * 60,  # past the 256-token window: truncated alike
    "ß, café, 東京 and emoji 🙂",
    "x",
]


def test_the_vectors_match_sentence_transformers() -> None:
    embedder = SentenceTransformerEmbedder(ModelSpec(name="all-MiniLM-L6-v2"))
    assert numpy_bert.supports(embedder.path)
    fast = numpy_bert.NumpyBert(embedder.path, embedder.max_tokens).encode(TEXTS, normalize=True)
    real = embedder.embed(TEXTS)
    assert fast.shape == real.shape == (len(TEXTS), 384)
    assert np.abs(fast - real).max() < 1e-5
    assert embed_query(embedder, TEXTS[:1]).shape == (1, 384)  # the model is loaded now: embed() serves it


def test_a_folder_of_another_shape_is_not_served(tmp_path: Path) -> None:
    embedder = SentenceTransformerEmbedder(ModelSpec(name="all-MiniLM-L6-v2"))
    for name in ("config.json", "modules.json", "tokenizer.json", "model.safetensors"):
        (tmp_path / name).symlink_to(embedder.path / name)
    (tmp_path / "1_Pooling").mkdir()
    pooling = json.loads((embedder.path / "1_Pooling/config.json").read_text())
    (tmp_path / "1_Pooling/config.json").write_text(json.dumps({**pooling, "pooling_mode_cls_token": True}))
    assert numpy_bert.supports(embedder.path) and not numpy_bert.supports(tmp_path)


def test_a_query_in_a_fresh_process_imports_no_torch(spec_file) -> None:
    spec = spec_file()  # the real model
    build = subprocess.run(
        [sys.executable, "-m", "ragstate.cli", "apply", "-c", str(spec), "--json"], capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr[-2000:]
    script = (
        "import sys, json\n"
        "from ragstate import Project\n"
        f"with Project.from_file({str(spec)!r}) as p:\n"
        "    r = p.query('basic', 'seed dormancy and germination', 3)\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'ids': [h['doc_id'] for h in r.to_dict()['results']]}))\n"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    out = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert out["torch"] is False and len(out["ids"]) == 3
