"""Imports point down: a scan of every import in src/ragstate against the layer order.

Every ``import`` and ``from … import`` counts, wherever it stands: at the top of a module,
inside a function, under ``if TYPE_CHECKING``. A module may import its own layer and the
layers below it, never one above. The order is written once, here, and mirrored in the
"Layers" section of docs/architecture.md (checked below).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "ragstate"

#: bottom to top: (layer, the modules or packages under ragstate that form it)
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("errors", "exits", "hashing", "identifiers", "logs", "plugins", "redact", "version")),
    ("spec", ("spec",)),
    ("faults", ("faults",)),
    ("stores", ("stores",)),
    ("sources", ("sources",)),
    ("compute", ("compute",)),
    ("artifacts", ("artifacts",)),
    ("observe", ("observe",)),
    ("plan", ("plan",)),
    ("apply", ("apply",)),
    ("reconcile", ("reconcile",)),
    ("pipelines", ("pipelines",)),
    ("façade", ("integrations", "project", "serve")),
    ("entry points", ("__init__", "cli")),
]



def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """Index in ``LAYERS`` of ``module`` (``ragstate`` itself is its ``__init__``)."""
    first = "__init__" if module == "ragstate" else module.split(".")[1]
    for index, (_, members) in enumerate(LAYERS):
        if first in members:
            return index
    raise AssertionError(f"{module} is in no layer: add ragstate.{first} to LAYERS in tests/test_layers.py")


def imports_of(path: Path, module: str) -> set[str]:
    """The ragstate modules that ``path`` (the module ``module``) imports, anywhere in it
    (``from ragstate import x`` names ``ragstate.x`` when ``x`` is a module, else ``ragstate``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").exists() or (
                    PACKAGE.parent / Path(*sub.split("."))
                ).is_dir()
                found.add(sub if is_module else target)
    return {name for name in found if name == "ragstate" or name.startswith("ragstate.")}


def upward_edges() -> list[tuple[str, str]]:
    edges = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        for target in imports_of(path, source):
            if layer_of(target) > layer_of(source):
                edges.add((source, target))
    return sorted(edges)


def test_no_import_points_up() -> None:
    edges = upward_edges()
    named = [f"{s} → {t}  ({LAYERS[layer_of(s)][0]} imports {LAYERS[layer_of(t)][0]})" for s, t in edges]
    assert not named, "imports that point up the layers:\n" + "\n".join(named)


def test_every_module_has_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        layer_of(module_name(path))  # raises naming the module


def test_the_scan_sees_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    # an import moved into a function or under TYPE_CHECKING is still an import
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ragstate.plan.model import Plan\n"
        "def f():\n    from ragstate import project\n    from . import ledger\n",
        encoding="utf-8",
    )
    found = imports_of(probe, "ragstate.stores.probe")
    assert found == {"ragstate.plan.model", "ragstate.project", "ragstate.stores.ledger"}
    assert [t for t in sorted(found) if layer_of(t) > layer_of("ragstate.stores.probe")] == [
        "ragstate.plan.model",
        "ragstate.project",
    ]


def test_docs_show_the_same_order() -> None:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    match = re.search(r"^Layer order, bottom to top: (.+)$", text, re.M)
    assert match, "docs/architecture.md: the 'Layer order, bottom to top:' line is missing"
    shown = [part.strip().strip("`") for part in match.group(1).rstrip(".").split(" < ")]
    assert shown == [" ".join(members) for _, members in LAYERS]
