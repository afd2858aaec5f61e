"""Property tests: hostile or broken input raises only ragstate's own typed errors.

A fixed number of examples runs in CI (the ``ci`` profile: derandomised, so a failure
reproduces); ``HYPOTHESIS_PROFILE=dev`` explores more.
"""

from __future__ import annotations

import io
import json
import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragstate.errors import DocumentError, IdentifierError, PlanError, SpecError
from ragstate.plan.model import Estimate, KindPlan, Plan, action_fingerprint
from ragstate.sources.loaders import iter_jsonl, parse_jats, parse_markdown, parse_text
from ragstate.spec import load_spec
from ragstate.stores.schema import ident

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
    path = tmp_path_factory.mktemp("spec") / "s.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    try:
        load_spec(path, environ={})
    except SpecError:
        pass


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


@given(st.text(max_size=80))
def test_identifiers_are_valid_or_refused(name: str) -> None:
    try:
        checked = ident(name)
    except IdentifierError:
        return
    assert checked == name and checked.isascii() and '"' not in checked and len(checked) <= 48


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


def test_plan_from_invalid_json_text() -> None:
    for text in ("", "{", "[1,", "\x00"):
        try:
            Plan.from_json(text)
        except PlanError:
            continue
        raise AssertionError(f"{text!r} was accepted")
