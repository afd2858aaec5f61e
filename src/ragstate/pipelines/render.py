"""Query results as text for people (``ragstate query`` without ``--json``)."""

from __future__ import annotations

from ragstate.pipelines.base import Hit, Retrieval

#: characters of each passage shown
SHOWN_CHARS = 240
#: characters of each title shown (an untrusted document's title may be a megabyte long)
TITLE_CHARS = 160


def _cut(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters (marked ``…``)."""
    head = " ".join(text[: limit * 4].split())  # bounded work for a huge text
    return head[:limit] + " …" if len(head) > limit or len(text) > limit * 4 else head


def render_retrieval(result: Retrieval) -> str:
    gens = ", ".join(f"{kind} g{g}" for kind, g in result.generations.items())
    n = len(result)
    head = f"{result.pipeline}: {n} result{'' if n == 1 else 's'} for {result.query!r} ({gens})"
    if result.confidence is not None:
        head += f"; confidence {result.confidence}"
    lines = [head]
    if result.healed is not None:
        built = ", ".join(f"{kind} built {c['built']}" for kind, c in result.healed["kinds"].items()) or "nothing"
        lines.append(f"  healed first: run {result.healed['run_id']} ({built})")
    for rank, hit in enumerate(result, start=1):
        lines.append(f"{rank:>3}. {hit.score:8.4f}  {hit.doc_id}  {_cut(hit.title, TITLE_CHARS)}")
        where = citation(hit)
        if where:
            lines.append(f"       ({where})")
        passage = _cut(hit.passage, SHOWN_CHARS)
        if passage:
            lines.append("       " + passage)
    if not len(result):
        lines.append("  no document matched")
    return "\n".join(lines)


def citation(hit: Hit) -> str:
    """Where a hit's passage lies, as an answer cites it: "p. 4, Methods", "pp. 4-5", "Methods"."""
    parts = []
    if hit.page is not None:
        same = hit.page_end in (None, hit.page)
        parts.append(f"p. {hit.page}" if same else f"pp. {hit.page}-{hit.page_end}")
    if hit.section:
        parts.append(hit.section)
    return ", ".join(parts)
