"""The OpenAI-compatible generator adapter, against a real HTTP server started by the test."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from openai_server import openai_reply
from ragstate.compute.generators import make_generator
from ragstate.errors import GeneratorConfigError, GeneratorUnavailable, PluginError, SpecError
from ragstate.spec import spec_from_dict
from ragstate.spec.model import GeneratorSpec

SECRET = "sk-test-0123456789abcdef"


def generator(url: str, **fields: Any):
    return make_generator("local", GeneratorSpec(url=url, model="tiny", **fields))


def test_chat_endpoint_sends_the_prompt_and_returns_the_text(serve, monkeypatch) -> None:
    server = serve(openai_reply("  A passage about seeds.  "))
    monkeypatch.setenv("TEST_LLM_KEY", SECRET)
    gen = generator(server.url, api_key_env="TEST_LLM_KEY")
    assert gen.generate("Why do seeds sprout?", max_tokens=50, temperature=0.2) == "A passage about seeds."
    ((path, headers, body),) = server.requests
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert body == {
        "model": "tiny",
        "max_tokens": 50,
        "temperature": 0.2,
        "messages": [{"role": "user", "content": "Why do seeds sprout?"}],
    }
    assert gen.identity() == {"provider": "openai", "url": server.url, "model": "tiny", "api": "chat"}


def test_completions_endpoint_and_a_key_file(serve, tmp_path: Path) -> None:
    server = serve(openai_reply("Seeds need warmth."))
    key = tmp_path / "key"
    key.write_text(SECRET + "\n")
    gen = generator(server.url, api="completions", api_key_file=key)
    assert gen.generate("Seeds", max_tokens=10, temperature=0.0) == "Seeds need warmth."
    ((path, headers, body),) = server.requests
    assert path == "/v1/completions" and body["prompt"] == "Seeds" and "messages" not in body
    assert headers["Authorization"] == f"Bearer {SECRET}"


def test_no_key_configured_sends_no_authorization(serve) -> None:
    server = serve(openai_reply("x"))
    generator(server.url).generate("q", max_tokens=5, temperature=0.0)
    assert "Authorization" not in server.requests[0][1]


def test_errors_say_whether_to_try_again_and_never_show_the_key(serve, monkeypatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", SECRET)
    echo = serve(lambda path, body: (401, {"error": f"invalid key {SECRET}"}))
    with pytest.raises(GeneratorConfigError) as refused:
        generator(echo.url, api_key_env="TEST_LLM_KEY").generate("q", max_tokens=5, temperature=0.0)
    assert "HTTP 401" in str(refused.value) and SECRET not in str(refused.value) and "***" in str(refused.value)

    busy = serve(lambda path, body: (503, {"error": "overloaded"}))
    with pytest.raises(GeneratorUnavailable, match="HTTP 503"):
        generator(busy.url).generate("q", max_tokens=5, temperature=0.0)
    limited = serve(lambda path, body: (429, {"error": "slow down"}))
    with pytest.raises(GeneratorUnavailable, match="HTTP 429"):
        generator(limited.url).generate("q", max_tokens=5, temperature=0.0)

    garbled = serve(lambda path, body: (200, b"<html>not json</html>"))
    with pytest.raises(GeneratorConfigError, match="not an OpenAI chat completion"):
        generator(garbled.url).generate("q", max_tokens=5, temperature=0.0)
    empty = serve(openai_reply("   "))
    with pytest.raises(GeneratorConfigError, match="no text"):
        generator(empty.url).generate("q", max_tokens=5, temperature=0.0)

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(GeneratorUnavailable, match="cannot reach"):
        generator(f"http://127.0.0.1:{port}/v1", timeout_s=5).generate("q", max_tokens=5, temperature=0.0)


def test_a_missing_key_names_its_variable(monkeypatch) -> None:
    monkeypatch.delenv("NO_SUCH_LLM_KEY", raising=False)
    gen = generator("http://127.0.0.1:9/v1", api_key_env="NO_SUCH_LLM_KEY")
    with pytest.raises(GeneratorConfigError, match="NO_SUCH_LLM_KEY is not set"):
        gen.generate("q", max_tokens=5, temperature=0.0)


def test_the_spec_refuses_inline_secrets_and_unknown_generators(tmp_path: Path) -> None:
    base = {"store": "sqlite:///x.db", "source": str(tmp_path), "pipelines": ["hyde"]}
    with pytest.raises(SpecError, match="must not hold a password"):
        spec_from_dict(
            {**base, "generators": {"g": {"url": "http://me:hunter22@llm.example/v1", "model": "m"}}},
            base_dir=tmp_path,
        )
    with pytest.raises(SpecError, match="api_key"):  # no inline key field exists at all
        spec_from_dict(
            {**base, "generators": {"g": {"url": "http://llm.example/v1", "model": "m", "api_key": "x"}}},
            base_dir=tmp_path,
        )
    with pytest.raises(SpecError, match="query.hyde.generator names 'nope'"):
        spec_from_dict({**base, "query": {"hyde": {"generator": "nope"}}}, base_dir=tmp_path)
    spec = spec_from_dict(
        {
            **base,
            "generators": {"g": {"url": "http://llm.example/v1/", "model": "m", "api_key_file": "key.txt"}},
            "query": {"hyde": {"generator": "g"}},
        },
        base_dir=tmp_path,
    )
    assert spec.generators["g"].url == "http://llm.example/v1"
    assert spec.generators["g"].api_key_file == tmp_path / "key.txt"
    with pytest.raises(PluginError, match="unknown plugin 'carrier-pigeon'"):
        make_generator("g", GeneratorSpec(provider="carrier-pigeon", url="http://x/v1", model="m"))
