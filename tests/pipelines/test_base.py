"""The ranking helpers the retrieval paths share, checked on literals."""

from __future__ import annotations

import numpy as np
import pytest

from ragstate.pipelines.base import best_window, bm25, cut, keywords, reciprocal_rank_fusion
from ragstate.pipelines.colbert import maxsim, maxsim_many
from ragstate.pipelines.crag import grade
from ragstate.pipelines.known_items import abstract_sentence, known_items, rank_of, recall_at
from ragstate.sources.base import Document


def test_keywords_drop_stop_words_and_keep_hyphenated_terms() -> None:
    assert keywords("The effect of IL-6 on the SARS-CoV-2 spike, in vitro") == [
        "effect",
        "il-6",
        "sars-cov-2",
        "spike",
        "vitro",
    ]


def test_bm25_prefers_rare_terms_and_short_texts() -> None:
    texts = [["seed", "dormancy"], ["seed", "seed", "climate"], ["climate", "model", "data", "more", "words"]]
    scores = bm25(["dormancy", "seed"], texts)
    assert scores[0] > scores[1] > scores[2] == 0.0
    assert bm25([], texts) == [0.0, 0.0, 0.0] and bm25(["x"], []) == []


def test_reciprocal_rank_fusion_sums_weighted_reciprocal_ranks() -> None:
    fused = reciprocal_rank_fusion([(["a", "b"], 1.0), (["b", "c"], 0.5)], k=60)
    assert fused == pytest.approx({"a": 1 / 61, "b": 1 / 62 + 0.5 / 61, "c": 0.5 / 62})
    assert sorted(fused, key=lambda d: -fused[d]) == ["b", "a", "c"]


def test_maxsim_is_the_sum_of_each_query_tokens_best_match() -> None:
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    d = np.array([[0.6, 0.8], [1.0, 0.0], [0.0, -1.0]])
    assert maxsim(q, d) == pytest.approx(1.0 + 0.8)
    rng = np.random.default_rng(3)
    q = rng.standard_normal((7, 16))
    docs = [rng.standard_normal((n, 16)) for n in (1, 5, 2, 9)]
    assert maxsim_many(q, docs) == pytest.approx([maxsim(q, d) for d in docs])
    assert len(maxsim_many(q, [])) == 0


def test_crag_grades_by_the_thresholds() -> None:
    assert [grade(s, 0.5, 0.3) for s in (0.9, 0.5, 0.4, 0.3, 0.1)] == [
        "correct",
        "correct",
        "ambiguous",
        "ambiguous",
        "incorrect",
    ]


def test_passages_are_cut_where_the_query_words_are() -> None:
    text = "Opening words. " * 60 + "Here the spinning tension rises sharply. " + "Closing words. " * 60
    window = best_window(text, "spinning tension", width=200)
    assert "spinning tension" in window and len(window) <= 200
    assert best_window("short text", "anything") == "short text"
    assert cut("word " * 300, 50).endswith(" …") and len(cut("word " * 300, 50)) <= 52


def doc(doc_id: str, title: str, abstract: str = "", body: str = "") -> Document:
    return Document(doc_id=doc_id, title=title, abstract=abstract, body=body, path=doc_id)


def test_known_items_take_the_title_and_a_real_sentence() -> None:
    a = doc(
        "a",
        "Seed dormancy under warming",
        "Background: Short. Warming climates shift when the seeds of many alpine plants break dormancy.",
    )
    b = doc(
        "b", "Too short", body="Abstract Background Patients with mood disorders are often readmitted after discharge."
    )
    items = known_items([a, b])
    assert [(i.doc_id, i.form) for i in items] == [("a", "title"), ("a", "sentence"), ("b", "sentence")]
    assert items[1].query == "Warming climates shift when the seeds of many alpine plants break dormancy."
    assert abstract_sentence(b) == "Patients with mood disorders are often readmitted after discharge."
    assert rank_of(["x", "a"], "a") == 2 and rank_of(["x"], "a") is None
    assert recall_at([1, 3, None, 12], 1) == 0.25 and recall_at([1, 3, None, 12], 10) == 0.5
