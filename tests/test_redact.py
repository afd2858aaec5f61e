"""ragstate.redact: URL passwords, keyword pairs, registered secrets, nested data, log lines."""

from __future__ import annotations

import logging
import re
import signal
import time
from pathlib import Path

import pytest

from ragstate.logs import TextFormatter
from ragstate.redact import MASK, literal_secrets, redact, redact_data, register_secret
from ragstate.spec import load_spec


def test_url_passwords_keyword_pairs_and_registered_secrets_are_masked() -> None:
    assert redact("postgresql://rag:pa55w0rd@db:5432/x") == f"postgresql://rag:{MASK}@db:5432/x"
    assert redact("password=hunter2 host=db") == f"password={MASK} host=db"
    assert redact("api_key: abc123") == f"api_key: {MASK}"
    register_secret("tok-9d8e7f")
    assert redact("the server said: bad tok-9d8e7f!") == f"the server said: bad {MASK}!"
    assert redact("postgresql://rag@db/x") == "postgresql://rag@db/x"  # nothing to mask


def test_nested_data_is_masked_keys_and_values() -> None:
    register_secret("s3cr3t-value")
    data = {"runs": [{"error": "login as rag:s3cr3t-value failed", "n": 3}], "s3cr3t-value": (1, None)}
    assert redact_data(data) == {"runs": [{"error": f"login as rag:{MASK} failed", "n": 3}], MASK: [1, None]}


def test_log_lines_and_their_tracebacks_are_masked() -> None:
    register_secret("Tr4ceb4ck-pw")
    formatter = TextFormatter()
    try:
        raise RuntimeError("connect postgresql://u:other-pw@h/db with Tr4ceb4ck-pw")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed: %s", ("Tr4ceb4ck-pw",), sys.exc_info())
    line = formatter.format(record)
    assert "Traceback" in line and "Tr4ceb4ck-pw" not in line and "other-pw" not in line


def test_literal_secrets_are_found_by_key_and_in_urls() -> None:
    spec = {
        "store": {"url": "postgresql://u:pw-in-url@h/db", "password_file": "/run/secrets/db"},
        "artifacts": {"entities": {"options": {"api_key": "k-123", "auth_token": "t-456", "tokens": 5}}},
        "profiles": {"p": {"store": "postgres://v:pw2@h/db"}},
        "list": [{"password": "in-a-list"}],
        "query": "postgresql://u@h/db?sslmode=require&password=in-query",
    }
    assert sorted(literal_secrets(spec)) == [
        ("artifacts.entities.options.api_key", "k-123"),
        ("artifacts.entities.options.auth_token", "t-456"),
        ("list[0].password", "in-a-list"),
        ("profiles.p.store", "pw2"),
        ("query", "in-query"),
        ("store.url", "pw-in-url"),
    ]


def test_a_password_from_the_environment_is_masked_in_spec_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("store: sqlite:///s.db\nsource: d\n")
    env = {"RAGSTATE_STORE__URL": "postgresql://u:env-pw-77@h/db", "RAGSTATE_STORE__POOL_SIZE": "env-pw-77"}
    try:
        load_spec(path, environ=env)
    except Exception as exc:
        assert "env-pw-77" not in str(exc) and "store.pool_size" in str(exc)
    else:
        raise AssertionError("an invalid pool size was accepted")


def test_a_password_in_a_query_string_leaves_the_message_colon_after_it() -> None:
    url = "postgresql://h/db?sslmode=require&password=hunter2"
    masked = f"postgresql://h/db?sslmode=require&password={MASK}: connection refused"
    assert redact(f"{url}: connection refused") == masked
    assert redact("password=a:b:c rest") == f"password={MASK} rest"  # a colon inside a secret is the secret's
    assert list(literal_secrets(f"{url}: x")) == [("", "hunter2")]


#: redaction may take this many times a plain linear regex scan of the same input (measured: 3 to 15;
#: a quadratic pattern takes hours on 10 MB, so the wide margin only absorbs a loaded machine)
_LINEAR_BUDGET = 200
_TEN_MB = 10_000_000


@pytest.mark.slow
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a" * _TEN_MB, id="one-long-word"),  # a store.prefix, an untrusted title
        pytest.param("x" + "1" * _TEN_MB + "://u:p@h", id="digits-before-scheme"),
        pytest.param("ab://u:" * (_TEN_MB // 7), id="many-unfinished-urls"),
        pytest.param("a://x:" + "b" * _TEN_MB, id="url-without-at"),
        pytest.param("password=" + ":" * _TEN_MB + " ", id="password-of-colons"),
        pytest.param("password" + " " * _TEN_MB, id="password-then-spaces"),
    ],
)
def test_redaction_is_linear_in_its_input(text: str) -> None:
    """10 MB of adversarial text is redacted within a multiple of a linear scan of it (issue 15, item 3)."""
    start = time.perf_counter()
    assert sum(1 for _ in re.finditer(r"\S+", text)) >= 1
    budget = _LINEAR_BUDGET * (time.perf_counter() - start)

    def out_of_budget(*_: object) -> None:
        raise TimeoutError(f"redaction took over {_LINEAR_BUDGET} times a linear scan")

    # the alarm stops a quadratic run (hours on 10 MB) instead of letting the test hang
    previous = signal.signal(signal.SIGALRM, out_of_budget)
    signal.setitimer(signal.ITIMER_REAL, budget)
    try:
        start = time.perf_counter()
        redacted = redact(text)
        took = time.perf_counter() - start
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert took < budget
    assert redacted[:1000] == text[:1000]
