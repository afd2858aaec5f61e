"""``hyde``: embed a hypothetical passage that a text generator writes for the query.

HyDE (Gao et al., 2022): a question and the passage that answers it are far apart in
embedding space; a passage the generator invents to answer it lies closer to the real
one. The generator (``query.hyde.generator``, an entry of ``generators``) writes one
passage from ``query.hyde.prompt``; its embedding (averaged with the query's own when
``query.hyde.include_query``) is searched in ``doc_embeddings`` as ``basic`` does.

Without a generator HyDE refuses to answer (``GeneratorConfigError``): it never falls
back to the query alone, which would be ``basic`` under another name.
"""

from __future__ import annotations

from ragstate.artifacts.requirements import HYDE_NEEDS_GENERATOR
from ragstate.compute.generators import Generator, make_generator
from ragstate.errors import GeneratorConfigError
from ragstate.pipelines.base import Found, QueryContext, Retriever, unit
from ragstate.spec.model import Spec


class Hyde(Retriever):
    name = "hyde"

    def generator(self, spec: Spec) -> Generator:
        name = spec.query.hyde.generator
        if name is None:
            raise GeneratorConfigError(HYDE_NEEDS_GENERATOR)
        return make_generator(name, spec.generators[name])

    def check(self, spec: Spec) -> None:
        self.generator(spec)

    def prepare(self, spec: Spec, query: str) -> tuple[str, dict]:
        """The hypothetical passage (written before the store is read) and the generator's identity."""
        params = spec.query.hyde
        generator = self.generator(spec)
        passage = generator.generate(
            params.prompt.replace("{query}", query), max_tokens=params.max_tokens, temperature=params.temperature
        )
        return passage, generator.identity()

    def retrieve(self, ctx: QueryContext, query: str, k: int) -> Found:
        passage, identity = ctx.prepared
        vector = ctx.encode("doc_embeddings", passage)
        if ctx.spec.query.hyde.include_query:
            vector = unit(vector + ctx.encode("doc_embeddings", query))
        return Found(ctx.nearest_documents(vector, k), notes={"hypothetical": passage, "generator": identity})
