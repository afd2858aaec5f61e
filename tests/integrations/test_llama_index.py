"""The LlamaIndex retriever in llama-index-core's own query engine, over a store built with the real model."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine

from conftest import REPO
from ragstate.errors import NotReady
from ragstate.integrations.llama_index import RagstateRetriever

QUESTION = "How do tension fluctuations change the structure of polyester fibers?"


@pytest.mark.slow
def test_a_query_engine_answers_from_the_documents_ragstate_query_returns(built) -> None:
    make, corpus = built
    project = make()
    for name in ("basic", "colbert", "noderag", "hybrid"):
        expected = project.pipeline(name).retrieve(QUESTION, 4)
        engine = RetrieverQueryEngine.from_args(
            RagstateRetriever(project, pipeline=name, k=4), llm=MockLLM(max_tokens=16)
        )
        response = engine.query(QUESTION)
        assert str(response).strip()  # MockLLM echoes part of the prompt it was given
        nodes = response.source_nodes
        assert [n.node.metadata["doc_id"] for n in nodes] == expected.doc_ids, name
        assert [n.score for n in nodes] == [h.score for h in expected], name
        assert [n.node.get_content() for n in nodes] == [h.passage for h in expected], name
        assert all(n.node.metadata["title"] == h.title for n, h in zip(nodes, expected, strict=True))
    # async query engine: the same nodes
    engine = RetrieverQueryEngine.from_args(RagstateRetriever(project, pipeline="hybrid", k=4), llm=MockLLM())
    nodes = asyncio.run(engine.aquery(QUESTION)).source_nodes
    assert [n.node.metadata["doc_id"] for n in nodes] == project.pipeline("hybrid").retrieve(QUESTION, 4).doc_ids

    # not ready: refused by default
    (corpus / "extra.txt").write_text("Polyester fibre tension and crystallinity.\n", encoding="utf-8")
    with pytest.raises(NotReady):
        RagstateRetriever(project, pipeline="basic", k=2, readiness="fail").retrieve(QUESTION)


def test_importing_and_querying_reads_nothing_from_the_network(tmp_path: Path) -> None:
    """llama-index-core may fetch NLTK data or tiktoken files; with every connection refused
    and the hub offline, the import and a query engine's answer still work."""
    script = """
import socket

def refuse(*args, **kwargs):
    raise OSError("network access attempted: %r" % (args,))

socket.socket.connect = refuse
socket.create_connection = refuse
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, TextNode

import ragstate.integrations.langchain
import ragstate.integrations.llama_index


class Fixed(BaseRetriever):
    def _retrieve(self, query_bundle):
        return [NodeWithScore(node=TextNode(text="Polyester fibers under tension. " * 40), score=1.0)]


print(RetrieverQueryEngine.from_args(Fixed(), llm=MockLLM(max_tokens=8)).query("why?").source_nodes[0].score)
"""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "1.0"


def test_importing_ragstate_imports_no_framework() -> None:
    script = (
        "import sys, ragstate, ragstate.cli, ragstate.project, ragstate.integrations; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('langchain_core', 'llama_index', 'fastapi', 'starlette', 'uvicorn', 'httpx')))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
