"""Golden queries: the query set drawn from titles or read from a file, and recall@k."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragstate.errors import GoldenSetError
from ragstate.observe.golden import GoldenQuery, load_queries, recall_at_k, title_queries

ROWS = [
    ("a", "Seed dormancy in kiwifruit"),
    ("b", "Muscle tension and posture"),
    ("c", "Review"),  # one word: too vague to be a known-item query
    ("d", "A shared title"),
    ("e", "a  shared   TITLE"),  # the same title as d: no single right answer
    ("f", "Açaí pulp and oxidative stress"),
]


def test_title_queries_leave_out_vague_and_ambiguous_titles() -> None:
    queries = title_queries(ROWS, 10)
    assert {q.doc_ids for q in queries} == {("a",), ("b",), ("f",)}
    assert {q.text for q in queries} == {
        "Seed dormancy in kiwifruit",
        "Muscle tension and posture",
        "Açaí pulp and oxidative stress",
    }


def test_title_queries_are_a_stable_sample() -> None:
    first = title_queries(ROWS, 2)
    assert len(first) == 2
    assert title_queries(list(reversed(ROWS)), 2) == first
    assert title_queries(ROWS, 0) == ()


def test_recall_at_k_counts_each_querys_share_of_documents_found() -> None:
    queries = [GoldenQuery("q1", ("a",)), GoldenQuery("q2", ("b", "c")), GoldenQuery("q3", ("d",))]
    ranked = [["a", "x"], ["x", "b", "c"], ["x", "y", "d"]]
    result = recall_at_k(ranked, queries, 2)
    # q1 found, q2 half found (c is third), q3 missed
    assert result.recall == round((1 + 0.5 + 0) / 3, 4)
    assert result.queries == 3 and result.missed == ("q2", "q3")
    assert recall_at_k(ranked, queries, 3).recall == round((1 + 1 + 1) / 3, 4)
    assert recall_at_k([], [], 5).recall == 0.0


def test_load_queries_reads_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_text('{"query": "seed dormancy", "doc_id": "a"}\n\n{"query": "posture", "doc_ids": ["b", "c"]}\n')
    assert load_queries(path) == (GoldenQuery("seed dormancy", ("a",)), GoldenQuery("posture", ("b", "c")))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"query": "x", "doc_id": "a"}\nnot json\n', ":2: not JSON"),
        ('{"doc_id": "a"}\n', ':1: needs "query"'),
        ('{"query": "x", "doc_ids": []}\n', ':1: needs "doc_id"'),
        ('{"query": "x", "doc_id": 7}\n', ':1: needs "doc_id"'),
        ("\n\n", "holds no queries"),
    ],
)
def test_bad_golden_files_are_refused_by_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_text(text)
    with pytest.raises(GoldenSetError, match=message) as info:
        load_queries(path)
    assert str(path) in str(info.value)


def test_missing_golden_file(tmp_path: Path) -> None:
    with pytest.raises(GoldenSetError, match="cannot read golden queries"):
        load_queries(tmp_path / "nope.jsonl")
