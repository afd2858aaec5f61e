"""``ragstate init``: a starter spec, written so that it validates and documents itself."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml

from ragstate.errors import SpecError
from ragstate.spec.load import spec_from_dict
from ragstate.spec.model import SourceSpec


def starter_spec(
    *, source: str, store: str, pipelines: list[str], spec_dir: Path, formats: list[str] | None = None
) -> str:
    """YAML text of a working spec; paths are written relative to ``spec_dir``.

    ``formats``: the file formats found in the source (``sources.loaders.detect_formats``);
    written out when one is outside the default set (PDF, HTML, DOCX), so those are read.

    Raises:
        SpecError: the values do not make a valid spec (unknown pipeline, bad URL).
    """
    if not Path(source).exists():  # a spec that cannot work is not written
        raise SpecError(f"--source: {source} does not exist (a folder or file of documents); nothing written")
    source_rel = _relative(Path(source), spec_dir)
    if source_rel.split(os.sep)[0] == os.pardir:  # outside the spec's folder: say where, absolutely
        source_rel = str((Path.cwd() / source).resolve())
    store_url = _relative_store(store, spec_dir)
    source_section: dict[str, object] = {"path": source_rel}
    if formats and not set(formats) <= set(SourceSpec.model_fields["formats"].default):
        source_section["formats"] = list(formats)
    data = {"store": store_url, "source": source_section, "pipelines": pipelines}
    spec = spec_from_dict(data, base_dir=spec_dir)  # validate before anything is written
    if "hyde" in pipelines and spec.query.hyde.generator is None:
        logging.getLogger(__name__).warning(
            "pipeline hyde is enabled but no text generator is configured: its queries are refused until "
            "generators and query.hyde.generator are set (see the commented lines of the spec; docs/retrieval.md)"
        )
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    return (
        "# ragstate spec: the desired state of this project's RAG data.\n"
        "# Reference: README.md, section 'Spec reference'. Relative paths are relative to this file.\n"
        + body
        + "\n# Everything below is the default; uncomment to change.\n"
        "# scope: all                  # or {first: 100}\n"
        "# models:\n"
        "#   default:\n"
        "#     provider: sentence-transformers\n"
        "#     name: all-MiniLM-L6-v2   # or a local model folder\n"
        "#     device: cpu\n"
        "#     normalize: true\n"
        "#     batch_size: 32\n"
        "# artifacts:\n"
        "#   doc_embeddings:\n"
        "#     model: default\n"
        '#     text: "{title}\\n\\n{summary}"\n'
        "#   chunks:                    # crag, colbert, noderag, graphrag\n"
        "#     model: default           # whose tokenizer counts tokens\n"
        "#     chunker: sections\n"
        "#     max_tokens: null         # default: the model's window\n"
        "#     min_tokens: 64\n"
        "#   chunk_embeddings: {model: default}    # noderag\n"
        "#   token_embeddings: {model: default}    # colbert: the model's per-token outputs\n"
        "#   entities: {extractor: rules}          # graphrag (offline, no download)\n"
        "#   entity_embeddings: {model: default}   # graphrag\n"
        "#   fulltext: {language: english}         # hybrid\n"
        "# reconcile:\n"
        "#   batch_size: 64\n"
        "#   max_delete_share: 0.5\n"
        "# generations:                 # recipe changes: docs/generations.md\n"
        "#   keep: 2                    # inactive generations kept for rollback\n"
        "#   golden: {queries: 50, k: 10, min_share: 0.95}   # checked before a switch\n"
        "# query:                       # ragstate query (docs/retrieval.md)\n"
        "#   readiness: fail            # or warn (answer anyway), heal (reconcile first)\n"
        "#   k: 10\n"
        "#   hyde: {generator: local}   # HyDE needs a text generator:\n"
        "# generators:\n"
        "#   local: {url: http://localhost:8000/v1, model: NAME, api_key_env: LLM_API_KEY}\n"
        "# profiles:\n"
        "#   production:\n"
        "#     store: postgresql://ragstate@db.example.com/rag\n"
    )


def _relative(path: Path, base: Path) -> str:
    absolute = path if path.is_absolute() else Path.cwd() / path
    try:
        return os.path.relpath(absolute.resolve(), base.resolve())
    except ValueError:  # another drive on Windows
        return str(absolute)


def _relative_store(url: str, spec_dir: Path) -> str:
    """Make a SQLite path given relative to the working directory relative to the spec."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + _relative(Path(url.removeprefix("sqlite:///")), spec_dir)
    if "://" not in url and url.endswith((".db", ".sqlite", ".sqlite3")):
        return "sqlite:///" + _relative(Path(url), spec_dir)
    if not url.startswith(("sqlite:", "postgresql://", "postgres://")):
        raise SpecError(f"--store: {url!r} is not a sqlite:///path or postgresql:// URL")
    return url
