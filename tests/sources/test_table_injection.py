"""Injection attempts through table names, column names and filter values: rejected, or bound.

Each attempt goes through the CLI against a real table that holds the hostile names
and values, beside a table ``x`` that a successful injection would drop.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ragstate.cli import app
from ragstate.errors import IdentifierError
from ragstate.sources.table import check
from ragstate.stores.dialect import ViewLayout
from ragstate.stores.sqlite.dialect import SQLiteDialect

HOSTILE = "' OR 1=1 --"


@pytest.fixture
def hostile(user_table, table_spec_file):
    """A table with a column named ``id; DROP TABLE x`` and a row whose status is ``' OR 1=1 --``."""
    user_table.create('id INTEGER PRIMARY KEY, "id; DROP TABLE x" INTEGER, body TEXT, status TEXT')
    user_table.run("INSERT INTO {t} VALUES (1, 1, 'one', 'published'), (2, 2, 'two', ?)", (HOSTILE,))
    user_table.run("CREATE TABLE {s}.x (a INTEGER)" if user_table.schema else "CREATE TABLE x (a INTEGER)")
    spec = table_spec_file({"title": None, "abstract": None})
    return user_table, spec


def map_table(spec, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["source", "map-table", "-c", str(spec), "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def x_exists(user_table) -> bool:
    name = f"{user_table.schema}.x" if user_table.schema else "x"
    if user_table.backend == "sqlite":
        return bool(user_table.run("SELECT 1 FROM sqlite_schema WHERE name = 'x'"))
    return user_table.run("SELECT to_regclass(?) IS NOT NULL", (name,))[0][0]


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [
        ("--id", "id; DROP TABLE x", "source.id"),
        ("--text", 'body" FROM x; DROP TABLE x; --', "source.text"),
        ("--table", "articles; DROP TABLE x", "source.table"),
        ("--metadata", "status, (SELECT 1)", "source.metadata"),
        ("--where", "status;DROP TABLE x=1", "source.where"),
        ("--name", "x; DROP TABLE x", "source"),
    ],
)
def test_hostile_names_are_rejected_before_any_sql(hostile, option, value, field) -> None:
    user_table, spec = hostile
    options = {"--table": user_table.qualified, "--id": "id", "--text": "body", option: value}
    code, out = map_table(spec, *(a for pair in options.items() for a in pair))
    assert code == 1 and out["error_type"] == "SpecError"
    assert f"{field}" in out["error"] and value[:8] in out["error"]
    assert x_exists(user_table)
    assert user_table.relations() == [f"{user_table.schema}.x" if user_table.schema else "x"]  # nothing created


def test_hostile_filter_value_is_bound(hostile, table_project) -> None:
    user_table, spec = hostile
    base = ["--table", user_table.qualified, "--id", "id", "--text", "body", "--dry-run"]
    code, out = map_table(spec, *base, "--where", "status=published")
    assert code == 0 and out["rows"] == 1
    # As SQL text the value would keep every row; bound, it matches the one row that holds it.
    code, out = map_table(spec, *base, "--where", f"status={HOSTILE}")
    assert code == 0 and out["rows"] == 1 and out["spec"]["where"] == [{"column": "status", "value": HOSTILE}]
    code, out = map_table(spec, *base, "--where", "status=' OR '1'='1")
    assert code == 0 and out["rows"] == 0 and out["notes"] == ["no rows match source.where yet"]
    # Through the view, on every query, the same: exactly one document in scope.
    project = table_project({"title": None, "abstract": None, "where": [f"status = {HOSTILE}"]})
    project.apply()
    _, observed = project.observe()
    assert observed.scope_size == 1 and x_exists(user_table)


def test_a_hostile_column_name_in_the_table_cannot_be_mapped_but_others_can(hostile, table_project) -> None:
    user_table, _ = hostile
    project = table_project({"title": None, "abstract": None})
    with project.store.session() as s:
        report = check(project.store, s, project.spec.source)
    assert report.compatible and "id; DROP TABLE x" in report.table_columns
    assert x_exists(user_table)


def test_the_dialect_quotes_user_names_again_and_refuses_operators_off_the_list() -> None:
    dialect = SQLiteDialect("rs_")
    for bad in ['a"b', "a;b", "a b", "a.b.c", "", "1a"]:
        with pytest.raises(IdentifierError):
            dialect.quote_user(bad)
    with pytest.raises(IdentifierError):
        dialect.create_view("src_a", ViewLayout(source="t", id='id"; DROP TABLE x; --', text="body"))

    class Op:
        column, op, value = "status", "OR 1=1 --", 1

    with pytest.raises(IdentifierError, match="unknown operator"):
        dialect.view_sql("SELECT 1 FROM {t} WHERE /*filter*/", [Op()])
