"""Property tests: hostile or broken input raises only ragstate's own typed errors.

A fixed number of examples runs in CI (the ``ci`` profile: derandomised, so a failure
reproduces); ``HYPOTHESIS_PROFILE=dev`` explores more.
"""

from __future__ import annotations

import io
import json
import os
import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ragstate.cli import app
from ragstate.errors import DocumentError, IdentifierError, PlanError, SpecError
from ragstate.identifiers import ident, user_ident
from ragstate.plan.model import Estimate, KindPlan, Plan, action_fingerprint
from ragstate.sources.loaders import iter_jsonl, parse_jats, parse_markdown, parse_text
from ragstate.spec import load_spec
from ragstate.spec.load import table_source_from

settings.register_profile(
    "ci", max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.register_profile(
    "dev", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
spec_keys = st.sampled_from(
    ["store", "source", "scope", "pipelines", "models", "artifacts", "reconcile", "profiles", "version", "x"]
)


@given(st.text(max_size=400))
def test_any_yaml_text_gives_a_spec_or_a_spec_error(tmp_path_factory, text: str) -> None:
    path = tmp_path_factory.mktemp("spec") / "s.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_spec(path, environ={})
    except SpecError:
        pass


@given(st.dictionaries(spec_keys, json_values, max_size=6))
def test_any_mapping_gives_a_spec_or_a_spec_error(tmp_path_factory, data: dict) -> None:
    spec_or_spec_error(tmp_path_factory, data)


def spec_or_spec_error(tmp_path_factory, data: dict) -> None:
    path = tmp_path_factory.mktemp("spec") / "s.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    try:
        load_spec(path, environ={})
    except SpecError:
        pass


section_keys = st.sampled_from(
    [
        "batch_size",
        "max_documents_per_run",
        "retry",
        "model",
        "text",
        "options",
        "max_tokens",
        "path",
        "url",
        "schema",
        "prefix",
        "follow_symlinks",
        "allow_parent_dirs",
        "max_document_bytes",
        "table",
        "where",
        "x",
    ]
)


@given(
    st.sampled_from(["store", "source", "reconcile", "artifacts", "models", "scope"]),
    st.dictionaries(section_keys, json_values, max_size=4),
)
def test_a_valid_spec_with_one_random_section_gives_a_spec_or_a_spec_error(tmp_path_factory, key, section) -> None:
    spec_or_spec_error(tmp_path_factory, {"store": "sqlite:///s.db", "source": "docs", key: section})


@given(st.binary(max_size=600))
def test_loaders_raise_only_document_errors(data: bytes) -> None:
    for parse in (parse_text, parse_markdown, parse_jats):
        try:
            docs = parse(data, "doc")
            assert all(isinstance(d.content_hash, str) for d in docs)
        except DocumentError:
            pass
    try:
        list(iter_jsonl(io.BytesIO(data), "f.jsonl", max_record_bytes=400))
    except DocumentError:
        pass


@given(st.lists(json_values, max_size=5))
def test_jsonl_of_any_json_values(values: list) -> None:
    data = "".join(json.dumps(v) + "\n" for v in values).encode()
    try:
        list(iter_jsonl(io.BytesIO(data), "f.jsonl", max_record_bytes=10_000))
    except DocumentError:
        pass


names = st.text(max_size=80) | st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,70}\s?", fullmatch=True)


@given(names)
def test_identifiers_are_valid_or_refused(name: str) -> None:
    try:
        checked = ident(name)
    except IdentifierError:
        return
    # the documented rule, stated independently of the pattern in stores/schema.py
    assert checked == name and re.fullmatch(r"[a-z_][a-z0-9_]{0,47}", checked, flags=re.ASCII)


@given(names)
def test_user_identifiers_are_valid_or_refused(name: str) -> None:
    try:
        checked = user_ident(name)
    except IdentifierError:
        return
    assert checked == name and checked.isascii() and checked.replace("_", "").isalnum() and len(checked) <= 60


filters = st.text(max_size=60) | st.builds(
    lambda c, op, v: f"{c}{op}{v}",
    names,
    st.sampled_from(["=", " != ", "<", " in ", " is null", ">="]),
    st.text(max_size=20),
)


@given(st.lists(filters, max_size=3), names, names)
def test_table_sources_are_valid_or_a_spec_error(where: list[str], table: str, column: str) -> None:
    try:
        spec = table_source_from({"table": table, "id": column, "text": "body", "where": where})
    except SpecError:
        return
    for name in (spec.table_name, spec.id, *(f.column for f in spec.where)):
        assert user_ident(name) == name


# Structured documents reach the parsers' inner paths (random bytes rarely parse as XML).
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
jats = st.builds(
    lambda title, abstract, paragraphs, wrap: (
        (
            f"<article><front><article-meta><title-group><article-title>{title}</article-title></title-group>"
            f"<abstract><p>{abstract}</p></abstract></article-meta></front>"
            f"<body>{''.join(f'<sec><title>{p}</title><p>{p}</p></sec>' for p in paragraphs)}</body></article>"
        )
        if wrap
        else title
    ),
    words,
    words,
    st.lists(words, max_size=4),
    st.booleans(),
)
markdown = st.builds(
    lambda front, lines: (f"---\n{front}\n---\n" if front is not None else "") + "\n".join(lines),
    st.none() | words,
    st.lists(st.sampled_from(["# ", "## Abstract", "", "text ", "---", "```", "> "]) | words, max_size=8),
)


@given(jats, markdown)
def test_structured_documents_parse_or_raise_document_errors(xml: str, md: str) -> None:
    for parse, text in ((parse_jats, xml), (parse_markdown, md), (parse_text, md)):
        try:
            docs = parse(text.encode("utf-8"), "doc")
        except DocumentError:
            continue
        assert all(d.doc_id == "doc" and isinstance(d.content_hash, str) for d in docs)


@settings(max_examples=40)
@given(st.text(max_size=300))
def test_the_cli_answers_any_spec_with_an_error_never_a_traceback(tmp_path_factory, text: str) -> None:
    path = tmp_path_factory.mktemp("cli") / "s.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["plan", "-c", str(path), "--json"])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert json.loads(result.stdout)["error_type"] == "SpecError"
    assert "Traceback" not in result.stdout + result.stderr


ids = st.lists(st.text(min_size=1, max_size=10), max_size=4, unique=True).map(tuple)
kind_plans = st.builds(
    KindPlan,
    kind=st.sampled_from(["doc_embeddings", "chunks"]),
    recipe_fp=st.text(max_size=16),
    active_generation=st.none() | st.integers(1, 9),
    target_generation=st.none() | st.integers(1, 9),
    switch=st.booleans(),
    drift=st.dictionaries(st.sampled_from(["missing", "stale", "orphaned"]), st.integers(0, 99), max_size=3),
    build=st.dictionaries(st.sampled_from(["missing", "stale", "recipe"]), ids, max_size=3),
    delete=ids,
    purge=ids,
    repair=ids,
    estimate=st.builds(Estimate, st.integers(0, 10**6), st.integers(0, 10**9), st.floats(0, 1e6)),
)


@given(st.lists(kind_plans, max_size=3), st.sampled_from(["shallow", "audit", "deep"]), st.booleans())
def test_plan_json_round_trip(kinds: list, depth: str, destructive: bool) -> None:
    plan = Plan(
        spec_hash="s",
        created_at=1.0,
        depth=depth,
        scope_size=3,
        kinds=tuple(kinds),
        destructive=destructive,
        destructive_reasons=("r",) if destructive else (),
    )
    plan = Plan(**{**plan.__dict__, "fingerprint": action_fingerprint(plan)})
    assert Plan.from_json(plan.to_json()) == plan


@given(json_values)
def test_any_json_is_a_plan_or_a_plan_error(value) -> None:
    try:
        Plan.from_json(json.dumps(value))
    except PlanError:
        pass


def test_deeply_nested_input_is_a_typed_error(tmp_path) -> None:
    # Python's parsers recurse: JSON, YAML or XML nested thousands deep raises RecursionError,
    # which each reader turns into its own error naming the file.
    deep_json, deep_xml = b"[" * 100_000, b"<article><body>" + b"<sec>" * 100_000
    for parse, data in ((parse_markdown, b"---\n" + b"[" * 20_000 + b"\n---\n# T"), (parse_jats, deep_xml)):
        try:
            parse(data, "doc")
        except DocumentError as exc:
            assert "doc" in str(exc)
    records = list(
        iter_jsonl(io.BytesIO(deep_json + b'\n{"id": 1, "text": "x"}\n'), "f.jsonl", max_record_bytes=1 << 20)
    )
    assert "f.jsonl:1: nested too deeply" in str(records[0].error) and records[1].doc_id == "1"
    try:
        Plan.from_json(deep_json.decode())
    except PlanError:
        pass
    spec = tmp_path / "s.yaml"
    spec.write_text("store: s.db\nsource: d\nx: " + "[" * 50_000)
    try:
        load_spec(spec, environ={})
    except SpecError as exc:
        assert "nested too deeply" in str(exc)


def test_plan_from_invalid_json_text() -> None:
    for text in ("", "{", "[1,", "\x00"):
        try:
            Plan.from_json(text)
        except PlanError:
            continue
        raise AssertionError(f"{text!r} was accepted")
