"""The ``openai`` embedder against a real OpenAI-compatible server serving all-MiniLM-L6-v2."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import api_model
from ragstate.compute.embedders import make_embedder
from ragstate.errors import (
    EmbedderAuthError,
    EmbedderRejected,
    EmbedderResponseError,
    EmbedderUnavailable,
    ModelError,
    SpecError,
)
from ragstate.faults import Guard
from ragstate.faults.taxonomy import FaultClass, classify
from ragstate.spec import spec_from_dict
from ragstate.spec.model import BreakerSpec, ModelSpec, RetrySpec

SECRET = "sk-test-embed-0123456789"
TEXTS = [
    "Seeds sprout when the soil is warm.",
    "A protein folds into its native shape.",
    "Coral reefs bleach in hot water.",
    "The immune system remembers old infections.",
    "Rivers carry sediment to the sea.",
]


def api(server: Any, **fields: Any) -> Any:
    return make_embedder("api", ModelSpec(**api_model(server.url, **fields)))


def local() -> Any:
    return make_embedder("default", ModelSpec())


def test_vectors_equal_the_local_models_and_requests_are_cut_by_texts_and_tokens(embedding_api) -> None:
    e = api(embedding_api, max_batch_texts=2)
    vectors = e.embed(TEXTS)
    np.testing.assert_allclose(vectors, local().embed(TEXTS), atol=1e-5)
    # requests run concurrently: the server sees them in any order
    assert sorted(len(body["input"]) for _, _, body in embedding_api.requests) == [1, 2, 2]
    assert all("Authorization" not in headers for _, headers, _ in embedding_api.requests)  # no key configured
    embedding_api.requests.clear()
    counts = e.count_tokens(TEXTS)
    by_tokens = api(embedding_api, max_batch_tokens=counts[0] + counts[1])
    by_tokens.embed(TEXTS)
    assert sum(len(body["input"]) for _, _, body in embedding_api.requests) == len(TEXTS)
    assert all(len(body["input"]) <= 2 for _, _, body in embedding_api.requests)


def test_an_over_long_text_is_cut_where_the_model_cuts_it(embedding_api) -> None:
    long = "word " * 600
    e = api(embedding_api)
    (cut,), (tokens,) = e.cut([long])
    assert tokens == 256 and e.count_tokens([cut])[0] == 256 and e.count_tokens([long])[0] > 256
    np.testing.assert_allclose(e.embed([long]), local().embed([long]), atol=1e-5)
    ((_, _, body),) = embedding_api.requests
    assert body["input"] == [cut]


def test_dimensions_are_asked_of_the_api_and_change_the_identity(embedding_api) -> None:
    full, short = api(embedding_api), api(embedding_api, dimension=None, dimensions=128)
    v = short.embed(TEXTS[:2])
    assert v.shape == (2, 128) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert embedding_api.requests[-1][2]["dimensions"] == 128
    assert full.identity() != short.identity()
    assert full.identity()["endpoint"] == "127.0.0.1/v1/embeddings"  # host and path, no port, no key


def test_the_key_is_sent_from_its_variable_and_a_refused_key_names_the_variable(embedding_api, monkeypatch) -> None:
    embedding_api.reply.key = SECRET
    monkeypatch.setenv("TEST_EMBED_KEY", SECRET)
    api(embedding_api, api_key_env="TEST_EMBED_KEY").embed(TEXTS[:1])
    assert embedding_api.requests[-1][1]["Authorization"] == f"Bearer {SECRET}"
    wrong = "sk-wrong-9876543210"
    monkeypatch.setenv("TEST_EMBED_KEY", wrong)
    with pytest.raises(EmbedderAuthError) as info:
        api(embedding_api, api_key_env="TEST_EMBED_KEY", max_concurrency=2).embed(TEXTS[:1])
    message = str(info.value)
    assert "HTTP 401" in message and "environment variable TEST_EMBED_KEY" in message
    assert wrong not in message and SECRET not in message  # the server echoed it: masked
    assert classify(info.value) is FaultClass.FATAL
    monkeypatch.delenv("TEST_EMBED_KEY")
    with pytest.raises(EmbedderAuthError, match="TEST_EMBED_KEY is not set"):
        api(embedding_api, api_key_env="TEST_EMBED_KEY", max_batch_texts=3).embed(TEXTS[:1])


def test_a_key_file_is_read_and_masked(embedding_api, tmp_path: Path) -> None:
    embedding_api.reply.key = SECRET
    key = tmp_path / "key"
    key.write_text(SECRET + "\n")
    api(embedding_api, api_key_file=key).embed(TEXTS[:1])
    assert embedding_api.requests[-1][1]["Authorization"] == f"Bearer {SECRET}"


def test_429_is_retried_after_the_servers_retry_after_through_the_guard(embedding_api) -> None:
    embedding_api.reply.faults = ["429"]
    e = api(embedding_api)
    guard = Guard(RetrySpec(attempts=3, initial_delay_s=0.01, jitter_s=0.0), BreakerSpec(threshold=5))
    started = time.monotonic()
    vectors = guard.call("embedder", lambda: e.embed(TEXTS[:2]))
    assert time.monotonic() - started >= 0.95  # Retry-After: 1 is a floor over the 0.01 s backoff
    np.testing.assert_allclose(vectors, local().embed(TEXTS[:2]), atol=1e-5)
    assert len(embedding_api.requests) == 2
    failures = guard.log.to_dict()
    assert "429" in str(failures)


def test_500_and_a_timeout_are_transient(embedding_api) -> None:
    embedding_api.reply.faults = ["500"]
    with pytest.raises(EmbedderUnavailable, match="HTTP 500") as info:
        api(embedding_api).embed(TEXTS[:1])
    assert classify(info.value) is FaultClass.TRANSIENT
    embedding_api.reply.faults = ["slow"]
    embedding_api.reply.slow_s = 1.0
    with pytest.raises(EmbedderUnavailable, match="cannot reach the server"):
        api(embedding_api, timeout_s=0.2).embed(TEXTS[:1])


def test_a_failed_call_does_not_pay_again_for_the_requests_that_succeeded(embedding_api) -> None:
    e = api(embedding_api, max_batch_texts=1, max_concurrency=1)
    embedding_api.reply.faults = [None, None, "500"]
    with pytest.raises(EmbedderUnavailable):
        e.embed(TEXTS)
    before = embedding_api.reply.texts
    vectors = e.embed(TEXTS)
    assert embedding_api.reply.texts - before == 1  # only the text whose request failed
    np.testing.assert_allclose(vectors, local().embed(TEXTS), atol=1e-5)


@pytest.mark.parametrize(
    ("fault", "message"),
    [("dimension", "383 dimensions"), ("short", "got 4 vectors"), ("bad_index", "not each of 0..4 once")],
)
def test_a_wrong_answer_is_an_error(embedding_api, fault: str, message: str) -> None:
    embedding_api.reply.faults = [fault]
    with pytest.raises(EmbedderResponseError, match=message) as info:
        api(embedding_api).embed(TEXTS)
    assert classify(info.value) is FaultClass.FATAL


def test_a_shuffled_answer_is_put_back_in_order_by_its_indexes(embedding_api) -> None:
    embedding_api.reply.faults = ["shuffled"]
    np.testing.assert_allclose(api(embedding_api).embed(TEXTS), local().embed(TEXTS), atol=1e-5)


def test_a_refused_input_is_an_item_error_and_a_refused_probe_a_spec_error(embedding_api) -> None:
    embedding_api.reply.reject = "Coral"
    with pytest.raises(EmbedderRejected, match="HTTP 400") as info:
        api(embedding_api).embed(["Coral reefs bleach in hot water."])
    assert classify(info.value) is FaultClass.ITEM and info.value.reason == "rejected_by_model"
    embedding_api.reply.reject = "ragstate"
    with pytest.raises(ModelError, match="spec is at fault"):
        api(embedding_api).load()


@pytest.mark.parametrize("most", [1, 3])
def test_requests_in_flight_stay_within_max_concurrency(embedding_api, most: int) -> None:
    embedding_api.reply.faults = ["slow"] * len(TEXTS)
    embedding_api.reply.slow_s = 0.3
    vectors = api(embedding_api, max_batch_texts=1, max_concurrency=most).embed(TEXTS)
    assert embedding_api.reply.most == most
    np.testing.assert_allclose(vectors, local().embed(TEXTS), atol=1e-5)


def test_an_unknown_model_or_path_is_terminal(embedding_api) -> None:
    with pytest.raises(ModelError, match="HTTP 404"):
        make_embedder("x", ModelSpec(**api_model(embedding_api.url, model="no-such-model"))).embed(TEXTS[:1])


def test_token_vectors_are_refused(embedding_api) -> None:
    with pytest.raises(ModelError, match="per-token vectors"):
        api(embedding_api).embed_tokens(TEXTS[:1])


def spec(**overrides: Any) -> dict[str, Any]:
    return {"store": "sqlite:///x.db", "source": {"path": "docs"}, **overrides}


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"provider": "openai", "model": "m", "dimension": 8}, "needs url"),
        ({"provider": "openai", "url": "http://h/v1", "model": "m"}, "needs dimension"),
        ({"provider": "openai", "url": "http://u:pw@h/v1", "model": "m", "dimension": 8}, "password"),
        ({"provider": "openai", "url": "http://h/v1", "model": "m", "dimension": 8, "api_key": "sk"}, "api_key"),
        ({"url": "http://h/v1"}, "only for an API provider"),
    ],
)
def test_a_bad_api_model_entry_is_named(model: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        spec_from_dict(spec(models={"default": model}))
    assert "models" in str(info.value)


def test_colbert_with_an_api_embedder_is_refused_at_validation() -> None:
    model = {"provider": "openai", "url": "http://h/v1", "model": "m", "dimension": 8}
    with pytest.raises(SpecError, match="colbert needs per-token vectors"):
        spec_from_dict(spec(models={"default": model}, pipelines=["basic", "colbert"]))
    spec_from_dict(spec(models={"default": model}, pipelines=["basic", "hybrid", "hyde"]))  # the rest is fine


def test_max_cost_needs_a_priced_model() -> None:
    with pytest.raises(SpecError, match="price_per_million_tokens"):
        spec_from_dict(spec(reconcile={"max_cost": 1.0}))
