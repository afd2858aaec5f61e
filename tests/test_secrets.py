"""No secret used by a run reaches its output: a grep of everything the CLI flows leave behind.

Each backend runs the flows a user runs (plan, saved plan, apply, verify, status,
quarantine, reconcile, the HTML report, and failing ones) through the CLI, at ``--log-level debug``, in
text and in ``--json``, with the test password in every place a spec or environment
can hold one: a store URL (literal, warned), ``PGPASSWORD``, a ``password_file``, an
extractor's ``api_key`` option, an unselected profile. Then the password is searched for
in stdout and stderr (logs, errors, JSON) and in every row of every table ragstate
keeps (run records, generations with their recipes, quarantine, locks).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from typer.testing import CliRunner

from conftest import write_short_corpus
from ragstate.cli import app
from ragstate.compute import extractors

PASSWORD = "Kq7vZ2mXw9Lp"


class KeyedExtractor(extractors.RuleExtractor):
    """The rules extractor behind an ``api_key``, as a service-backed extractor would take one."""

    def __init__(self, api_key: str):
        super().__init__()
        self.api_key = api_key


@pytest.fixture
def keyed_extractor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(extractors.BUILTIN, "keyed", KeyedExtractor)


def cli(*args: str) -> tuple[int, str, str]:
    """Run a command at debug log level; its exit code, stdout and stderr."""
    result = CliRunner().invoke(app, ["--log-level", "debug", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def pg_store(admin_url: str, role: str, schema: str, password: str | None) -> str:
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(admin_url)
    query = "&".join(f"{k}={quote(str(info[k]), safe='/')}" for k in ("host", "port") if info.get(k))
    user = f"{role}:{password}" if password else role
    return f"postgresql://{user}@/{info.get('dbname', 'postgres')}" + (f"?{query}" if query else "")


@pytest.fixture
def secured(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, keyed_extractor
):
    """``(spec path, dump)``: a spec holding the password on this backend, and a function
    that returns every row of every ragstate table as text."""
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    corpus = write_short_corpus(tmp_path / "corpus")
    (corpus / "empty.txt").write_text("  \n")  # quarantined: its error goes into the store
    spec: dict[str, Any] = {
        "source": {"path": str(corpus)},
        "pipelines": ["basic", "graphrag"],
        "artifacts": {"entities": {"extractor": "keyed", "options": {"api_key": PASSWORD}}},
        "profiles": {"production": {"store": f"postgresql://rag:{PASSWORD}@db.example.com/rag"}},
    }
    if backend == "sqlite":
        db = tmp_path / "store.db"
        spec["store"] = {"url": f"sqlite:///{db}"}

        def dump() -> str:
            return b"".join(p.read_bytes() for p in tmp_path.glob("store.db*")).decode("utf-8", "replace")

    else:
        import psycopg

        admin_url = request.getfixturevalue("pg_url")
        tag = uuid.uuid4().hex[:8]
        role, schema = f"rs_sec_{tag}", f"rag_{tag}"
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute("CREATE EXTENSION IF NOT EXISTS vector")
            admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{PASSWORD}'")
            admin.execute(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{role}"')
        spec["store"] = {"url": pg_store(admin_url, role, schema, PASSWORD), "schema": schema}

        def dump() -> str:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                tables = admin.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
                ).fetchall()
                rows = [
                    str(admin.execute(f'SELECT t::text FROM "{schema}"."{name}" t').fetchall()) for (name,) in tables
                ]
            assert len(tables) > 8
            return "\n".join(rows)

    path = tmp_path / "ragstate.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    yield path, dump
    if backend == "postgres":
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            admin.execute(f'DROP ROLE "{role}"')


@pytest.mark.slow
def test_no_output_and_no_stored_row_holds_the_password(secured, tmp_path: Path) -> None:
    spec, dump = secured
    c = str(spec)
    outputs: list[str] = []  # stdout and stderr of each command
    last: dict[str, str] = {}

    def run(*args: str) -> int:
        code, last["out"], err = cli(*args)
        outputs.append(last["out"] + err)
        return code

    plan_file = tmp_path / "plan.json"
    assert run("plan", "-c", c, "--out", str(plan_file)) == 2
    assert "holds a literal password or token" in outputs[0]  # warned, by field
    assert "profiles.production.store" in outputs[0] and "artifacts.entities.options.api_key" in outputs[0]
    assert run("plan", "-c", c, "--json") == 2
    assert run("apply", str(plan_file), "-c", c) == 4  # the empty document is quarantined
    assert run("apply", "-c", c, "--json") == 4
    assert run("verify", "-c", c, "--json") == 0
    assert run("status", "-c", c, "--json") == 0
    assert run("status", "-c", c) == 0
    assert run("quarantine", "list", "-c", c, "--json") == 0
    assert run("quarantine", "retry", "--all", "-c", c, "--json") == 4
    assert run("reconcile", "-c", c, "--json") == 4
    assert json.loads(last["out"])["converged"]
    page = tmp_path / "status.html"
    assert run("report", "--html", str(page), "-c", c, "--json") == 0
    outputs.append(page.read_text(encoding="utf-8"))  # the HTML report

    # Failing flows: errors that quote the store URL or the value given.
    data = yaml.safe_load(spec.read_text())
    broken = tmp_path / "broken.yaml"
    data["store"] = {"url": f"postgresql://rag:{PASSWORD}@127.0.0.1:9/rag", "connect_timeout_s": 2}
    broken.write_text(yaml.safe_dump(data))
    assert run("plan", "-c", str(broken)) == 1 and "cannot connect" in outputs[-1]
    assert run("apply", "-c", str(broken), "--json") == 1
    secret_file = tmp_path / "pw"
    secret_file.write_text(PASSWORD + "\n")
    data["store"] = {
        "url": "postgresql://rag@127.0.0.1:9/rag",
        "password_file": str(secret_file),
        "connect_timeout_s": 2,
    }
    broken.write_text(yaml.safe_dump(data))
    assert run("status", "-c", str(broken), "--json") == 1
    data["store"] = f"mysql://rag:{PASSWORD}@db/rag"
    broken.write_text(yaml.safe_dump(data))
    assert run("plan", "-c", str(broken), "--json") == 1 and "store.url" in outputs[-1]

    leaks = [i for i, text in enumerate(outputs) if PASSWORD in text]
    assert leaks == [], f"the password is in the output of command {leaks}"
    stored = dump()
    assert "keyed" in stored and "api_key" in stored  # the recipe is there, its secret masked
    assert PASSWORD not in stored


API_KEY = "sk-live-Zr8Qw3Nf6Tt1"
WRONG_KEY = "sk-wrong-Hb4Yc7Pm2Xv5"


@pytest.mark.slow
def test_no_output_and_no_stored_row_holds_an_embedding_api_key(
    backend, spec_file, store_spec, embedding_api, monkeypatch, tmp_path: Path, request
) -> None:
    """The key of an embedding API (``models.<name>.api_key_env``), the one a server echoes
    back in its 401 (a wrong key), and a key file: in no output and no stored row."""
    from conftest import api_model

    embedding_api.reply.key = API_KEY
    monkeypatch.setenv("EMBED_KEY", API_KEY)
    models = {"default": api_model(embedding_api.url, api_key_env="EMBED_KEY", price_per_million_tokens=0.02)}
    c = str(spec_file(models=models))
    outputs: list[str] = []

    def run(*args: str) -> int:
        code, out, err = cli(*args)
        outputs.append(out + err)
        return code

    assert run("plan", "-c", c, "--json") == 2
    assert run("apply", "-c", c, "--json") == 0
    assert run("verify", "-c", c) == 0
    assert run("status", "-c", c, "--json") == 0
    assert run("query", "basic", "seed germination", "-c", c, "--json") == 0
    assert all(h.get("Authorization") == f"Bearer {API_KEY}" for _, h, _ in embedding_api.requests)

    monkeypatch.setenv("EMBED_KEY", WRONG_KEY)  # the server echoes it in its 401
    (tmp_path / "corpus" / "text" / "new.txt").write_text("A new title\n\nA new abstract.\n")
    assert run("apply", "-c", c, "--json") == 1
    assert "environment variable EMBED_KEY" in outputs[-1] and "HTTP 401" in outputs[-1]
    key_file = tmp_path / "embed.key"
    key_file.write_text(API_KEY + "\n")
    by_file = {"default": {**models["default"], "api_key_env": None, "api_key_file": str(key_file)}}
    assert run("apply", "-c", str(spec_file("file.yaml", models=by_file))) == 0

    if backend == "sqlite":
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("store.db*")).decode("utf-8", "replace")
    else:
        import psycopg

        schema = store_spec["schema"]
        with psycopg.connect(request.getfixturevalue("pg_url"), autocommit=True) as admin:
            tables = admin.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
            ).fetchall()
            stored = "\n".join(
                str(admin.execute(f'SELECT t::text FROM "{schema}"."{name}" t').fetchall()) for (name,) in tables
            )
    for secret in (API_KEY, WRONG_KEY):
        assert not [o for o in outputs if secret in o], f"{secret} printed"
        assert secret not in stored
