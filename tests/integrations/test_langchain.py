"""The LangChain retriever with langchain-core's own classes, over a store built with the real model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from conftest import edit
from helpers import cli
from ragstate.errors import NotReady, QueryError
from ragstate.integrations.langchain import RagstateRetriever

QUESTION = "How do tension fluctuations change the structure of polyester fibers?"
#: every pipeline that answers offline (HyDE needs a generator)
OFFLINE = ("basic", "crag", "colbert", "noderag", "graphrag", "hybrid")


def spec_path(project, corpus: Path, tmp_path: Path) -> Path:
    spec = {"store": project.spec.store.model_dump(by_alias=True, exclude_none=True, mode="json")}
    spec |= {"source": {"path": str(corpus)}, "pipelines": list(project.spec.pipelines)}
    path = tmp_path / "ragstate.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_chain_answers_from_the_documents_ragstate_query_returns(built, tmp_path: Path) -> None:
    make, corpus = built
    project = make()
    for name in OFFLINE:
        expected = project.pipeline(name).retrieve(QUESTION, 4)
        docs = RagstateRetriever(project, pipeline=name, k=4).invoke(QUESTION)
        assert [d.metadata["doc_id"] for d in docs] == expected.doc_ids, name
        assert [d.page_content for d in docs] == [h.passage for h in expected], name
        assert [d.metadata["score"] for d in docs] == [h.score for h in expected], name
        kinds = [(h.kind, h.generation) for h in expected]
        assert [(d.metadata["kind"], d.metadata["generation"]) for d in docs] == kinds, name
        assert all(d.metadata["title"] and d.metadata["ready"] for d in docs), name
    # the passage of a chunk pipeline is the document's text between the chunk's offsets
    top = RagstateRetriever(project, pipeline="noderag", k=1).invoke(QUESTION)[0]
    assert top.metadata["end_char"] - top.metadata["start_char"] == len(top.page_content)

    # ragstate query (the CLI) returns the same documents in the same order
    code, data = cli(project, corpus, tmp_path, "query", "hybrid", QUESTION, "-k", "4", "--json")
    retriever = RagstateRetriever(spec_path(project, corpus, tmp_path), pipeline="hybrid", k=4)
    try:
        assert code == 0
        assert [d.metadata["doc_id"] for d in retriever.invoke(QUESTION)] == [r["doc_id"] for r in data["results"]]

        seen: list[str] = []

        def format_docs(docs: list[Document]) -> str:
            return "\n\n".join(f"[{d.metadata['doc_id']}] {d.page_content}" for d in docs)

        def capture(prompt):
            seen.append(prompt.to_string())
            return prompt

        prompt = ChatPromptTemplate.from_template("Answer from the context.\n{context}\nQuestion: {question}")
        model = FakeListChatModel(responses=["Fluctuating tension lowers crystallinity."])
        chain = (
            {"context": retriever | format_docs, "question": RunnablePassthrough()}
            | prompt
            | RunnableLambda(capture)
            | model
            | StrOutputParser()
        )
        assert chain.invoke(QUESTION) == "Fluctuating tension lowers crystallinity."
        # the model was asked with the retrieved passages, best first
        first = data["results"][0]
        assert f"[{first['doc_id']}] {first['passage']}" in seen[0] and QUESTION in seen[0]

        # async: the same documents
        docs = asyncio.run(retriever.ainvoke(QUESTION))
        assert [d.metadata["doc_id"] for d in docs] == [r["doc_id"] for r in data["results"]]
    finally:
        retriever.close()


@pytest.mark.slow
def test_a_pipeline_not_ready_is_refused_or_answers_with_a_warning(built, caplog) -> None:
    make, corpus = built
    project = make()
    # an edit of a title, which basic embeds (a paragraph past the embedded text is no drift)
    edit(corpus / "acai.txt", old="Phenolic Quantification", new="Phenolic Acid Quantification")
    with pytest.raises(NotReady) as refused:
        RagstateRetriever(project, pipeline="basic", k=3, readiness="fail").invoke(QUESTION)
    assert refused.value.reasons and "stale" in " ".join(refused.value.reasons)
    docs = RagstateRetriever(project, pipeline="basic", k=3, readiness="warn").invoke(QUESTION)
    assert len(docs) == 3 and not any(d.metadata["ready"] for d in docs)
    assert "basic is not ready" in caplog.text


def test_bad_arguments_are_named(built) -> None:
    make, _ = built
    project = make(pipelines=["basic"])
    with pytest.raises(QueryError, match="pipeline 'colbert' is not enabled"):
        RagstateRetriever(project, pipeline="colbert")
    with pytest.raises(QueryError, match="readiness mode 'maybe'"):
        RagstateRetriever(project, pipeline="basic", readiness="maybe")
    with pytest.raises(QueryError, match="k is 0"):
        RagstateRetriever(project, pipeline="basic", k=0)
