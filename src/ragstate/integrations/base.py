"""What the framework retrievers share: opening a pipeline, and a hit's metadata.

A retriever answers exactly as ``Project.pipeline(name).retrieve`` (and ``ragstate
query``) does, readiness guard included; it only reshapes the ``Retrieval``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ragstate.errors import QueryError
from ragstate.pipelines.base import Hit, Retrieval
from ragstate.pipelines.query import Pipeline
from ragstate.pipelines.readiness import MODES
from ragstate.project import Project

log = logging.getLogger(__name__)

#: the keys of ``Hit.details`` a document's metadata carries when the pipeline sets them
DETAIL_KEYS = ("chunk_id", "start_char", "end_char", "page", "section")


class PipelineHandle:
    """One pipeline of a project, opened on first use and shared by the threads that query it.

    Args:
        project_or_spec_path: an open ``Project`` (the caller closes it) or the path of a
            spec file (opened here; ``close`` closes it).
        pipeline: an enabled pipeline of the spec.
        k: documents per query (default ``query.k`` of the spec).
        readiness: ``fail`` or ``warn`` (or ``heal``) when the data is not ready; default
            the spec's ``query.readiness``.

    Raises:
        QueryError: k below 1, an unknown readiness mode, a pipeline the spec does not enable.
        SpecError: the spec file is missing or invalid.
    """

    def __init__(self, project_or_spec_path: Project | str | Path, pipeline: str, k: int | None, readiness: str | None):
        if readiness is not None and readiness not in MODES:
            raise QueryError(f"readiness mode {readiness!r}: use one of {', '.join(MODES)}")
        if k is not None and k < 1:
            raise QueryError(f"k is {k}: ask for at least one document")
        if isinstance(project_or_spec_path, Project):
            self.project, self._owned = project_or_spec_path, False
        else:
            self.project, self._owned = Project.from_file(project_or_spec_path), True
        self.pipeline: Pipeline = self.project.pipeline(pipeline)
        self.k = k
        self.readiness = readiness

    def retrieve(self, text: str) -> Retrieval:
        """``Pipeline.retrieve`` with this handle's k and readiness; warnings are logged."""
        result = self.pipeline.retrieve(text, self.k, readiness_mode=self.readiness)
        for warning in result.warnings:
            log.warning("%s", warning)
        return result

    def close(self) -> None:
        """Close the project if this handle opened it."""
        if self._owned:
            self.project.close()


def metadata(result: Retrieval, hit: Hit, rank: int) -> dict[str, Any]:
    """What a framework document carries beside the passage: the hit's id, title, score,
    the kind and generation that ranked it, its rank, the chunk's offsets, page and
    section where the pipeline knows them, and whether the data was ready."""
    data: dict[str, Any] = {
        "doc_id": hit.doc_id,
        "title": hit.title,
        "score": hit.score,
        "rank": rank,
        "pipeline": result.pipeline,
        "kind": hit.kind,
        "generation": hit.generation,
        "ready": result.ready,
    }
    data.update({key: hit.details[key] for key in DETAIL_KEYS if hit.details.get(key) not in (None, "")})
    return data
