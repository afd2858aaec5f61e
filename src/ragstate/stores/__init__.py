"""Where derived data lives: one ``Store`` contract, a SQLite and a PostgreSQL backend."""

from __future__ import annotations

from pathlib import Path

from ragstate.errors import StoreConfigError
from ragstate.spec.model import StoreSpec
from ragstate.stores.base import Session, Store


def open_store(spec: StoreSpec, *, prepare: bool = True) -> Store:
    """Open (and prepare) the store the spec names; the caller closes it.

    ``prepare=False`` connects without creating anything (no extension, no schema), for
    ``doctor``.

    Raises:
        StoreConfigError: unknown URL scheme, missing folder, missing extension or rights.
        StoreUnavailable: the server cannot be reached.
    """
    url = spec.url
    if url.startswith("sqlite:"):
        from ragstate.stores.sqlite.store import SQLiteStore

        return SQLiteStore(Path(url.removeprefix("sqlite:///")), prefix=spec.prefix)
    if url.startswith(("postgresql://", "postgres://")):
        from ragstate.stores.postgres.store import PostgresStore

        return PostgresStore(spec, prepare=prepare)
    raise StoreConfigError(f"store.url: unsupported scheme in {url.split('://')[0]!r}; use sqlite: or postgresql://")


def open_scratch(spec: StoreSpec, folder: Path) -> Store:
    """An empty SQLite store in ``folder`` (the caller removes it), for reading commands
    to observe a store that does not exist yet as the empty store apply would start from."""
    from ragstate.stores.sqlite.store import SQLiteStore

    return SQLiteStore(folder / "scratch.db", prefix=spec.prefix)


__all__ = ["Session", "Store", "open_scratch", "open_store"]
