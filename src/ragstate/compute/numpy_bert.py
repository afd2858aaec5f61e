"""A BERT sentence encoder in numpy, for the few texts of a query: no torch to import.

A process that answers one query (``ragstate query``) spent most of its time importing
torch, transformers and sentence-transformers to embed a dozen tokens. A plain BERT with
mean pooling (all-MiniLM-L6-v2 and its kin) is a few matrix products: this module runs
them on the model folder's own ``model.safetensors`` and ``tokenizer.json``. It serves
only folders it matches exactly (``supports``); anything else loads sentence-transformers
as before. ``tests/compute/test_numpy_bert.py`` checks it against sentence-transformers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to within 1.5e-7 (Abramowitz and Stegun 7.1.26); numpy has none, scipy is not needed."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def supports(path: Path) -> bool:
    """True when ``path`` is a sentence-transformers folder of exactly the shape served here:
    a BERT (absolute positions, exact GELU) + mean pooling (+ normalisation), safetensors."""
    try:
        modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((path / "modules.json").read_text())]
        config = json.loads((path / "config.json").read_text())
        pooling = next(
            json.loads((path / m["path"] / "config.json").read_text())
            for m in json.loads((path / "modules.json").read_text())
            if m["type"].endswith("Pooling")
        )
    except (OSError, ValueError, KeyError, StopIteration):
        return False
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    return (
        modules in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
        and config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and modes == {"pooling_mode_mean_tokens"}
        and (path / "model.safetensors").is_file()
        and (path / "tokenizer.json").is_file()
    )


class NumpyBert:
    """The encoder of one model folder (check ``supports`` first)."""

    def __init__(self, path: Path, max_tokens: int):
        from safetensors.numpy import load_file

        from ragstate.compute.embedders import load_tokenizer

        config = json.loads((path / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        weights = load_file(str(path / "model.safetensors"))
        self.w: dict[str, Any] = {k.removeprefix("bert."): v.astype(np.float32, copy=False) for k, v in weights.items()}
        self.tokenizer = load_tokenizer(path, "model", window=max_tokens)  # as sentence-transformers' max_seq_length

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[f"{name}.weight"] + self.w[f"{name}.bias"]

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def _encode_one(self, ids: list[int], types: list[int]) -> np.ndarray:
        w, n = self.w, len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        size = x.shape[1] // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            q, k, v = (
                self._dense(x, f"{p}.attention.self.{m}").reshape(n, self.heads, size).transpose(1, 0, 2)
                for m in ("query", "key", "value")
            )
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(size)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            context = (scores / scores.sum(-1, keepdims=True)) @ v
            context = context.transpose(1, 0, 2).reshape(n, -1)
            x = self._norm(self._dense(context, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
            h = self._dense(x, f"{p}.intermediate.dense")
            h = h * 0.5 * (1.0 + _erf(h / math.sqrt(2.0)))  # exact GELU, as BERT's "gelu"
            x = self._norm(self._dense(h, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        return x.mean(0)  # mean pooling: one text, no padding, every token counts

    def encode(self, texts: list[str], *, normalize: bool) -> np.ndarray:
        """One vector per text, as sentence-transformers' ``encode`` gives them."""
        out = np.stack([self._encode_one(e.ids, e.type_ids) for e in self.tokenizer.encode_batch(texts)])
        if normalize:
            out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)
