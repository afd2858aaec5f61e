"""Query results as text: long titles and passages are cut, never printed whole."""

from __future__ import annotations

from pathlib import Path

from helpers import HASH_MODELS
from ragstate.pipelines.render import SHOWN_CHARS, TITLE_CHARS, render_retrieval


def test_a_megabyte_title_is_cut_in_the_text_output(make_project, corpus: Path) -> None:
    """Issue 15, item 9: `ragstate query` printed a 1 MB title whole."""
    huge = "Seeds " * 200_000
    (corpus / "text" / "huge-title.txt").write_text(huge + "\n\nSeeds dry in the sun.\n", encoding="utf-8")
    project = make_project(models=HASH_MODELS)
    project.apply()
    result = project.query("basic", "seeds dry in the sun", 30)
    hit = next(h for h in result if h.doc_id == "text/huge-title.txt")
    assert len(hit.title) > 1_000_000, "the data keeps the whole title (--json shows it)"
    text = render_retrieval(result)
    (line,) = [line for line in text.splitlines() if "text/huge-title.txt" in line]
    assert line.endswith(" …") and len(line) < TITLE_CHARS + 60
    assert len(text) < 40 * (TITLE_CHARS + SHOWN_CHARS + 60)
