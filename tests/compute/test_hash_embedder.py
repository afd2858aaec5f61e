"""The hash embedder (engine mechanics only): deterministic vectors, and token matrices
made of the vectors of their words, whatever else shares the batch."""

from __future__ import annotations

import numpy as np
import pytest

from ragstate.compute.embedders import HashEmbedder
from ragstate.spec.model import ModelSpec

TEXTS = ["seed soil root seed", "", "root  leaf\nwater seed", "one"]


@pytest.mark.parametrize("normalize", [True, False])
def test_a_token_matrix_is_the_vectors_of_its_words_in_order(normalize: bool) -> None:
    embedder = HashEmbedder(ModelSpec(provider="hash", dimension=16, normalize=normalize))
    matrices = embedder.embed_tokens(TEXTS)
    assert [m.shape for m in matrices] == [(4, 16), (0, 16), (4, 16), (1, 16)]
    for text, matrix in zip(TEXTS, matrices, strict=True):
        assert matrix.dtype == np.float32
        assert np.array_equal(matrix, embedder.embed(text.split()))
    # a repeated word has one vector; the batch around a text does not change its matrix
    assert np.array_equal(matrices[0][0], matrices[0][3]) and np.array_equal(matrices[0][0], matrices[2][3])
    assert np.array_equal(embedder.embed_tokens([TEXTS[2]])[0], matrices[2])
    norms = np.linalg.norm(matrices[0], axis=1)
    assert np.allclose(norms, 1.0) if normalize else not np.allclose(norms, 1.0)


def test_vectors_are_deterministic_and_differ_between_texts() -> None:
    embedder = HashEmbedder(ModelSpec(provider="hash", dimension=32))
    a, b, again = embedder.embed(["seed", "soil", "seed"])
    assert np.array_equal(a, again) and not np.allclose(a, b)
    fresh = HashEmbedder(ModelSpec(provider="hash", dimension=32))
    assert np.array_equal(fresh.embed(["seed"])[0], a), "another instance gives the same vector"
