"""Every error ragstate raises on purpose: one root, retry markers, one leaf per condition.

The engine reads the markers, never the message: a ``TransientError`` may succeed when
tried again (a lost connection, a lock); a ``TerminalError`` will not (a bad spec, a
malformed document). Messages name the file, field or document concerned and never
contain a secret (see ``ragstate.redact``).
"""

from __future__ import annotations

from pathlib import Path


class RagstateError(Exception):
    """Root of every error ragstate raises on purpose."""

    #: the process exit code the CLI uses for this error
    exit_code: int = 1


class TransientError(RagstateError):
    """Marker: the same call may succeed if tried again later."""


class TerminalError(RagstateError):
    """Marker: trying again without a change of input or spec will fail the same way."""


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


class DocumentError(TerminalError):
    """One document cannot be loaded (malformed, undecodable, duplicate id)."""

    def __init__(self, message: str, *, path: Path | str | None = None, doc_id: str | None = None):
        self.path = str(path) if path is not None else None
        self.doc_id = doc_id
        super().__init__(message)


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


class StoreConfigError(StoreError, TerminalError):
    """The store URL or its setup is wrong (unknown scheme, missing extension, no rights)."""


class SchemaError(StoreError, TerminalError):
    """The store's tables differ from what this version of ragstate expects and cannot be migrated."""


class IdentifierError(TerminalError):
    """A table, schema or column name failed validation and was not used in SQL."""


# --- compute --------------------------------------------------------------------------


class ModelError(TerminalError):
    """A model cannot be found locally, loaded, or gave output of the wrong shape."""


class PluginError(TerminalError):
    """A plugin named in the spec is unknown or failed to load."""


# --- plan and apply -------------------------------------------------------------------


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


class ApplyInterrupted(RagstateError):
    """An apply stopped before it finished; committed batches stay, the next run resumes."""
