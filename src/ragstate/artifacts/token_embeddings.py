"""``token_embeddings``: ColBERT-style per-token vectors, one matrix per chunk.

Per chunk, not per document: a chunk fits the model's window by construction, so no
token is silently cut (a document's tokens past the window would be), and an edit keeps
the matrices of every unchanged chunk, as for chunk embeddings.

By default the vectors are the configured model's own token outputs (the last hidden
layer of all-MiniLM-L6-v2, special tokens included, each row scaled to unit length when
the model normalises): late-interaction vectors from a model not trained for late
interaction, which ``status`` says plainly. A real ColBERT checkpoint (e.g. through
PyLate) plugs in as an embedder plugin whose ``embed_tokens`` returns its vectors.

Storage: ``matrix`` holds the ``n_tokens × dim`` matrix as little-endian float16, row
after row (2 bytes a value: a 256-token chunk of a 384-dimension model is 192 KiB).
Checks: size, dimension, finite values, no zero row, unit rows when normalising
(``corrupt``); identical matrices of different texts and a re-encoded sample that
disagrees (``mock``); every chunk has its matrix (``incomplete``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ragstate.artifacts.base import RECHECK_MIN_COSINE, BuildContext, Findings, Inspection, Recipe
from ragstate.artifacts.chunks import Chunks
from ragstate.artifacts.per_chunk import PerChunkKind, item_columns, model_recipe
from ragstate.compute.embedders import Embedder
from ragstate.spec.model import Spec
from ragstate.stores import ledger
from ragstate.stores.base import Store, cosines, norms
from ragstate.stores.schema import ARTIFACT_STAMP, ColumnType, TableDef, col

#: float16 keeps about three decimal digits: unit rows are checked to this tolerance
NORM_TOLERANCE = 1e-2


def encode_matrix(matrix: np.ndarray) -> bytes:
    """A float matrix as little-endian float16 bytes, row-major."""
    return np.ascontiguousarray(matrix, dtype="<f2").tobytes()


def decode_matrix(blob: Any, n_tokens: int, dim: int) -> np.ndarray:
    """The float32 matrix stored in ``blob``; ValueError when its size does not fit."""
    if not isinstance(blob, (bytes, bytearray, memoryview)) or len(blob) != 2 * n_tokens * dim or n_tokens < 1:
        raise ValueError("size does not match n_tokens × dim")
    return np.frombuffer(bytes(blob), dtype="<f2").reshape(n_tokens, dim).astype(np.float32)


def matrix_problem(blob: Any, n_tokens: int, dim: int, expected_dim: int, normalized: bool) -> str | None:
    """Why a stored matrix fails the quality checks, or None."""
    if dim != expected_dim:
        return f"dimension {dim}"
    try:
        m = decode_matrix(blob, n_tokens, dim)
    except ValueError:
        return "unreadable"
    if not np.all(np.isfinite(m)):
        return "non-finite"
    lengths = norms(m)
    if np.any(lengths < 1e-6):
        return "zero row"
    if normalized and np.any(np.abs(lengths - 1.0) > NORM_TOLERANCE):
        return "rows not unit length"
    return None


class TokenEmbeddings(PerChunkKind):
    name = "token_embeddings"
    code_version = 1
    embedding_output = "tokens"
    invariants = ("every chunk has its token matrix, every matrix its chunk",)
    value_columns = ("n_tokens", "dim", "matrix")
    select_values = "SELECT chunk_id, text_hash, n_tokens, dim, matrix FROM {t} WHERE doc_id = ANY(?)"
    sample_texts = (
        "SELECT e.doc_id, c.text, e.n_tokens, e.dim, e.matrix FROM {t} e JOIN {u} c ON c.doc_id = e.doc_id "
        "AND c.chunk_id = e.chunk_id WHERE e.doc_id IN (SELECT doc_id FROM {tmp_scope}) ORDER BY e.text_hash LIMIT ?"
    )

    def recipe(self, spec: Spec) -> Recipe:
        model = spec.artifacts.token_embeddings.model
        recipe = model_recipe(self, spec, model, Chunks().recipe(spec), vectors="token_outputs")
        name = spec.models[model].name
        note = f"per-token outputs of {name} (the configured model, not a ColBERT checkpoint)"
        if spec.models[model].provider != "sentence-transformers":
            note = f"per-token vectors of the {spec.models[model].provider} embedder '{name}'"
        return replace(recipe, note=note)

    def table(self, recipe: Recipe, generation: int) -> TableDef:
        return TableDef(
            self.table_name(generation),
            ARTIFACT_STAMP
            + item_columns()
            + (
                col("n_tokens", ColumnType.INT, null=False),
                col("dim", ColumnType.INT, null=False),
                col("matrix", ColumnType.BLOB, null=False),
            ),
            primary_key=("doc_id", "chunk_id"),
        )

    def encode(self, texts: list[str], values: list[Any], ctx: BuildContext) -> list[tuple[Any, ...]]:
        return [(m.shape[0], m.shape[1], encode_matrix(m)) for m in values]

    def usable(self, store: Store, recipe: Recipe, values: tuple[Any, ...]) -> bool:
        assert recipe.dimension is not None
        n, dim, blob = values
        return matrix_problem(blob, n, dim, recipe.dimension, recipe.normalized) is None

    def inspect(self, at: Inspection) -> Findings:
        found = super().inspect(at)
        if at.depth == "shallow":
            return found
        assert at.recipe.dimension is not None
        corrupt = []
        for doc_id, chunk_id, n, dim, blob in at.session.iter_query(
            "SELECT doc_id, chunk_id, n_tokens, dim, matrix FROM {t}", t=at.tables[0].name
        ):
            problem = matrix_problem(blob, n, dim, at.recipe.dimension, at.recipe.normalized)
            if problem:
                corrupt.append((doc_id, f"chunk {chunk_id}: {problem}"))
        from ragstate.artifacts.cache import identical_rows  # cache.py imports this module

        fp = self.embedding_fp(at.recipe.params)
        mock, duplicates = identical_rows(at.session, at.tables[0].name, "matrix", at.embedder, fp)
        return Findings(
            incomplete=found.incomplete,
            corrupt=tuple(sorted(set(corrupt))),
            mock=tuple(sorted(set(mock))),
            duplicates=tuple(duplicates),
        )

    def disagree(self, store: Store, embedder: Embedder, rows: list[tuple[Any, ...]]) -> list[str]:
        if not rows:
            return []
        fresh = embedder.embed_tokens([r[1] for r in rows])
        out = []
        for (doc_id, _, n, dim, blob), new in zip(rows, fresh, strict=True):
            try:
                stored = decode_matrix(blob, n, dim)
            except ValueError:
                continue  # corrupt, reported by inspect
            if stored.shape != new.shape:
                out.append(doc_id)
                continue
            if float(np.mean(cosines(stored, new))) < RECHECK_MIN_COSINE:
                out.append(doc_id)
        return sorted(set(out))
