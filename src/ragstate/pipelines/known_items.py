"""Known-item queries: measure retrieval without relevance judgements.

Each query is made from one document and that document is its one right answer: the
document's title, or one sentence of its abstract (a sentence that says something: eight
to forty words, not a heading such as "Background:"). ``recall_at`` counts how often the
right document is among the first k results. Used by ``benchmarks/retrieval.py`` and by
the tests; any corpus will do, nothing needs labelling.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ragstate.sources.base import Document

FORMS = ("title", "sentence")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")
_LABEL = re.compile(r"^\s*[A-Z][A-Za-z /&-]{0,40}:\s*")
#: section words that open structured abstracts without a colon ("Abstract Background Patients ...")
_HEADINGS = re.compile(r"^(?:(?:Abstract|Background|Introduction|Objectives?|Purpose|Aims?|Context)\s+)+(?=[A-Z])")


@dataclass(frozen=True)
class KnownItem:
    query: str
    doc_id: str
    #: ``title`` or ``sentence``
    form: str


def abstract_sentence(doc: Document) -> str | None:
    """The first sentence of the document's summary with 8 to 40 words, a leading label
    ("Objective:") removed; None when there is none."""
    for sentence in _SENTENCE_END.split(" ".join(doc.summary.split())):
        sentence = _HEADINGS.sub("", _LABEL.sub("", sentence)).strip()
        if 8 <= len(sentence.split()) <= 40:
            return sentence
    return None


def known_items(docs: Iterable[Document], forms: Sequence[str] = FORMS) -> list[KnownItem]:
    """One query of each form for each document that has the text for it."""
    items = []
    for doc in docs:
        if "title" in forms and len(doc.title.split()) >= 3:
            items.append(KnownItem(" ".join(doc.title.split()), doc.doc_id, "title"))
        if "sentence" in forms:
            sentence = abstract_sentence(doc)
            if sentence:
                items.append(KnownItem(sentence, doc.doc_id, "sentence"))
    return items


def rank_of(doc_ids: Sequence[str], doc_id: str) -> int | None:
    """1-based rank of ``doc_id`` in ``doc_ids``, or None when absent."""
    try:
        return doc_ids.index(doc_id) + 1
    except ValueError:
        return None


def recall_at(ranks: Sequence[int | None], k: int) -> float:
    """Share of queries whose right document is among the first ``k`` results."""
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0
