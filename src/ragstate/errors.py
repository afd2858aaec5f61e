"""Every error ragstate raises on purpose: one root, retry markers, one leaf per condition.

The engine reads the markers, never the message: a ``TransientError`` may succeed when
tried again (a lost connection, a lock); a ``TerminalError`` will not (a bad spec, a
malformed document). Messages name the file, field or document concerned and never
contain a secret (see ``ragstate.redact``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class RagstateError(Exception):
    """Root of every error ragstate raises on purpose."""

    #: the process exit code the CLI uses for this error
    exit_code: int = 1


class TransientError(RagstateError):
    """Marker: the same call may succeed if tried again later."""

    #: seconds the other side asked to wait before the next try (HTTP ``Retry-After``), if it said
    retry_after: float | None = None


class TerminalError(RagstateError):
    """Marker: trying again without a change of input or spec will fail the same way."""


class ItemError(TerminalError):
    """Marker: one item (a document) cannot be built; the others can.

    The engine quarantines the item and goes on. ``reason`` is the quarantine's reason
    class; plugins may raise this (or a subclass) for input their model refuses.
    """

    reason: str = "build_failed"

    def __init__(self, message: str, *, doc_id: str | None = None, reason: str | None = None):
        self.doc_id = doc_id
        if reason is not None:
            self.reason = reason
        super().__init__(message)


# --- spec -----------------------------------------------------------------------------


class SpecError(TerminalError):
    """The spec file or its environment overrides are invalid."""

    def __init__(self, message: str, *, path: Path | str | None = None, problems: list[str] | None = None):
        self.path = str(path) if path is not None else None
        self.problems = problems or []
        super().__init__(message)


# --- sources --------------------------------------------------------------------------


class SourceError(TerminalError):
    """The source as a whole cannot be read (missing folder, unreadable root)."""

    def __init__(self, message: str, *, path: Path | str | None = None):
        self.path = str(path) if path is not None else None
        super().__init__(message)


class DocumentError(ItemError):
    """One document cannot be loaded; the leaves below say why (``reason``)."""

    reason = "unreadable"

    def __init__(self, message: str, *, path: Path | str | None = None, doc_id: str | None = None):
        self.path = str(path) if path is not None else None
        super().__init__(message, doc_id=doc_id)


class UndecodableDocument(DocumentError):
    """A document's bytes are not UTF-8 text."""

    reason = "undecodable"


class EmptyDocument(DocumentError):
    """A document has no text at all."""

    reason = "empty"


class DocumentTooLarge(DocumentError):
    """A document is over ``source.max_document_bytes``."""

    reason = "too_large"


class MalformedDocument(DocumentError):
    """A document is not what its format says (XML that does not parse, a bad JSON line)."""

    reason = "malformed"


class EncryptedDocument(DocumentError):
    """A document is encrypted (a PDF with a password): it must be decrypted to be read."""

    reason = "encrypted"


class NoTextLayer(DocumentError):
    """A document has pages but no text on them (a scan): it needs OCR first."""

    reason = "no_text_layer"


class UnreadableDocument(DocumentError):
    """A document's file cannot be read, or it vanished since it was observed."""

    reason = "unreadable"


class VanishedDocument(UnreadableDocument):
    """A document was deleted from the source after it was observed: no failure, it is simply
    gone (not quarantined; the next observation finds its artifacts orphaned)."""


class OutsideSource(DocumentError):
    """A symlink in the source folder leads outside it (read only with ``source.follow_symlinks``)."""

    reason = "outside_source"


class DuplicateDocumentId(DocumentError):
    """Two documents of the source declare the same id (a source-wide conflict, not quarantined)."""

    reason = "duplicate_id"


class MissingExtra(SourceError):
    """Files of an enabled format are present, but its loader's optional dependency (an
    extra, ``pip install 'ragstate[pdf]'``) is not installed."""


class MappingError(SourceError):
    """A user's table does not fit its mapping (missing columns, ids not unique, binary text)."""

    def __init__(self, message: str, *, table: str, problems: list[str]):
        self.table = table
        self.problems = problems
        super().__init__(message, path=table)


# --- store ----------------------------------------------------------------------------


class StoreError(RagstateError):
    """The store refused or failed an operation."""


class StoreUnavailable(StoreError, TransientError):
    """The store cannot be reached now (connection refused, server gone, lock held)."""


class StoreTimeout(StoreUnavailable):
    """A statement ran over ``store.statement_timeout_s`` (a lock held elsewhere, a paused or
    overloaded server): transient, the run is retried and resumed."""


class StoreConfigError(StoreError, TerminalError):
    """The store URL or its setup is wrong (unknown scheme, missing extension, no rights)."""


class MissingCapability(StoreError, TerminalError):
    """The store's backend does not implement a capability this needs (``stores.base.CAPABILITIES``)."""

    def __init__(self, backend: str, capability: str, what: str = ""):
        self.backend = backend
        self.capability = capability
        gives = f" ({what})" if what else ""
        super().__init__(f"{backend}: this backend does not implement {capability}{gives}")


class StoreLocked(StoreUnavailable):
    """Another process holds the store's writer lock (``reconcile.lock: fail``, or the wait timed out)."""

    def __init__(self, message: str, *, holder: dict[str, Any] | None = None):
        self.holder = holder or {}
        super().__init__(message)


class DaemonRunning(StoreLocked):
    """Another ``ragstate daemon`` already reconciles this store (``daemon.on_conflict: fail``)."""


class SpecSuperseded(TerminalError):
    """The store's last run used a newer spec than this daemon's: the daemon does not act on its older one."""

    def __init__(self, message: str, *, run_id: str, spec_hash: str):
        self.run_id = run_id
        self.spec_hash = spec_hash
        super().__init__(message)


class WriterLockLost(StoreError, TerminalError):
    """This process lost the store's writer lock to another one while applying; it stopped."""


class SchemaError(StoreError, TerminalError):
    """The store's tables differ from what this version of ragstate expects and cannot be migrated."""


class IdentifierError(TerminalError):
    """A table, schema or column name failed validation and was not used in SQL."""


# --- compute --------------------------------------------------------------------------


class ModelError(TerminalError):
    """A model cannot be found locally, loaded, or gave output of the wrong shape."""


class ExecutorError(RagstateError):
    """The executor (a Ray cluster and its workers) cannot be started, reached or kept."""


class PluginError(TerminalError):
    """A plugin named in the spec is unknown or failed to load."""


class ComputeUnavailable(TransientError):
    """A model or compute service cannot answer now (timeout, lost connection, rate limit).

    Embedder plugins raise this for failures that may pass; the engine retries them.
    """


class EmbedderUnavailable(ComputeUnavailable):
    """An embedding API cannot answer now (rate limited, server error, timeout, refused connection)."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class EmbedderAuthError(ModelError):
    """An embedding API refused the key (HTTP 401 or 403), or the key's variable or file is missing."""


class EmbedderResponseError(ModelError):
    """An embedding API answered with the wrong number, order or size of vectors: nothing of it is written."""


class EmbedderRejected(ItemError):
    """An embedding API refused one input (HTTP 400): its document is quarantined."""

    reason = "rejected_by_model"


class BuildFailing(TerminalError):
    """Items fail one after another with unexpected errors: a fault of the model or plugin, not of the items."""

    def __init__(self, message: str, *, kind: str, streak: int):
        self.kind = kind
        self.streak = streak
        super().__init__(message)


# --- faults ---------------------------------------------------------------------------


class CircuitOpen(TransientError):
    """Calls to a dependency fail fast: it failed too often in a row and is cooling down."""

    def __init__(self, message: str, *, target: str, retry_in: float):
        self.target = target
        self.retry_in = retry_in
        super().__init__(message)


# --- plan and apply -------------------------------------------------------------------


class PreflightError(TerminalError):
    """A cheap check of ``ragstate doctor`` failed at the start of an apply (names each fix)."""

    def __init__(self, message: str, *, checks: list[str]):
        self.checks = checks
        super().__init__(message)


class PlanError(TerminalError):
    """A saved plan cannot be applied (malformed, or computed from another state)."""


class StalePlanError(PlanError):
    """The store or source changed since the saved plan was computed."""


class DestructiveRefused(RagstateError):
    """The plan deletes more than the spec allows and ``--allow-destructive`` was not given."""

    exit_code = 3

    def __init__(self, message: str, *, deletions: int, share: float, limit: float):
        self.deletions = deletions
        self.share = share
        self.limit = limit
        super().__init__(message)


class RunTooLarge(TerminalError):
    """The plan builds more documents than ``reconcile.max_documents_per_run`` allows; nothing was done."""

    def __init__(self, message: str, *, documents: int, limit: int):
        self.documents = documents
        self.limit = limit
        super().__init__(message)


class CostLimitExceeded(TerminalError):
    """The plan's estimated embedding cost is above ``reconcile.max_cost``; nothing was spent."""

    def __init__(self, message: str, *, cost: float, limit: float):
        self.cost = cost
        self.limit = limit
        super().__init__(message)


class QuarantineNotFound(TerminalError):
    """A ``quarantine retry`` or ``drop`` named an item that is not in quarantine."""

    def __init__(self, message: str, *, items: list[str]):
        self.items = items
        super().__init__(message)


class ApplyInterrupted(RagstateError):
    """An apply stopped before it finished; committed batches stay, the next run resumes."""


# --- generations ----------------------------------------------------------------------


class GoldenSetError(TerminalError):
    """The golden queries file (``generations.golden.file``) cannot be read or has a bad line."""

    def __init__(self, message: str, *, path: Path | str, line: int | None = None):
        self.path = str(path)
        self.line = line
        super().__init__(message)


class RollbackError(TerminalError):
    """A rollback cannot be done (no earlier generation, dropped, or inconsistent with other kinds); nothing changed."""

    def __init__(self, message: str, *, kind: str, generation: int | None = None):
        self.kind = kind
        self.generation = generation
        super().__init__(message)


# --- query ----------------------------------------------------------------------------


class QueryError(TerminalError):
    """A query cannot be asked as given: empty text, k below 1, an unknown readiness mode,
    a pipeline the spec does not enable."""


class ServeError(TerminalError):
    """The query service cannot start as configured: its token file cannot be read or is
    empty, its token variable is unset, or the ``serve`` extra is not installed."""


class NotReady(RagstateError):
    """A pipeline's data is not converged, and the readiness mode refuses to answer."""

    exit_code = 2

    def __init__(self, message: str, *, pipeline: str, reasons: list[str]):
        self.pipeline = pipeline
        self.reasons = reasons
        super().__init__(message)


class GeneratorError(RagstateError):
    """A text generator failed (the leaves below say whether trying again may help)."""


class GeneratorConfigError(GeneratorError, TerminalError):
    """No generator is configured, its key is missing, or it refused the request or answered
    in another format."""


class GeneratorUnavailable(GeneratorError, TransientError):
    """A text generator cannot be reached now (connection refused, timeout, overloaded, server error)."""
