"""Direct reads and writes of a project's store, for tests that create drift on purpose."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from typer.testing import CliRunner

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


def copy_row(project: Any, doc_id: str, new_id: str) -> None:
    """Insert a copy of ``doc_id``'s document vector under ``new_id``, with no ledger row."""
    with project.store.transaction() as s:
        s.execute(
            "INSERT INTO {t} (doc_id, source_hash, recipe_fp, run_id, created_at, text_hash, embedding) "
            "SELECT ?, source_hash, recipe_fp, run_id, created_at, text_hash, embedding FROM {t} WHERE doc_id = ?",
            (new_id, doc_id),
            t=active_table(project),
        )


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


# --- fault tests: tiny corpora, invariants over every generation ----------------------

#: the deterministic embedder for engine mechanics at scale
HASH_MODELS = {"default": {"provider": "hash", "dimension": 32}}

_WORDS = (
    "seed soil root leaf water light growth cell gene protein signal stress yield field plant "
    "enzyme membrane sample trial cohort dose response model measure effect"
).split()
#: sentences with entities the built-in ``rules`` extractor finds (acronyms, names, taxa)
_ENTITY_SENTENCES = (
    "Levels of interleukin six (IL-6) rose in the Mayo Clinic cohort.",
    "Deep vein thrombosis (DVT) was rarer with E. coli than with SARS-CoV-2.",
    "The World Health Organization (WHO) reviewed COVID-19 data from Hidradenitis Suppurativa patients.",
    "Samples from the Amazon Basin showed TNF-alpha and IL-6 together.",
)


def tiny_text(i: int, words: int = 30, salt: str = "") -> tuple[str, str]:
    """A deterministic (title, body) for document ``i``, with a few entities."""
    import random

    rng = random.Random(f"{i}:{salt}")
    title = f"Study {i} of " + " ".join(rng.choice(_WORDS) for _ in range(3))
    body = (
        " ".join(rng.choice(_WORDS) for _ in range(words)) + f". {rng.choice(_ENTITY_SENTENCES)} Document {i} {salt}."
    )
    return title, body


def write_tiny_corpus(root: Any, n: int, *, jsonl_share: float = 0.5, salt: str = "") -> list[str]:
    """``n`` small documents under ``root``: a share in one JSONL file, the rest as .txt files."""
    import json
    from pathlib import Path

    root = Path(root)
    (root / "txt").mkdir(parents=True, exist_ok=True)
    in_jsonl = int(n * jsonl_share)
    ids = []
    with open(root / "records.jsonl", "w", encoding="utf-8") as f:
        for i in range(in_jsonl):
            title, body = tiny_text(i, salt=salt)
            f.write(json.dumps({"doc_id": f"r{i:04d}", "title": title, "body": body}) + "\n")
            ids.append(f"r{i:04d}")
    for i in range(in_jsonl, n):
        title, body = tiny_text(i, salt=salt)
        (root / "txt" / f"d{i:04d}.txt").write_text(f"{title}\n\n{body}\n", encoding="utf-8")
        ids.append(f"txt/d{i:04d}.txt")
    return ids


def check_store(project: Any) -> dict[str, int]:
    """Assert the invariants a crash must never break, over every generation of every kind.

    For each generation: no artifact row without its ledger row, and every ledger row
    matches the rows the kind's tables hold for the document (its ``items``, over all the
    kind's tables); no duplicate document in a one-row-per-document table; no vector
    failing the quality checks; at most one active generation per kind. Returns the rows
    per table. (Tables are derived from the desired recipe with each generation's own
    fingerprint: the tests change recipes only in ways that keep tables alike.)
    """
    from dataclasses import replace

    from ragstate.stores import ledger as ledger_repo

    store = project.store
    desired = {d.name: d for d in project.desired().kinds}
    seen: dict[str, int] = {}
    with store.session() as s:
        gens = ledger_repo.generations(store, s)
        for kind in {g.kind for g in gens}:
            assert sum(1 for g in gens if g.kind == kind and g.state == "active") <= 1, kind
        for g in gens:
            d = desired.get(g.kind)
            if d is None:
                continue
            recipe = replace(d.recipe, params=g.recipe, fingerprint=g.recipe_fp)
            tables = d.kind.tables(recipe, g.generation)
            if any(store.columns(s, t.name) is None for t in tables):
                continue  # created in the same transaction as the generation row: both or neither
            ledger = {
                r[0]: int(r[1])
                for r in s.query(
                    "SELECT doc_id, items FROM {ledger} WHERE kind = ? AND generation = ?", (g.kind, g.generation)
                )
            }
            rows: dict[str, int] = {}
            for t in tables:
                per_doc = s.query("SELECT doc_id, count(*) FROM {t} GROUP BY doc_id", t=t.name)
                for doc_id, n in per_doc:
                    rows[doc_id] = rows.get(doc_id, 0) + int(n)
                seen[t.name] = sum(int(n) for _, n in per_doc)
                if t.primary_key == ("doc_id",):
                    dup = s.scalar("SELECT count(*) - count(DISTINCT doc_id) FROM {t}", t=t.name)
                    assert int(dup) == 0, f"{t.name}: {dup} duplicate rows"
            orphans = sorted(set(rows) - set(ledger))
            assert not orphans, f"{g.kind} g{g.generation}: artifact rows without a ledger row: {orphans[:5]}"
            wrong = sorted(doc for doc, n in ledger.items() if rows.get(doc, 0) != n)
            assert not wrong, f"{g.kind} g{g.generation}: ledger rows that do not match their rows: {wrong[:5]}"
            for vc in d.kind.vector_columns(recipe):
                name = tables[vc.table].name
                bad = store.vector_quality(s, name, vc.column, vc.dimension, vc.normalized, vc.key)
                assert bad == [], f"{name}: vectors failing the quality checks: {bad[:5]}"
    return seen


def run_rows(project: Any) -> list[tuple[str, str, int]]:
    """(run_id, status, built) of every run, oldest first."""
    with project.store.session() as s:
        rows = s.query("SELECT run_id, status, counts FROM {runs} ORDER BY started_at")
    out = []
    for run_id, status, counts in rows:
        counts = project.store.decode_json(counts) or {}
        built = sum(k.get("built", 0) for k in (counts.get("kinds") or {}).values())
        out.append((run_id, status, built))
    return out


def metrics_of(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A daemon's ``/metrics`` at ``url``: ``{(name, sorted labels): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def http_json(url: str, method: str = "GET") -> tuple[int, dict[str, Any]]:
    """(status code, JSON body) of a request to one of the daemon's endpoints."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def cli(project: Any, corpus: Path, tmp_path: Path, *args: str) -> tuple[int, Any]:
    """Run the CLI on ``project``'s store and ``corpus``; returns (exit code, JSON or text)."""
    spec = {"store": project.spec.store.model_dump(by_alias=True, exclude_none=True, mode="json")}
    spec |= {"source": {"path": str(corpus)}, "pipelines": list(project.spec.pipelines)}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    from ragstate.cli import app

    result = CliRunner().invoke(app, [*args, "-c", str(path)])
    output = result.stdout
    return result.exit_code, json.loads(output) if "--json" in args else output


def core_only(store: Any) -> Any:
    """``store`` seen through the core ``Store`` alone, as a backend with no capability
    would be: every core method delegates to the real store (no data is faked)."""
    from ragstate.stores.base import Store

    class CoreOnly(Store):
        dialect = store.dialect
        description = f"core-only {store.description}"

        def session(self):  # type: ignore[override]
            return store.session()

        def close(self) -> None:
            store.close()

        def prepare(self, session):  # type: ignore[override]
            store.prepare(session)

        def columns(self, session, table):  # type: ignore[override]
            return store.columns(session, table)

        def indexes(self, session, table):  # type: ignore[override]
            return store.indexes(session, table)

        def encode_vector(self, vector):  # type: ignore[override]
            return store.encode_vector(vector)

        def decode_vector(self, value):  # type: ignore[override]
            return store.decode_vector(value)

    return CoreOnly()
