"""``ragstate doctor``: every failure is named with its fix and exits 1; apply runs the cheap part."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict
from typer.testing import CliRunner

from helpers import HASH_MODELS, core_only
from ragstate import Project, spec_from_dict
from ragstate.cli import app
from ragstate.errors import PreflightError, StoreError
from ragstate.reconcile.doctor import doctor as run_doctor
from ragstate.spec import load_spec
from ragstate.stores import open_store


def doctor(path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["doctor", "-c", str(path), "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def role_url(admin_url: str, role: str, database: str | None = None) -> str:
    info = conninfo_to_dict(admin_url)
    query = "&".join(f"{k}={quote(str(info[k]), safe='/')}" for k in ("host", "port") if info.get(k))
    return f"postgresql://{role}@/{database or info.get('dbname', 'postgres')}" + (f"?{query}" if query else "")


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def test_a_healthy_setup_passes_every_check(spec_file, backend: str) -> None:
    code, report = doctor(spec_file(pipelines=["basic", "hybrid"]))
    assert code == 0 and report["ok"], report
    checks = by_name(report)
    assert {"store.reachable", "store.vector", "store.fulltext", "store.rights", "store.schema"} <= set(checks)
    assert {"model.default", "model.default.load", "plugins", "memory", "disk"} <= set(checks)
    assert all(c["status"] in ("ok", "warn") for c in report["checks"])
    # versions are named
    assert ("pgvector" if backend == "postgres" else "sqlite-vec") in checks["store.vector"]["detail"]
    assert "384-dimension" in checks["model.default.load"]["detail"]


def test_a_model_path_that_does_not_exist(spec_file, tmp_path: Path) -> None:
    missing = tmp_path / "models" / "nowhere"
    path = spec_file(models={"default": {"name": str(missing)}})
    code, report = doctor(path)
    assert code == 1 and not report["ok"]
    check = by_name(report)["model.default"]
    assert check["status"] == "fail" and str(missing) in check["detail"]
    assert "models.default.name" in check["fix"] and "local" in check["fix"]
    text = CliRunner().invoke(app, ["doctor", "-c", str(path)]).stdout
    assert "FAIL" in text and "fix: set models.default.name" in text


def test_a_dimension_the_model_does_not_have(spec_file) -> None:
    code, report = doctor(spec_file(models={"default": {"dimension": 512}}), "--cheap")
    check = by_name(report)["model.default"]
    assert code == 1 and check["status"] == "fail" and "512" in check["detail"]
    assert check["fix"] == "set models.default.dimension to the model's output dimension, or remove it"
    assert "model.default.load" not in by_name(report)  # --cheap loads nothing


def test_apply_runs_the_cheap_checks_first(make_project, tmp_path: Path) -> None:
    project = make_project(models={"default": {"dimension": 512}})
    with pytest.raises(PreflightError) as err:
        project.apply()
    assert "model.default" in str(err.value) and "fix: set models.default.dimension" in str(err.value)
    with project.store.session() as s:  # nothing was recorded, not even ragstate's tables
        assert project.store.columns(s, "runs") is None


# --- PostgreSQL: a database without pgvector, a read-only role ------------------------------


@pytest.fixture
def admin(pg_url: str):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


@pytest.mark.postgres
def test_a_store_without_pgvector(admin, pg_url: str, tmp_path: Path, corpus: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    database, role = f"novec_{tag}", f"rs_novec_{tag}"
    admin.execute(f'CREATE DATABASE "{database}"')  # no CREATE EXTENSION vector in it
    admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw-{tag}'")
    admin.execute(f'GRANT CREATE ON DATABASE "{database}" TO "{role}"')
    try:
        (tmp_path / "pw").write_text(f"pw-{tag}\n")
        store = {"url": role_url(pg_url, role, database), "password_file": str(tmp_path / "pw")}
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump({"store": store, "source": str(corpus)}))
        code, report = doctor(path, "--cheap")
        assert code == 1
        vector = by_name(report)["store.vector"]
        assert vector["status"] == "fail" and "not enabled in database " + database in vector["detail"]
        assert "pgvector 0." in vector["detail"] and role in vector["detail"]
        assert vector["fix"] == f"an administrator runs CREATE EXTENSION vector; in database {database}"
        assert by_name(report)["store.rights"]["status"] == "ok"  # everything else is in order
        # Once the administrator enables it, doctor passes.
        with psycopg.connect(with_database(pg_url, database), autocommit=True) as db:
            db.execute("CREATE EXTENSION vector")
        code, report = doctor(path, "--cheap")
        assert code == 0 and by_name(report)["store.vector"]["status"] == "ok", report
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.mark.postgres
def test_a_read_only_role(admin, pg_url: str, tmp_path: Path, corpus: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    schema, role = f"rag_{tag}", f"rs_ro_{tag}"
    admin.execute("CREATE EXTENSION IF NOT EXISTS vector")
    owner = {"store": {"url": pg_url, "schema": schema}, "source": {"path": str(corpus)}}
    with Project(spec_from_dict(owner, base_dir=tmp_path)) as project:
        project.store.migrate()  # ragstate's tables, owned by the administrator
    admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw-{tag}'")
    admin.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    admin.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
    try:
        (tmp_path / "pw").write_text(f"pw-{tag}\n")
        store = {"url": role_url(pg_url, role), "schema": schema, "password_file": str(tmp_path / "pw")}
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump({"store": store, "source": str(corpus)}))
        code, report = doctor(path, "--cheap")
        assert code == 1
        rights = by_name(report)["store.rights"]
        assert rights["status"] == "fail"
        assert f"CREATE on schema {schema}" in rights["detail"] and "INSERT, UPDATE, DELETE on" in rights["detail"]
        assert "documents" in rights["detail"] and f"OWNER TO {role}" in rights["fix"]
        # apply stops at the same check, before it records a run
        result = CliRunner().invoke(app, ["apply", "-c", str(path), "--json"])
        assert result.exit_code == 1
        error = json.loads(result.stdout)
        assert error["error_type"] == "PreflightError" and "store.rights" in error["error"]
        assert admin.execute(f'SELECT count(*) FROM "{schema}".runs').fetchone()[0] == 0
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.execute(f'DROP OWNED BY "{role}"')
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_a_damaged_store_is_named_with_the_command_that_rebuilds_it(spec_file, backend: str, pg_url: str) -> None:
    """Issue 15, item 5: every command said 'database disk image is malformed' and doctor said all passed."""
    path = spec_file(models=HASH_MODELS)
    with Project.from_file(path) as project:
        assert project.apply().converged
        spec = project.spec
        if backend == "postgres":
            # An index PostgreSQL no longer uses (a failed CREATE INDEX CONCURRENTLY leaves one so)
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(
                    "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass",
                    (f"{spec.store.schema_name}.ledger_pkey",),
                )
        else:
            with project.store.session() as s:
                s.query("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file itself
                root = s.scalar("SELECT rootpage FROM sqlite_master WHERE name = 'rs_ledger'")
                page = s.scalar("PRAGMA page_size")
    if backend == "sqlite":
        db = Path(spec.store.url.removeprefix("sqlite:///"))
        with open(db, "r+b") as f:  # garbage over the ledger's root page
            f.seek((root - 1) * page)
            f.write(b"\xde\xad\xbe\xef" * (page // 4))
        with Project.from_file(path) as project, pytest.raises(StoreError, match="malformed.*ragstate doctor"):
            project.status()

    code, report = doctor(path)
    assert code == 1
    check = by_name(report)["store.integrity"]
    assert check["status"] == "fail" and "is damaged" in check["detail"]
    if backend == "sqlite":
        assert "(tables: rs_ledger)" in check["detail"] and "RAGSTATE_STORE__URL=sqlite:///" in check["fix"]
        env = {"RAGSTATE_STORE__URL": check["fix"].split("RAGSTATE_STORE__URL=")[1].split()[0]}
    else:
        assert "index ledger_pkey of ledger is invalid" in check["detail"] and "REINDEX" in check["fix"]
        env = {"RAGSTATE_STORE__SCHEMA": check["fix"].split("RAGSTATE_STORE__SCHEMA=")[1].split()[0]}
    # the command the fix gives rebuilds everything from the source into a fresh store
    with Project(load_spec(path, environ=env)) as fresh:
        assert fresh.reconcile().converged and fresh.verify().in_sync
    assert by_name(doctor(path, "--cheap")[1]).get("store.integrity") is None, "not part of every apply's checks"


def test_the_disk_check_names_the_headroom_it_keeps(make_project, tmp_path: Path) -> None:
    """Issue 15, item 9: '3 MiB free, the next batches need 1.5 MiB' was a failure with no word of why."""
    from ragstate.reconcile.doctor import DISK_HEADROOM, _disk_check

    project = make_project(models=HASH_MODELS)
    free = shutil.disk_usage(tmp_path).free
    check = _disk_check(project.spec, project.store, free - 3 * 2**20, 1)  # 3 MiB left after the batches
    assert check.status == "fail"
    assert f"plus {DISK_HEADROOM // 2**20} MiB of headroom" in check.detail and "in all" in check.detail
    assert "MiB more at" in check.fix
    assert _disk_check(project.spec, project.store, 2**20, 1).status == "ok"


def test_doctor_reports_the_store_capabilities(spec_file, backend: str) -> None:
    path = spec_file(pipelines=["basic", "hybrid"])
    code, report = doctor(path, "--cheap")
    assert code == 0 and report["capabilities"] == {
        "VectorSearch": True,
        "FullTextSearch": True,
        "ProcessLocks": True,
        "InPlaceTables": True,
    }
    check = by_name(report)["store.capabilities"]
    assert check["status"] == "ok" and check["detail"] == "VectorSearch, FullTextSearch, ProcessLocks, InPlaceTables"
    text = CliRunner().invoke(app, ["doctor", "-c", str(path), "--cheap"]).stdout
    assert "store.capabilities" in text and "VectorSearch, FullTextSearch, ProcessLocks, InPlaceTables" in text


def test_doctor_fails_a_backend_without_a_capability_the_spec_needs(spec_file, backend: str) -> None:
    spec = load_spec(spec_file(pipelines=["basic", "hybrid"]))
    store = core_only(open_store(spec.store))
    try:
        report = run_doctor(spec, store=store, cheap=True)
    finally:
        store.close()
    check = next(c for c in report.checks if c.name == "store.capabilities")
    assert not report.ok and check.status == "fail"
    assert report.capabilities == dict.fromkeys(
        ("VectorSearch", "FullTextSearch", "ProcessLocks", "InPlaceTables"), False
    )
    assert check.detail == (
        f"{store.description} implements none beyond the core store; the spec needs ProcessLocks (apply's "
        "single-writer lock); VectorSearch (every retrieval pipeline); FullTextSearch (the fulltext kind "
        "of pipeline hybrid)"
    )
