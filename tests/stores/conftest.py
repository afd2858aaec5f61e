"""A migrated, empty store of the test's backend, for the store modules' own tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ragstate.spec.model import StoreSpec
from ragstate.stores import open_store
from ragstate.stores.base import Store
from ragstate.stores.migrations import migrate


@pytest.fixture
def store(store_spec: dict[str, Any]) -> Iterator[Store]:
    s = open_store(StoreSpec(**store_spec))
    migrate(s)
    yield s
    s.close()
