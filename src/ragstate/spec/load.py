"""YAML file + profile + environment → a validated, frozen ``Spec``.

Order of precedence, lowest first: the file's top level, the selected profile
(``profiles: {name: {...}}`` overlays the top level key by key), environment variables
``RAGSTATE_<FIELD>__<SUBFIELD>`` (for example ``RAGSTATE_RECONCILE__BATCH_SIZE=16``).
Relative paths are resolved against the spec file's folder, wherever they came from.
Every problem is reported with the field path and where the value came from: the file
and line, or the environment variable.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from ragstate.errors import SpecError
from ragstate.hashing import fingerprint
from ragstate.redact import literal_secrets, redact, register_secret
from ragstate.spec.model import ENV_PREFIX, ENVIRON, SourceSpec, Spec, TableSourceSpec

log = logging.getLogger(__name__)

#: a spec larger than this is refused before parsing (a spec is a page, not a data set)
MAX_SPEC_BYTES = 1 << 20
#: YAML nodes a spec may hold once its aliases are expanded (``&a [*b, *b, ...]`` chains
#: grow exponentially: a "billion laughs" spec is refused before anything walks it)
MAX_SPEC_NODES = 100_000

#: environment variables with the prefix that are not spec fields
RESERVED_ENV = {"RAGSTATE_PROFILE", "RAGSTATE_CONFIG", "RAGSTATE_LOG_FORMAT", "RAGSTATE_LOG_LEVEL"}
#: names under this prefix belong to ragstate's own test suite
RESERVED_ENV_PREFIX = "RAGSTATE_TEST_"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_spec(
    path: str | Path,
    *,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Spec:
    """Read, overlay and validate a spec file.

    Args:
        path: the YAML file.
        profile: a name under ``profiles:``; defaults to ``$RAGSTATE_PROFILE``.
        environ: the environment to read overrides from (default ``os.environ``).

    Returns:
        The frozen spec, with relative paths made absolute.

    Raises:
        SpecError: the file is missing, unreadable, not YAML, or any value is invalid.
            The message names the file (with line) or variable, and the field path.
    """
    path = Path(path)
    environ = os.environ if environ is None else environ
    text = _read(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{where}: not valid YAML: {problem}", path=path) from None
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply to be a spec", path=path) from None
    _check_expanded_size(path, node)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the spec must be a mapping of fields, not {type(data).__name__}", path=path)
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise SpecError(f"{path}: field names must be strings, not {bad_keys[0]!r}", path=path)

    # Secrets are registered before validation, so an error quoting a value masks them.
    for field, secret in literal_secrets(data):
        register_secret(secret)
        log.warning(
            "%s: %s holds a literal password or token; prefer store.password_file, PGPASSWORD or ~/.pgpass "
            "(or an environment variable) and keep secrets out of spec files",
            path,
            field,
        )
    for _, secret in literal_secrets({k: v for k, v in environ.items() if k.startswith(ENV_PREFIX)}):
        register_secret(secret)  # not warned: the environment is where secrets belong
    data = _apply_profile(path, data, profile if profile is not None else environ.get("RAGSTATE_PROFILE"))
    env_paths = _check_environment(environ)
    spec = _validate(path, data, node, env_paths, environ)
    _register_secrets(spec)  # those that came from the environment
    return _resolve_paths(spec, path.resolve().parent)


def spec_from_dict(data: dict[str, Any], *, base_dir: Path | None = None) -> Spec:
    """Validate a spec given as a mapping (the Python API's way to skip YAML).

    The environment is not consulted, so a program's spec means the same everywhere.

    Raises:
        SpecError: any value is invalid; the message names each field path.
    """
    where = Path("<dict>")
    for _, secret in literal_secrets(data):
        register_secret(secret)
    spec = _validate(where, dict(data), None, {}, {})
    return _resolve_paths(spec, (base_dir or Path.cwd()).resolve())


def table_source_from(data: Mapping[str, Any] | TableSourceSpec) -> TableSourceSpec:
    """Validate a table source given as a mapping (the API's and the CLI's ``map-table``).

    Raises:
        SpecError: any value is invalid; the message names each field (``source.id``, ...).
    """
    if isinstance(data, TableSourceSpec):
        return data
    try:
        return TableSourceSpec(**{k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = _dotted(("source",) + _clean_loc(error["loc"]))
            message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{field}: {message.removeprefix('Value error, ')}")
        problems = _capped(problems)
        raise SpecError("invalid table source:\n  " + "\n  ".join(problems), problems=problems) from None


def spec_hash(spec: Spec) -> str:
    """Fingerprint of everything the spec says, passwords removed."""
    data = spec.model_dump(mode="json", by_alias=True)
    data["store"]["url"] = redact(data["store"]["url"])
    return fingerprint(data)


# --- internals ------------------------------------------------------------------------


def _register_secrets(spec: Spec) -> None:
    for _, secret in literal_secrets(spec.model_dump(mode="json", by_alias=True)):
        register_secret(secret)


def _check_expanded_size(path: Path, node: yaml.Node | None) -> None:
    """Refuse a spec whose aliases expand to more than ``MAX_SPEC_NODES`` nodes, or loop."""
    sizes: dict[int, int] = {}

    def size(n: yaml.Node, open_: set[int]) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        if id(n) in open_:
            raise SpecError(f"{path}: a YAML alias refers to itself", path=path)
        open_.add(id(n))
        total = 1
        if isinstance(n, yaml.MappingNode):
            total += sum(size(k, open_) + size(v, open_) for k, v in n.value)
        elif isinstance(n, yaml.SequenceNode):
            total += sum(size(v, open_) for v in n.value)
        open_.discard(id(n))
        sizes[id(n)] = min(total, MAX_SPEC_NODES + 1)
        return sizes[id(n)]

    if node is None:
        return
    try:
        total = size(node, set())
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply to be a spec", path=path) from None
    if total > MAX_SPEC_NODES:
        raise SpecError(
            f"{path}: the spec expands to more than {MAX_SPEC_NODES} YAML nodes (through aliases); "
            "a spec is a page of settings",
            path=path,
        )


def _read(path: Path) -> str:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found (create one with `ragstate init`)", path=path) from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec file: {exc.strerror}", path=path) from None
    if not path.is_file():
        raise SpecError(f"{path}: not a file", path=path)
    if size > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: spec file is {size} bytes; the limit is {MAX_SPEC_BYTES}", path=path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start})", path=path) from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec file: {exc.strerror}", path=path) from None


def _apply_profile(path: Path, data: dict[str, Any], profile: str | None) -> dict[str, Any]:
    profiles = data.pop("profiles", None) or {}
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise SpecError(f"{path}: profiles must map each profile name to a mapping of fields", path=path)
    if profile is None:
        return data
    if profile not in profiles:
        known = ", ".join(sorted(profiles)) or "none defined"
        raise SpecError(f"{path}: profile '{profile}' is not defined (profiles: {known})", path=path)
    return _deep_merge(data, profiles[profile])


def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _check_environment(environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Map each ``RAGSTATE_`` variable to the field path it sets; refuse unknown ones.

    pydantic-settings ignores a variable that names no field; a typo there would silently
    change nothing, so ragstate refuses it instead.
    """
    paths: dict[tuple[str, ...], str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIX):
            continue
        parts = tuple(p.lower() for p in name[len(ENV_PREFIX) :].split("__"))
        problem = _field_path_problem(Spec, parts)
        if problem:
            raise SpecError(f"environment variable {name}: {problem}")
        paths[parts] = name
    return paths


def _field_path_problem(model: type[BaseModel], parts: tuple[str, ...]) -> str | None:
    fields = {(f.alias or n).lower(): f for n, f in model.model_fields.items()}
    fields.update({n.lower(): f for n, f in model.model_fields.items()})
    head, rest = parts[0], parts[1:]
    if head not in fields:
        return f"no spec field '{head}' (known: {', '.join(sorted(fields))})"
    annotation = fields[head].annotation
    if not rest:
        return None
    members = _union_models(annotation)
    if members:
        if not rest:
            return None
        found = [_field_path_problem(m, rest) for m in members]
        if None in found:
            return None
        if len(rest) == 1:
            known = sorted({(f.alias or n).lower() for m in members for n, f in m.model_fields.items()})
            return f"no spec field '{rest[0]}' (known: {', '.join(known)})"
        return found[0]
    if get_origin(annotation) is dict:
        value_type = get_args(annotation)[1]
        if len(rest) == 1:
            return None
        return _field_path_problem(value_type, rest[1:]) if _is_model(value_type) else None
    if _is_model(annotation):
        return _field_path_problem(annotation, rest)
    return f"field '{head}' has no sub-field '{rest[0]}'"


def _union_models(annotation: Any) -> list[type[BaseModel]]:
    """The models of a union of models (``source``: folder or table), else []."""
    args = get_args(annotation) if get_origin(annotation) is not None else ()
    models = [get_args(a)[0] if get_args(a) and _is_model(get_args(a)[0]) else a for a in args]
    return models if len(models) > 1 and all(_is_model(m) for m in models) else []


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _validate(
    path: Path,
    data: dict[str, Any],
    node: yaml.Node | None,
    env_paths: dict[tuple[str, ...], str],
    environ: Mapping[str, str],
) -> Spec:
    token = ENVIRON.set(environ)
    try:
        return Spec(**data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = _clean_loc(error["loc"])
            field = _dotted(loc) or "(top level)"
            origin = _origin(path, node, loc, env_paths)
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field" + _did_you_mean(loc)
            elif error["type"] in ("tuple_type", "list_type"):
                message = "must be a list: [a, b] on one line, or one '- item' a line"
                if isinstance(error.get("input"), str):
                    message += f" (got {redact(repr(error['input']))[:80]}; write [{error['input']}])"
            elif len(message) > 400:  # a message quoting a huge value names it, never echoes it
                message = message[:400] + "…"
            elif "input" in error and not isinstance(error["input"], (dict, list)):
                message += f" (got {redact(repr(error['input']))[:80]})"
            problems.append(f"{origin}: {field}: {message}")
        problems = _capped(problems)
        raise SpecError("invalid spec:\n  " + "\n  ".join(problems), path=path, problems=problems) from None
    finally:
        ENVIRON.reset(token)


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    """ " (did you mean 'reconcile'?)" for a misspelt field, from the fields allowed there."""
    models: list[type[BaseModel]] = [Spec]
    key_next = False  # the next part is a key of a mapping of sections (models.<name>)
    for part in loc[:-1]:
        if key_next or isinstance(part, int):
            key_next = False
            continue
        inner: list[type[BaseModel]] = []
        for model in models:
            field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
            for arg in [field.annotation, *get_args(field.annotation)] if field is not None else []:
                if get_origin(arg) is dict:
                    key_next = True
                    arg = get_args(arg)[1]
                inner += [a for a in [arg, *get_args(arg)] if _is_model(a)]
        models = inner
    names = {f.alias or n for m in models for n, f in m.model_fields.items()}
    close = difflib.get_close_matches(str(loc[-1]), sorted(names), n=1, cutoff=0.75) if loc else []
    return f" (did you mean '{close[0]}'?)" if close else ""


#: problems a spec error lists; the rest are counted (10,000 bad names made a 1.4 MB error)
MAX_PROBLEMS_SHOWN = 20


def _capped(problems: list[str]) -> list[str]:
    """The first ``MAX_PROBLEMS_SHOWN`` problems, then a line counting the others."""
    if len(problems) <= MAX_PROBLEMS_SHOWN:
        return problems
    rest = len(problems) - MAX_PROBLEMS_SHOWN
    return problems[:MAX_PROBLEMS_SHOWN] + [f"... and {rest:,} more problems ({len(problems):,} in all)"]


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic puts union branch tags ("FirstN", "literal['all']", "function-after[...]")
    # into locations; a user wants the field path only.
    return tuple(p for p in loc if isinstance(p, int) or (_IDENT.match(p) and not p[:1].isupper()))


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _origin(path: Path, node: yaml.Node | None, loc: tuple[Any, ...], env_paths: dict[tuple[str, ...], str]) -> str:
    lowered = tuple(str(p).lower() for p in loc)
    for env_path, name in env_paths.items():
        if lowered[: len(env_path)] == env_path or env_path[: len(lowered)] == lowered:
            return f"environment variable {name}"
    line = _line_of(node, loc)
    return f"{path}:{line}" if line else str(path)


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Line (1-based) of the deepest YAML node along ``loc`` that exists in the file."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _resolve_paths(spec: Spec, base: Path) -> Spec:
    source: SourceSpec | TableSourceSpec = spec.source
    if isinstance(source, SourceSpec):
        _check_within(source, base)
        source = source.model_copy(update={"path": Path(os.path.normpath(_absolute(source.path, base)))})
    store_update: dict[str, Any] = {"url": _absolute_sqlite_url(spec.store.url, base)}
    if spec.store.password_file is not None:
        store_update["password_file"] = _absolute(spec.store.password_file, base)
    store = spec.store.model_copy(update=store_update)
    update: dict[str, Any] = {"source": source, "store": store}
    golden = spec.generations.golden
    if golden.file is not None:
        golden = golden.model_copy(update={"file": _absolute(golden.file, base)})
        update["generations"] = spec.generations.model_copy(update={"golden": golden})
    update["generators"] = {
        name: g.model_copy(update={"api_key_file": _absolute(g.api_key_file, base)}) if g.api_key_file else g
        for name, g in spec.generators.items()
    }
    return spec.model_copy(update=update)


def _check_within(source: SourceSpec, base: Path) -> None:
    """Refuse a relative ``source.path`` whose ``..`` climbs out of ``base`` (the spec's folder).

    Checked on the text of the path, before any symlink is followed: a relative path from
    a spec (or from a program that builds specs from its users' input) stays under the
    spec's folder. An absolute path is the author's explicit choice and is taken as given.
    """
    path = source.path.expanduser()
    if path.is_absolute() or source.allow_parent_dirs:
        return
    if os.path.normpath(path).split(os.sep)[0] == os.pardir:
        raise SpecError(
            f"source.path: {str(source.path)[:200]!r} leads out of the spec's folder {base} through '..'; "
            "write an absolute path, or set source.allow_parent_dirs: true",
            path=str(source.path)[:200],
        )


def _absolute(p: Path, base: Path) -> Path:
    p = p.expanduser()
    return p if p.is_absolute() else base / p


def _absolute_sqlite_url(url: str, base: Path) -> str:
    """``sqlite:///rel.db`` → ``sqlite:////abs/rel.db``; bare paths become URLs too."""
    if url.startswith("sqlite:"):
        rest = url[len("sqlite:") :]
        if rest.startswith("////"):
            return "sqlite:///" + rest[3:]
        if rest.startswith("///"):
            rest = rest[3:]
        elif rest.startswith("//"):
            rest = rest[2:]
        if rest == ":memory:":
            return "sqlite:///:memory:"
        return "sqlite:///" + str(_absolute(Path(rest), base))
    if url.endswith((".db", ".sqlite", ".sqlite3")) and "://" not in url:
        return "sqlite:///" + str(_absolute(Path(url), base))
    return url
