"""The exit codes of every ``ragstate`` command, in one table.

The CLI appends :func:`help_line` to each command's ``--help`` and README.md's command
table holds :func:`readme_cell` (``tests/test_exits.py`` checks both), so the help, the
README and the code that exits cannot disagree without a test failing.
"""

from __future__ import annotations

#: apply and reconcile: a new generation failed verification and was not switched in
REJECTED = 5
#: apply and reconcile: converged except items in quarantine
QUARANTINED = 4
#: apply and reconcile: a destructive plan refused without ``--allow-destructive``
DESTRUCTIVE_REFUSED = 3
#: a second SIGINT/SIGTERM interrupted a batch (committed batches stay)
INTERRUPTED = 130

_APPLY = (
    (0, "converged"),
    (1, "error (or a failed start-up check)"),
    (DESTRUCTIVE_REFUSED, "destructive plan refused"),
    (QUARANTINED, "converged except quarantined items"),
    (REJECTED, "a new generation failed verification (not switched)"),
)
_ERROR = (1, "error")

#: command (as typed after ``ragstate``) -> (code, meaning), in the order they are shown
EXIT_CODES: dict[str, tuple[tuple[int, str], ...]] = {
    "init": ((0, "written"), (1, "error (nothing written)")),
    "plan": ((0, "in sync"), (2, "drift"), _ERROR),
    "apply": _APPLY,
    "reconcile": _APPLY,
    "verify": ((0, "in sync"), (2, "drift"), _ERROR),
    "status": ((0, "all ready"), (2, "some not"), _ERROR),
    "quarantine list": ((0, "listed"), _ERROR),
    "quarantine retry": _APPLY,
    "quarantine drop": ((0, "dropped"), (1, "error (an item named is not in quarantine)")),
    "history": ((0, "listed"), _ERROR),
    "rollback": ((0, "switched (or already there)"), (1, "nothing switched (error)")),
    "query": ((0, "answered"), (2, "not ready (refused)"), _ERROR),
    "source map-table": ((0, "mapped"), (1, "incompatible (nothing created)")),
    "source check": ((0, "fits"), (2, "view needs recreating"), (1, "table no longer fits (or error)")),
    "daemon": (
        (0, "stopped cleanly by SIGTERM/SIGINT (`--once`: converged)"),
        (1, "could not start (another daemon runs, bad spec; `--once`: the cycle failed)"),
        (2, "`--once`: its budget left work"),
        (QUARANTINED, "`--once`: converged except quarantined items"),
        (INTERRUPTED, "a second signal interrupted a batch"),
    ),
    "serve": ((0, "stopped by SIGTERM/SIGINT"), (1, "could not start (bad spec or token, port taken)")),
    "report": ((0, "written"), _ERROR),
    "doctor": ((0, "every check passed"), (1, "a check failed")),
    "cache status": ((0, "shown"), _ERROR),
    "cache evict": ((0, "evicted"), _ERROR),
}

#: commands whose README cell says "as `apply`" rather than repeating its codes
_SAME_AS = {"reconcile": "apply", "quarantine retry": "apply"}


def _codes(command: str) -> str:
    return ", ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES[command])


def help_line(command: str) -> str:
    """The paragraph ending a command's ``--help``: every exit code with its meaning."""
    return f"Exit codes: {_codes(command).replace('`', '')}."


def readme_cell(command: str) -> str:
    """The "exit codes" cell of README.md's command table for ``command``."""
    if command in _SAME_AS:
        return f"as `{_SAME_AS[command]}`"
    return _codes(command)
