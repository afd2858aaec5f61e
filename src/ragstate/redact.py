"""Keep secrets out of everything ragstate prints or stores: logs, run records, errors.

Two mechanisms, both applied by ``redact``: the password part of any URL
(``scheme://user:SECRET@host``) and ``password=SECRET`` pairs are masked, and any
string registered with ``register_secret`` (a password read from a file or the
environment, and by ``register_environment`` the value of every environment variable
whose name says it holds a secret: ``*PASSWORD*``, ``*TOKEN*``, ``*SECRET*``,
``*API_KEY*``, ...) is masked wherever it appears.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping

MASK = "***"

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^/:@\s]*:)(?P<secret>[^@\s/]+)(?P<tail>@)")
_KEYWORD_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|token|api_key)\s*[=:]\s*)(?P<secret>[^\s&;'\"]+)", re.I
)

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


def redact(text: str) -> str:
    """Return ``text`` with URL passwords, ``password=...`` pairs and registered secrets masked."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["tail"], text)
    text = _KEYWORD_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def has_inline_password(url: str) -> bool:
    """True when ``url`` carries a password in its user-info part."""
    return _URL_PASSWORD.search(url) is not None
