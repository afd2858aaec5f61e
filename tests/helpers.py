"""Direct reads and writes of a project's store, for tests that create drift on purpose."""

from __future__ import annotations

from typing import Any

import numpy as np

from ragstate.stores import ledger
from ragstate.stores.dialect import Col


def active_table(project: Any, kind: str = "doc_embeddings") -> str:
    with project.store.session() as s:
        gens = [g for g in ledger.generations(project.store, s, kind) if g.state == "active"]
    assert len(gens) == 1, gens
    return gens[0].table_name


def artifact_ids(project: Any, kind: str = "doc_embeddings") -> list[str]:
    table = active_table(project, kind)
    with project.store.session() as s:
        return [r[0] for r in s.query("SELECT doc_id FROM {t} ORDER BY doc_id", t=table)]


def ledger_ids(project: Any, kind: str = "doc_embeddings") -> list[str]:
    with project.store.session() as s:
        rows = s.query(
            "SELECT l.doc_id FROM {ledger} l JOIN {generations} g ON g.kind = l.kind AND g.generation = l.generation "
            "WHERE l.kind = ? AND g.state = 'active' ORDER BY l.doc_id",
            (kind,),
        )
    return [r[0] for r in rows]


def duplicate_rows(project: Any, kind: str = "doc_embeddings") -> int:
    table = active_table(project, kind)
    with project.store.session() as s:
        return int(s.scalar("SELECT count(*) - count(DISTINCT doc_id) FROM {t}", t=table))


def orphan_counts(project: Any, kind: str = "doc_embeddings") -> tuple[int, int]:
    """(artifact rows without a ledger row, ledger rows without an artifact row) in the active generation."""
    with project.store.session() as s:
        gen = next(g for g in ledger.generations(project.store, s, kind) if g.state == "active")
        no_ledger = s.scalar(
            "SELECT count(*) FROM {t} a WHERE NOT EXISTS (SELECT 1 FROM {ledger} l "
            "WHERE l.kind = ? AND l.generation = ? AND l.doc_id = a.doc_id)",
            (kind, gen.generation),
            t=gen.table_name,
        )
        no_rows = s.scalar(
            "SELECT count(*) FROM {ledger} l WHERE l.kind = ? AND l.generation = ? "
            "AND NOT EXISTS (SELECT 1 FROM {t} a WHERE a.doc_id = l.doc_id)",
            (kind, gen.generation),
            t=gen.table_name,
        )
    return int(no_ledger), int(no_rows)


def vector(project: Any, doc_id: str, kind: str = "doc_embeddings") -> np.ndarray:
    table = active_table(project, kind)
    with project.store.session() as s:
        value = s.scalar("SELECT embedding FROM {t} WHERE doc_id = ?", (doc_id,), t=table)
    return project.store.decode_vector(value)


def set_vector(project: Any, doc_id: str, value: Any, kind: str = "doc_embeddings") -> None:
    """Overwrite a stored vector behind ragstate's back (``value`` as the driver takes it)."""
    table = active_table(project, kind)
    with project.store.transaction() as s:
        s.execute("UPDATE {t} SET {c} = ? WHERE doc_id = ?", (value, doc_id), t=table, c=Col("embedding"))


def delete_rows(project: Any, doc_ids: list[str], kind: str = "doc_embeddings") -> None:
    table = active_table(project, kind)
    with project.store.transaction() as s:
        s.execute("DELETE FROM {t} WHERE doc_id = ANY(?)", (doc_ids,), t=table)


def last_counts(record: Any, kind: str = "doc_embeddings") -> Any:
    return record.kinds[kind]


def kind_tables(project: Any, kind: str) -> list[str]:
    """Names of the active generation's tables of ``kind`` (``entities``: also relations)."""
    desired = project.desired().kind(kind)
    with project.store.session() as s:
        gen = next(g for g in ledger.generations(project.store, s, kind) if g.state == "active")
    return [t.name for t in desired.kind.tables(desired.recipe, gen.generation)]


def query(project: Any, kind: str, template: str, params: tuple = (), table: int = 0) -> list[tuple]:
    """Rows of ``template`` with ``{t}`` the kind's active table (``table``: which one)."""
    with project.store.session() as s:
        return s.query(template, params, t=kind_tables(project, kind)[table])


def execute(project: Any, kind: str, template: str, params: tuple = (), table: int = 0) -> int:
    """Change the kind's active table behind ragstate's back; returns rows changed."""
    with project.store.transaction() as s:
        return s.execute(template, params, t=kind_tables(project, kind)[table])


def count(project: Any, kind: str, table: int = 0) -> int:
    return int(query(project, kind, "SELECT count(*) FROM {t}", table=table)[0][0])
