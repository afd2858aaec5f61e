"""Plugins by name: built-ins first, then Python entry points of the group.

A package adds an embedder (or, later, a chunker, extractor or artifact kind) without
editing ragstate by declaring an entry point, e.g. in its ``pyproject.toml``::

    [project.entry-points."ragstate.embedders"]
    my-embedder = "my_package.module:MyEmbedder"
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from ragstate.errors import PluginError


@cache
def _entry_points(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def load_plugin(group: str, name: str, builtins: dict[str, Any], *, field: str) -> Any:
    """The object registered as ``name`` in ``group``.

    Args:
        group: entry-point group, e.g. ``ragstate.embedders``.
        name: the name given in the spec.
        builtins: objects ragstate ships, by name (checked first, so an installed
            package cannot replace a built-in by accident).
        field: the spec field that named it, for the error message.

    Raises:
        PluginError: no such plugin, or it failed to import.
    """
    if name in builtins:
        return builtins[name]
    ep = _entry_points(group).get(name)
    if ep is None:
        known = sorted(set(builtins) | set(_entry_points(group)))
        raise PluginError(f"{field}: unknown plugin '{name}' (available: {', '.join(known)})")
    try:
        return ep.load()
    except Exception as exc:  # a third-party import can fail in any way
        raise PluginError(f"{field}: plugin '{name}' ({ep.value}) failed to load: {exc}") from exc
