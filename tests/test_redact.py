"""ragstate.redact: URL passwords, keyword pairs, registered secrets, nested data, log lines."""

from __future__ import annotations

import logging
from pathlib import Path

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
