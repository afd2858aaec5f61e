"""No SQL text is built from values: a scan of the source for statements made by formatting.

Every statement passed to a driver or a ``Session`` must be a literal template (``?`` for
values, ``{table}`` for validated identifiers) or come from a dialect method. An f-string,
``%`` or ``+`` or ``.format()`` in the statement argument fails this test; only the dialect
modules, which quote validated identifiers, may assemble SQL text.
"""

from __future__ import annotations

import ast
import re
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


#: SQL keywords as statements spell them; a formatted string holding one is SQL being built
SQL_WORDS = re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE|DROP|ALTER|WHERE|VALUES|JOIN)\b")


def formatted_sql(path: Path) -> list[str]:
    """f-strings, ``+``, ``%`` and ``.format()`` whose literal text reads as SQL, wherever the
    result goes (a variable passed to ``execute`` later too); messages aside: of a ``raise``,
    and of a ``doctor`` check (``Check(...)``: a fix may spell the SQL an administrator runs)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    messages = [
        r
        for r in ast.walk(tree)
        if isinstance(r, ast.Raise)
        or (isinstance(r, ast.Call) and isinstance(r.func, ast.Name) and r.func.id == "Check")
    ]
    in_raise = {id(n) for r in messages for n in ast.walk(r)}
    problems = []
    for node in ast.walk(tree):
        if id(node) in in_raise:
            continue
        literals: list[object] = []
        if isinstance(node, ast.JoinedStr):
            literals = [v.value for v in node.values if isinstance(v, ast.Constant)]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
            literals = [n.value for n in (node.left, node.right) if isinstance(n, ast.Constant)]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            literals = [node.func.value.value] if isinstance(node.func.value, ast.Constant) else []
        if any(isinstance(text, str) and SQL_WORDS.search(text) for text in literals):
            problems.append(f"{path.relative_to(REPO)}:{node.lineno}: SQL text built by formatting")
    return problems


def test_no_sql_like_text_is_formatted_outside_the_dialects() -> None:
    files = [p for p in (REPO / "src" / "ragstate").rglob("*.py") if p.name not in ALLOWED_FILES]
    problems = [problem for path in files for problem in formatted_sql(path)]
    assert problems == []


def test_the_wider_scan_catches_sql_built_into_a_variable() -> None:
    bad = REPO / "src" / "ragstate" / "_scan_probe2.py"
    try:
        bad.write_text(
            "def f(s, name, v):\n"
            "    sql = f'DELETE FROM {name} WHERE id = 1'\n"
            "    other = 'SELECT * FROM ' + name\n"
            "    s.execute(sql)\n"
            "    raise ValueError(f'run CREATE EXTENSION vector in {name}')\n"
        )
        assert len(formatted_sql(bad)) == 2
    finally:
        bad.unlink()


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


def sql_literals(path: Path) -> list[str]:
    """String literals that read as SQL statements (docstrings aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    return [
        f"{path.relative_to(REPO)}:{n.lineno}: {n.value[:60]!r}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
        if re.match(r"\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM|WITH)\b", n.value)
    ]


def test_retrieval_reads_the_store_through_store_functions() -> None:
    # the pipelines rank; their statements live in stores/ (stores/retrieval.py)
    files = sorted((REPO / "src" / "ragstate" / "pipelines").rglob("*.py"))
    assert [problem for path in files for problem in sql_literals(path)] == []
    assert sql_literals(REPO / "src" / "ragstate" / "stores" / "retrieval.py")  # the scan sees them where they are
