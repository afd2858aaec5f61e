"""The engine stays readable: short functions where a run goes, a façade that only composes.

Issue 19's bounds: no function over 80 lines in ``reconcile/``, ``apply/``, ``plan/`` and
``observe/`` (the path of every run), and ``project.py`` at most 400 lines (each public
method delegates to one function of ``reconcile/``).
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src" / "ragstate"
ENGINE = ("reconcile", "apply", "plan", "observe")
MAX_FUNCTION_LINES = 80
MAX_FACADE_LINES = 400


def long_functions(root: Path) -> list[str]:
    """Every function (nested ones too) over the bound in the modules under ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{path}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_in_the_engine_is_over_80_lines() -> None:
    found = [f for folder in ENGINE for f in long_functions(PACKAGE / folder)]
    assert not found, "split these into named steps:\n" + "\n".join(found)


def test_the_facade_only_composes() -> None:
    lines = len((PACKAGE / "project.py").read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_FACADE_LINES, f"project.py has {lines} lines: move the work into reconcile/"


def test_the_scan_sees_nested_functions_and_spares_short_ones(tmp_path: Path) -> None:
    body = "\n".join(f"            x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    nested = f"class C:\n    def outer(self):\n        def inner():\n{body}\n"
    (tmp_path / "long.py").write_text(nested, encoding="utf-8")
    (tmp_path / "short.py").write_text("def short():\n    return 1\n", encoding="utf-8")
    found = long_functions(tmp_path)
    assert [f.split(" ")[1] for f in found] == ["outer", "inner"]
    assert all("long.py" in f for f in found)
