"""The seeds' security tests, for real, and the limits: hostile input is refused by name.

Injection through a pipeline name, ragstate's schema or prefix, a table name, a filter
value; ``../../../etc/passwd`` as a source path and a symlink to it inside the source;
a 10,000-character identifier; a spec that expands without bound; a document over the
size limit; a run over the document limit. SECURITY.md points at each test here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from helpers import HASH_MODELS
from ragstate import Project
from ragstate.cli import app
from ragstate.errors import IdentifierError, SpecError
from ragstate.identifiers import ident, user_ident
from ragstate.reconcile.daemon import Daemon
from ragstate.spec import load_spec

LONG = "a" * 10_000


def cli(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, json.loads(result.stdout)


def write(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def store_is_untouched(backend: str, spec: dict, pg_url: str | None) -> bool:
    if backend == "sqlite":
        return not Path(spec["store"]["url"].removeprefix("sqlite:///")).exists()
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (spec["store"]["schema"],)).fetchone()
    return found is None


# --- injection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("pipelines", ["basic; DROP TABLE rs_runs; --"], "pipelines.0"),
        ("store.schema", "rag; DROP SCHEMA public CASCADE", "store.schema"),
        ("store.prefix", 'rs_"; DROP TABLE x; --', "store.prefix"),
        ("source", {"table": "articles; DROP TABLE x", "id": "id", "text": "body"}, "source.table"),
        ("source", {"table": "articles", "id": "id", "text": "body", "where": ["st;atus=1"]}, "source.where"),
        ("artifacts.fulltext.language", "english'); DROP TABLE x; --", "artifacts.fulltext.language"),
    ],
    ids=["pipeline", "schema", "prefix", "table", "filter-column", "language"],
)
def test_injection_in_a_spec_name_is_refused_before_the_store_is_touched(
    backend, make_spec, tmp_path: Path, request, field: str, value, named: str
) -> None:
    spec = make_spec()
    *parents, last = field.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    code, out = cli("plan", "-c", write(tmp_path / "s.yaml", spec))
    assert code == 1 and out["error_type"] == "SpecError"
    assert named in out["error"]
    pg_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    assert store_is_untouched(backend, spec, pg_url)


# --- paths ----------------------------------------------------------------------------


def test_a_source_path_climbing_out_of_the_spec_folder_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    spec = write(deep / "s.yaml", {"store": "sqlite:///s.db", "source": "../../../etc/passwd"})
    code, out = cli("plan", "-c", spec)
    assert code == 1 and out["error_type"] == "SpecError"
    assert (
        "source.path" in out["error"] and "../../../etc/passwd" in out["error"] and "allow_parent_dirs" in out["error"]
    )
    assert not (deep / "s.db").exists()
    for climbing in ("..", "corpus/../../x", "./../x"):
        with pytest.raises(SpecError, match="leads out of the spec's folder"):
            load_spec(write(deep / "s.yaml", {"store": "sqlite:///s.db", "source": climbing}), environ={})
    # Inside the folder (even through ..), or opted in, the path is taken.
    assert load_spec(write(deep / "s.yaml", {"store": "s.db", "source": "corpus/../docs"}), environ={})
    allowed = {"store": "s.db", "source": {"path": "../../../etc/passwd", "allow_parent_dirs": True}}
    path = load_spec(write(deep / "s.yaml", allowed), environ={}).source.path
    assert path == Path(os.path.normpath(deep / "../../../etc/passwd")) and ".." not in path.parts


def test_init_writes_an_outside_source_as_an_absolute_path(tmp_path: Path, corpus: Path, monkeypatch) -> None:
    spec_dir = tmp_path / "project"
    spec_dir.mkdir()
    monkeypatch.chdir(spec_dir)
    code, _ = cli("init", "--source", os.path.relpath(corpus, spec_dir), "--store", "sqlite:///s.db")
    assert code == 0
    assert load_spec(spec_dir / "ragstate.yaml", environ={}).source.path == corpus


@pytest.mark.skipif(not Path("/etc/passwd").exists(), reason="needs /etc/passwd")
def test_a_symlink_to_etc_passwd_inside_the_source_is_refused(backend, spec_file, corpus: Path, tmp_path) -> None:
    """Refused by name and quarantined; the rest of the corpus converges (issue 15, item 6: it halted all)."""
    os.symlink("/etc/passwd", corpus / "text" / "passwd.txt")
    os.symlink(corpus / "markdown" / "nowhere.md", corpus / "markdown" / "dangling.md")
    os.symlink("/etc", corpus / "escape")
    spec = spec_file(models=HASH_MODELS)
    code, out = cli("plan", "-c", str(spec))
    assert code == 2, out
    found = {e["item"]: e for e in out["quarantine"]["new"]}
    assert {k: e["reason"] for k, e in found.items()} == {
        "text/passwd.txt": "outside_source",
        "markdown/dangling.md": "unreadable",
        "escape": "outside_source",
    }
    assert "text/passwd.txt is a symlink to /etc/passwd" in found["text/passwd.txt"]["message"]
    assert "follow_symlinks" in found["text/passwd.txt"]["message"]
    code, out = cli("apply", "-c", str(spec))
    assert code == 4 and out["status"] == "converged" and out["quarantined"] == {"source": 3}, out
    code, out = cli("status", "-c", str(spec))
    assert code == 0 and out["quarantine"]["quarantined"] == {"source": 3}, out
    with Project.from_file(spec) as project:
        with project.store.session() as s:
            assert s.scalar("SELECT count(*) FROM {documents}") == 18
            assert s.scalar("SELECT count(*) FROM {documents} WHERE doc_id = ?", ("text/passwd.txt",)) == 0
        assert Daemon(project, once=True).run() == 4, "a daemon's cycle converges except the quarantined"


# --- identifiers ----------------------------------------------------------------------


def test_a_ten_thousand_character_identifier_is_refused_everywhere(tmp_path: Path, make_spec) -> None:
    for check in (ident, user_ident):
        with pytest.raises(IdentifierError) as info:
            check(LONG)
        assert len(str(info.value)) < 300  # named, not echoed whole
    for field, value in [
        ("store", {"url": "sqlite:///s.db", "schema": LONG}),
        ("store", {"url": "sqlite:///s.db", "prefix": LONG}),
        ("pipelines", [LONG]),
        ("source", {"table": LONG, "id": "id", "text": "body"}),
        ("source", {"table": "t", "id": LONG, "text": "body"}),
        ("source", {"table": "t", "id": "id", "text": "body", "name": LONG}),
        ("source", {"table": "t", "id": "id", "text": "body", "where": {LONG: 1}}),
    ]:
        spec = make_spec(**{field: value}) if field != "store" else {**make_spec(), "store": value}
        code, out = cli("plan", "-c", write(tmp_path / "s.yaml", spec))
        assert code == 1 and out["error_type"] == "SpecError", (field, value if len(str(value)) < 100 else "...")
        assert len(out["error"]) < 1000
    code, out = cli(
        "source",
        "map-table",
        "-c",
        write(tmp_path / "s.yaml", make_spec()),
        "--table",
        LONG,
        "--id",
        "id",
        "--text",
        "b",
    )
    assert code == 1 and "source.table" in out["error"] and len(out["error"]) < 1000


def test_an_identifier_with_a_final_newline_is_refused() -> None:
    # re.match(r"^...$") accepts "name\n"; the allow-lists match the whole string.
    for check in (ident, user_ident):
        with pytest.raises(IdentifierError):
            check("name\n")


# --- limits ---------------------------------------------------------------------------


def test_a_spec_that_expands_through_aliases_is_refused(tmp_path: Path) -> None:
    lines = ["store: sqlite:///s.db", "source: d", "x0: &x0 [a, a, a, a, a, a, a, a, a, a]"]
    lines += [f"x{i}: &x{i} [*x{i - 1}, *x{i - 1}, *x{i - 1}, *x{i - 1}, *x{i - 1}, *x{i - 1}]" for i in range(1, 12)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 2000
    with pytest.raises(SpecError, match="more than 100000 YAML nodes"):
        load_spec(bomb, environ={})
    loop = tmp_path / "loop.yaml"
    loop.write_text("store: sqlite:///s.db\nsource: d\nartifacts: {entities: {options: &o {self: *o}}}\n")
    with pytest.raises(SpecError):
        load_spec(loop, environ={})


def test_limits_in_the_spec_are_bounded(tmp_path: Path) -> None:
    for reconcile in ({"batch_size": 100_001}, {"max_documents_per_run": 0}):
        spec = write(tmp_path / "s.yaml", {"store": "s.db", "source": "d", "reconcile": reconcile})
        with pytest.raises(SpecError, match="reconcile"):
            load_spec(spec, environ={})


def test_over_limit_documents_are_quarantined_by_name(backend, spec_file) -> None:
    spec = str(spec_file(source={"max_document_bytes": 60_000}))
    code, out = cli("apply", "-c", spec)
    assert code == 4 and out["converged"]
    code, listed = cli("quarantine", "list", "-c", spec)
    too_large = [e for e in listed["entries"] if e["reason"] == "too_large"]
    assert {e["doc_id"] for e in too_large} == {"jats/PMC12429890.xml", "jats/PMC12429894.xml", "jats/PMC12430055.xml"}
    assert all("the limit (source.max_document_bytes) is 60000" in e["message"] for e in too_large)


def test_a_run_over_the_document_limit_is_refused_before_it_starts(backend, make_project) -> None:
    from ragstate.errors import RunTooLarge

    project = make_project(reconcile={"max_documents_per_run": 10})
    with pytest.raises(RunTooLarge, match="builds 18 documents; reconcile.max_documents_per_run is 10") as info:
        project.apply()
    assert info.value.exit_code == 1 and (info.value.documents, info.value.limit) == (18, 10)
    with project.store.session() as s:
        assert s.scalar("SELECT count(*) FROM {ledger}") == 0
        assert s.query("SELECT status, error FROM {runs}")[0][0] == "refused"
    # Growing the scope in steps stays under the limit.
    stepped = make_project(reconcile={"max_documents_per_run": 10}, scope={"first": 10})
    assert stepped.apply().converged
    with Project(stepped.spec.model_copy(update={"scope": "all"})) as rest:
        assert rest.apply().converged


def test_a_jats_file_cannot_make_ragstate_read_another_file() -> None:
    from ragstate.errors import MalformedDocument
    from ragstate.sources.loaders import parse_jats

    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE article [<!ENTITY p SYSTEM "file:///etc/passwd">]>'
        b"<article><front><article-meta><title-group><article-title>&p;</article-title></title-group>"
        b"</article-meta></front></article>"
    )
    with pytest.raises(MalformedDocument, match="not well-formed XML"):
        parse_jats(xxe, "jats/xxe.xml")
