"""Entity extractors: a document's chunks → entities and typed, weighted relations.

An extractor is a plugin (entry-point group ``ragstate.extractors``) named in the spec
(``artifacts.entities.extractor``), e.g. a spaCy pipeline wrapped in a small class. It
receives the texts of one document's chunks and returns, per chunk, the entities found
and the relations between them.

The built-in ``rules`` extractor works offline with no model and no download. What it
extracts (and its limits):

=================  ==============================================  ====================
entity type        pattern                                         example
=================  ==============================================  ====================
``term``           a long form defined with its abbreviation       "venous
                   (Schwartz-Hearst rule), wherever it occurs      thromboembolism (VTE)"
``acronym``        2+ capitals, digits, hyphens                    DVT, IL-6, COVID-19
``identifier``     a mixed-case token with 2+ capitals             SARS-CoV-2, LiDAR
``taxon``          an abbreviated binomial                         E. coli
``name``           2-5 capitalised words (inner "of", "and",       Hidradenitis
                   "for", "de"), leading determiners dropped       Suppurativa
=================  ==============================================  ====================

Relations: ``abbreviates`` (acronym → its long form, weight 1 per definition) and
``co_occurs`` (two entities in one sentence; weight = number of such sentences in the
chunk; the pair is stored once, lower id first). Limits: no lower-case names (drugs,
genes written in lower case, species epithets spelled out), no coreference, English
capitalisation conventions only, section headings and sentence-initial capitals are
filtered by word lists, so some noise remains; it is a baseline that needs no
downloads, and a spaCy or LLM extractor can replace it by name.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ragstate.errors import PluginError
from ragstate.plugins import load_plugin


@dataclass(frozen=True)
class Entity:
    """An entity found in one chunk. ``key`` identifies it across chunks and documents."""

    key: str
    name: str
    type: str
    mentions: int = 1


@dataclass(frozen=True)
class Relation:
    """A typed, weighted edge between two entity keys, observed in one chunk."""

    source: str
    target: str
    type: str
    weight: float


@dataclass
class ChunkFindings:
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)


class Extractor(Protocol):
    """What the ``entities`` kind needs from an extractor plugin."""

    def identity(self) -> dict[str, Any]:
        """JSON-able identity for recipe fingerprints (name, version, model)."""
        ...

    def extract(self, chunks: Sequence[str]) -> list[ChunkFindings]:
        """Entities and relations of each of one document's chunks, in order."""
        ...


def make_extractor(name: str, options: dict[str, Any]) -> Extractor:
    """The extractor plugin ``name``, given the spec's ``artifacts.entities.options``.

    Raises:
        PluginError: no such extractor.
    """
    factory = load_plugin("ragstate.extractors", name, BUILTIN, field="artifacts.entities.extractor")
    return factory(**options)


def entity_key(name: str) -> str:
    """The key that identifies an entity: NFKC, whitespace collapsed, case folded."""
    return " ".join(unicodedata.normalize("NFKC", name).split()).casefold()


_WORD = r"[A-Z][a-z]+(?:-[A-Za-z]+)*"
_CONNECTOR = r"(?:of|and|for|de|del|la|von|van)"
_NAME = re.compile(rf"\b{_WORD}(?:\s+(?:{_CONNECTOR}\s+)?{_WORD}){{1,4}}\b")
_ACRONYM = re.compile(r"\b[A-Z][A-Z0-9]*[A-Z0-9](?:-[A-Z0-9]+)*\b")
_IDENTIFIER = re.compile(r"\b(?=[A-Za-z0-9-]*[a-z])[A-Za-z]*[A-Z][a-z]*[A-Z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*\b")
_TAXON = re.compile(r"\b[A-Z]\.\s[a-z]{3,}\b")
_DEFINITION = re.compile(r"((?:[\w'-]+[ \t]+){1,10})\(([A-Z][A-Za-z0-9-]{1,11})\)")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\[(])")
_ROMAN = re.compile(r"^[IVXLC]+$")

#: capitalised words that start sentences or name sections rather than entities
_STOP = frozenset(
    """a an the this that these those our we in on at for of to by with from as and or but
    it its their there here however moreover furthermore therefore thus also all each
    both such after before during while when where which what who how table figure fig
    introduction abstract background methods method materials results discussion
    conclusion conclusions references acknowledgments acknowledgements funding data
    availability statement supplementary section study analysis""".split()
)
#: all-capital words that are not entities (shouting, units, Roman numerals)
_NOT_ACRONYM = frozenset("AND OR THE OF IN TO FOR WITH NOT ALL NO USA".split())

#: sentences with more entities than this contribute co-occurrences of the first ones only
MAX_PAIRS_PER_SENTENCE = 12


class RuleExtractor:
    """Offline, dependency-free entity and relation extraction (see the module doc)."""

    version = 1

    def __init__(self, **options: Any):
        if options:
            raise PluginError(f"artifacts.entities.options: the rules extractor takes none (got {sorted(options)})")

    def identity(self) -> dict[str, Any]:
        return {"extractor": "rules", "version": self.version}

    def extract(self, chunks: Sequence[str]) -> list[ChunkFindings]:
        # Abbreviations defined anywhere in the document are known in every chunk.
        definitions: dict[str, str] = {}
        for text in chunks:
            for long_form, short in _definitions(text):
                definitions.setdefault(short, long_form)
        terms = {entity_key(v) for v in definitions.values()}
        return [self._chunk(text, definitions, terms) for text in chunks]

    def _chunk(self, text: str, definitions: dict[str, str], terms: set[str]) -> ChunkFindings:
        findings = ChunkFindings()
        mentions: Counter[str] = Counter()
        names: dict[str, str] = {}
        types: dict[str, str] = {}
        pairs: Counter[tuple[str, str, str]] = Counter()
        for sentence in _SENTENCE.split(text):
            found = _mentions(sentence, definitions)
            seen: list[str] = []
            for name, type_ in found:
                key = entity_key(name)
                mentions[key] += 1
                names.setdefault(key, name)
                types[key] = _stronger(types.get(key), "term" if key in terms else type_)
                if key not in seen:
                    seen.append(key)
            for long_form, short in _definitions(sentence):
                pairs[(entity_key(short), entity_key(long_form), "abbreviates")] += 1
            seen = seen[:MAX_PAIRS_PER_SENTENCE]
            for i, a in enumerate(seen):
                for b in seen[i + 1 :]:
                    lo, hi = sorted((a, b))
                    pairs[(lo, hi, "co_occurs")] += 1
        findings.entities = [Entity(k, names[k], types[k], n) for k, n in sorted(mentions.items())]
        findings.relations = [
            Relation(a, b, t, float(w)) for (a, b, t), w in sorted(pairs.items()) if a in mentions and b in mentions
        ]
        return findings


_PRECEDENCE = {"term": 0, "acronym": 1, "identifier": 2, "taxon": 3, "name": 4}


def _stronger(old: str | None, new: str) -> str:
    return new if old is None or _PRECEDENCE[new] < _PRECEDENCE[old] else old


def _definitions(text: str) -> list[tuple[str, str]]:
    """``(long form, abbreviation)`` pairs defined as "long form (ABBR)" (Schwartz and
    Hearst, 2003: the abbreviation's characters occur in the long form in order, the
    first at the start of a word; the long form has at most min(|A| + 5, 2|A|) words)."""
    out = []
    for m in _DEFINITION.finditer(text):
        words, short = m.group(1).split(), m.group(2)
        if sum(c.isalpha() for c in short) < 2 or _ROMAN.match(short):
            continue
        candidate = " ".join(words[-min(len(short) + 5, 2 * len(short)) :])
        long_form = _match_abbreviation(short, candidate)
        if long_form and len(long_form) > len(short) and long_form.split()[0].lower() not in _STOP:
            out.append((long_form, short))
    return out


def _match_abbreviation(short: str, long: str) -> str | None:
    """The shortest end of ``long`` that ``short`` abbreviates, or None."""
    s, i = len(short) - 1, len(long) - 1
    while s >= 0:
        c = short[s].lower()
        if not c.isalnum():
            s -= 1
            continue
        while i >= 0 and (long[i].lower() != c or (s == 0 and i > 0 and long[i - 1].isalnum())):
            i -= 1
        if i < 0:
            return None
        i -= 1
        s -= 1
    return long[long.rfind(" ", 0, i + 1) + 1 :]


def _mentions(sentence: str, definitions: dict[str, str]) -> list[tuple[str, str]]:
    """``(surface form, type)`` of the entities in ``sentence``, in order; a span taken
    by an earlier pattern (terms, taxa, identifiers, acronyms, names) is not reused."""
    found: list[tuple[int, str, str]] = []
    taken: list[tuple[int, int]] = []

    def add(start: int, end: int, name: str, type_: str) -> None:
        if any(start < e and s < end for s, e in taken):
            return
        taken.append((start, end))
        found.append((start, name, type_))

    for m in _DEFINITION.finditer(sentence):
        short = m.group(2)
        if short in definitions:
            long_form = definitions[short]
            at = sentence.find(long_form, m.start(), m.end())
            if at >= 0:
                add(at, at + len(long_form), long_form, "term")
    for m in _TAXON.finditer(sentence):
        add(m.start(), m.end(), m.group(), "taxon")
    for m in _IDENTIFIER.finditer(sentence):
        add(m.start(), m.end(), m.group(), "identifier")
    for m in _ACRONYM.finditer(sentence):
        word = m.group()
        if word in _NOT_ACRONYM or _ROMAN.match(word) or sum(c.isalpha() for c in word) < 2 and word not in definitions:
            continue
        add(m.start(), m.end(), word, "acronym")
    for m in _NAME.finditer(sentence):
        words = m.group().split()
        start = m.start()
        while words and words[0].lower() in _STOP:
            start += len(words[0]) + 1
            words = words[1:]
        while words and words[-1].lower() in _STOP:
            words = words[:-1]
        if len(words) >= 2 and not all(w.lower() in _STOP for w in words):
            name = " ".join(words)
            add(start, start + len(name), name, "name")
    return [(name, type_) for _, name, type_ in sorted(found)]


BUILTIN: dict[str, Any] = {"rules": RuleExtractor}
