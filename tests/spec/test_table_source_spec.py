"""The spec's table form of ``source`` (and that the folder form still works)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragstate.errors import SpecError
from ragstate.spec import load_spec, spec_from_dict, table_source_from
from ragstate.spec.model import FILTER_OPS, FilterSpec, SourceSpec, TableSourceSpec
from ragstate.stores.dialect import FILTER_CONDITIONS


def test_table_form_and_folder_form(tmp_path: Path) -> None:
    spec = spec_from_dict(
        {
            "store": "s.db",
            "source": {"table": "app.Articles", "id": "id", "text": "body", "metadata": "journal"},
        }
    )
    assert isinstance(spec.source, TableSourceSpec)
    assert (spec.source.schema_name, spec.source.table_name, spec.source.mapping_name) == (
        "app",
        "Articles",
        "articles",
    )
    assert spec.source.metadata == ("journal",)
    folder = spec_from_dict({"store": "s.db", "source": "docs"}, base_dir=tmp_path)
    assert isinstance(folder.source, SourceSpec) and folder.source.path == tmp_path / "docs"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("status=published", ("status", "=", "published")),
        ("year >= 2020", ("year", ">=", "2020")),
        ("title=Cats in hats", ("title", "=", "Cats in hats")),
        ("a!=b", ("a", "!=", "b")),
        ("lang in en, de", ("lang", "in", ("en", "de"))),
        ("lang NOT IN en", ("lang", "not in", ("en",))),
        ("deleted_at is null", ("deleted_at", "is null", None)),
        ("deleted_at IS NOT NULL", ("deleted_at", "is not null", None)),
        ("note=' OR 1=1 --", ("note", "=", "' OR 1=1 --")),
    ],
)
def test_filters_parse_into_column_operator_value(text: str, parsed: tuple) -> None:
    f = FilterSpec.model_validate(text)
    assert (f.column, f.op, f.value) == parsed


def test_operators_are_a_short_list_the_dialect_knows() -> None:
    assert set(FILTER_OPS) == set(FILTER_CONDITIONS)


@pytest.mark.parametrize(
    ("source", "field", "words"),
    [
        ({"id": "id; DROP TABLE x"}, "source.id", "invalid column name"),
        ({"table": "a.b.c"}, "source.table", "SCHEMA.TABLE"),
        ({"table": "app.x y"}, "source.table", "invalid table name"),
        ({"where": [{"column": "s", "op": "OR 1=1", "value": 1}]}, "source.where.0.op", "Input should be"),
        ({"where": [{"column": "s", "op": "in", "value": 1}]}, "source.where.0", "non-empty list"),
        ({"where": [{"column": "s", "op": "is null", "value": 1}]}, "source.where.0", "takes no value"),
        ({"where": [{"column": "s", "op": "=", "value": {"$ne": 1}}]}, "source.where.0.value", "valid"),
        ({"where": ["no operator here"]}, "source.where.0", "write COLUMN=VALUE"),
        ({"metadata": ["a", "a"]}, "source.metadata", "twice"),
        ({"name": "Bad-Name"}, "source", "mapping name"),
        ({"id": None}, "source.id", "valid string"),
    ],
)
def test_invalid_table_sources_name_the_field(source: dict, field: str, words: str) -> None:
    base = {"table": "articles", "id": "id", "text": "body"}
    with pytest.raises(SpecError) as caught:
        spec_from_dict({"store": "s.db", "source": {**base, **source}})
    assert f"source{field.removeprefix('source')}:" in str(caught.value) and words in str(caught.value)
    if source.get("id", 1) is not None:
        with pytest.raises(SpecError, match=field.replace(".", r"\.")):
            table_source_from({**base, **source})


def test_spec_file_line_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "ragstate.yaml"
    path.write_text("store: s.db\nsource:\n  table: articles\n  id: id\n  text: 'body; --'\n")
    with pytest.raises(SpecError, match=r"ragstate.yaml:5: source.text: .*invalid column name"):
        load_spec(path)
    path.write_text("store: s.db\nsource: docs\n")
    env = {"RAGSTATE_SOURCE__TABLE": "articles", "RAGSTATE_SOURCE__ID": "id", "RAGSTATE_SOURCE__TEXT": "body"}
    assert isinstance(load_spec(path, environ=env).source, TableSourceSpec)
    with pytest.raises(SpecError, match="no spec field 'tabel'.*table"):
        load_spec(path, environ={"RAGSTATE_SOURCE__TABEL": "articles"})


def test_every_table_source_field_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "sources.md").read_text(encoding="utf-8")
    paths = [f"source.{name}" for name in TableSourceSpec.model_fields]
    paths += [f"source.where[].{name}" for name in FilterSpec.model_fields]
    assert [p for p in paths if f"`{p}`" not in docs] == []
