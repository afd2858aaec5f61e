"""What an embedding depends on is what the model reads (issues 15 "Bug 1" and 22).

The real model, both backends: an edit past the model's window is no drift and costs no
model call; the same article in four formats and entity names that differ only in case
give identical vectors of identical model inputs: duplicates, never placeholders.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers import cli
from ragstate.stores import embedding_cache

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "pmc"


def _long_paragraphs(n: int) -> list[tuple[str, str]]:
    """``n`` (title, paragraph) pairs of real text, each paragraph longer than the model's
    window (256 word-pieces) and shorter than a summary (2,000 characters)."""
    out = []
    for path in sorted((SAMPLE / "markdown").glob("*.md")):
        lines = path.read_text(encoding="utf-8").split("\n\n")
        title = lines[0].lstrip("# ").strip()
        text = " ".join(p.strip() for p in lines[1:] if not p.startswith("#"))
        cut = text.rfind(". ", 0, 1800)
        out.append((title, text[: cut + 1]))
        if len(out) == n:
            return out
    raise AssertionError("the sample has too few articles")


def test_edit_past_window_delete_add_verifies(make_project, tmp_path: Path) -> None:
    """Issue 15, Bug 1: 12 .txt documents; reconcile; append a sentence past the model's
    window to one, delete one, add one; apply; verify exits 0, and the edit cost no model call."""
    corpus = tmp_path / "docs"
    corpus.mkdir()
    texts = _long_paragraphs(13)
    for i, (title, paragraph) in enumerate(texts[:12]):
        (corpus / f"d{i:02d}.txt").write_text(f"{title}\n\n{paragraph}\n", encoding="utf-8")
    project = make_project(source={"path": str(corpus)})
    first = project.reconcile()
    assert first.converged and first.kinds["doc_embeddings"].truncated == 12

    edited = corpus / "d03.txt"
    edited.write_text(edited.read_text(encoding="utf-8").rstrip("\n") + " One more sentence at the end.\n")
    (corpus / "d07.txt").unlink()
    (corpus / "new.txt").write_text(f"{texts[12][0]}\n\n{texts[12][1]}\n", encoding="utf-8")

    plan = project.plan()
    k = plan.kind("doc_embeddings")
    # The edit is no drift: the model reads the document as before. It is restamped.
    assert plan.drift == {"doc_embeddings": {"missing": 1, "orphaned": 1}}
    assert k.build == {"missing": ("new.txt",), "past_window": ("d03.txt",)}
    assert k.estimate.items == 1
    code, text = cli(project, corpus, tmp_path, "plan")
    assert code == 2 and "content changed past the model's window: no re-embedding" in text

    record = project.apply(plan)
    counts = record.kinds["doc_embeddings"]
    assert record.converged
    assert (counts.built, counts.embedded, counts.cache_hits, counts.past_window) == (2, 1, 1, 1)
    with project.store.session() as s:
        assert embedding_cache.stats(s).entries == 13  # one entry for the edited text, before and after
        stamped = s.scalar("SELECT source_hash FROM {ledger} WHERE doc_id = 'd03.txt'")
    assert stamped == next(r for r in project.source().snapshot({}).fresh if r.doc_id == "d03.txt").content_hash

    code, report = cli(project, corpus, tmp_path, "verify", "--json")
    assert code == 0, report
    assert project.plan().in_sync


ALL_PIPELINES = ["basic", "crag", "hyde", "colbert", "noderag", "graphrag", "hybrid"]


def write_same_article(root: Path) -> Path:
    """One real article as .txt, .md, JATS and JSONL, the .txt without its accents (the
    uncased model strips them: the same tokens), plus two notes naming the same places in
    other case and accents."""
    paragraphs = (SAMPLE / "text" / "PMC12429868.txt").read_text(encoding="utf-8").split("\n\n")
    title, abstract, body = paragraphs[0], paragraphs[1], "\n\n".join(paragraphs[3:5])
    assert len(abstract) > 1200  # past the model's window with the title: the model reads the same tokens
    plain = title.replace("í", "i").replace("ç", "c").replace("é", "e")
    assert plain != title
    root.mkdir(parents=True)
    (root / "article.txt").write_text(f"{plain}\n\n{abstract}\n\n{body}\n", encoding="utf-8")
    (root / "article.md").write_text(f"# {title}\n\n## Abstract\n\n{abstract}\n\n## Introduction\n\n{body}\n")
    paras = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
    (root / "article.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<article><front><article-meta><title-group><article-title>'
        f"{title}</article-title></title-group><abstract><p>{abstract}</p></abstract></article-meta></front>"
        f"<body><sec><title>Introduction</title>{paras}</sec></body></article>\n",
        encoding="utf-8",
    )
    record = {"doc_id": "article-jsonl", "title": title, "abstract": abstract, "body": body}
    (root / "articles.jsonl").write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    (root / "notes-a.txt").write_text(
        "Field notes from the Amazon Basin\n\nSamples from Vaupés in the Amazon Basin were collected in the "
        "dry season by the Instituto Amazonico team.\n",
        encoding="utf-8",
    )
    (root / "notes-b.txt").write_text(
        "Laboratory notes\n\nSamples from VAUPES in the AMAZON BASIN were weighed by the INSTITUTO AMAZÓNICO team "
        "before extraction.\n",
        encoding="utf-8",
    )
    return root


def test_one_article_in_four_formats_converges_with_every_pipeline(make_project, tmp_path: Path) -> None:
    """Issue 22: identical vectors of identical model inputs are duplicates, not placeholders:
    the first reconcile with all seven pipelines converges (exit 0) and verify exits 0."""
    corpus = write_same_article(tmp_path / "same")
    project = make_project(source={"path": str(corpus)}, pipelines=ALL_PIPELINES)
    code, record = cli(project, corpus, tmp_path, "reconcile", "--json")
    assert code == 0, record
    assert record["status"] == "converged" and not record["quarantined"]
    assert all(v["passed"] for v in record["verification"])
    code, report = cli(project, corpus, tmp_path, "verify", "--json")
    assert code == 0, report
    # The four copies of the article are listed as duplicates of one another.
    groups = project.duplicates()["doc_embeddings"]
    assert ("article-jsonl", "article.md", "article.txt", "article.xml") in groups
    code, status = cli(project, corpus, tmp_path, "status", "--duplicates", "--json")
    # exit 2 for hyde alone: this spec names no text generator, so it is never ready
    assert code == 2 and {name for name, p in status["pipelines"].items() if not p["ready"]} == {"hyde"}
    assert ["article-jsonl", "article.md", "article.txt", "article.xml"] in status["duplicates"]["doc_embeddings"]
    code, text = cli(project, corpus, tmp_path, "status", "--duplicates")
    assert "Duplicates (the same model input in several documents; not drift):" in text


def test_the_estimate_of_a_second_run_of_the_same_size_is_within_a_factor_of_two(
    make_project, tmp_path: Path
) -> None:
    """Issue 22: the first plan times the model on a calibration batch; the run records
    its estimate and its build time; a second run of the same size (another text
    template: every document embedded again) is estimated from the first run's measured
    throughput, within a factor of two of what it then takes (recorded figures, no clock
    in the test)."""
    corpus = tmp_path / "docs"
    corpus.mkdir()
    for i, (title, paragraph) in enumerate(_long_paragraphs(12)):
        (corpus / f"d{i:02d}.txt").write_text(f"{title}\n\n{paragraph}\n", encoding="utf-8")
    first_plan = make_project(source={"path": str(corpus)}).plan()
    k = first_plan.kind("doc_embeddings")
    assert "calibrated on a batch of 8 texts" in k.basis and k.estimate.seconds > 0
    first = make_project(source={"path": str(corpus)}).apply()
    counts = first.kinds["doc_embeddings"]
    assert counts.estimate_tokens == k.estimate.tokens and counts.estimate_seconds == k.estimate.seconds
    assert counts.model_fp and counts.build_seconds > 0

    second = make_project(source={"path": str(corpus)}, artifacts={"doc_embeddings": {"text": "{summary}\n{title}"}})
    plan = second.plan()
    assert plan.kind("doc_embeddings").basis.endswith(f"measured by run {first.run_id}")
    record = second.apply()
    again = record.kinds["doc_embeddings"]
    assert again.built == 12 and again.embedded == 12
    ratio = again.estimate_seconds / again.build_seconds
    print(f"estimate {again.estimate_seconds:.2f} s, took {again.build_seconds:.2f} s: ratio {ratio:.2f}")
    assert 0.5 <= ratio <= 2.0
