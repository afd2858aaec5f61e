"""The offline ``rules`` extractor, and extractors as plugins found by entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ragstate import plugins
from ragstate.compute.extractors import entity_key, make_extractor
from ragstate.errors import PluginError

TEXT = (
    "Venous thromboembolism (VTE) includes deep vein thrombosis (DVT). "
    "Patients at Johns Hopkins Hospital with VTE received heparin. "
    "Cultures of E. coli and SARS-CoV-2 were negative."
)


def test_rules_extract_typed_entities_and_weighted_relations() -> None:
    (found,) = make_extractor("rules", {}).extract([TEXT])
    types = {e.key: e.type for e in found.entities}
    assert types["venous thromboembolism"] == "term" and types["vte"] == "acronym"
    assert types["deep vein thrombosis"] == "term" and types["dvt"] == "acronym"
    assert types["johns hopkins hospital"] == "name"
    assert types["e. coli"] == "taxon" and types["sars-cov-2"] == "identifier"
    mentions = {e.key: e.mentions for e in found.entities}
    assert mentions["vte"] == 2
    relations = {(r.source, r.target, r.type): r.weight for r in found.relations}
    assert relations[("vte", "venous thromboembolism", "abbreviates")] == 1.0
    assert relations[("johns hopkins hospital", "vte", "co_occurs")] == 1.0
    assert all(r.source in mentions and r.target in mentions for r in found.relations)


def test_definitions_are_known_in_every_chunk() -> None:
    first, second = make_extractor("rules", {}).extract([TEXT, "Recurrent VTE was rare."])
    assert [(e.key, e.type) for e in second.entities] == [("vte", "acronym")]


def test_keys_fold_case_and_space() -> None:
    assert entity_key("  Deep   Vein\tThrombosis ") == "deep vein thrombosis"


def test_unknown_extractor_and_options_are_named() -> None:
    with pytest.raises(PluginError, match="artifacts.entities.extractor: unknown plugin 'spacy'"):
        make_extractor("spacy", {})
    with pytest.raises(PluginError, match="artifacts.entities.options"):
        make_extractor("rules", {"model": "x"})


def test_an_installed_extractor_is_found_by_entry_point(tmp_path: Path, monkeypatch) -> None:
    # A real distribution on sys.path declaring the entry point, as `pip install` leaves it.
    (tmp_path / "my_extractor.py").write_text(
        "from ragstate.compute.extractors import ChunkFindings, Entity\n"
        "class Upper:\n"
        "    def __init__(self, **options): self.options = options\n"
        "    def identity(self): return {'extractor': 'upper', 'version': 1, **self.options}\n"
        "    def extract(self, chunks):\n"
        "        return [ChunkFindings([Entity(w.lower(), w, 'shout') for w in t.split() if w.isupper()])\n"
        "                for t in chunks]\n"
    )
    dist = tmp_path / "my_extractor-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-extractor\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ragstate.extractors]\nupper = my_extractor:Upper\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins._entry_points.cache_clear()
    try:
        extractor = make_extractor("upper", {"level": 2})
        assert extractor.identity() == {"extractor": "upper", "version": 1, "level": 2}
        assert [e.name for e in extractor.extract(["a LOUD word"])[0].entities] == ["LOUD"]
    finally:
        sys.modules.pop("my_extractor", None)
        plugins._entry_points.cache_clear()
