"""The one place where ragstate hashes anything: document content, recipes, files.

Content hash algorithm (documented in the README, stable across versions):

1. each field (title, abstract, body) is normalised: Unicode NFC; ``\\r\\n`` and ``\\r``
   become ``\\n``; trailing whitespace is removed from every line; leading and trailing
   blank lines are removed;
2. the normalised fields are joined with the record separator U+001E;
3. the UTF-8 bytes are hashed with BLAKE2b, 16-byte digest, written as 32 hex digits.

So re-saving a file with Windows line endings or trailing spaces is not a change, while
any change of wording is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

_TRAILING_WS = re.compile(r"[ \t\f\v]+$", re.MULTILINE)
_FIELD_SEPARATOR = "\x1e"


def normalise_text(text: str) -> str:
    """Return ``text`` in the canonical form that content hashes are computed over."""
    return normalise_layout(unicodedata.normalize("NFC", text))


def normalise_layout(text: str) -> str:
    """Step 1 of the algorithm without NFC: line endings, trailing blanks, outer newlines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _TRAILING_WS.sub("", text)
    return text.strip("\n")


def content_hash(*fields: str) -> str:
    """Hash of a document's normalised fields, in order (see the module docstring)."""
    joined = _FIELD_SEPARATOR.join(normalise_text(f) for f in fields)
    return hashlib.blake2b(joined.encode("utf-8"), digest_size=16).hexdigest()


def content_hash_md5(*fields: str) -> str:
    """What PostgreSQL computes for a document of an in-place source (docs/sources.md).

    ``content_hash`` but for two steps: no Unicode NFC (in PostgreSQL it costs twice the
    rest of the hash: BENCHMARKS.md), and MD5 (32 hex digits) because PostgreSQL has no
    BLAKE2b without an extension. Hashes of one backend are only ever compared with
    hashes of the same backend.
    """
    joined = _FIELD_SEPARATOR.join(normalise_layout(f) for f in fields)
    return hashlib.md5(joined.encode("utf-8"), usedforsecurity=False).hexdigest()


def text_hash(text: str) -> str:
    """Hash of an exact text (no normalisation): what was embedded, byte for byte."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def item_id(*parts: str) -> str:
    """Stable id of an item derived from its parts (a chunk: document, text, occurrence).

    The parts are joined with the record separator, hashed with BLAKE2b (10 bytes, 20 hex
    digits): the same parts give the same id on every machine and in every run.
    """
    joined = _FIELD_SEPARATOR.join(parts)
    return hashlib.blake2b(joined.encode("utf-8"), digest_size=10).hexdigest()


def fingerprint(recipe: dict[str, Any]) -> str:
    """Stable hash of a recipe: canonical JSON (sorted keys), BLAKE2b, 16 hex digits.

    Every value in ``recipe`` must be JSON-serialisable; a recipe is data, not objects.
    """
    canonical = json.dumps(recipe, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=8).hexdigest()


def quarantine_fingerprint(content_hash: str, recipe_fp: str) -> str:
    """What an artifact kind's quarantine entry is recorded against: the document's
    content and the kind's recipe. When either changes, the document is tried again
    (a document one model failed on may suit another)."""
    return fingerprint({"content": content_hash, "recipe": recipe_fp})


_file_digest_cache: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """BLAKE2b digest of a file's bytes, cached per (path, size, mtime) for this process.

    Used for model weights, so a recipe names exactly the weights it was built with even
    when two model folders share a name.
    """
    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _file_digest_cache:
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _file_digest_cache[key] = h.hexdigest()
    return _file_digest_cache[key]


def lock_key(name: str) -> int:
    """A signed 64-bit number for ``name`` (a PostgreSQL advisory lock key)."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big", signed=True)
