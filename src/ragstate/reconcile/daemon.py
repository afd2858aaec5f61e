"""The daemon: reconcile on an interval until stopped; triggers, backoff, budget, one per store.

A cycle is one run: ``reconcile.run.apply`` observing shallowly, or, when a full verify is
due (``daemon.verify_interval_s``), ``reconcile.run.reconcile`` (deep observation, apply,
verify), over the run context its owner (a ``Project``, any ``run.Contexts``) hands out.
Between cycles the daemon waits:

=====================  ====================================================================
after                  the next cycle starts
=====================  ====================================================================
a cycle that ended     ``interval_s`` later (converged, partial: its budget was spent, or
                       not converged: the source moved meanwhile)
k failed cycles        ``min(max_backoff_s, interval_s · backoff_multiplier^k)`` later: a
in a row               failure is what the retries inside a run could not overcome, so the
                       daemon waits longer before it tries again; one cycle that does not
                       fail brings back the interval
a trigger              at once: SIGHUP or SIGUSR1, or ``POST /reconcile`` on the metrics
                       server (a trigger during a cycle starts the next one right after it)
a change notification  live mode (``daemon.live``, ``reconcile.live``): as soon as the
                       change is stable, a cycle observing just the changed paths (a
                       table: the table); it does not move the interval's full cycle
=====================  ====================================================================

Every wait changes by up to ``jitter`` of itself at random. Each run records, in its
``daemon`` field, the cycle, what started it, the wait scheduled before it and the
wait actually spent, whether that was a backoff, and the failures in a row before it.
A cycle that failed before its run could be recorded (the source could not be read,
another process held the writer lock, the store was down) is recorded by the daemon at
once, or as soon as the store answers again.

A cycle builds at most ``daemon.max_items`` documents and works at most
``daemon.max_seconds`` (``apply.budget``): a large backlog heals over several cycles,
each stopping at a batch boundary. SIGTERM or SIGINT stops the daemon after the current
batch (a second one interrupts at once); it exits 0.

Only one daemon runs per store: it holds the store's ``daemon`` lock (``stores.locks``,
the writer lock's machinery under another name) for its life. A second one fails at once
naming the first (``daemon.on_conflict: fail``) or waits, as a standby, until the lock
is free (``wait``). Each cycle still takes the writer lock, so an ``apply`` typed by
hand and a daemon's cycle never write at the same time.

Two processes acting from different specs must not fight. Each cycle reads the spec file
again once it holds the writer lock (``Contexts.reload``): an edited spec reaches a running
daemon without a restart (a store changed in it fails the cycle: restart for that). And a
cycle does not act when the store's last run, started after the daemon took its spec,
used another spec (an ``apply`` from another file, or with other environment overrides):
acting would undo that newer run with an older spec. The cycle is ``superseded``: the
daemon says so (a warning, ``last_error`` in ``status`` and ``/healthz``) and looks again
after the interval, acting once its own spec is the newer (its file edited) or the last
run used its spec.

What it is doing is recorded in ``daemon_state`` for ``ragstate status`` in any process,
served as metrics (``reconcile.metrics``) and logged, one line a cycle.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragstate.apply.budget import Budget
from ragstate.apply.record import CONVERGED, FAILED, NOT_CONVERGED, PARTIAL, REFUSED, RunRecord, new_run_id
from ragstate.errors import (
    DaemonRunning,
    DestructiveRefused,
    RagstateError,
    SpecSuperseded,
    StoreLocked,
    WriterLockLost,
)
from ragstate.faults.taxonomy import classify, is_transient
from ragstate.reconcile import live, run
from ragstate.reconcile.metrics import Metrics
from ragstate.reconcile.reports import StatusReport
from ragstate.reconcile.run import Contexts
from ragstate.reconcile.server import Answer, MetricsServer
from ragstate.reconcile.status import status as status_of
from ragstate.redact import redact, register_environment
from ragstate.stores import locks, records

if TYPE_CHECKING:
    from ragstate.spec.model import DaemonSpec

log = logging.getLogger(__name__)

#: how often a waiting daemon looks at its stop and trigger flags
TICK_S = 0.2
#: failed cycles kept in memory while the store cannot record them
MAX_UNRECORDED = 50
#: daemon states, as ``daemon_state.state`` records them
STARTING, WAITING_FOR_LOCK, IDLE, RECONCILING, BACKOFF, STOPPING, STOPPED = (
    "starting",
    "waiting_for_lock",
    "idle",
    "reconciling",
    "backoff",
    "stopping",
    "stopped",
)
#: a cycle that did not act: the store's last run used a newer spec than the daemon's
SUPERSEDED = "superseded"
#: outcomes after which the next cycle waits the interval (anything else backs off); a
#: superseded cycle waits the interval too: it waits for the spec file, not for a fault to pass
OK_OUTCOMES = (CONVERGED, PARTIAL, NOT_CONVERGED, SUPERSEDED)


@dataclass(frozen=True)
class Cycle:
    """How one cycle ended."""

    number: int
    outcome: str
    seconds: float
    record: RunRecord | None
    error: str | None = None
    quarantined: int = 0
    #: a full verify cycle (deep observation, apply, verify)
    verify: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome in OK_OUTCOMES


class Daemon:
    """Reconciles until stopped (``run``); ``once`` runs one cycle.

    ``project`` hands out the run context of its current spec (a ``Project``); each
    cycle reads the spec again (``reload``) and runs ``reconcile.run`` over a new one.
    """

    def __init__(
        self,
        project: Contexts,
        *,
        once: bool = False,
        metrics_port: int | None = None,
        allow_destructive: bool = False,
        version: str = "",
        rng: random.Random | None = None,
        live: bool | None = None,
    ):
        self.project = project
        #: live mode (``reconcile.live``): None takes ``daemon.live`` from the spec
        self.live_mode = live
        self.once = once
        self.allow_destructive = allow_destructive
        self.metrics = Metrics(version)
        self._port = metrics_port if metrics_port is not None else self.settings.metrics_port
        self._rng = rng or random.Random()
        self._server: MetricsServer | None = None
        self._lease: locks.WriterLease | None = None
        self._since = time.time()
        self.cycle = 0
        self.failures = 0
        self.state = STARTING
        self.next_cycle_at: float | None = None
        self.last_success_at: float | None = None
        self.last_verify_at: float | None = None
        self.last_error: str | None = None
        self.last_status: StatusReport | None = None
        # Set by signal handlers and the HTTP thread: plain attributes, no locks.
        self._stop_reason: str | None = None
        self._trigger: str | None = None
        self._budget: Budget | None = None
        self._unrecorded: list[RunRecord] = []
        # --- live mode hook: the hint feed, and the hint the next cycle observes ---
        self.live: live.Live | None = None
        self._hint: live.Hint | None = None

    @property
    def settings(self) -> DaemonSpec:
        """The ``daemon`` section of the spec as last read (``Contexts.reload``)."""
        return self.project.spec.daemon

    # --- control (safe from signal handlers and other threads) -------------------------

    def stop(self, reason: str = "asked to stop") -> None:
        """Stop after the current batch (or at once when waiting)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        budget = self._budget
        if budget is not None:
            budget.request_stop(reason)

    def trigger(self, source: str = "api") -> None:
        """Start a cycle now (after the current one, if one runs)."""
        self._trigger = source

    @property
    def stopping(self) -> bool:
        return self._stop_reason is not None

    @property
    def metrics_url(self) -> str | None:
        return self._server.url if self._server is not None else None

    # --- the loop -----------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; return the exit code.

        ====  =================================================================
        code  meaning
        ====  =================================================================
        0     stopped by SIGTERM/SIGINT (or ``stop``) after the current batch;
              ``once``: the cycle converged
        2     ``once``: the cycle stopped with work left (its budget was spent)
        4     ``once``: converged except items in quarantine
        1     ``once``: the cycle failed
        130   a second SIGTERM/SIGINT interrupted a batch
        ====  =================================================================

        Raises:
            DaemonRunning: another daemon runs on the store (``on_conflict: fail``).
            WriterLockLost: another daemon took the store over (its lock was lost).
            RagstateError: the spec cannot work (a model or the source is missing).
        """
        register_environment()
        restore = self._install_signals()
        try:
            self._lease = self._acquire()
            if self._lease is None:
                return 0  # stopped while waiting for the other daemon
            self._startup_checks()
            # A daemon that starts takes its spec as the newest: runs before it do not stop it.
            self.project.spec_since = time.time()
            self._start_server()
            self._load_state()
            if self.live_mode if self.live_mode is not None else self.settings.live:
                self.live = live.start(self.project, self.settings)  # before the first cycle: no change unheard
            log.info(
                "daemon started on %s: every %g s, full verify every %s, budget %s%s",
                self.project.context().store.description,
                self.settings.interval_s,
                f"{self.settings.verify_interval_s:g} s" if self.settings.verify_interval_s else "first cycle",
                _budget_words(self.settings.max_items, self.settings.max_seconds),
                f"; metrics on {self.metrics_url}" if self.metrics_url else "",
                extra={"event": "started", "pid": os.getpid(), "metrics_url": self.metrics_url},
            )
            return self._loop()
        except KeyboardInterrupt:
            log.warning("daemon interrupted during a batch; committed batches stay", extra={"event": "interrupted"})
            return 130
        finally:
            self._shutdown()
            restore()

    def _loop(self) -> int:
        trigger, waited, scheduled = "start", 0.0, 0.0
        full_at = 0.0  # when the interval's full cycle is due (monotonic)
        while True:
            hint, self._hint = self._hint, None
            with live.narrowing(self.project, hint):
                cycle = self._cycle(trigger, waited, scheduled)
            narrowed = self._after_hint(hint, cycle)
            if self.once or self.stopping:
                self._log_cycle(cycle, None)
                return _once_exit(cycle) if self.once else 0
            if narrowed:  # a live cycle: the interval's full observation keeps its time
                scheduled = max(0.0, full_at - time.monotonic())
            else:
                scheduled = self._delay()
                full_at = time.monotonic() + scheduled
            self.next_cycle_at = time.time() + scheduled
            self.state = BACKOFF if self.failures else IDLE
            self.metrics.record_schedule(self.failures, scheduled)
            self._save_state()
            self._log_cycle(cycle, scheduled)
            started = time.monotonic()
            trigger = self._wait(scheduled)
            waited = time.monotonic() - started
            if trigger is None:
                return 0

    def _cycle(self, trigger: str, waited: float, scheduled: float) -> Cycle:
        self.cycle += 1
        self.state = RECONCILING
        self.next_cycle_at = None
        self._save_state()
        verify = self._verify_due()
        context = {
            "cycle": self.cycle,
            "trigger": trigger,
            "delay_s": round(scheduled, 3),
            "waited_s": round(waited, 3),
            "backoff": self.failures > 0,
            "consecutive_failures": self.failures,
            "verify": verify,
            "pid": os.getpid(),
        }
        budget = Budget(max_items=self.settings.max_items, max_seconds=self.settings.max_seconds)
        self._budget = budget
        if self._stop_reason is not None:
            budget.request_stop(self._stop_reason)
        run_id = new_run_id()
        started, t0 = time.time(), time.monotonic()
        command = "daemon verify" if verify else "daemon"
        record: RunRecord | None = None
        error: str | None = None
        try:
            self._flush_unrecorded()
            if self._lease is not None:
                self._lease.plock.check()  # still the only daemon (PostgreSQL: the lock's connection lives)
            options: dict[str, Any] = dict(
                allow_destructive=self.allow_destructive, budget=budget, run_id=run_id, daemon=context
            )
            # The spec is read again and compared with the store's last run while holding
            # the writer lock, so that an apply that finished while this cycle waited for
            # the lock is seen (the cycle would otherwise undo it with the older spec).
            with run.writer_lock(self.project.context(), command=command, budget=budget):
                self._read_spec()
                self._check_not_superseded()
                if verify:
                    record = run.reconcile(self.project.context(), command=command, **options)
                else:
                    record = run.apply(self.project.context(), depth="shallow", command=command, **options)
            outcome = record.status
        except WriterLockLost:
            raise
        except SpecSuperseded as exc:
            outcome, error = SUPERSEDED, redact(str(exc))
        except DestructiveRefused as exc:
            outcome, error = REFUSED, redact(str(exc))
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a failed cycle: the daemon backs off and tries again
            outcome, error = FAILED, f"{type(exc).__name__}: {redact(str(exc))}"
            log.debug("cycle %d failed", self.cycle, exc_info=True)
            self._remember_failure(run_id, command, started, exc, context)
        finally:
            self._budget = None
        seconds = time.monotonic() - t0
        quarantined = record.quarantined_total if record is not None else 0
        cycle = Cycle(self.cycle, outcome, seconds, record, error, quarantined, verify)
        self._after(cycle, command)
        return cycle

    def _read_spec(self) -> None:
        """Take the spec file's current content (``Contexts.reload``): a spec edited since the
        last cycle reaches the daemon without a restart."""
        before = self.project.spec_hash
        if self.project.reload():
            log.info(
                "spec %s changed (%s → %s); this cycle uses it",
                self.project.origin[0] if self.project.origin else "",
                before,
                self.project.spec_hash,
                extra={"event": "spec_reloaded", "spec_hash": self.project.spec_hash, "previous": before},
            )

    def _check_not_superseded(self) -> None:
        """Refuse to act when the store's last run, started after the daemon took its spec,
        used another spec: that run is newer, so acting would undo it with an older spec.

        Raises:
            SpecSuperseded: naming the run, both spec hashes and the daemon's spec file.
        """
        project, store = self.project, self.project.context().store
        with store.session() as s:
            last = records.last_since(store, s, project.spec_since)
        if last is None or last.spec_hash == project.spec_hash:
            return
        where = f" (read from {project.origin[0]})" if project.origin else ""
        raise SpecSuperseded(
            f"not acting: the store's last run {last.run_id} ({last.command}) used a newer spec {last.spec_hash} "
            f"than this daemon's {project.spec_hash}{where}; edit the daemon's spec file to what it should "
            "reconcile (it is read again every cycle), or restart the daemon",
            run_id=last.run_id,
            spec_hash=last.spec_hash,
        )

    def _after(self, cycle: Cycle, command: str) -> None:
        now = time.time()
        record = cycle.record
        self.failures = 0 if cycle.ok else self.failures + 1
        self.last_error = cycle.error
        if cycle.outcome == CONVERGED:
            self.last_success_at = now
            if cycle.verify and record is not None and record.verify is not None:
                self.last_verify_at = now
        artifacts = self.project.spec.artifacts
        models = {k: str(getattr(getattr(artifacts, k), "model", "") or "") for k in type(artifacts).model_fields}
        self.metrics.record_run(cycle.outcome, cycle.seconds, command, record, now, models)
        try:
            self.last_status = status_of(self.project.context())
            self.metrics.record_status(self.last_status)
        except Exception as exc:  # the store may be down: readiness is unknown until it answers
            self.last_status = None
            log.debug("could not observe after cycle %d: %s", cycle.number, redact(str(exc)))
        self.metrics.record_breakers(self.project.context().guard.states())

    # --- waiting, signals ---------------------------------------------------------------

    def _delay(self) -> float:
        s = self.settings
        base = (
            s.interval_s
            if not self.failures
            else min(s.max_backoff_s, s.interval_s * s.backoff_multiplier**self.failures)
        )
        return max(0.0, base * (1 + s.jitter * self._rng.uniform(-1, 1)))

    def _wait(self, seconds: float) -> str | None:
        """Sleep until ``seconds`` passed (``interval``/``backoff``), a trigger came (its
        source), or a stop (None)."""
        deadline = time.monotonic() + seconds
        while True:
            if self.stopping:
                return None
            if self._trigger is not None:
                trigger, self._trigger = self._trigger, None
                log.info("triggered by %s: starting a cycle now", trigger, extra={"event": "triggered", "by": trigger})
                return trigger
            left = deadline - time.monotonic()
            if left <= 0:
                return "backoff" if self.failures else "interval"
            if self.live is not None and not self.failures:  # hints wait out a backoff
                self._hint = self.live.queue.take()
                if self._hint is not None:
                    return "live"
                soon = self.live.queue.next_ready_s()
                self.live.queue.wake.wait(min(TICK_S, left, soon if soon is not None else TICK_S))
                continue
            time.sleep(min(TICK_S, left))

    def _after_hint(self, hint: live.Hint | None, cycle: Cycle) -> bool:
        """Live mode: count the queue's events, and the latency of the changes the cycle made
        ready; a change a live cycle did not converge goes back to the queue. True when the
        cycle was narrowed to changed paths (the interval's full cycle keeps its time)."""
        if self.live is None:
            return False
        done = hint is not None and cycle.outcome == CONVERGED
        now = time.monotonic()
        counts = self.live.queue.counts
        latencies = tuple(now - t for t in hint.since) if done and hint is not None else ()
        self.metrics.record_live(counts.received, counts.dropped, counts.coalesced, latencies)
        if hint is None:
            return False
        # stopped by its budget, or the source moved meanwhile: the next live cycle goes on (a
        # failed, refused or superseded cycle does not: the interval's full cycle looks again)
        if cycle.outcome in (PARTIAL, NOT_CONVERGED):
            if hint.paths is None:
                self.live.queue.put_all(hint.reason)
            else:
                self.live.queue.put(hint.paths)
        return hint.paths is not None and cycle.ok

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return lambda: None  # signals reach the main thread only; the caller stops us

        def stop(signum: int, _frame: Any) -> None:
            if self.stopping:
                raise KeyboardInterrupt  # a second one: do not wait for the batch
            self.stop(f"{signal.Signals(signum).name} received")

        def trigger(signum: int, _frame: Any) -> None:
            self.trigger(signal.Signals(signum).name)

        wanted = {signal.SIGTERM: stop, signal.SIGINT: stop}
        for name in ("SIGHUP", "SIGUSR1"):
            if hasattr(signal, name):
                wanted[getattr(signal, name)] = trigger
        previous = {signum: signal.signal(signum, handler) for signum, handler in wanted.items()}

        def restore() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

        return restore

    # --- the single-instance lock ------------------------------------------------------

    def _acquire(self) -> locks.WriterLease | None:
        """Take the store's daemon lock; None when stopped while waiting for it."""
        store = self.project.context().store
        announced = False
        failures = 0
        while not self.stopping:
            try:
                return locks.acquire(
                    store,
                    name="daemon",
                    mode="fail",
                    command="daemon",
                    retry=lambda fn: self.project.context().guard.call("database", fn),
                    reap_runs=False,
                )
            except StoreLocked as exc:
                who = locks.describe(exc.holder).replace("`daemon`", "a ragstate daemon")
                if self.settings.on_conflict == "fail":
                    raise DaemonRunning(
                        f"{store.description} is already reconciled by {who}; only one daemon may run per store. "
                        "Stop it first, or set daemon.on_conflict: wait to keep this one as a standby",
                        holder=exc.holder,
                    ) from None
                if not announced:
                    announced = True
                    self.state = WAITING_FOR_LOCK
                    log.info(
                        "%s is reconciled by %s; waiting to take over when it stops (daemon.on_conflict: wait)",
                        store.description,
                        who,
                        extra={"event": "standby", "holder": exc.holder},
                    )
                if self._wait(1.0) is None:
                    return None
            except RagstateError as exc:
                if not is_transient(exc):
                    raise
                failures += 1
                delay = min(self.settings.max_backoff_s, self.settings.interval_s * 2**failures)
                log.warning(
                    "cannot reach %s to start (%s); trying again in %.0f s",
                    store.description,
                    redact(str(exc)),
                    delay,
                    extra={"event": "start_failed", "delay_s": delay},
                )
                if self._wait(delay) is None:
                    return None
        return None

    def _startup_checks(self) -> None:
        """Fail fast on what no cycle can get past: the spec's models and plugins exist
        (resolved without loading), the source can be opened.

        Hook: ``ragstate doctor``'s cheap checks (store rights, extensions, disk) belong
        here once ``Project.doctor`` exists.
        """
        ctx = self.project.context()
        ctx.desired()
        ctx.source()

    # --- state ------------------------------------------------------------------------

    def _verify_due(self) -> bool:
        every = self.settings.verify_interval_s
        if self.last_verify_at is None:
            return True
        return every is not None and time.time() - self.last_verify_at >= every

    def _load_state(self) -> None:
        """Carry over when the store was last verified (a restarted daemon does not verify again at once)."""
        if self.settings.verify_interval_s is None:
            return
        try:
            store = self.project.context().store
            with store.session() as s:
                state = records.daemon_state(store, s)
        except RagstateError:
            return
        if state and state.get("last_verify_at"):
            self.last_verify_at = float(state["last_verify_at"])
            self.last_success_at = state.get("last_success_at")

    def _save_state(self) -> None:
        state = {
            "holder": {"pid": os.getpid(), "host": socket.gethostname(), "since": self._since},
            "state": self.state,
            "cycle": self.cycle,
            "consecutive_failures": self.failures,
            "interval_s": self.settings.interval_s,
            "next_cycle_at": self.next_cycle_at,
            "last_success_at": self.last_success_at,
            "last_verify_at": self.last_verify_at,
            "last_error": self.last_error,
        }
        try:
            store = self.project.context().store
            with store.session() as s:
                records.set_daemon_state(store, s, state)
        except Exception as exc:  # the store may be down; the state is written again next time
            log.debug("could not record the daemon's state: %s", redact(str(exc)))

    def _remember_failure(
        self, run_id: str, command: str, started: float, exc: BaseException, context: dict[str, Any]
    ) -> None:
        """Keep a failed cycle that left no run row, to record it once the store answers."""
        try:
            store = self.project.context().store
            with store.session() as s:
                if records.get(store, s, run_id) is not None:
                    return
        except Exception:
            pass
        record = RunRecord(
            run_id=run_id,
            command=command,
            status=FAILED,
            spec_hash=self.project.spec_hash,
            started_at=started,
            finished_at=time.time(),
            error=redact(str(exc)) or type(exc).__name__,
            error_type=type(exc).__name__,
            error_class=classify(exc).family,
            daemon=context,
        )
        record.timings["total_s"] = round(record.finished_at - started, 4)  # type: ignore[operator]
        self._unrecorded = (self._unrecorded + [record])[-MAX_UNRECORDED:]
        try:  # the store may answer (the source failed, or another writer held the lock)
            self._flush_unrecorded(late=False)
        except Exception as flush_error:
            log.debug("failed cycle kept to record later: %s", redact(str(flush_error)))

    def _flush_unrecorded(self, late: bool = True) -> None:
        """Record the failed cycles kept in memory (``late``: they waited for the store)."""
        if not self._unrecorded:
            return
        pending = list(self._unrecorded)
        store = self.project.context().store
        with store.session() as s:
            for r in pending:
                records.insert_finished(
                    store,
                    s,
                    r.run_id,
                    r.command,
                    r.spec_hash,
                    status=r.status,
                    started_at=r.started_at,
                    finished_at=r.finished_at or r.started_at,
                    counts=r.counts(),
                    timings=r.timings,
                    error=r.error,
                )
                self._unrecorded.remove(r)
        if late:
            log.info(
                "recorded %d failed cycle(s) now that the store answers", len(pending), extra={"event": "recorded"}
            )

    # --- endpoints ----------------------------------------------------------------------

    def _start_server(self) -> None:
        if self._port is None:
            return
        self._server = MetricsServer(
            self.settings.metrics_host,
            self._port,
            metrics=self.metrics,
            health=self._health,
            ready=self._ready,
            trigger=self.trigger,
        )

    def _health(self) -> Answer:
        body = {
            "status": "stopping" if self.stopping else "ok",
            "state": self.state,
            "cycle": self.cycle,
            "consecutive_failures": self.failures,
            "next_cycle_at": self.next_cycle_at,
            "last_success_at": self.last_success_at,
            "last_error": self.last_error,
        }
        return (503 if self.stopping else 200), body

    def _ready(self) -> Answer:
        status = self.last_status
        if status is None:
            return 503, {"ready": False, "reason": "not observed yet (or the store did not answer)"}
        pipelines = {n: {"ready": p.ready, "reasons": p.reasons} for n, p in status.pipelines.items()}
        return (200 if status.ready else 503), {"ready": status.ready, "pipelines": pipelines}

    def _shutdown(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        if self._lease is not None:
            self.state = STOPPED
            self.next_cycle_at = None
            self._save_state()
            self._lease.release()
            self._lease = None
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._stop_reason is not None:
            log.info("daemon stopped (%s)", self._stop_reason, extra={"event": "stopped"})

    def _log_cycle(self, cycle: Cycle, next_delay: float | None) -> None:
        """One line a cycle: what it did, and when the next one starts (and why then)."""
        record = cycle.record
        extra: dict[str, Any] = {
            "event": "cycle",
            "cycle": cycle.number,
            "outcome": cycle.outcome,
            "seconds": round(cycle.seconds, 3),
            "verify": cycle.verify,
            "consecutive_failures": self.failures,
            "next_delay_s": round(next_delay, 3) if next_delay is not None else None,
            "backoff": bool(self.failures) and next_delay is not None,
        }
        what = ""
        if record is not None:
            built = {k: c.built for k, c in record.kinds.items() if c.built}
            deleted = sum(c.deleted + c.purged for c in record.kinds.values())
            extra.update(run_id=record.run_id, built=built, deleted=deleted, drift=record.drift)
            parts = [f"built {sum(built.values())}"] if built else []
            parts += [f"deleted {deleted}"] if deleted else []
            parts += [f"{cycle.quarantined} in quarantine"] if cycle.quarantined else []
            what = (", " + ", ".join(parts) if parts else ", nothing to do") + f" [run {record.run_id}]"
            if record.error:
                what += f": {record.error}"
        elif cycle.error:
            what = f": {cycle.error}"
        if next_delay is not None:
            what += f"; next cycle in {next_delay:.1f} s"
            if self.failures:
                what += f" (backing off after {self.failures} failed cycle(s) in a row)"
        level = logging.INFO if cycle.ok and not cycle.error else logging.WARNING
        log.log(
            level,
            "cycle %d%s: %s in %.2f s%s",
            cycle.number,
            " (full verify)" if cycle.verify else "",
            cycle.outcome,
            cycle.seconds,
            what,
            extra=extra,
        )


def _once_exit(cycle: Cycle) -> int:
    return run.exit_code(cycle.outcome, cycle.quarantined, once=True)


def _budget_words(items: int | None, seconds: float | None) -> str:
    parts = ([f"{items} documents"] if items else []) + ([f"{seconds:g} s"] if seconds else [])
    return " and ".join(parts) + " a cycle" if parts else "none"
