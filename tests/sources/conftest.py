"""The user's own table, in the store's database, for the in-place source tests.

``user_table`` is written only by the test (acting as the user, as the table's owner:
the SQLite file's user, or PostgreSQL's superuser); ragstate only ever reads it. On
PostgreSQL it lives in its own schema (``app_<hex>``), beside the test's store schema.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "pmc"
#: the sample's JSONL articles: real titles, abstracts and bodies
ARTICLES = [json.loads(line) for line in (SAMPLE / "jsonl" / "articles.jsonl").read_text(encoding="utf-8").splitlines()]
#: ids whose status is 'draft' when the table is filled (the rest are 'published')
DRAFTS = (7, 8)
PUBLISHED = len(ARTICLES) - len(DRAFTS)


class UserTable:
    """A table of the user's, and the SQL a user would run on it (``{t}`` is the table)."""

    def __init__(self, backend: str, store: dict[str, Any], pg_url: str | None, name: str = "articles"):
        self.backend = backend
        self.name = name
        if backend == "sqlite":
            self.path = store["url"].removeprefix("sqlite:///")
            self.schema: str | None = None
        else:
            assert pg_url is not None
            self.url = pg_url
            self.store_schema = store["schema"]
            self.schema = "app_" + uuid.uuid4().hex[:10]
            self.run("CREATE SCHEMA {s}")

    @property
    def qualified(self) -> str:
        """The name a mapping gives (``app_x.articles`` or ``articles``)."""
        return f"{self.schema}.{self.name}" if self.schema else self.name

    @property
    def blob(self) -> str:
        return "BLOB" if self.backend == "sqlite" else "BYTEA"

    def run(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement as the table's owner; ``{t}`` is this table, ``{s}`` its schema."""
        t = f'"{self.schema}"."{self.name}"' if self.schema else f'"{self.name}"'
        sql = statement.replace("{t}", t).replace("{s}", f'"{self.schema}"')
        if self.backend == "sqlite":
            conn = apsw.Connection(self.path)
            conn.setbusytimeout(10_000)
            try:
                return [tuple(r) for r in conn.execute(sql, params)]
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(sql.replace("?", "%s"), params or None)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []

    def create(self, columns: str = "") -> None:
        self.run(
            "CREATE TABLE {t} ("
            + (columns or "id INTEGER PRIMARY KEY, title TEXT, abstract TEXT, body TEXT, status TEXT, pmcid TEXT")
            + ")"
        )

    def fill(self) -> None:
        """The sample's articles as rows 1..N; rows in ``DRAFTS`` have status 'draft'."""
        for i, a in enumerate(ARTICLES, start=1):
            self.run(
                "INSERT INTO {t} (id, title, abstract, body, status, pmcid) VALUES (?, ?, ?, ?, ?, ?)",
                (i, a["title"], a["abstract"], a["body"], "draft" if i in DRAFTS else "published", a["doc_id"]),
            )

    def edit_rows(self) -> None:
        """A user's day: row 1 edited, 2 deleted, 9 inserted, draft 7 published, 3 retracted."""
        self.run("UPDATE {t} SET abstract = abstract || ' A new closing sentence.' WHERE id = 1")
        self.run("DELETE FROM {t} WHERE id = 2")
        self.run(
            "INSERT INTO {t} (id, title, abstract, body, status) VALUES (9, 'Kiwifruit germination', "
            "'Seeds sprout faster when warm.', 'Warm seeds sprout.', 'published')"
        )
        self.run("UPDATE {t} SET status = 'published' WHERE id = 7")
        self.run("UPDATE {t} SET status = 'retracted' WHERE id = 3")

    def snapshot(self) -> list[tuple[Any, ...]]:
        """Every row, for "ragstate never wrote to it" comparisons."""
        return self.run("SELECT * FROM {t} ORDER BY 1")

    def relations(self) -> list[str]:
        """Tables and views of the store and the user's schema, but the user's table."""
        if self.backend == "sqlite":
            rows = self.run("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') ORDER BY name")
            return [r[0] for r in rows if r[0] != self.name]
        rows = self.run(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'v', 'm') AND n.nspname IN (?, ?) ORDER BY 1",
            (self.schema, self.store_schema),
        )
        return [r[0] for r in rows if r[0] != self.qualified]


@pytest.fixture
def user_table(backend: str, store_spec: dict[str, Any], request: pytest.FixtureRequest) -> UserTable:
    pg_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    return UserTable(backend, store_spec, pg_url)


@pytest.fixture
def table_source(user_table: UserTable) -> Callable[..., dict[str, Any]]:
    """The ``source`` section mapping ``user_table`` (fields overridable)."""

    def make(fields: dict[str, Any] | None = None) -> dict[str, Any]:
        base = {"table": user_table.qualified, "id": "id", "text": "body", "title": "title", "abstract": "abstract"}
        return {**base, **(fields or {})}

    return make


@pytest.fixture
def table_project(make_project: Callable[..., Any], table_source: Callable[..., dict[str, Any]]) -> Callable[..., Any]:
    """Build a ``Project`` over ``user_table``: ``table_project(source fields, **spec overrides)``."""
    return lambda fields=None, **overrides: make_project(source=table_source(fields), **overrides)


@pytest.fixture
def table_spec_file(spec_file: Callable[..., Path], table_source: Callable[..., dict[str, Any]]) -> Callable[..., Path]:
    """Write a spec file over ``user_table`` for the CLI: ``table_spec_file(source fields, **spec overrides)``."""
    return lambda fields=None, **overrides: spec_file(source=table_source(fields), **overrides)
