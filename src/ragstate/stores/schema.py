"""Tables described as data, so that each backend renders them in its own dialect.

Artifact kinds and migrations say *what* a table holds (``TableDef``); the backend's
dialect says *how* (types, quoting, index syntax). Every name in a table is validated here
(``ragstate.identifiers.ident``): nothing reaches SQL text that did not pass ``ident``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ragstate.identifiers import ident


class ColumnType(Enum):
    TEXT = "text"
    INT = "int"
    BIGINT = "bigint"
    FLOAT = "float"
    BOOL = "bool"
    BLOB = "blob"
    JSON = "json"
    VECTOR = "vector"


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = True
    dimension: int | None = None  # VECTOR only

    def __post_init__(self) -> None:
        ident(self.name, what="column name")
        if (self.type is ColumnType.VECTOR) != (self.dimension is not None):
            raise ValueError(f"column {self.name}: a dimension is given exactly for VECTOR columns")


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool = False
    #: "btree"; "vector" for an approximate-nearest-neighbour index (HNSW on PostgreSQL;
    #: SQLite has none and searches vectors exhaustively with sqlite-vec); or "fulltext"
    #: for a text-search index over ``columns`` (a tsvector GIN index on PostgreSQL, an
    #: FTS5 table kept in step by triggers on SQLite)
    method: str = "btree"
    #: text-search language of a "fulltext" index (PostgreSQL text search configuration;
    #: ``english`` also selects the Porter stemmer on SQLite)
    language: str | None = None

    def __post_init__(self) -> None:
        ident(self.name, what="index name")
        for c in self.columns:
            ident(c, what="column name")
        if (self.method == "fulltext") != (self.language is not None):
            raise ValueError(f"index {self.name}: a language is given exactly for fulltext indexes")
        if self.language is not None:
            ident(self.language, what="text-search language")


@dataclass(frozen=True)
class TableDef:
    """A table: columns, primary key, secondary indexes. ``name`` is unprefixed."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[Index, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        ident(self.name, what="table name")
        names = [c.name for c in self.columns]
        missing = [k for k in self.primary_key if k not in names]
        if missing:
            raise ValueError(f"table {self.name}: primary key names unknown columns {missing}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def fulltext_table(table: TableDef, index: Index) -> str:
    """The (unprefixed) name of the search structure of a fulltext ``index`` on ``table``."""
    return ident(f"{table.name}_{index.name}", what="table name")


def col(name: str, type_: ColumnType, *, null: bool = True, dim: int | None = None) -> Column:
    """Shorthand used by the table definitions."""
    return Column(name, type_, nullable=null, dimension=dim)


T, I, BI, F, B, J, BL = (
    ColumnType.TEXT,
    ColumnType.INT,
    ColumnType.BIGINT,
    ColumnType.FLOAT,
    ColumnType.BOOL,
    ColumnType.JSON,
    ColumnType.BLOB,
)


# --- the universal tables -------------------------------------------------------------

DOCUMENTS = TableDef(
    "documents",
    (
        col("doc_id", T, null=False),
        col("content_hash", T, null=False),
        col("title", T),
        col("path", T, null=False),
        col("pos", I, null=False),
        col("byte_offset", BI, null=False),
        col("title_chars", I, null=False),
        col("abstract_chars", I, null=False),
        col("body_chars", I, null=False),
        col("updated_at", F, null=False),
    ),
    primary_key=("doc_id",),
    indexes=(Index("path_pos", ("path", "pos")),),
)

SOURCE_FILES = TableDef(
    "source_files",
    (
        col("path", T, null=False),
        col("size", BI, null=False),
        col("mtime_ns", BI, null=False),
        col("ctime_ns", BI, null=False),
        col("inode", BI, null=False),
        col("observed_at", F, null=False),
    ),
    primary_key=("path",),
)

LEDGER = TableDef(
    "ledger",
    (
        col("kind", T, null=False),
        col("generation", I, null=False),
        col("doc_id", T, null=False),
        col("source_hash", T, null=False),
        col("recipe_fp", T, null=False),
        col("items", I, null=False),
        col("run_id", T),
        col("updated_at", F, null=False),
    ),
    primary_key=("kind", "generation", "doc_id"),
)

GENERATIONS = TableDef(
    "generations",
    (
        col("kind", T, null=False),
        col("generation", I, null=False),
        col("recipe_fp", T, null=False),
        col("recipe", J, null=False),
        col("table_name", T, null=False),
        col("state", T, null=False),  # building | rejected | active | retired | dropped
        col("created_at", F, null=False),
        col("activated_at", F),
        col("run_id", T),
        # migration 5: lineage, verification, rollback and garbage collection
        col("upstream", J),  # {kind: generation} of the upstream kinds it was built from
        col("models", J),  # {name: model spec} of the models it embeds with (its query embedder)
        col("verification", J),  # the last verification before a switch (checks, golden recall)
        col("hold", J),  # set by a rollback: {run_id, recipe_fp} the spec's recipe is not switched to
        col("retired_at", F),
        col("dropped_at", F),
    ),
    primary_key=("kind", "generation"),
)

RUNS = TableDef(
    "runs",
    (
        col("run_id", T, null=False),
        col("command", T, null=False),
        col("spec_hash", T, null=False),
        col("status", T, null=False),  # running | converged | failed | interrupted | refused
        col("started_at", F, null=False),
        col("finished_at", F),
        col("heartbeat_at", F),
        col("plan", J),
        col("progress", J),
        col("counts", J),
        col("timings", J),
        col("error", T),
        col("host", T),
        col("pid", I),
    ),
    primary_key=("run_id",),
    indexes=(Index("started", ("started_at",)),),
)

PIPELINE_STATES = TableDef(
    "pipeline_states",
    (
        col("pipeline", T, null=False),
        col("ready", B, null=False),
        col("reasons", J, null=False),
        col("spec_hash", T, null=False),
        col("updated_at", F, null=False),
    ),
    primary_key=("pipeline",),
)

SCHEMA_VERSIONS = TableDef(
    "schema_versions",
    (
        col("version", I, null=False),
        col("description", T, null=False),
        col("applied_at", F, null=False),
    ),
    primary_key=("version",),
)

QUARANTINE = TableDef(
    "quarantine",
    (
        # an artifact kind (a build failed), or "source" (the document cannot be read)
        col("kind", T, null=False),
        # the document id; for a source problem the file's path, or path:line
        col("item", T, null=False),
        col("doc_id", T),
        col("path", T),
        col("reason", T, null=False),
        col("error_type", T, null=False),
        col("message", T, null=False),
        col("attempts", I, null=False),
        # content hash (kind) or file size:mtime (source) when it failed; a change means "try again"
        col("fingerprint", T, null=False),
        col("state", T, null=False),  # quarantined | retry | dropped
        col("first_seen", F, null=False),
        col("last_seen", F, null=False),
        col("run_id", T),
    ),
    primary_key=("kind", "item"),
)

LOCKS = TableDef(
    "locks",
    (
        col("name", T, null=False),
        # fencing token: bumped by every new holder; a batch commits only under its own epoch
        col("epoch", BI, null=False),
        col("holder", J),
        col("acquired_at", F, null=False),
        col("heartbeat_at", F, null=False),
    ),
    primary_key=("name",),
)

#: in-place sources: each user table mapped through a view in ragstate's schema (migration 3)
VIEW_MAPPINGS = TableDef(
    "view_mappings",
    (
        col("name", T, null=False),
        col("view_name", T, null=False),
        col("source_table", T, null=False),
        col("definition", J, null=False),
        col("fingerprint", T, null=False),
        col("columns", J, null=False),  # the mapped columns' SQL types when mapped
        col("created_at", F, null=False),
        col("checked_at", F, null=False),
    ),
    primary_key=("name",),
)

#: status conditions (Ready, Reconciling, Degraded, Stalled) of each pipeline and artifact
#: kind, in the style of Kubernetes (migration 6); ``reconcile.conditions`` computes them
CONDITIONS = TableDef(
    "conditions",
    (
        col("scope", T, null=False),  # pipeline | kind
        col("name", T, null=False),
        col("type", T, null=False),  # Ready | Reconciling | Degraded | Stalled
        col("status", T, null=False),  # True | False | Unknown
        col("reason", T, null=False),
        col("message", T, null=False),
        # when the status last changed (kept while it stays the same)
        col("last_transition_at", F, null=False),
        # the spec the condition was observed against
        col("spec_hash", T, null=False),
        col("observed_at", F, null=False),
    ),
    primary_key=("scope", "name", "type"),
)

#: what a running daemon is doing, for ``status`` in any process (migration 6)
DAEMON_STATE = TableDef(
    "daemon_state",
    (
        col("name", T, null=False),
        col("holder", J),  # pid, host, since
        col("state", T, null=False),  # starting | idle | reconciling | backoff | stopping | stopped
        col("cycle", I, null=False),
        col("consecutive_failures", I, null=False),
        col("interval_s", F, null=False),
        col("next_cycle_at", F),
        col("last_success_at", F),
        col("last_verify_at", F),
        col("last_error", T),
        col("updated_at", F, null=False),
    ),
    primary_key=("name",),
)

#: the embedding cache (migration 7): one vector (or token matrix) per embedding recipe
#: and exact text, shared by every kind, process and run (``stores/embedding_cache.py``)
EMBEDDING_CACHE = TableDef(
    "embedding_cache",
    (
        col("model_fp", T, null=False),
        col("text_hash", T, null=False),
        col("dim", I, null=False),
        #: rows of a token matrix; NULL for one vector
        col("n_tokens", I),
        col("normalized", B, null=False),
        #: float32 little-endian (a vector) or float16 little-endian, row-major (a matrix)
        col("value", BL, null=False),
        col("text", T, null=False),
        #: bytes of value and text: what the size limit counts
        col("nbytes", BI, null=False),
        col("created_at", F, null=False),
        col("used_at", F, null=False),
        col("run_id", T),
    ),
    primary_key=("model_fp", "text_hash"),
    indexes=(Index("used", ("used_at",)),),
)

#: temporary: cache entries that eviction may remove (the least recently used first)
EVICTABLE = TableDef(
    "evictable",
    (
        col("model_fp", T, null=False),
        col("text_hash", T, null=False),
        col("nbytes", BI, null=False),
        col("used_at", F, null=False),
    ),
    primary_key=("model_fp", "text_hash"),
)

#: the temporary table a plan stages the source's current state into
SCOPE = TableDef(
    "scope",
    (
        col("doc_id", T, null=False),
        col("content_hash", T, null=False),
        col("title", T),
        col("path", T, null=False),
        col("pos", I, null=False),
        col("byte_offset", BI, null=False),
        col("title_chars", I, null=False),
        col("abstract_chars", I, null=False),
        col("body_chars", I, null=False),
    ),
    primary_key=("doc_id",),
)

#: temporary: paths whose recorded documents no longer hold (changed or gone)
STALE_PATHS = TableDef("stale_paths", (col("path", T, null=False),), primary_key=("path",))

#: temporary: rows per document and table of a multi-row kind, with their stamps' range
ROW_COUNTS = TableDef(
    "row_counts",
    (
        col("doc_id", T, null=False),
        col("part", I, null=False),
        col("n", BI, null=False),
        col("lo_hash", T),
        col("hi_hash", T),
        col("lo_fp", T),
        col("hi_fp", T),
    ),
    primary_key=("doc_id", "part"),
)

#: the stamp columns every artifact table starts with, in this order
ARTIFACT_STAMP = (
    col("doc_id", T, null=False),
    col("source_hash", T, null=False),
    col("recipe_fp", T, null=False),
    col("run_id", T),
    col("created_at", F, null=False),
)
