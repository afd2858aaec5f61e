"""The docs stay true: every spec field and every CLI command is documented."""

from __future__ import annotations

from typing import get_args, get_origin

from pydantic import BaseModel

from conftest import REPO
from ragstate.cli import app
from ragstate.spec.model import Spec


def documentation() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, field in model.model_fields.items():
        path = prefix + (field.alias or name)
        paths.append(path)
        annotation = field.annotation
        if get_origin(annotation) is dict:
            value = get_args(annotation)[1]
            if isinstance(value, type) and issubclass(value, BaseModel):
                paths += field_paths(value, path + ".<name>.")
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += field_paths(annotation, path + ".")
    return paths


def test_every_spec_field_is_documented() -> None:
    docs = documentation()
    missing = [p for p in field_paths(Spec) if f"`{p}`" not in docs]
    assert missing == [], f"spec fields missing from README.md / docs/*.md: {missing}"


def test_every_command_is_documented() -> None:
    docs = documentation()
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    names += [g.name for g in app.registered_groups if g.name]
    missing = [n for n in names if f"ragstate {n}" not in docs]
    assert missing == [], f"commands missing from README.md / docs/*.md: {missing}"
