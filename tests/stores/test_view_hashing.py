"""Content hashes computed inside the database equal the documented algorithm, byte for byte.

SQLite runs ``ragstate.hashing.content_hash`` itself (a registered function);
PostgreSQL runs SQL that must equal ``content_hash_md5``. Texts mix the characters the
normalisation treats specially: CR, LF, blanks at line ends, decomposed accents.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragstate.hashing import content_hash, content_hash_md5
from ragstate.spec import spec_from_dict
from ragstate.stores import open_store

#: characters the normalisation treats specially, a combining accent (NFC), and ones it keeps
ALPHABET = st.sampled_from(list("aZ7 \t\x0b\x0c\r\nñß中😀\u00a0\u2028\x1e'\"\\%?") + ["e", "\u0301", "\u00e9"])
TEXTS = st.text(alphabet=ALPHABET, max_size=40)
FIXED = [
    ("Title  ", "a  \r\nb\t \r\n\r\n", "\n\nCafe\u0301 x \x0b\n"),
    ("", "", ""),
    ("x\ry \x0c", "   lead", "line one\n\n\nline two   \n"),
]

HASH_OF_BOUND = (
    "SELECT /*content_hash*/ FROM "
    "(SELECT CAST(? AS TEXT) AS title, CAST(? AS TEXT) AS abstract, CAST(? AS TEXT) AS body) v"
)


def database_hash(store, fields: tuple[str, str, str]) -> str:
    with store.session() as s:
        return s.scalar(store.dialect.view_sql(HASH_OF_BOUND), fields)


def expected(store, fields: tuple[str, str, str]) -> str:
    return content_hash(*fields) if store.dialect.name == "sqlite" else content_hash_md5(*fields)


def test_database_hash_equals_the_documented_algorithm(store_spec, tmp_path) -> None:
    store = open_store(spec_from_dict({"store": store_spec, "source": str(tmp_path)}).store)
    try:
        for fields in FIXED:
            assert database_hash(store, fields) == expected(store, fields)
        # whitespace the normalisation ignores changes nothing; a word does
        assert database_hash(store, ("T", "a\r\nb  ", "")) == database_hash(store, ("T", "a\nb", ""))
        assert database_hash(store, ("T", "a b", "")) != database_hash(store, ("T", "a  b", ""))

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(TEXTS, TEXTS, TEXTS)
        def same(title: str, abstract: str, body: str) -> None:
            assert database_hash(store, (title, abstract, body)) == expected(store, (title, abstract, body))

        same()
    finally:
        store.close()
