"""Spec loading: YAML safety, profiles, environment overrides, errors that name the place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ragstate.errors import SpecError
from ragstate.spec import load_spec, spec_from_dict, spec_hash


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ragstate.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = "store: sqlite:///rag.db\nsource: docs\n"


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, BASE), environ={})
    assert spec.store.url == f"sqlite:///{tmp_path}/rag.db"
    assert spec.source.path == tmp_path / "docs"
    assert spec.pipelines == ("basic",)
    assert spec.models["default"].name == "all-MiniLM-L6-v2"
    assert spec.scope == "all" and spec.scope_limit is None


def test_profile_overlays_base(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        BASE + "reconcile: {batch_size: 8, max_delete_share: 0.2}\n"
        "profiles:\n  production:\n    store: postgresql://rag@db/rag\n    reconcile: {batch_size: 256}\n",
    )
    spec = load_spec(path, profile="production", environ={})
    assert spec.store.url == "postgresql://rag@db/rag"
    assert spec.reconcile.batch_size == 256 and spec.reconcile.max_delete_share == 0.2
    assert load_spec(path, environ={"RAGSTATE_PROFILE": "production"}).reconcile.batch_size == 256
    with pytest.raises(SpecError, match="profile 'staging' is not defined .*production"):
        load_spec(path, profile="staging", environ={})


def test_environment_wins_and_is_typed(tmp_path: Path) -> None:
    env = {
        "RAGSTATE_RECONCILE__BATCH_SIZE": "16",
        "RAGSTATE_MODELS__DEFAULT__DEVICE": "cuda",
        "RAGSTATE_SCOPE": '{"first": 3}',
    }
    spec = load_spec(write(tmp_path, BASE), environ=env)
    assert spec.reconcile.batch_size == 16
    assert spec.models["default"].device == "cuda"
    assert spec.scope_limit == 3


def test_unknown_environment_variable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="RAGSTATE_RECONCILE__BACH_SIZE: no spec field 'bach_size'"):
        load_spec(write(tmp_path, BASE), environ={"RAGSTATE_RECONCILE__BACH_SIZE": "1"})
    with pytest.raises(SpecError, match="RAGSTATE_STORES"):
        load_spec(write(tmp_path, BASE), environ={"RAGSTATE_STORES": "x"})


def test_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "models:\n  default:\n    batch_size: lots\n    colour: red\n")
    with pytest.raises(SpecError) as info:
        load_spec(path, environ={})
    message = str(info.value)
    assert f"{path}:5: models.default.batch_size: Input should be a valid integer" in message
    assert f"{path}:6: models.default.colour: unknown field" in message


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "pipelines: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path, environ={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "must be a mapping"),
        ("store: [unclosed\n", "not valid YAML"),
        (BASE + "pipelines: [basic, basic]\n", "lists a pipeline twice"),
        (BASE + "pipelines: [telepathy]\n", "pipelines.0"),
        ("store: mysql://x\nsource: d\n", "store.url"),
        (BASE + "artifacts: {doc_embeddings: {text: '{title} {author}'}}\n", "unknown field(s) ['author']"),
        (BASE + "artifacts: {doc_embeddings: {model: big}}\n", "names 'big', which is not in models"),
        (BASE + "version: 2\n", "version"),
        # a new user's mistakes get a sentence naming the fix (issue 23)
        (BASE + "reconcille: {batch_size: 3}\n", "reconcille: unknown field (did you mean 'reconcile'?)"),
        (BASE + "models: {default: {nmae: x}}\n", "models.default.nmae: unknown field (did you mean 'name'?)"),
        (BASE + "pipelines: basic\n", "pipelines: must be a list: [a, b] on one line, or one '- item' a line"),
        ("store: sqlite://typo.db\nsource: d\n", "'sqlite://typo.db' is not a SQLite URL: write sqlite:///typo.db"),
    ],
)
def test_invalid_values(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text), environ={})
    assert message in str(info.value)
    assert "Input should be a valid tuple" not in str(info.value) and "Value error" not in str(info.value)


def test_missing_and_oversized_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "none.yaml", environ={})
    big = write(tmp_path, BASE + "#" * (1 << 20))
    with pytest.raises(SpecError, match="the limit is"):
        load_spec(big, environ={})


def test_literal_password_warns_and_is_not_in_the_hash_input(tmp_path: Path, caplog) -> None:
    path = write(tmp_path, "store: postgresql://rag:hunter22@db/rag\nsource: d\n")
    spec = load_spec(path, environ={})
    assert "literal password" in caplog.text and "hunter22" not in caplog.text
    other = load_spec(write(tmp_path, "store: postgresql://rag:other@db/rag\nsource: d\n"), environ={})
    assert spec_hash(spec) == spec_hash(other)


def test_spec_from_dict_ignores_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAGSTATE_RECONCILE__BATCH_SIZE", "3")
    spec = spec_from_dict({"store": "sqlite:///a.db", "source": "d"}, base_dir=tmp_path)
    assert spec.reconcile.batch_size == 64
    with pytest.raises(SpecError, match="reconcile.batch_size"):
        spec_from_dict({"store": "sqlite:///a.db", "source": "d", "reconcile": {"batch_size": 0}})


def test_ten_thousand_bad_names_make_a_short_error_that_counts_them(tmp_path: Path) -> None:
    """Issue 15, item 9: a spec with 10K bad pipeline names made a 1.4 MB error."""
    path = tmp_path / "s.yaml"
    names = [f"bad{i}" for i in range(10_000)]
    path.write_text(yaml.safe_dump({"store": "sqlite:///s.db", "source": "d", "pipelines": names}))
    with pytest.raises(SpecError) as raised:
        load_spec(path, environ={})
    message = str(raised.value)
    assert len(message) < 10_000 and "pipelines.0:" in message and "pipelines.19:" in message
    assert "pipelines.20:" not in message
    assert re.search(r"\.\.\. and 9,98\d more problems \(10,00\d in all\)$", message)  # each name, and the list
    assert len(raised.value.problems) == 21
