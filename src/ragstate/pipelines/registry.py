"""Which artifact kinds each retrieval pipeline reads (the seeds' requirements).

=============  ===============================================================
pipeline       artifact kinds it needs
=============  ===============================================================
``basic``      doc_embeddings
``hyde``       doc_embeddings
=============  ===============================================================

A kind that several enabled pipelines need is built once. Kinds are added to this
table as they become available; a pipeline whose kinds are not yet built by this
version is refused by name when a spec enables it.
"""

from __future__ import annotations

from ragstate.errors import SpecError

REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "basic": ("doc_embeddings",),
    "hyde": ("doc_embeddings",),
}


def kinds_for(pipelines: tuple[str, ...]) -> tuple[str, ...]:
    """The distinct kinds the given pipelines need, in first-mention order."""
    kinds: list[str] = []
    for pipeline in pipelines:
        if pipeline not in REQUIREMENTS:
            raise SpecError(
                f"pipelines: '{pipeline}' is not available in this version of ragstate "
                f"(available: {', '.join(REQUIREMENTS)})"
            )
        for kind in REQUIREMENTS[pipeline]:
            if kind not in kinds:
                kinds.append(kind)
    return tuple(kinds)
