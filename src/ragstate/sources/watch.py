"""File-system events of a folder source (``watchfiles``, which uses inotify on Linux), for
live mode (``reconcile.live``): each batch of changed paths goes to a callback.

Events are hints. The watcher runs in a thread of its own from before the daemon's first
cycle, so a change made while that cycle runs is heard; when watching fails (the folder was
removed, the inotify watches ran out) the watcher says so through ``on_lost`` (the daemon
then observes everything) and starts again after a pause.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

#: how long watchfiles waits for more events before it hands over a batch (ms)
STEP_MS = 50
#: how often the watcher thread looks at its stop flag (ms)
TICK_MS = 500
#: pause before watching again after a failure (s)
RETRY_S = 2.0


def relative_paths(root: Path, changed: Iterable[str]) -> set[str]:
    """``changed`` (absolute paths) relative to ``root`` in POSIX form, without hidden files or
    folders (the source skips them too) and without paths outside ``root``."""
    out = set()
    for path in changed:
        try:
            rel = PurePosixPath(Path(path).relative_to(root).as_posix())
        except ValueError:
            continue
        if rel.parts and not any(part.startswith(".") for part in rel.parts):
            out.add(str(rel))
    return out


class FolderWatcher:
    """Watches ``root`` recursively in a thread; ``on_paths`` receives the changed paths
    (relative, POSIX), ``on_lost`` a reason when events may have been missed."""

    def __init__(
        self,
        root: Path,
        on_paths: Callable[[set[str]], None],
        on_lost: Callable[[str], None],
        *,
        debounce_s: float = 0.5,
    ):
        self.root = Path(root)
        self._on_paths = on_paths
        self._on_lost = on_lost
        # watchfiles' own grouping is bounded well below the daemon's debounce, which decides
        # when a path is stable (reconcile.live)
        self._debounce_ms = max(STEP_MS, min(int(debounce_s * 1000), 1600))
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ragstate-watch", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        """Start watching; returns once the watch is set up (or ``timeout`` passed)."""
        self._thread.start()
        self._ready.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        import watchfiles

        while not self._stop.is_set():
            try:
                for changes in watchfiles.watch(
                    self.root,
                    watch_filter=None,
                    debounce=self._debounce_ms,
                    step=STEP_MS,
                    stop_event=self._stop,
                    rust_timeout=TICK_MS,
                    yield_on_timeout=True,
                    raise_interrupt=False,
                ):
                    self._ready.set()
                    paths = relative_paths(self.root, (path for _change, path in changes))
                    if paths:
                        self._on_paths(paths)
            except Exception as exc:  # the folder went away, inotify ran out of watches, ...
                self._ready.set()
                if self._stop.is_set():
                    return
                log.warning(
                    "watching %s failed (%s: %s); the next cycle observes the whole source, watching again in %g s",
                    self.root,
                    type(exc).__name__,
                    exc,
                    RETRY_S,
                    extra={"event": "watch_failed"},
                )
                self._on_lost(f"watching failed: {type(exc).__name__}")
                self._stop.wait(RETRY_S)
