"""The reconcile loop's promise as a property: after every ``apply`` that converged, ``plan``
is in sync, ``verify`` passes, and the store holds exactly the documents in scope, each
built from its current content under the recipe in force.

Random sequences of what users do to a corpus and a spec (add, edit inside and past the
model's window, delete, revert an edit, duplicate a document, change the recipe, roll back
and forward, a poison document and its fix), each followed by ``apply``, on both backends.
The deterministic hash embedder makes the many examples affordable; one fixed sequence
runs with the real model, whose window is what makes an edit "past the window" real.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import HASH_MODELS, tiny_text
from ragstate import Project, spec_from_dict
from ragstate.errors import RollbackError
from ragstate.stores import ledger

PIPELINES = ["basic", "hybrid", "noderag"]
#: the embedded text of doc_embeddings under the two recipes the sequences switch between
TEMPLATES = ("{title}\n\n{summary}", "{title}")
#: words appended to a text already longer than the windows used here (and within the
#: 2,000 characters of a .txt file's summary, so the embedded text does change)
PAST_WINDOW = " " + " ".join(["the trial measured the effect of the dose on growth"] * 4)

OPS = st.sampled_from(
    ["add", "edit_inside", "edit_past", "delete", "revert", "duplicate", "recipe", "rollback", "forward", "poison"]
)


@dataclass
class Corpus:
    """The folder as the test means it to be: path → text, with each file's previous text."""

    root: Path
    files: dict[str, str] = field(default_factory=dict)
    previous: dict[str, str] = field(default_factory=dict)
    poisoned: set[str] = field(default_factory=set)
    added: int = 0

    def write(self, name: str, text: str) -> None:
        if name in self.files:
            self.previous[name] = self.files[name]
        self.files[name] = text
        self.poisoned.discard(name)
        (self.root / name).write_text(text, encoding="utf-8")

    def pick(self, n: int) -> str | None:
        names = sorted(set(self.files) - self.poisoned)
        return names[n % len(names)] if names else None


def long_document(i: int) -> str:
    """A title and a body of some 1,650 characters: about 280 tokens, past the default model's 256."""
    title, body = tiny_text(i, words=240)
    return f"{title}\n\n{body}\n"


def do(op: str, n: int, corpus: Corpus, state: dict[str, Any], project_for: Any) -> None:
    """Carry out one user action on the corpus or the spec (rollbacks act on the store)."""
    name = corpus.pick(n)
    if op == "add" or name is None:
        corpus.added += 1
        corpus.write(f"new{corpus.added:03d}.txt", long_document(500 + corpus.added))
    elif op == "edit_inside":
        title, rest = corpus.files[name].split("\n", 1)
        corpus.write(name, f"{title} revised {n}\n{rest}")
    elif op == "edit_past":
        corpus.write(name, corpus.files[name].rstrip("\n") + PAST_WINDOW + f" {n}.\n")
    elif op == "delete":
        corpus.files.pop(name)
        corpus.previous.pop(name, None)
        (corpus.root / name).unlink()
    elif op == "revert":
        if name in corpus.previous:
            corpus.write(name, corpus.previous[name])
    elif op == "duplicate":
        corpus.added += 1
        corpus.write(f"copy{corpus.added:03d}.txt", corpus.files[name])
    elif op == "recipe":
        state["template"] = 1 - state["template"]
    elif op in ("rollback", "forward"):
        with project_for(state["template"]) as project:
            with project.store.session() as s:
                gens = [g.generation for g in ledger.generations(project.store, s, "doc_embeddings")]
            try:
                project.rollback("doc_embeddings", to=max(gens) if op == "forward" and gens else None)
            except RollbackError:
                pass  # nothing to roll back to (or already there): a user sees why, nothing changes
    elif op == "poison":
        # undecodable bytes: quarantined by name at observe; fixing the file heals it
        corpus.poisoned.add(name)
        (corpus.root / name).write_bytes(b"A title\n\nLatin-1 text: caf\xe9 au lait\n")


def heal_poison(corpus: Corpus, n: int) -> None:
    """Fix the poisoned files (a user repairing what the quarantine named)."""
    for name in sorted(corpus.poisoned):
        corpus.write(name, long_document(900 + n))


def check_converged(project: Project, corpus: Corpus) -> None:
    """The promise: nothing to do, nothing found by the audit, and the rows match the corpus."""
    plan = project.plan()
    assert plan.in_sync, f"plan after a converged apply: {plan.drift}"
    report = project.verify()
    assert report.in_sync, f"verify after a converged apply: {report.drift} {report.documents} {report.schema}"
    expected = {name for name in corpus.files if name not in corpus.poisoned}
    current = {ref.doc_id: ref.content_hash for ref in project.source().snapshot({}, rehash=True).fresh}
    assert set(current) == expected
    desired = {d.name: d for d in project.desired().kinds}
    with project.store.session() as s:
        for kind, d in desired.items():
            [active] = [g for g in ledger.generations(project.store, s, kind) if g.state == "active"]
            in_force = active.recipe_fp if active.hold else d.recipe.fingerprint
            assert active.recipe_fp == in_force, f"{kind}: active generation built under another recipe"
            rows = s.query(
                "SELECT doc_id, source_hash, recipe_fp FROM {ledger} WHERE kind = ? AND generation = ?",
                (kind, active.generation),
            )
            built = {doc_id: source_hash for doc_id, source_hash, _ in rows}
            assert set(built) == expected, f"{kind}: documents {sorted(set(built) ^ expected)} differ from scope"
            stale = sorted(doc for doc in expected if built[doc] != current[doc])
            assert not stale, f"{kind}: built from old content: {stale}"
            assert {fp for _, _, fp in rows} <= {in_force}


def run_sequence(ops: list[tuple[str, int]], store: dict[str, Any], root: Path, models: dict[str, Any]) -> None:
    corpus = Corpus(root / "corpus")
    corpus.root.mkdir(parents=True)
    for i in range(4):
        corpus.write(f"doc{i}.txt", long_document(i))
    corpus.previous.clear()
    state = {"template": 0}

    def project_for(template: int) -> Project:
        spec = {
            "store": store,
            "source": {"path": str(corpus.root)},
            "pipelines": PIPELINES,
            **({"models": models} if models else {}),
            "artifacts": {"doc_embeddings": {"text": TEMPLATES[template]}},
        }
        return Project(spec_from_dict(spec, base_dir=root))

    for step, (op, n) in enumerate([("add", 0), *ops]):
        do(op, n, corpus, state, project_for)
        with project_for(state["template"]) as project:
            record = project.apply(allow_destructive=True)
            if corpus.poisoned:
                assert record.quarantined_total >= 1, f"step {step} {op}: the poison was not set aside"
                heal_poison(corpus, n)
                record = project.apply(allow_destructive=True)
            assert record.converged, f"step {step} {op}: {record.status} {record.error} {record.remaining}"
            check_converged(project, corpus)


def fresh_store(backend: str, root: Path, pg_url: str | None) -> dict[str, Any]:
    if backend == "sqlite":
        return {"url": f"sqlite:///{root / 'store.db'}"}
    return {"url": pg_url, "schema": "p_" + uuid.uuid4().hex[:12]}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_converged_apply_leaves_nothing_to_do(backend: str, request: pytest.FixtureRequest) -> None:
    pg_url = request.getfixturevalue("pg_url") if backend == "postgres" else None

    @settings(
        max_examples=int(os.environ.get("PROP_N", "12")),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(st.lists(st.tuples(OPS, st.integers(0, 50)), min_size=1, max_size=7))
    def sequences(ops: list[tuple[str, int]]) -> None:
        root = Path(tempfile.mkdtemp(prefix="ragstate-prop-"))
        try:
            models = {"default": {**HASH_MODELS["default"], "max_tokens": 64}}
            run_sequence(ops, fresh_store(backend, root, pg_url), root, models)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    sequences()


#: the sequence with the real model: every kind of action once, the edits past the window twice
REAL_SEQUENCE = [
    ("edit_past", 1),
    ("delete", 2),
    ("duplicate", 0),
    ("edit_inside", 3),
    ("recipe", 0),
    ("edit_past", 0),
    ("rollback", 0),
    ("edit_past", 2),
    ("delete", 1),
    ("forward", 0),
    ("revert", 0),
    ("poison", 1),
]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_one_sequence_with_the_real_model(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    pg_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    run_sequence(REAL_SEQUENCE, fresh_store(backend, tmp_path, pg_url), tmp_path, {})
