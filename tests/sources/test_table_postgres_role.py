"""Acceptance on PostgreSQL: ragstate runs as a role with SELECT on the user's table and
rights on its own schema, and never needs more.

The test plays the administrator (the superuser: creates the user's schema and table,
enables pgvector, creates the role and grants) and the user (changes rows); ragstate
runs through its CLI, connecting as the role with the role's password.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict
from typer.testing import CliRunner

from ragstate.cli import app
from sources.conftest import ARTICLES, DRAFTS, PUBLISHED

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def role_url(admin_url: str, role: str) -> str:
    """The admin's server and database, as ``role`` (the password comes from a file)."""
    info = conninfo_to_dict(admin_url)
    query = "&".join(f"{k}={quote(str(info[k]), safe='/')}" for k in ("host", "port") if info.get(k))
    return f"postgresql://{role}@/{info.get('dbname', 'postgres')}" + (f"?{query}" if query else "")


@pytest.fixture
def admin(pg_url: str):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


def cli(*args: str) -> tuple[int, Any]:
    result = CliRunner().invoke(app, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_a_select_only_role_maps_and_reconciles(admin, pg_url: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    role, app_schema, rag_schema = f"rs_reader_{tag}", f"app_{tag}", f"rag_{tag}"
    table = f"{app_schema}.articles"
    admin.execute("CREATE EXTENSION IF NOT EXISTS vector")  # pgvector, enabled by the administrator
    admin.execute(f'CREATE SCHEMA "{app_schema}"')
    admin.execute(
        f'CREATE TABLE "{app_schema}".articles (id integer PRIMARY KEY, title text, abstract text, body text, '
        "status text)"
    )
    for i, a in enumerate(ARTICLES, start=1):
        admin.execute(
            f'INSERT INTO "{app_schema}".articles VALUES (%s, %s, %s, %s, %s)',
            (i, a["title"], a["abstract"], a["body"], "draft" if i in DRAFTS else "published"),
        )
    admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw-{tag}'")
    admin.execute(f'GRANT USAGE ON SCHEMA "{app_schema}" TO "{role}"')
    admin.execute(f'CREATE SCHEMA "{rag_schema}" AUTHORIZATION "{role}"')  # ragstate's own schema
    try:
        password = tmp_path / "password"
        password.write_text(f"pw-{tag}\n")
        spec = tmp_path / "ragstate.yaml"
        source = {"table": table, "id": "id", "text": "body", "title": "title", "abstract": "abstract"}
        source["where"] = [{"column": "status", "op": "=", "value": "published"}]
        store = {"url": role_url(pg_url, role), "schema": rag_schema, "password_file": str(password)}
        spec.write_text(yaml.safe_dump({"store": store, "source": source, "pipelines": ["basic"]}))
        mapping = ["--table", table, "--id", "id", "--text", "body", "--title", "title", "--abstract", "abstract"]
        mapping += ["--where", "status=published", "-c", str(spec)]

        # Without SELECT on the table, the check says so and nothing is created.
        code, report = cli("source", "map-table", *mapping)
        assert code == 1 and not report["created"]
        assert report["problems"] and "permission denied" in report["problems"][0]
        assert relations(admin, rag_schema) == []

        admin.execute(f'GRANT SELECT ON "{app_schema}".articles TO "{role}"')
        code, report = cli("source", "map-table", *mapping)
        assert code == 0 and report["created"] and report["rows"] == PUBLISHED
        assert report["view"] == f"{rag_schema}.src_articles"

        code, record = cli("reconcile", "-c", str(spec))
        assert code == 0 and record["kinds"]["doc_embeddings"]["built"] == PUBLISHED
        assert cli("plan", "-c", str(spec))[0] == 0

        admin.execute(f'UPDATE "{app_schema}".articles SET abstract = abstract || %s WHERE id = 1', (" Revised.",))
        admin.execute(f'DELETE FROM "{app_schema}".articles WHERE id = 2')
        admin.execute(f"INSERT INTO \"{app_schema}\".articles VALUES (9, 'Kiwi', 'Warm seeds.', 'Body.', 'published')")
        code, plan = cli("plan", "-c", str(spec))
        assert code == 2 and plan["drift"] == {"doc_embeddings": {"missing": 1, "stale": 1, "orphaned": 1}}
        code, record = cli("reconcile", "-c", str(spec))
        counts = record["kinds"]["doc_embeddings"]
        assert code == 0 and (counts["built"], counts["deleted"]) == (2, 1)
        assert cli("verify", "-c", str(spec))[0] == 0

        # The role never had more than SELECT on the table, and created nothing outside its schema.
        rights = admin.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, "
            "has_table_privilege(%s, %s, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'), "
            "has_schema_privilege(%s, %s, 'CREATE'), has_database_privilege(%s, current_database(), 'CREATE') "
            "FROM pg_roles WHERE rolname = %s",
            (role, table, role, app_schema, role, role),
        ).fetchone()
        assert rights == (False, False, False, False, False, False)
        assert relations(admin, app_schema) == ["articles"]
        owners = admin.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s",
            (rag_schema,),
        ).fetchall()
        assert owners == [(role,)] and "src_articles" in relations(admin, rag_schema)
        rows = admin.execute(f'SELECT id, status FROM "{app_schema}".articles ORDER BY id').fetchall()
        assert rows == [(i, "draft" if i in DRAFTS else "published") for i in (1, 3, 4, 5, 6, 7, 8)] + [
            (9, "published")
        ]
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{rag_schema}" CASCADE')
        admin.execute(f'DROP SCHEMA IF EXISTS "{app_schema}" CASCADE')
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def relations(admin: psycopg.Connection, schema: str) -> list[str]:
    rows = admin.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'v', 'm') ORDER BY 1",
        (schema,),
    ).fetchall()
    return [r[0] for r in rows]
