"""Keep secrets out of everything ragstate prints or stores: logs, run records, errors.

Two mechanisms, both applied by ``redact``: the password part of any URL
(``scheme://user:SECRET@host``) and ``password=SECRET`` pairs are masked, and any
string registered with ``register_secret`` (a password read from a file or the
environment, a literal one found in the spec, and by ``register_environment`` the value
of every environment variable whose name says it holds a secret: ``*PASSWORD*``,
``*TOKEN*``, ``*SECRET*``, ``*API_KEY*``, ...) is masked wherever it appears.

Where it is applied (SECURITY.md lists each with its test): error messages (the CLI's
``_fail``), every JSON value ragstate writes to the store (``Store.encode_json``: run
records, generation recipes), the CLI's text and ``--json`` output (``redact_data``),
and log lines (``ragstate.logs``' formatters).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

MASK = "***"

# Every pattern here must stay linear in its input: redaction sees untrusted text (titles of
# 300,000 letters, a 1M-letter store prefix). A URL is therefore found from its "://", and its
# scheme checked by looking back (``_has_scheme``): a pattern that starts at the scheme
# (``[a-zA-Z][a-zA-Z0-9+.-]*://``) is retried at every letter of a long word, quadratic in its length.
_URL_PASSWORD = re.compile(r"(?P<head>://[^/:@\s]*:)(?P<secret>[^@\s/]+)(?P<tail>@)")
_SCHEME_LOOKBACK = 64
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
# A secret never ends with ":": in "?password=SECRET: connection refused" the colon is the message's.
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|token|api_key)\s*[=:]\s*)(?P<secret>[^\s&;'\"]*[^\s&;'\":])", re.I
)


def _has_scheme(text: str, end: int) -> bool:
    """Whether ``text[:end]`` ends with a URL scheme (scheme characters, one of them a letter).

    At most ``_SCHEME_LOOKBACK`` characters are read: a longer run of digits and ``+.-`` counts
    as a scheme, which masks too much rather than too little."""
    for i in range(end - 1, max(end - _SCHEME_LOOKBACK, 0) - 1, -1):
        char = text[i]
        if char not in _SCHEME_CHARS:
            return False
        if char.isalpha():
            return True
    return end > _SCHEME_LOOKBACK


def _url_passwords(text: str) -> Iterator[re.Match[str]]:
    """The ``user:SECRET@`` matches of URLs in ``text``."""
    return (m for m in _URL_PASSWORD.finditer(text) if _has_scheme(text, m.start()))


_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(secret: str | None) -> None:
    """Mask ``secret`` in everything ``redact`` sees from now on (this process)."""
    if secret and len(secret) >= 3:
        with _lock:
            _secrets.add(secret)


#: environment variable names whose values are secrets
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL", re.I)
#: shorter values are not registered from the environment: masking ``true`` everywhere
#: would garble output and protects nothing
_MIN_ENV_SECRET = 8


def register_environment(environ: Mapping[str, str] | None = None) -> int:
    """Register the value of every variable of ``environ`` (default: this process's)
    whose name says it holds a secret; return how many were registered."""
    environ = os.environ if environ is None else environ
    found = 0
    for name, value in environ.items():
        if _SECRET_NAME.search(name) and value and len(value) >= _MIN_ENV_SECRET:
            register_secret(value)
            found += 1
    return found


def secret_from_file(path: Path) -> str:
    """The first line of the file ``path``, stripped, masked from now on (``register_secret``).

    Raises:
        OSError: the file cannot be read.
        ValueError: its first line is empty.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    secret = lines[0].strip() if lines else ""
    if not secret:
        raise ValueError("the first line is empty")
    register_secret(secret)
    return secret


def api_key(field: str, env: str | None, file: Path | None) -> str | None:
    """The key named by a spec section's ``api_key_env`` or ``api_key_file``, masked from now
    on; None when the section names neither (a local server without keys).

    Raises:
        ValueError: the variable is not set, or the file cannot be read or starts empty; the
            message names ``field`` and the variable or file.
    """
    if env is not None:
        key = os.environ.get(env, "").strip()
        if not key:
            raise ValueError(f"{field}.api_key_env: the environment variable {env} is not set")
        register_secret(key)
        return key
    if file is not None:
        try:
            return secret_from_file(file)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{field}.api_key_file {file}: cannot read a key ({exc})") from None
    return None


def redact(text: str) -> str:
    """Return ``text`` with URL passwords, ``password=...`` pairs and registered secrets masked."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["tail"] if _has_scheme(m.string, m.start()) else m[0], text)
    text = _KEYWORD_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def redact_data(value: Any) -> Any:
    """``value`` with ``redact`` applied to every string in it (keys and values, nested)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_data(k): redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    return value


#: spec keys whose string value is a secret wherever they appear (``options: {api_key: ...}``)
SECRET_KEY = re.compile(r"(?:^|_)(?:password|passwd|pwd|secret|token|api_?key|credentials?)$", re.I)


def literal_secrets(data: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """``(field path, secret)`` for each literal secret in a spec mapping.

    A secret is the string value of a key named like one (``password``, ``api_key``,
    ``token``, ...), or the password part of a URL or a ``password=...`` pair anywhere in
    a string value.
    """
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(value, str) and isinstance(key, str) and SECRET_KEY.search(key) and value:
                yield where, value
            else:
                yield from literal_secrets(value, where)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from literal_secrets(value, f"{path}[{i}]")
    elif isinstance(data, str):
        for match in _url_passwords(data):  # user:SECRET@
            yield path, match["secret"]
        for match in _KEYWORD_PASSWORD.finditer(data):  # ?password=SECRET
            yield path, match["secret"]
