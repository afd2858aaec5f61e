"""A LangChain retriever over one ragstate pipeline (``pip install ragstate[langchain]``).

    from ragstate.integrations.langchain import RagstateRetriever

    retriever = RagstateRetriever("ragstate.yaml", pipeline="hybrid", k=5, readiness="fail")
    docs = retriever.invoke("hydrogel tensile strength")   # list[Document], best first

Each ``Document``'s ``page_content`` is the passage that matched; its ``metadata`` holds
doc_id, title, score, rank, pipeline, kind, generation, ready and, where the pipeline
knows them, chunk_id, start_char, end_char, page and section. The documents are those
``ragstate query`` returns for the same text, in the same order; a pipeline that is not
ready raises ``ragstate.errors.NotReady`` (``readiness="fail"``) or answers with the
warnings logged (``"warn"``). ``ainvoke`` runs the query in a worker thread.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import PrivateAttr

from ragstate.integrations.base import PipelineHandle, metadata
from ragstate.pipelines.base import Retrieval
from ragstate.project import Project


class RagstateRetriever(BaseRetriever):
    """LangChain ``BaseRetriever`` answering from a reconciled ragstate pipeline.

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

    pipeline: str = "hybrid"
    k: int | None = None
    readiness: str | None = None
    _handle: PipelineHandle = PrivateAttr()

    def __init__(
        self,
        project_or_spec_path: Project | str | Path,
        *,
        pipeline: str = "hybrid",
        k: int | None = None,
        readiness: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(pipeline=pipeline, k=k, readiness=readiness, **kwargs)
        self._handle = PipelineHandle(project_or_spec_path, pipeline, k, readiness)

    def retrieval(self, query: str) -> Retrieval:
        """The whole ``Retrieval`` (readiness, warnings, notes), as ``Pipeline.retrieve`` returns it."""
        return self._handle.retrieve(query)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return to_documents(self.retrieval(query))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        # the store and the model are blocking: a worker thread keeps the event loop free
        return to_documents(await asyncio.to_thread(self.retrieval, query))

    def close(self) -> None:
        """Close the project if this retriever opened it from a spec path."""
        self._handle.close()


def to_documents(result: Retrieval) -> list[Document]:
    """One ``Document`` per hit, in rank order."""
    return [
        Document(page_content=hit.passage, metadata=metadata(result, hit, rank), id=hit.doc_id)
        for rank, hit in enumerate(result.results, start=1)
    ]
