"""The HTTP query service, driven by httpx against a real uvicorn, over a store built with the real model."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import REPO, edit
from ragstate.errors import ServeError
from ragstate.serve.app import ServeOptions, create_app, read_token, running

QUESTION = "How do tension fluctuations change the structure of polyester fibers?"
#: the questions the concurrent clients ask, one pipeline each in turn
QUESTIONS = (
    QUESTION,
    "seed germination and dormancy",
    "acai fruit antioxidant content",
    "mechanical properties of fibres",
    "what was measured in the study",
)


def ask(client: httpx.Client, pipeline: str, text: str, **extra) -> httpx.Response:
    return client.post("/query", json={"pipeline": pipeline, "text": text, **extra})


@pytest.mark.slow
def test_the_service_answers_as_the_library_does(built) -> None:
    make, _ = built
    # every pipeline but hyde, which has no text generator here and so is never ready
    project = make(pipelines=["basic", "crag", "colbert", "noderag", "graphrag", "hybrid"])
    app = create_app(project, ServeOptions(max_body_bytes=2048, max_text_chars=500, max_k=20))
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        for name in ("basic", "colbert", "noderag", "hybrid"):
            reply = ask(client, name, QUESTION, k=4)
            assert reply.status_code == 200, reply.text
            data = reply.json()
            expected = project.pipeline(name).retrieve(QUESTION, 4)
            assert [r["doc_id"] for r in data["results"]] == expected.doc_ids
            assert [r["passage"] for r in data["results"]] == [h.passage for h in expected]
            assert data["ready"] is True and data["readiness"] == "fail" and data["pipeline"] == name

        assert client.get("/healthz").json()["status"] == "ok"
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        assert set(ready.json()["pipelines"]) == set(project.spec.pipelines)
        status = client.get("/status").json()
        assert status["pipelines"]["hybrid"]["ready"] is True and status["scope_size"] == 6
        schema = client.get("/openapi.json").json()
        assert {"/query", "/status", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
        assert schema["components"]["schemas"]["QueryRequest"]["properties"]["text"]["maxLength"] == 500

        # malformed and oversized requests; nothing is answered
        as_json = {"content-type": "application/json"}
        assert client.post("/query", content=b"{not json", headers=as_json).status_code == 422
        assert client.post("/query", json={"pipeline": "basic"}).status_code == 422
        assert ask(client, "basic", QUESTION, k=0).status_code == 422
        assert ask(client, "basic", QUESTION, k=21).status_code == 422
        assert ask(client, "basic", "x" * 501).status_code == 422
        assert ask(client, "basic", QUESTION, readiness="heal").status_code == 422
        assert ask(client, "basic", QUESTION, extra_field=1).status_code == 422
        assert ask(client, "basic", "   ").status_code == 422  # the library refuses an empty query
        unknown = ask(client, "rerank", QUESTION)
        assert unknown.status_code == 404 and "basic" in unknown.json()["pipelines"]
        big = client.post("/query", json={"pipeline": "basic", "text": "y" * 4000})
        assert big.status_code == 413 and "2048 bytes" in big.json()["error"]

        def chunks():  # no Content-Length: the limit counts what arrives
            for _ in range(10):
                yield b" " * 512

        streamed = client.post("/query", content=chunks(), headers=as_json)
        assert streamed.status_code == 413

        metrics = client.get("/metrics").text
        assert 'ragstate_queries_total{outcome="answered",pipeline="hybrid"} 1.0' in metrics
        assert 'ragstate_queries_total{outcome="invalid",pipeline="rerank"} 1.0' in metrics


@pytest.mark.slow
def test_fifty_concurrent_queries_all_answer(built) -> None:
    make, _ = built
    project = make()
    pipelines = ("basic", "hybrid", "colbert", "noderag", "crag")
    expected = {
        (name, text): project.pipeline(name).retrieve(text, 3).doc_ids for name in pipelines for text in QUESTIONS
    }
    asks = [(pipelines[i % len(pipelines)], QUESTIONS[i // len(pipelines) % len(QUESTIONS)]) for i in range(50)]

    async def clients(url: str) -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            queries = [
                asyncio.create_task(client.post("/query", json={"pipeline": p, "text": t, "k": 3})) for p, t in asks
            ]
            await asyncio.sleep(0)
            # the event loop is not blocked: the probe is answered while the queries run
            probes = [await client.get("/healthz") for _ in range(3)]
            return list(await asyncio.gather(*queries)), probes

    with running(create_app(project, ServeOptions(workers=4))) as url:
        replies, probes = asyncio.run(clients(url))
    assert [r.status_code for r in replies] == [200] * 50, [r.text for r in replies if r.status_code != 200][:3]
    assert all(p.status_code == 200 for p in probes)
    for (name, text), reply in zip(asks, replies, strict=True):
        assert [r["doc_id"] for r in reply.json()["results"]] == expected[(name, text)], (name, text)


@pytest.mark.slow
def test_a_pipeline_not_ready_is_503_with_its_reasons_until_reconciled(built) -> None:
    make, corpus = built
    project = make()
    # an edit of a title, which basic embeds (a paragraph past the embedded text is no drift)
    edit(corpus / "acai.txt", old="Phenolic Quantification", new="Phenolic Acid Quantification")
    with running(create_app(project)) as url, httpx.Client(base_url=url, timeout=60) as client:
        refused = ask(client, "basic", QUESTION, k=3)
        assert refused.status_code == 503 and refused.headers["retry-after"]
        body = refused.json()
        assert body["error_type"] == "NotReady" and body["pipeline"] == "basic"
        assert any("stale" in r for r in body["reasons"]), body
        warned = ask(client, "basic", QUESTION, k=3, readiness="warn")
        assert warned.status_code == 200 and warned.json()["ready"] is False and warned.json()["warnings"]
        readyz = client.get("/readyz")
        assert readyz.status_code == 503 and readyz.json()["pipelines"]["basic"]["reasons"]
        # a writer reconciles the same store while the service runs; the service sees it at once
        assert make().apply().converged
        assert ask(client, "basic", QUESTION, k=3).status_code == 200
        after = client.get("/readyz").json()["pipelines"]
        # ready again, all but hyde, which has no text generator in this spec (never ready)
        assert {name for name, state in after.items() if not state["ready"]} == {"hyde"}


@pytest.mark.parametrize("backend", ["sqlite"])  # the token's handling: the same on any store
def test_a_token_is_required_when_one_is_set(built, tmp_path: Path) -> None:
    make, _ = built
    project = make(pipelines=["basic"])
    secret = tmp_path / "token"
    secret.write_text("s3cret-token-for-tests\n", encoding="utf-8")
    token = read_token(token_file=secret)
    with running(create_app(project, token=token)) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert ask(client, "basic", QUESTION).status_code == 401
        wrong = client.post(
            "/query", json={"pipeline": "basic", "text": QUESTION}, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert client.get("/status").status_code == 401 and client.get("/metrics").status_code == 401
        good = {"Authorization": "Bearer s3cret-token-for-tests"}
        assert client.post("/query", json={"pipeline": "basic", "text": QUESTION}, headers=good).status_code == 200
        assert client.get("/metrics", headers=good).status_code == 200
        # the probes and the schema stay open
        assert client.get("/healthz").status_code == 200 and client.get("/openapi.json").status_code == 200
    with pytest.raises(ServeError, match="it never heals"):
        create_app(project, ServeOptions(readiness="heal"))


def test_a_token_that_cannot_be_read_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ServeError, match="token file .*missing: cannot read it"):
        read_token(token_file=tmp_path / "missing")
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    with pytest.raises(ServeError, match="its first line is empty"):
        read_token(token_file=tmp_path / "empty")
    monkeypatch.delenv("RS_TEST_TOKEN", raising=False)
    with pytest.raises(ServeError, match="token variable RS_TEST_TOKEN is unset"):
        read_token(token_env="RS_TEST_TOKEN")
    with pytest.raises(ServeError, match="not both"):
        read_token(token_file=tmp_path / "empty", token_env="RS_TEST_TOKEN")
    monkeypatch.setenv("RS_TEST_TOKEN", "from-the-environment")
    assert read_token(token_env="RS_TEST_TOKEN") == "from-the-environment"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])  # the command's life: the store is the same code path
def test_ragstate_serve_runs_until_sigterm_and_never_prints_the_token(built, tmp_path: Path) -> None:
    make, corpus = built
    project = make(pipelines=["basic", "hybrid"])
    path = tmp_path / "ragstate.yaml"
    store = project.spec.store.model_dump(by_alias=True, exclude_none=True, mode="json")
    path.write_text(yaml.safe_dump({"store": store, "source": {"path": str(corpus)}, "pipelines": ["basic", "hybrid"]}))
    port = free_port()
    env = {**os.environ, "RS_SERVE_TOKEN": "token-from-env-1234", "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "ragstate.cli", "--log-level", "info", "serve", "-c", str(path)]
    proc = subprocess.Popen(
        [*command, "--port", str(port), "--token-env", "RS_SERVE_TOKEN"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=10)
            time.sleep(0.2)
        headers = {"Authorization": "Bearer token-from-env-1234"}
        reply = httpx.post(url + "/query", json={"pipeline": "hybrid", "text": QUESTION, "k": 2}, headers=headers)
        assert reply.status_code == 200
        expected = project.pipeline("hybrid").retrieve(QUESTION, 2).doc_ids
        assert [r["doc_id"] for r in reply.json()["results"]] == expected
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "token-from-env-1234" not in out + err
    assert f"127.0.0.1:{port}" in err and "bearer token required" in err


@pytest.mark.parametrize("backend", ["sqlite"])  # the token's handling: the same on any store
def test_ragstate_serve_names_a_bad_token_file(built, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ragstate.cli import app

    make, corpus = built
    project = make(pipelines=["basic"])
    path = tmp_path / "ragstate.yaml"
    store = project.spec.store.model_dump(by_alias=True, exclude_none=True, mode="json")
    path.write_text(yaml.safe_dump({"store": store, "source": {"path": str(corpus)}, "pipelines": ["basic"]}))
    result = CliRunner().invoke(app, ["serve", "-c", str(path), "--token-file", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert f"token file {tmp_path / 'nope'}: cannot read it" in result.stderr
    as_json = CliRunner().invoke(app, ["serve", "-c", str(path), "--token-env", "RS_NOT_SET_ANYWHERE", "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["error"] == "token variable RS_NOT_SET_ANYWHERE is unset or empty"
