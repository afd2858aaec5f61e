"""The spec's shape: pydantic models, frozen, unknown keys refused.

A ``Spec`` is the desired state. It is a value: nothing in it touches the store, the
source or a model. ``ragstate.spec.load`` builds one from YAML, a profile and the
environment; the field documentation here is the spec reference the README points to.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from ragstate.errors import IdentifierError
from ragstate.identifiers import ident, user_ident

ENV_PREFIX = "RAGSTATE_"

#: the seven retrieval techniques; ragstate.artifacts.requirements maps each to the kinds it reads
PipelineName = Literal["basic", "crag", "hyde", "colbert", "noderag", "graphrag", "hybrid"]

#: a format's name: a built-in (txt, md, xml, jsonl, pdf, html, docx) or a ``ragstate.loaders``
#: plugin's, checked against the registry when the source is opened
SourceFormat = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]

#: fields of a document that an embedding text template may name
TEXT_FIELDS = ("title", "abstract", "body", "summary", "text")


#: the environment a spec is validated against; None means os.environ (see spec.load)
ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("ragstate_spec_environ", default=None)


class _EnvironSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading ``ENVIRON`` when it is set."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = ENVIRON.get()
        if environ is None:
            return super()._load_env_vars()
        return {name.lower(): value for name, value in environ.items()}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSpec(_Section):
    """Where ragstate keeps derived data, its ledger and its run records."""

    url: str = Field(
        description="sqlite:///relative.db, sqlite:////absolute.db, a path ending in .db, "
        "or postgresql://user@host:port/dbname (password from password_file or PGPASSWORD)",
    )
    schema_name: str = Field("ragstate", alias="schema", description="PostgreSQL schema that holds ragstate's tables")
    prefix: str = Field("rs_", description="SQLite table-name prefix, so ragstate can share a file")
    password_file: Path | None = Field(None, description="file whose first line is the store password")
    pool_size: int = Field(4, ge=1, le=64, description="PostgreSQL connection pool size")
    connect_timeout_s: float = Field(10.0, gt=0, le=600)
    statement_timeout_s: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="PostgreSQL: longest one statement may run or wait for a lock (vector index builds excepted); "
        "a longer one fails as transient (retried, then the next run resumes) instead of hanging",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    @field_validator("schema_name", "prefix")
    @classmethod
    def _identifier(cls, name: str, info: Any) -> str:
        # ragstate's own names: the allow-list the dialect applies again when quoting
        if info.field_name == "prefix" and name == "":
            return name
        return _ragstate_name(name, "schema name" if info.field_name == "schema_name" else "table prefix")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if url.startswith("sqlite:") and not url.startswith("sqlite:///") and url != "sqlite::memory:":
            # sqlite://typo.db would otherwise name a file nobody meant
            path = url.removeprefix("sqlite:").lstrip("/")
            raise ValueError(
                f"{url!r} is not a SQLite URL: write sqlite:///{path} (relative to the spec file) "
                f"or sqlite:////{path} (absolute), with three or four slashes"
            )
        if url.startswith(("sqlite:", "postgresql://", "postgres://")) or url.endswith((".db", ".sqlite", ".sqlite3")):
            return url
        raise ValueError("must start with sqlite: or postgresql:// (or be a path ending in .db)")


class SourceSpec(_Section):
    """Where documents come from: a folder of files (or one file)."""

    path: Path = Field(description="folder (or single file) of documents, relative to the spec file")
    formats: tuple[SourceFormat, ...] = Field(("txt", "md", "xml", "jsonl"), description="file kinds read")
    follow_symlinks: bool = Field(False, description="read symlinks that lead outside the source folder")
    allow_parent_dirs: bool = Field(
        False, description="let a relative path leave the spec file's folder through .. (absolute paths always may)"
    )
    max_document_bytes: int = Field(
        20_000_000,
        ge=1,
        le=1 << 31,
        description="larger documents (files, JSONL records) are quarantined by name, never read whole",
    )
    max_pages: int = Field(
        2000, ge=1, le=1_000_000, description="a PDF with more pages is quarantined by name, never read whole"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, (str, Path)) else value


#: filter operators of a table source (the dialect compiles each; values are always bound)
FilterOp = Literal["=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null"]
FILTER_OPS: tuple[str, ...] = FilterOp.__args__  # type: ignore[attr-defined]
_NULL_TESTS = ("is null", "is not null")
_LIST_OPS = ("in", "not in")
#: operators spelled between a column and its value in ``COLUMN OP VALUE``, longest first
_INLINE_OPS = ("!=", "<=", ">=", "=", "<", ">")

Scalar = str | int | float | bool


def _ragstate_name(name: str, what: str) -> str:
    try:
        return ident(name, what=what)
    except IdentifierError as exc:  # reported by pydantic with the field's path
        raise ValueError(str(exc)) from None


def _user_name(name: str, what: str) -> str:
    # Validated by the same allow-list the dialect applies again when quoting.
    try:
        return user_ident(name, what=what)
    except IdentifierError as exc:  # reported by pydantic with the field's path
        raise ValueError(str(exc)) from None


class FilterSpec(_Section):
    """One condition on a table source's rows: column, operator, value (always bound)."""

    column: str = Field(description="a column of the table")
    op: FilterOp = Field("=", description="one of " + ", ".join(FILTER_OPS))
    value: Scalar | tuple[Scalar, ...] | None = Field(
        None, description="compared value; a list for in / not in; none for is null / is not null"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return cls.parse(value) if isinstance(value, str) else value

    @staticmethod
    def parse(text: str) -> dict[str, Any]:
        """``status=published``, ``year >= 2020``, ``lang in en,de``, ``deleted_at is null``.

        The value is the rest of the text after the operator, as a string (the database
        converts it to the column's type when comparing); ``in`` values are split at commas.
        """
        m = re.match(r"\s*([^\s=!<>]+)\s*(.*)$", text, re.S)
        if m:
            column, rest = m.groups()
            null = re.fullmatch(r"is\s+(not\s+)?null\s*", rest, re.I)
            if null:
                return {"column": column, "op": "is not null" if null.group(1) else "is null"}
            listed = re.match(r"(not\s+in|in)\s+(.*)$", rest, re.I | re.S)
            if listed:
                op = "not in" if listed.group(1).lower().startswith("not") else "in"
                return {"column": column, "op": op, "value": [v.strip() for v in listed.group(2).split(",")]}
            for op in _INLINE_OPS:
                if rest.startswith(op):
                    return {"column": column, "op": op, "value": rest[len(op) :].strip()}
        raise ValueError(
            f"filter {text[:60]!r}: write COLUMN=VALUE, COLUMN OP VALUE (OP: {', '.join(_INLINE_OPS)}), "
            "COLUMN in A,B or COLUMN is null"
        )

    @field_validator("column")
    @classmethod
    def _column(cls, column: str) -> str:
        return _user_name(column, "column name")

    @model_validator(mode="after")
    def _value_fits_op(self) -> FilterSpec:
        if self.op in _NULL_TESTS:
            if self.value is not None:
                raise ValueError(f"{self.column} {self.op} takes no value")
        elif self.op in _LIST_OPS:
            if not isinstance(self.value, tuple) or not self.value:
                raise ValueError(f"{self.column} {self.op} needs a non-empty list of values")
            if len({type(v) for v in self.value}) > 1:
                raise ValueError(f"{self.column} {self.op}: the values must all be of one type")
        elif self.value is None or isinstance(self.value, tuple):
            raise ValueError(f"{self.column} {self.op} needs one value (use 'is null' to test for NULL)")
        return self


class TableSourceSpec(_Section):
    """Where documents come from: a table (or view) of the user's own database, read in place.

    ragstate creates a view over it in its own schema (PostgreSQL) or with its prefix
    (SQLite), in the store's database, and never writes to the table (docs/sources.md).
    """

    table: str = Field(description="SCHEMA.TABLE on PostgreSQL (TABLE alone is public.TABLE); TABLE on SQLite")
    id: str = Field(description="column whose values identify documents: unique, not null")
    text: str = Field(description="column holding the document's text (its body)")
    title: str | None = Field(None, description="column holding the title")
    abstract: str | None = Field(None, description="column holding an abstract or summary")
    metadata: tuple[str, ...] = Field((), description="columns carried along as document metadata")
    where: tuple[FilterSpec, ...] = Field((), description="conditions every document row must meet")
    name: str | None = Field(
        None, description="name of the mapping and its view (default: the table's name in lower case)"
    )
    max_document_bytes: int = Field(
        20_000_000, ge=1, le=1 << 31, description="a row whose text fields are larger is quarantined by its id"
    )
    mode: Literal["view", "copy", "materialized"] = Field(
        "view",
        description="how documents are read: through the view (view); from a copy of id, hash and text that "
        "ragstate keeps in step with the view at each observation (copy); or from a materialised view refreshed "
        "before each observation (materialized, PostgreSQL)",
    )
    notify: bool = Field(
        False,
        description="live mode on PostgreSQL: install a statement trigger on the table that sends NOTIFY on each "
        "change (needs the right to create it: else a warning, and the daemon's interval)",
    )
    change_column: str | None = Field(
        None,
        description="live mode on SQLite: a column whose largest value grows with each change (an updated-at "
        "column); default: the rowid (sees rows added and deleted, not edited in place)",
    )

    @field_validator("where", mode="before")
    @classmethod
    def _where_mapping(cls, value: Any) -> Any:
        # where: {status: published} is shorthand for equality tests
        if isinstance(value, Mapping):
            return [{"column": k, "op": "=", "value": v} for k, v in value.items()]
        return [value] if isinstance(value, str) else value

    @field_validator("metadata", mode="before")
    @classmethod
    def _one_column(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("table")
    @classmethod
    def _table(cls, table: str) -> str:
        parts = table.split(".")
        if len(parts) > 2:
            raise ValueError("write TABLE or SCHEMA.TABLE")
        for part in parts:
            _user_name(part, "table name" if part == parts[-1] else "schema name")
        return table

    @field_validator("id", "text", "title", "abstract", "change_column")
    @classmethod
    def _column(cls, column: str | None) -> str | None:
        return None if column is None else _user_name(column, "column name")

    @field_validator("metadata")
    @classmethod
    def _columns(cls, columns: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(columns)) != len(columns):
            raise ValueError("lists a column twice")
        return tuple(_user_name(c, "column name") for c in columns)

    @model_validator(mode="after")
    def _name(self) -> TableSourceSpec:
        # the view is named src_<name>, its copy src_<name>_copy_doc (an index): ident's
        # 48 characters leave room for them
        room = 44 if self.mode == "view" else 35
        try:
            ident("src_" + self.mapping_name + ("" if self.mode == "view" else "_copy_doc"), what="mapping name")
        except IdentifierError:
            raise ValueError(
                f"mapping name {self.mapping_name[:60]!r}: use 1-{room} characters of a-z, 0-9 and _ "
                "(set source.name when the table's name does not fit)"
            ) from None
        return self

    @property
    def schema_name(self) -> str | None:
        return self.table.split(".")[0] if "." in self.table else None

    @property
    def table_name(self) -> str:
        return self.table.split(".")[-1]

    @property
    def mapping_name(self) -> str:
        return self.name or self.table_name.lower()

    def definition(self) -> dict[str, Any]:
        """The mapping as data (what the view-mappings table records)."""
        # how changes are noticed (live mode) is not part of what the view reads
        return self.model_dump(mode="json", exclude={"name", "max_document_bytes", "notify", "change_column"})


def _source_kind(value: Any) -> str:
    """``Table`` for a mapping naming a table's columns, else ``Folder``."""
    if isinstance(value, TableSourceSpec):
        return "Table"
    if isinstance(value, Mapping) and set(value) & {"table", "id", "text", "where", "metadata", "title"}:
        return "Table"
    return "Folder"


#: a folder of files, or a user's table read in place
AnySource = Annotated[
    Annotated[SourceSpec, Tag("Folder")] | Annotated[TableSourceSpec, Tag("Table")],
    Discriminator(_source_kind),
]


class FirstN(_Section):
    """The first N documents in the source's stable order (path order, then line order;
    for a table, the order of its id column)."""

    first: int = Field(ge=1)


Scope = Literal["all"] | FirstN


class ModelSpec(_Section):
    """One embedding model, referred to by name from the artifact kinds."""

    provider: str = Field(
        "sentence-transformers",
        description="embedder plugin: sentence-transformers, hash, openai (an OpenAI-compatible API) "
        "or an installed one",
    )
    name: str = Field(
        "all-MiniLM-L6-v2",
        description="model name installed as a package (all-MiniLM-L6-v2) or a local model folder",
    )
    device: str = Field("cpu", description="cpu, cuda, cuda:1, mps")
    normalize: bool = Field(True, description="store unit-length vectors")
    batch_size: int = Field(32, ge=1, le=4096, description="texts per forward pass")
    threads: int | None = Field(None, ge=1, le=256, description="CPU threads for the model (default: all)")
    dimension: int | None = Field(
        None, ge=1, le=16_000, description="expected output dimension (checked; required for provider hash)"
    )
    max_tokens: int | None = Field(
        None, ge=8, le=32_768, description="input window in tokens (default: the model's own; openai: 8191)"
    )
    # provider openai: an OpenAI-compatible embedding API (compute/openai_embedder.py)
    url: str | None = Field(None, description="openai: base URL of the API, e.g. https://api.openai.com/v1")
    model: str | None = Field(None, description="openai: model name sent with each request")
    dimensions: int | None = Field(
        None, ge=1, le=16_000, description="openai: output size asked of the API (models that can shorten vectors)"
    )
    api_key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="openai: environment variable holding the API key"
    )
    api_key_file: Path | None = Field(None, description="openai: file whose first line is the API key")
    tokenizer: str | None = Field(
        None,
        description="openai: a local model (package or folder) whose tokenizer counts and cuts what the API "
        "model reads (default: about four characters a token)",
    )
    max_batch_texts: int = Field(256, ge=1, le=4096, description="openai: texts per request at most")
    max_batch_tokens: int = Field(100_000, ge=8, le=10_000_000, description="openai: tokens per request at most")
    max_concurrency: int = Field(4, ge=1, le=256, description="openai: requests in flight at once")
    requests_per_minute: int | None = Field(None, ge=1, description="openai: request rate limit (default: none)")
    tokens_per_minute: int | None = Field(None, ge=1, description="openai: token rate limit (default: none)")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="openai: seconds to wait for one response")
    price_per_million_tokens: float | None = Field(
        None, ge=0, description="openai: price of a million input tokens, for plan estimates and reconcile.max_cost"
    )

    @field_validator("url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        if url is None:
            return None
        return _http_url(url)

    @model_validator(mode="after")
    def _provider_fields(self) -> ModelSpec:
        api_fields = ("url", "model", "dimensions", "api_key_env", "api_key_file", "tokenizer")
        if self.provider in ("sentence-transformers", "hash"):
            given = [f for f in api_fields if getattr(self, f) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: only for an API provider (provider: openai), not {self.provider}"
                )
        if self.provider == "openai":
            missing = [f for f in ("url", "model") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"provider openai needs {' and '.join(missing)}")
            if self.dimensions is None and self.dimension is None:
                raise ValueError(
                    "provider openai needs dimension (what the model outputs) or dimensions (what to ask for): "
                    "the table's vector size is known before any request"
                )
            if self.dimensions is not None and self.dimension is not None and self.dimensions != self.dimension:
                raise ValueError(f"dimension {self.dimension} and dimensions {self.dimensions} disagree")
        if self.api_key_env is not None and self.api_key_file is not None:
            raise ValueError("give api_key_env or api_key_file, not both")
        return self


def _http_url(url: str) -> str:
    """``url`` without a trailing slash; an http(s) URL holding no password."""
    from ragstate.redact import literal_secrets

    if not url.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    if next(literal_secrets(url), None) is not None:
        raise ValueError("must not hold a password; use api_key_env or api_key_file")
    return url.rstrip("/")


class DocEmbeddingsSpec(_Section):
    """Recipe of ``doc_embeddings``: one vector per document."""

    model: str = Field("default", description="name of an entry in models")
    text: str = Field(
        "{title}\n\n{summary}",
        description="template of the embedded text; fields: " + ", ".join(TEXT_FIELDS),
    )

    @field_validator("text")
    @classmethod
    def _known_fields(cls, template: str) -> str:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        except ValueError as exc:
            raise ValueError(f"is not a valid template: {exc}") from None
        unknown = names - set(TEXT_FIELDS)
        if unknown:
            raise ValueError(f"names unknown field(s) {sorted(unknown)}; known: {', '.join(TEXT_FIELDS)}")
        if not names:
            raise ValueError("must name at least one document field, e.g. {title}")
        return template


class ChunksSpec(_Section):
    """Recipe of ``chunks``: parent sections and child chunks with character offsets."""

    model: str = Field("default", description="the model whose tokenizer counts tokens (entry in models)")
    chunker: str = Field("sections", description="chunker plugin: sections, or an installed ragstate.chunkers one")
    max_tokens: int | None = Field(
        None, ge=8, le=32_768, description="tokens per chunk at most (default: the model's window)"
    )
    min_tokens: int = Field(64, ge=0, le=32_768, description="paragraphs merge while a chunk has fewer tokens")


class ModelRecipeSpec(_Section):
    """Recipe of a kind that embeds with one model (chunk, token and entity embeddings)."""

    model: str = Field("default", description="name of an entry in models")


class EntitiesSpec(_Section):
    """Recipe of ``entities`` (with their relations)."""

    extractor: str = Field("rules", description="extractor plugin: rules (offline), or an installed one")
    options: dict[str, Any] = Field(default_factory=dict, description="options passed to the extractor")


class FulltextSpec(_Section):
    """Recipe of ``fulltext``: an FTS5 table (SQLite) or a tsvector GIN index (PostgreSQL)."""

    language: str = Field(
        "english",
        pattern=r"^[a-z_]{1,32}$",
        description="PostgreSQL text search configuration (english also stems on SQLite; others: no stemming)",
    )


class ArtifactsSpec(_Section):
    """Recipes of the artifact kinds (only the kinds that enabled pipelines need are built)."""

    doc_embeddings: DocEmbeddingsSpec = DocEmbeddingsSpec()
    chunks: ChunksSpec = ChunksSpec()
    chunk_embeddings: ModelRecipeSpec = ModelRecipeSpec()
    token_embeddings: ModelRecipeSpec = ModelRecipeSpec()
    entities: EntitiesSpec = EntitiesSpec()
    entity_embeddings: ModelRecipeSpec = ModelRecipeSpec()
    fulltext: FulltextSpec = FulltextSpec()


class RetrySpec(_Section):
    """Retries of an operation that failed transiently (lost connection, busy database, model timeout)."""

    attempts: int = Field(
        8, ge=1, le=100, description="tries of one operation (a batch's write, a model call) before the run fails"
    )
    initial_delay_s: float = Field(0.5, ge=0, le=600, description="wait before the second try")
    multiplier: float = Field(2.0, ge=1, le=10, description="each wait is this many times the one before")
    max_delay_s: float = Field(30.0, ge=0, le=3600, description="longest wait between two tries")
    jitter_s: float = Field(0.5, ge=0, le=600, description="up to this much random time added to each wait")


class BreakerSpec(_Section):
    """Circuit breakers around the database and the embedder: an outage is not a storm of retries."""

    threshold: int = Field(
        3, ge=1, le=1000, description="transient failures in a row that open the breaker (calls then fail fast)"
    )
    cooldown_s: float = Field(
        5.0, gt=0, le=3600, description="how long an open breaker waits before it lets one probe call through"
    )


class ReconcileSpec(_Section):
    """How apply works through a plan."""

    batch_size: int = Field(64, ge=1, le=100_000, description="documents per transaction")
    max_documents_per_run: int | None = Field(
        None,
        ge=1,
        description="a run that would build more documents than this is refused before it starts (default: no limit)",
    )
    max_cost: float | None = Field(
        None,
        ge=0,
        description="a run whose estimated embedding cost (models' price_per_million_tokens) is higher is "
        "refused before anything is spent (default: no limit)",
    )
    max_delete_share: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="deleting more than this share of a kind's documents is destructive",
    )
    sample_recheck: int = Field(
        8, ge=0, le=10_000, description="stored vectors re-embedded by verify to catch placeholders"
    )
    retry: RetrySpec = RetrySpec()
    breaker: BreakerSpec = BreakerSpec()
    memory_budget_mb: int | None = Field(
        None,
        ge=16,
        le=16_000_000,
        description="memory the batches in flight may take; batch sizes shrink to fit it "
        "(default: half the memory available when apply starts)",
    )
    max_failure_streak: int = Field(
        10,
        ge=1,
        le=100_000,
        description="documents failing one after another with unexpected errors, with no success "
        "between them, that stop the run as a fault of the model or plugin rather than of the documents",
    )
    lock: Literal["wait", "fail"] = Field(
        "wait",
        description="when another apply is writing the store: wait for it to finish, or fail at once "
        "with a message naming it",
    )
    lock_timeout_s: float = Field(900.0, gt=0, le=86_400, description="with lock: wait, give up after this long")
    concurrent_kinds: int = Field(
        4,
        ge=1,
        le=64,
        description="artifact kinds built at once (batches computed at the same time); 1 builds each kind to "
        "completion before the next",
    )


class ExecutorSpec(_Section):
    """Where the batches of a kind are computed (docs/scale.md)."""

    type: Literal["local", "ray"] = Field(
        "local", description="local: in the applying process; ray: on the actors of a Ray cluster"
    )
    address: str | None = Field(
        None, description="Ray cluster to join (auto, or ray://host:port); default: start a local one for the run"
    )
    workers: int = Field(2, ge=1, le=1024, description="Ray actors; each loads the models once")
    cpus_per_worker: float = Field(1.0, gt=0, le=256, description="CPUs Ray reserves for each actor")
    gpus_per_worker: float = Field(0.0, ge=0, le=64, description="GPUs Ray reserves for each actor (models on cuda)")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value


class DaemonSpec(_Section):
    """How ``ragstate daemon`` reconciles on its own: when, how much, and what it serves."""

    interval_s: float = Field(300.0, gt=0, le=7 * 86_400, description="seconds between the end of a cycle and the next")
    jitter: float = Field(
        0.1, ge=0, le=1, description="each wait is changed by up to this share of it at random, so daemons spread out"
    )
    backoff_multiplier: float = Field(
        2.0,
        ge=1,
        le=10,
        description="after k failed cycles in a row the next waits interval_s times this to the power k",
    )
    max_backoff_s: float = Field(3600.0, gt=0, le=7 * 86_400, description="longest wait after failed cycles")
    verify_interval_s: float | None = Field(
        3600.0,
        gt=0,
        le=30 * 86_400,
        description="a cycle at least this long after the last full verify observes deeply (every file read, every "
        "vector checked, a sample re-embedded) and verifies; none: only the first cycle does",
    )
    max_items: int | None = Field(
        None, ge=1, description="documents built per cycle at most; the rest waits for the next cycles (none: all)"
    )
    max_seconds: float | None = Field(
        None, gt=0, description="seconds of work per cycle at most, checked between batches (none: no limit)"
    )
    on_conflict: Literal["fail", "wait"] = Field(
        "fail",
        description="when another daemon already runs on the store: fail at once naming it, or wait (a standby "
        "that takes over when it stops)",
    )
    metrics_port: int | None = Field(
        None, ge=0, le=65_535, description="serve /metrics, /healthz, /readyz and POST /reconcile here (0: any free)"
    )
    metrics_host: str = Field("127.0.0.1", description="address the metrics server listens on")
    # live mode (reconcile.live): change notifications are hints that make the next cycle come
    # sooner and narrower; the interval's full observation stays the truth
    live: bool = Field(
        False,
        description="react to the source's change notifications (file events; a table's NOTIFY trigger or change "
        "counter) within seconds, between the interval's full observations",
    )
    live_debounce_s: float = Field(
        0.5,
        ge=0,
        le=600,
        description="a changed path is observed once no event came for it this long and its size and mtime held",
    )
    live_batch: int = Field(256, ge=1, le=100_000, description="changed paths observed by one live cycle at most")
    live_queue: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="changed paths waiting at most; a larger burst is dropped for one full observation",
    )
    live_poll_s: float = Field(
        1.0, gt=0, le=3600, description="how often a table source's change counter is read (SQLite tables)"
    )


class GoldenSpec(_Section):
    """The golden-query check a new generation must pass before it is switched in.

    Known-item queries (a document's title finds that document, or pairs from ``file``)
    are run against the new generation and against the active one, nearest neighbours
    on each generation's own table; the new one's recall@k must not fall below
    ``min_share`` of the active one's.
    """

    queries: int = Field(
        50,
        ge=0,
        le=10_000,
        description="known-item queries drawn from the documents in scope (title → document); 0 turns the check off",
    )
    file: Path | None = Field(
        None,
        description='JSONL file of your own queries, one {"query": ..., "doc_id": ...} (or "doc_ids": [...]) a '
        "line, used instead of titles",
    )
    k: int = Field(10, ge=1, le=1000, description="recall is counted in the top k documents")
    min_share: float = Field(
        0.95,
        ge=0.0,
        le=1.0,
        description="the new generation's recall@k must be at least this share of the active generation's",
    )


class GenerationsSpec(_Section):
    """Blue/green generations: verification before a switch, and how many old ones to keep."""

    keep: int = Field(
        2,
        ge=1,
        le=1000,
        description="inactive generations kept per kind for rollback (always including the one active before "
        "the current); older ones are dropped by apply",
    )
    golden: GoldenSpec = GoldenSpec()
    max_lost_share: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="a new generation is not switched in when the documents it lacks because they are in "
        "quarantine, though the active generation holds them, are more than this share of the documents in "
        "scope (and more than one): a model failing on many documents is not a few bad documents",
    )


#: what a query does when its pipeline's data is not converged
ReadinessMode = Literal["fail", "warn", "heal"]


class ColbertQuerySpec(_Section):
    """ColBERT at query time: candidates from document embeddings, reranked by MaxSim."""

    candidates: int = Field(
        20, ge=1, le=1000, description="documents taken from the document embeddings and reranked by MaxSim"
    )


class NoderagQuerySpec(_Section):
    """NodeRAG at query time: nearest chunks, expanded to their section and siblings."""

    chunks: int = Field(50, ge=1, le=1000, description="nearest chunks taken as seed nodes")
    sibling_weight: float = Field(
        0.1, ge=0.0, le=10.0, description="weight of the other seed chunks of the best section in a document's score"
    )
    context: int = Field(1, ge=0, le=20, description="sibling chunks on each side added to the passage")


class GraphragQuerySpec(_Section):
    """GraphRAG at query time: query entities matched to stored ones, then a walk over relations."""

    hops: int = Field(2, ge=0, le=2, description="relation hops walked from the matched entities (0, 1 or 2)")
    entity_similarity: float = Field(
        0.75, ge=-1.0, le=1.0, description="cosine similarity at which a stored entity matches a query entity"
    )
    query_similarity: float = Field(
        0.5, ge=-1.0, le=1.0, description="cosine similarity at which a stored entity matches the whole query"
    )
    seeds: int = Field(10, ge=1, le=1000, description="stored entities matched per query entity, at most")
    fanout: int = Field(20, ge=1, le=10_000, description="neighbours kept per hop, strongest first")
    hop_decay: float = Field(
        0.5, gt=0.0, le=1.0, description="an entity reached by a hop weighs this much of its source"
    )


class HybridQuerySpec(_Section):
    """Hybrid at query time: vector and full-text rankings fused by reciprocal rank fusion."""

    vector_weight: float = Field(1.0, ge=0.0, description="weight of the document-embedding ranking")
    text_weight: float = Field(1.0, ge=0.0, description="weight of the full-text ranking")
    rrf_k: int = Field(60, ge=1, le=10_000, description="RRF constant: a document at rank r adds weight / (rrf_k + r)")
    candidates: int = Field(50, ge=1, le=10_000, description="documents taken from each ranking before fusion")


class CragQuerySpec(_Section):
    """CRAG at query time: retrieve, grade the retrieval, refine when confidence is low."""

    upper: float = Field(
        0.5, ge=-1.0, le=1.0, description="best cosine similarity at or above which the retrieval is correct"
    )
    lower: float = Field(
        0.3, ge=-1.0, le=1.0, description="best cosine similarity below which the retrieval is incorrect"
    )
    candidates: int = Field(20, ge=1, le=10_000, description="documents retrieved from the document embeddings")
    refine_pool: int = Field(
        50, ge=1, le=10_000, description="documents whose chunks a low-confidence refinement searches"
    )
    strips: int = Field(
        32, ge=1, le=1000, description="chunks (knowledge strips) a refinement embeds, best keyword matches first"
    )

    @model_validator(mode="after")
    def _ordered(self) -> CragQuerySpec:
        if self.lower > self.upper:
            raise ValueError(f"lower ({self.lower}) must not exceed upper ({self.upper})")
        return self


class HydeQuerySpec(_Section):
    """HyDE at query time: a generator writes a hypothetical passage, which is embedded."""

    generator: str | None = Field(
        None, description="name of an entry in generators; HyDE refuses to answer without one"
    )
    prompt: str = Field(
        "Write a short passage of a scientific article that answers the question or matches the "
        "title below. Answer with the passage only.\n\n{query}",
        description="prompt sent to the generator; {query} is replaced by the query",
    )
    max_tokens: int = Field(200, ge=1, le=32_768, description="tokens the generator may write")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="sampling temperature")
    include_query: bool = Field(True, description="average the query's own embedding with the hypothetical passage's")

    @field_validator("prompt")
    @classmethod
    def _names_query(cls, prompt: str) -> str:
        if "{query}" not in prompt:
            raise ValueError("must contain {query}")
        return prompt


class QuerySpec(_Section):
    """How ``ragstate query`` and ``Project.pipeline(name).retrieve`` answer."""

    readiness: ReadinessMode = Field(
        "fail",
        description="when the pipeline's data is not converged: fail (refuse with the reasons), "
        "warn (answer with a warning) or heal (reconcile its kinds first)",
    )
    k: int = Field(10, ge=1, le=10_000, description="documents returned when the caller does not say")
    colbert: ColbertQuerySpec = ColbertQuerySpec()
    noderag: NoderagQuerySpec = NoderagQuerySpec()
    graphrag: GraphragQuerySpec = GraphragQuerySpec()
    hybrid: HybridQuerySpec = HybridQuerySpec()
    crag: CragQuerySpec = CragQuerySpec()
    hyde: HydeQuerySpec = HydeQuerySpec()


class GeneratorSpec(_Section):
    """A text generator (for HyDE): an OpenAI-compatible HTTP endpoint, or a plugin.

    The API key is never written in the spec: it is read from the environment variable
    ``api_key_env`` names, or from the file ``api_key_file``.
    """

    provider: str = Field("openai", description="generator plugin: openai (any OpenAI-compatible HTTP server)")
    url: str = Field(description="base URL of the API, e.g. http://localhost:8000/v1")
    model: str = Field(description="model name sent with each request")
    api: Literal["chat", "completions"] = Field(
        "chat", description="chat: POST {url}/chat/completions; completions: POST {url}/completions"
    )
    api_key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="environment variable holding the API key"
    )
    api_key_file: Path | None = Field(None, description="file whose first line is the API key")
    timeout_s: float = Field(60.0, gt=0, le=3600, description="seconds to wait for a response")

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        return _http_url(url)

    @model_validator(mode="after")
    def _one_key(self) -> GeneratorSpec:
        if self.api_key_env is not None and self.api_key_file is not None:
            raise ValueError("give api_key_env or api_key_file, not both")
        return self


class CacheSpec(_Section):
    """The embedding cache: one vector per embedding recipe and exact text, in the store."""

    enabled: bool = Field(True, description="serve texts embedded before (by any kind, document or run) from the store")
    max_mb: float = Field(
        1024.0,
        ge=0,
        description="size limit in MiB (values and texts); beyond it the least recently used entries that no "
        "artifact references are evicted after each apply",
    )


class Spec(BaseSettings):
    """The desired state of one project's RAG data."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True, populate_by_name=True
    )

    version: Literal[1] = 1
    store: StoreSpec
    source: AnySource
    scope: Annotated[Scope, Field(description='"all" or {first: N}')] = "all"
    pipelines: tuple[PipelineName, ...] = Field(("basic",), min_length=1)
    models: dict[str, ModelSpec] = Field(default_factory=lambda: {"default": ModelSpec()})
    artifacts: ArtifactsSpec = ArtifactsSpec()
    reconcile: ReconcileSpec = ReconcileSpec()
    executor: ExecutorSpec = Field(ExecutorSpec(), description="local, or ray (a string, or the mapping)")
    daemon: DaemonSpec = DaemonSpec()
    generations: GenerationsSpec = GenerationsSpec()
    cache: CacheSpec = CacheSpec()

    query: QuerySpec = QuerySpec()
    generators: dict[str, GeneratorSpec] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file (and its profile); no .env or secrets folder is
        # read implicitly, so what a spec means never depends on the working directory.
        return (_EnvironSource(settings_cls), init_settings)

    @field_validator("pipelines")
    @classmethod
    def _unique(cls, pipelines: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(pipelines)) != len(pipelines):
            raise ValueError("lists a pipeline twice")
        return pipelines

    @model_validator(mode="after")
    def _models_exist(self) -> Spec:
        for kind_name in type(self.artifacts).model_fields:
            recipe = getattr(self.artifacts, kind_name)
            model_name = getattr(recipe, "model", None)
            if model_name is not None and model_name not in self.models:
                raise ValueError(
                    f"artifacts.{kind_name}.model names '{model_name}', which is not in models "
                    f"(defined: {', '.join(sorted(self.models)) or 'none'})"
                )
        if self.reconcile.max_cost is not None and all(
            m.price_per_million_tokens is None for m in self.models.values()
        ):
            raise ValueError(
                "reconcile.max_cost is set, but no entry of models has a price_per_million_tokens to count it with"
            )
        colbert_model = self.models.get(self.artifacts.token_embeddings.model)
        if "colbert" in self.pipelines and colbert_model is not None and colbert_model.provider == "openai":
            raise ValueError(
                f"pipeline colbert needs per-token vectors, which an embedding API (models."
                f"{self.artifacts.token_embeddings.model}.provider: openai) does not return; set "
                "artifacts.token_embeddings.model to a local model (provider sentence-transformers)"
            )
        generator = self.query.hyde.generator
        if generator is not None and generator not in self.generators:
            raise ValueError(
                f"query.hyde.generator names '{generator}', which is not in generators "
                f"(defined: {', '.join(sorted(self.generators)) or 'none'})"
            )
        return self

    @property
    def scope_limit(self) -> int | None:
        """Number of documents in scope, or None for all."""
        return None if self.scope == "all" else self.scope.first
