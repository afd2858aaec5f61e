"""Identifier allow-lists: the names that may reach SQL text (ragstate's own and a user's).

Below every layer: the spec validates table and column names with them when it loads, and
the stores validate them again before the dialect quotes them.
"""

from __future__ import annotations

import re

from ragstate.errors import IdentifierError

#: lower-case ASCII, digits and underscores, starting with a letter or underscore;
#: 48 characters leaves room for a prefix and suffixes inside PostgreSQL's 63.
_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,47}")  # fullmatch: "$" would let a final newline through


def ident(name: str, *, what: str = "identifier") -> str:
    """Return ``name`` if it is a safe SQL identifier, else raise ``IdentifierError``.

    Safe means: 1–48 characters of ``[a-z0-9_]``, not starting with a digit. Callers
    still quote it through the dialect; validation is the allow-list, quoting the belt.
    """
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        shown = repr(name)[:60] + ("…" if len(repr(name)) > 60 else "")
        raise IdentifierError(
            f"invalid {what} {shown}: use 1-48 characters of a-z, 0-9 and _, not starting with a digit"
        )
    return name


#: a name in the user's own database: letters of either case, digits and underscores,
#: starting with a letter or underscore, 1-60 characters (PostgreSQL keeps 63; ragstate's
#: view prefixes user columns with ``c_``). Looser than ``ident`` because users' tables
#: may use upper case (the dialect quotes the name exactly, so the case is kept); never
#: a quote, dot, space or semicolon, so a name cannot close its quotes or add a statement.
_USER_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,59}")


def user_ident(name: str, *, what: str = "column name") -> str:
    """Return ``name`` if it is a safe name of a user's table or column, else raise ``IdentifierError``.

    Callers quote it through the dialect (``UserName``), which keeps its case.
    """
    if not isinstance(name, str) or not _USER_IDENT.fullmatch(name):
        shown = repr(name)[:60] + ("…" if len(repr(name)) > 60 else "")
        raise IdentifierError(
            f"invalid {what} {shown}: ragstate reads user tables and columns named with 1-60 characters of "
            "a-z, A-Z, 0-9 and _, not starting with a digit (map a view of your own that renames others)"
        )
    return name
