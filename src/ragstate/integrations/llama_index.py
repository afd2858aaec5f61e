"""A LlamaIndex retriever over one ragstate pipeline (``pip install ragstate[llamaindex]``).

    from llama_index.core.query_engine import RetrieverQueryEngine
    from ragstate.integrations.llama_index import RagstateRetriever

    retriever = RagstateRetriever("ragstate.yaml", pipeline="basic", k=5)
    engine = RetrieverQueryEngine.from_args(retriever, llm=my_llm)

It returns ``NodeWithScore``: a ``TextNode`` whose text is the passage that matched and
whose metadata is what the LangChain retriever's documents carry (doc_id, title, score,
rank, pipeline, kind, generation, ready, and chunk offsets, page, section where known),
scored with the hit's score, in the order ``ragstate query`` returns. A pipeline that is
not ready raises ``ragstate.errors.NotReady`` (``readiness="fail"``).

Importing it reads nothing from the network: llama-index-core carries its tokenizer
and NLTK files inside the package.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from ragstate.integrations.base import PipelineHandle, metadata
from ragstate.pipelines.base import Retrieval
from ragstate.project import Project


class RagstateRetriever(BaseRetriever):
    """LlamaIndex ``BaseRetriever`` answering from a reconciled ragstate pipeline.

    Args:
        project_or_spec_path: an open ``Project`` (you close it) or a spec file's path
            (opened here; ``close()`` closes it).
        pipeline: an enabled pipeline (default ``hybrid``).
        k: documents per query (default ``query.k`` of the spec).
        readiness: ``fail`` or ``warn`` when the data is not ready (default: the spec's
            ``query.readiness``).

    Raises:
        QueryError: the pipeline is not enabled, k below 1, an unknown readiness mode.
        SpecError: the spec file is missing or invalid.
    """

    def __init__(
        self,
        project_or_spec_path: Project | str | Path,
        *,
        pipeline: str = "hybrid",
        k: int | None = None,
        readiness: str | None = None,
    ):
        self._handle = PipelineHandle(project_or_spec_path, pipeline, k, readiness)
        super().__init__()

    def retrieval(self, query: str) -> Retrieval:
        """The whole ``Retrieval`` (readiness, warnings, notes), as ``Pipeline.retrieve`` returns it."""
        return self._handle.retrieve(query)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return to_nodes(self.retrieval(query_bundle.query_str))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # the store and the model are blocking: a worker thread keeps the event loop free
        return to_nodes(await asyncio.to_thread(self.retrieval, query_bundle.query_str))

    def close(self) -> None:
        """Close the project if this retriever opened it from a spec path."""
        self._handle.close()


def to_nodes(result: Retrieval) -> list[NodeWithScore]:
    """One scored ``TextNode`` per hit, in rank order (node ids are unique per hit)."""
    return [
        NodeWithScore(
            node=TextNode(
                id_=f"{hit.doc_id}#{hit.details.get('chunk_id') or rank}",
                text=hit.passage,
                metadata=metadata(result, hit, rank),
            ),
            score=hit.score,
        )
        for rank, hit in enumerate(result.results, start=1)
    ]
