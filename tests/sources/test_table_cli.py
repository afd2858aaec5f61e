"""``ragstate source map-table`` and ``ragstate source check``: words, JSON, exit codes."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from ragstate.cli import app
from sources.conftest import PUBLISHED


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_map_table_reports_in_words_creates_the_view_and_prints_the_spec(user_table, table_spec_file) -> None:
    user_table.create("id INTEGER PRIMARY KEY, title VARCHAR(300), abstract TEXT, body TEXT, status TEXT, pmcid TEXT")
    user_table.fill()
    spec = table_spec_file()
    t = user_table.qualified
    args = ["source", "map-table", "-c", str(spec), "--table", t, "--id", "id", "--text", "body"]
    args += ["--title", "title", "--metadata", "pmcid", "--where", "status=published", "--name", "papers"]

    dry = run(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "View " in dry.stdout and "does not exist yet" in dry.stdout and "Dry run: nothing was created" in dry.stdout
    assert user_table.relations() == []

    result = run(*args)
    assert result.exit_code == 0, result.output
    out = result.stdout
    view = "rs_src_papers" if user_table.backend == "sqlite" else f"{user_table.store_schema}.src_papers"
    assert f"Mapping 'papers': table {t} → view {view}" in out
    assert "Direct (already text): body (source.text), title (source.title), pmcid (source.metadata)" in out
    assert "Converted to text: id (source.id, " in out
    assert "Filters (values bound, never SQL): status = 'published'" in out
    assert f"{PUBLISHED} rows kept by the filters; every id present and unique" in out
    assert f"Compatible. Created view {view} and recorded the mapping." in out
    snippet = yaml.safe_load(out.split("In the spec:\n", 1)[1])
    assert snippet == {
        "source": {
            "table": t,
            "id": "id",
            "text": "body",
            "title": "title",
            "metadata": ["pmcid"],
            "where": [{"column": "status", "value": "published"}],
            "name": "papers",
        }
    }
    again = run(*args, "--json")
    data = json.loads(again.stdout)
    assert again.exit_code == 0 and data["view_state"] == "current" and not data["created"]
    assert [c["column"] for c in data["direct"]] == ["body", "title", "pmcid"]
    assert [c["column"] for c in data["conversions"]] == ["id"] and data["missing"] == []


def test_map_table_incompatible_exits_1_naming_each_problem(user_table, table_spec_file) -> None:
    user_table.create(f"id INTEGER, body {user_table.blob}, title TEXT")
    user_table.run("INSERT INTO {t} VALUES (1, ?, 'a'), (1, ?, 'b')", (b"\x00", b"\x01"))
    spec = table_spec_file()
    t = user_table.qualified
    result = run(
        "source", "map-table", "-c", str(spec), "--table", t, "--id", "id", "--text", "body", "--title", "headline"
    )
    assert result.exit_code == 1
    assert "Not compatible; nothing was created:" in result.stdout
    assert f"column {t}.headline (source.title) does not exist" in result.stdout
    assert "The table's columns: id, body, title" in result.stdout
    assert f"column {t}.id (source.id) is not unique" in result.stdout
    assert f"column {t}.body (source.text) is " in result.stdout and "binary data" in result.stdout
    assert user_table.relations() == []


def test_source_check_exit_codes_follow_the_table(user_table, table_spec_file) -> None:
    user_table.create()
    user_table.fill()
    spec = table_spec_file()
    assert run("source", "check", "-c", str(spec)).exit_code == 2  # fits; the view is not there yet
    plan = run("plan", "-c", str(spec))
    assert plan.exit_code == 2 and "source (schema drift):" in plan.stdout and "is not created yet" in plan.stdout
    assert run("apply", "-c", str(spec)).exit_code == 0
    assert run("source", "check", "-c", str(spec)).exit_code == 0
    named = run("source", "check", "-c", str(spec), "--name", "articles", "--json")
    assert named.exit_code == 0 and json.loads(named.stdout)["view_state"] == "current"

    user_table.run("ALTER TABLE {t} RENAME COLUMN title TO headline")
    check = run("source", "check", "-c", str(spec))
    assert check.exit_code == 1
    assert f"column {user_table.qualified}.title (source.title) does not exist" in check.stdout
    assert "The table's columns: id, headline, abstract, body, status, pmcid" in check.stdout
    plan = run("plan", "-c", str(spec), "--json")
    assert plan.exit_code == 2 and json.loads(plan.stdout)["drift"] == {"source": {"schema": 1}}
    status = run("status", "-c", str(spec))
    assert status.exit_code == 2 and "column title (source.title) is missing" in status.stdout
    applied = run("apply", "-c", str(spec))
    assert applied.exit_code == 1 and "does not fit the mapping; nothing was created" in applied.stderr
    missing = run("source", "check", "-c", str(spec), "--name", "nosuch")
    assert missing.exit_code == 1 and "no mapping named 'nosuch'" in missing.stderr
