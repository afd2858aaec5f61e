"""The fault log of one run: failures by class, retries, breaker changes, quarantine, memory.

Filled from the apply thread and the writer thread (hence the lock), and stored in the
run record as ``faults`` (``to_dict``), so that ``history`` and ``status`` can say what
went wrong during a run and what the engine did about it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ragstate.redact import redact

#: failure events kept per run (counts are always complete)
MAX_EVENTS = 50
#: characters of an error message kept per event
MAX_MESSAGE = 300


class FaultLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: re-attempts after a transient failure, by target (database, embedder, source)
        self.retries: dict[str, int] = {}
        #: calls turned away by an open breaker, by target
        self.fast_failed: dict[str, int] = {}
        #: failures by target and class (transient, memory, item, unexpected, fatal)
        self.failures: dict[str, dict[str, int]] = {}
        #: breaker state changes, in order
        self.breaker: list[dict[str, Any]] = []
        #: the first MAX_EVENTS failures, with what was done about each
        self.events: list[dict[str, Any]] = []
        #: items quarantined during the run, by kind
        self.quarantined: dict[str, int] = {}
        #: documents deleted from the source while the run read them, by kind (not failures)
        self.gone: dict[str, int] = {}
        #: batch sizing: budget, measured bytes per item, sizes used, halvings
        self.memory: dict[str, Any] = {}
        #: the class of the error that stopped the run, if one did
        self.stopped_by: str | None = None

    def failed(self, target: str, cls: str, exc: BaseException, handling: str) -> None:
        """A call to ``target`` failed with ``exc`` of class ``cls``; ``handling`` says what follows."""
        with self._lock:
            per = self.failures.setdefault(target, {})
            per[cls] = per.get(cls, 0) + 1
            if len(self.events) < MAX_EVENTS:
                self.events.append(
                    {
                        "at": time.time(),
                        "target": target,
                        "class": cls,
                        "type": type(exc).__name__,
                        "message": redact(str(exc))[:MAX_MESSAGE],
                        "handling": handling,
                    }
                )

    def retried(self, target: str) -> None:
        with self._lock:
            self.retries[target] = self.retries.get(target, 0) + 1

    def turned_away(self, target: str) -> None:
        with self._lock:
            self.fast_failed[target] = self.fast_failed.get(target, 0) + 1

    def breaker_changed(self, target: str, old: str, new: str, failures: int, last_error: str) -> None:
        with self._lock:
            self.breaker.append(
                {
                    "at": time.time(),
                    "target": target,
                    "from": old,
                    "to": new,
                    "failures": failures,
                    "last_error": last_error,
                }
            )

    def vanished(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self.gone[kind] = self.gone.get(kind, 0) + n

    def set_aside(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self.quarantined[kind] = self.quarantined.get(kind, 0) + n

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "retries": dict(self.retries),
                "fast_failed": dict(self.fast_failed),
                "failures": {t: dict(c) for t, c in self.failures.items()},
                "breaker": list(self.breaker),
                "events": list(self.events),
                "quarantined": dict(self.quarantined),
                "gone": dict(self.gone),
                "memory": dict(self.memory),
                "stopped_by": self.stopped_by,
            }
