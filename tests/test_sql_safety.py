"""No SQL text is built from values: a scan of the source for statements made by formatting.

Every statement passed to a driver or a ``Session`` must be a literal template (``?`` for
values, ``{table}`` for validated identifiers) or come from a dialect method. An f-string,
``%`` or ``+`` or ``.format()`` in the statement argument fails this test; only the dialect
modules, which quote validated identifiers, may assemble SQL text.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

SQL_METHODS = {"execute", "executemany", "query", "iter_query", "scalar", "copy", "executescript"}
ALLOWED_FILES = {"dialect.py"}  # stores/dialect.py and each backend's dialect.py


def offending_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    problems = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in SQL_METHODS or not node.args:
            continue
        statement = node.args[0]
        if _built(statement):
            problems.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.func.attr}() with SQL built by formatting")
    return problems


def _built(node: ast.AST) -> bool:
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return True
    return False


def test_no_sql_is_built_by_formatting() -> None:
    files = [p for p in (REPO / "src" / "ragstate").rglob("*.py") if p.name not in ALLOWED_FILES]
    problems = [problem for path in files for problem in offending_calls(path)]
    assert problems == []


def test_the_scan_catches_formatting(tmp_path: Path) -> None:
    bad = REPO / "src" / "ragstate" / "_scan_probe.py"
    try:
        bad.write_text(
            "def f(s, name, v):\n"
            "    s.execute(f'SELECT * FROM {name}')\n"
            "    s.query('SELECT * FROM ' + name)\n"
            "    s.scalar('SELECT %s' % v)\n"
            "    s.execute('SELECT {}'.format(v))\n"
            "    s.execute('SELECT 1 FROM {t}', (v,), t=name)\n"
        )
        assert len(offending_calls(bad)) == 4
    finally:
        bad.unlink()
