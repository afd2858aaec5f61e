"""The run summary's line about migrations says every one applied and why a number is absent."""

from __future__ import annotations

from ragstate.stores.migrations import CURRENT_VERSION, MIGRATIONS, describe_applied


def test_a_fresh_store_lists_every_migration_and_explains_the_gap() -> None:
    versions = [m.version for m in MIGRATIONS]
    line = describe_applied(versions)
    assert line.startswith(f"applied schema migrations {', '.join(map(str, versions))} (now at version")
    assert f"version {CURRENT_VERSION}" in line
    assert "there is no migration 4: numbers follow issues, none was skipped" in line


def test_one_migration_names_no_gap() -> None:
    assert describe_applied([CURRENT_VERSION]) == (
        f"applied schema migration {CURRENT_VERSION} (now at version {CURRENT_VERSION})"
    )
