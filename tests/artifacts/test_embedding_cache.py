"""The embedding cache: each distinct text is embedded once per embedding recipe, on both backends."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from conftest import write_short_corpus
from helpers import active_table, artifact_ids, delete_rows, execute, query, vector
from ragstate.cli import app
from ragstate.stores import records
from ragstate.stores.dialect import Col

KINDS = ("doc_embeddings", "chunk_embeddings")


def texts_held(project, seen: set[str]) -> None:
    """Add the text hashes the active tables of ``KINDS`` hold now to ``seen``."""
    for kind in KINDS:
        seen.update(r[0] for r in query(project, kind, "SELECT text_hash FROM {t}"))


def embedded(record) -> int:
    return sum(record.kinds[k].embedded for k in KINDS if k in record.kinds)


def set_title(path: Path, title: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[0].startswith("# ")
    path.write_text(f"# {title}\n" + "".join(lines[1:]), encoding="utf-8")


def values(project) -> dict[tuple[str, str], bytes]:
    """Every stored vector of ``KINDS`` as float32 bytes, by (kind, item)."""
    out = {}
    for kind, key in (("doc_embeddings", "doc_id"), ("chunk_embeddings", "chunk_id")):
        with project.store.session() as s:
            rows = s.query("SELECT {k}, embedding FROM {t}", k=Col(key), t=active_table(project, kind))
        for item, value in rows:
            out[(kind, item)] = project.store.decode_vector(value).astype("<f4").tobytes()
    return out


@pytest.mark.slow
def test_duplicates_and_an_edit_then_revert_embed_each_distinct_text_once(make_project, tmp_path: Path) -> None:
    corpus = write_short_corpus(tmp_path / "dup")
    shutil.copy(corpus / "tension.md", corpus / "tension-copy.md")  # a duplicated article
    project = make_project(source={"path": str(corpus)}, pipelines=["basic", "noderag"])
    # Both kinds embed with one model, so they share one embedding recipe: a text is
    # embedded once for either (a short record's chunk can be its document's text).
    seen: set[str] = set()

    first = project.apply()
    texts_held(project, seen)
    docs = first.kinds["doc_embeddings"]
    # Seven documents, six distinct texts: the copy is served by the original's vector
    # (a text may come from the other kind, which embedded it first: a hit).
    assert docs.built == 7 and docs.embedded + docs.cache_hits == 6
    assert embedded(first) == len(seen)

    original = (corpus / "seeds.md").read_text(encoding="utf-8")
    set_title(corpus / "seeds.md", "Seed dormancy, revisited")
    before_edit = set(seen)
    edited = project.apply()
    texts_held(project, seen)
    assert embedded(edited) == len(seen - before_edit) > 0  # only the new texts

    (corpus / "seeds.md").write_text(original, encoding="utf-8")  # revert
    reverted = project.apply()
    texts_held(project, seen)
    assert reverted.converged
    for kind in KINDS:
        assert reverted.kinds[kind].embedded == 0 and reverted.kinds[kind].cache_hits > 0

    # Counted from the run records in the store: texts embedded == distinct texts.
    with project.store.session() as s:
        runs = records.recent(project.store, s)
    assert len(runs) == 3
    assert sum(r.counts["kinds"][k]["embedded"] for r in runs for k in KINDS if k in r.counts["kinds"]) == len(seen)
    for r in runs:  # every run record carries the cache's hits and misses
        cache = r.counts["cache"]
        assert cache["misses"] == sum(k["cache_misses"] for k in r.counts["kinds"].values())
        assert cache["hits"] == sum(k["cache_hits"] for k in r.counts["kinds"].values())
    assert runs[0].counts["cache"]["misses"] == 0  # the revert

    # Evict everything and rebuild every vector: the model gives what the cache served.
    before = values(project)
    assert project.evict_cache("everything").entries == 0
    for kind in KINDS:
        execute(project, kind, "DELETE FROM {t}")
    rebuilt = project.apply()
    current: set[str] = set()
    texts_held(project, current)
    assert embedded(rebuilt) == len(current)
    after = values(project)
    assert after.keys() == before.keys()
    # Equal to float32 rounding: the model's result for a text varies in the last bits
    # with the other texts of its batch (padding changes the shapes of the products).
    worst = max(float(np.max(np.abs(np.frombuffer(after[k], "<f4") - np.frombuffer(before[k], "<f4")))) for k in before)
    assert worst < 1e-6, worst
    assert project.verify().in_sync


def test_verify_audits_the_cache_and_apply_removes_bad_entries(make_project, backend: str) -> None:
    project = make_project(reconcile={"sample_recheck": 1000})
    project.apply()
    with project.store.session() as s:
        entries = s.query("SELECT model_fp, text_hash, value FROM {embedding_cache} ORDER BY text_hash")
    assert len(entries) == 18
    (fp, zero, _), (_, renamed, _), (_, copy, _), (_, source, value), (_, noisy, _) = entries[:5]
    rng = np.random.default_rng(5)
    noise = rng.standard_normal(384).astype("<f4")
    with project.store.transaction() as s:
        update = "UPDATE {embedding_cache} SET value = ? WHERE model_fp = ? AND text_hash = ?"
        s.execute(update, (np.zeros(384, dtype="<f4").tobytes(), fp, zero))
        s.execute(update, (bytes(value), fp, copy))  # a placeholder: another text's vector
        s.execute(update, ((noise / np.linalg.norm(noise)).astype("<f4").tobytes(), fp, noisy))
        s.execute("UPDATE {embedding_cache} SET text = 'changed' WHERE text_hash = ?", (renamed,))
    assert project.plan().in_sync, "only a deep observation audits the cache"

    report = project.verify()
    assert report.drift == {"embedding_cache": {"corrupt": 2, "mock": 3}}
    reasons = dict(report.corrupt["embedding_cache"])
    assert reasons[f"{fp}:{zero}"] == "zero norm" and "hash" in reasons[f"{fp}:{renamed}"]
    assert set(report.documents["embedding_cache"]["mock"]) == {f"{fp}:{h}" for h in (copy, source, noisy)}

    record = project.apply(depth="deep")
    assert record.converged and record.cache["purged"] == 5
    assert project.verify().in_sync
    assert project.cache_status().entries == 13


def test_an_entry_whose_text_is_not_utf8_is_corrupt_and_apply_removes_it(make_project, backend: str) -> None:
    """Issue 15, item 4: an undecodable text was an internal error in verify, reconcile and apply --deep."""
    project = make_project()
    project.apply()
    with project.store.session() as s:
        fp, h = s.query("SELECT model_fp, text_hash FROM {embedding_cache} ORDER BY text_hash")[0]
    bad = b"caf\xc3(\xff\xfe"
    with project.store.transaction() as s:
        if backend == "sqlite":
            s.execute("UPDATE {embedding_cache} SET text = CAST(? AS TEXT) WHERE text_hash = ?", (bad, h))
        else:
            # A UTF8 database rejects invalid text on the way in (and ragstate's tables hold text, not
            # bytea), so on PostgreSQL such a row cannot exist: the read path is the same (the text's
            # bytes, decoded by ragstate), exercised below by an entry whose text is valid again.
            with pytest.raises(Exception, match="(?i)invalid byte sequence"):
                with project.store.transaction() as inner:
                    inner.execute(
                        "UPDATE {embedding_cache} SET text = convert_from(?, 'UTF8') WHERE text_hash = ?", (bad, h)
                    )
            s.execute("UPDATE {embedding_cache} SET text = ? WHERE text_hash = ?", ("café", h))
    assert project.plan().in_sync, "only a deep observation audits the cache"

    report = project.verify()
    reason = "text is not valid UTF-8" if backend == "sqlite" else "text does not match its hash"
    assert report.drift == {"embedding_cache": {"corrupt": 1}}
    assert dict(report.corrupt["embedding_cache"]) == {f"{fp}:{h}": reason}
    record = project.apply(depth="deep")
    assert record.converged and record.cache["purged"] == 1
    assert project.verify().in_sync


def test_stored_text_bytes_are_decoded_or_judged_undecodable() -> None:
    from ragstate.stores.embedding_cache import decoded

    assert decoded("café".encode()) == "café" and decoded(memoryview(b"ok")) == "ok" and decoded("as str") == "as str"
    assert decoded(b"caf\xc3(") is None and decoded(None) is None


def test_a_bad_entry_is_never_served(make_project) -> None:
    project = make_project()
    project.apply()
    doc = artifact_ids(project)[0]
    good = vector(project, doc)
    with project.store.transaction() as s:
        s.execute("UPDATE {embedding_cache} SET value = ?", (np.zeros(384, dtype="<f4").tobytes(),))
    delete_rows(project, [doc])
    record = project.apply()
    counts = record.kinds["doc_embeddings"]
    assert (counts.embedded, counts.cache_hits) == (1, 0)
    assert np.allclose(vector(project, doc), good, atol=1e-6)
    with project.store.session() as s:  # the entry was replaced by the fresh vector
        stored = s.scalar(
            "SELECT value FROM {embedding_cache} WHERE text_hash = (SELECT text_hash FROM {t} WHERE doc_id = ?)",
            (doc,),
            t=active_table(project),
        )
    assert np.linalg.norm(np.frombuffer(bytes(stored), dtype="<f4")) > 0.99


def test_eviction_keeps_entries_artifacts_reference(make_project, corpus: Path) -> None:
    project = make_project(cache={"max_mb": 0})
    first = project.apply()
    assert first.cache["evicted"] == 0  # over the limit, but every entry is referenced
    status = project.cache_status()
    assert (status.entries, status.unreferenced) == (18, 0) and status.bytes > status.max_bytes == 0

    set_title(corpus / "markdown/PMC12429712.md", "Muscle tension, a second look")
    record = project.apply()
    assert record.cache["evicted"] == 1 and record.cache["evicted_bytes"] > 0  # the old title's entry
    assert project.cache_status().entries == 18


def test_disabled_cache_stores_nothing(make_project) -> None:
    project = make_project(cache={"enabled": False})
    project.apply()
    assert project.cache_status().entries == 0
    lost = artifact_ids(project)[:2]
    delete_rows(project, lost)
    assert project.apply().kinds["doc_embeddings"].embedded == 2


def test_cache_commands(spec_file, tmp_path: Path) -> None:
    path = spec_file()
    runner = CliRunner()
    assert runner.invoke(app, ["apply", "-c", str(path), "--json"]).exit_code == 0
    result = runner.invoke(app, ["cache", "status", "-c", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["entries"] == 18 and data["recent_runs"][0]["misses"] == 18
    result = runner.invoke(app, ["cache", "evict", "--everything", "-c", str(path)])
    assert result.exit_code == 0 and "0 entries" in result.output
    spec = yaml.safe_load(path.read_text())
    spec["cache"] = {"max_mb": -1}
    path.write_text(yaml.safe_dump(spec))
    result = runner.invoke(app, ["cache", "status", "-c", str(path)])
    assert result.exit_code == 1 and "cache.max_mb" in result.output
