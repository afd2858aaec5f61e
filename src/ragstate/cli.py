"""The ``ragstate`` command: parse options, call one library function, render, exit.

command    code          meaning
=========  ============  ========================================================
plan,      0 / 2 / 1     in sync / drift found / error
verify
apply,     0 / 1 / 3 /   converged / error (or did not converge) / destructive plan
reconcile, 4 / 5         refused without ``--allow-destructive`` / converged except
quarantine               items in quarantine / a new generation failed verification
retry                    and was not switched in
status     0 / 2 / 1     every pipeline ready / some not ready / error
history    0 / 1         listed / error
rollback   0 / 1         switched back (or already there) / nothing switched (error)
doctor     0 / 1         every check passed (warnings allowed) / a check failed
source     0 / 1         mapped (compatible) / not compatible, nothing created
map-table
source     0 / 2 / 1     fits, view current / fits, view to (re)create / does not
check                    fit (or error)
quarantine 0 / 1         done / error (an item named is not in quarantine)
list, drop
daemon     0 / 1 / 130   stopped cleanly by SIGTERM/SIGINT / could not start (another
                         daemon runs, bad spec) / interrupted mid-batch by a second
                         signal; ``--once``: as apply, and 2 when its budget left work
report     0 / 1         written / error
query      0 / 2 / 1     answered (in warn mode perhaps with warnings) / refused:
                         the pipeline's data is not ready / error
serve      0 / 1         stopped by SIGTERM/SIGINT / could not start (bad spec or
                         token, port taken)
cache      0 / 1         done / error
status,
evict
=========  ============  ========================================================
=======
Exit codes (for CI) are listed per command in ``ragstate.exits``; each command's ``--help``
ends with its line from there.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from ragstate import __version__, exits, logs
from ragstate.apply.record import RunRecord
from ragstate.errors import NotReady, RagstateError
from ragstate.pipelines.render import render_retrieval
from ragstate.plan.model import Plan
from ragstate.plan.render import render_plan
from ragstate.project import Project
from ragstate.reconcile.html import render_html
from ragstate.reconcile.render import (
    render_cache,
    render_duplicates,
    render_doctor,
    render_history,
    render_quarantine,
    render_run,
    render_status,
    render_verify,
)
from ragstate.reconcile.run import exit_code as run_exit_code
from ragstate.redact import redact, redact_data, register_environment
from ragstate.sources.loaders import detect_formats
from ragstate.sources.render import render_mapping
from ragstate.spec.starter import starter_spec

app = typer.Typer(
    name="ragstate",
    help="Keep the data behind retrieval-augmented generation correct: plan, apply, verify.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain click help: typer's rich panels print a type placeholder even on flags (`--json <bool>`)
    rich_markup_mode=None,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", envvar="RAGSTATE_CONFIG", metavar="FILE", help="Spec file.", show_default=True),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
ProfileOpt = Annotated[
    str | None,
    typer.Option("--profile", envvar="RAGSTATE_PROFILE", metavar="NAME", help="Profile of the spec to overlay."),
]
DestructiveOpt = Annotated[
    bool, typer.Option("--allow-destructive", help="Carry out deletions beyond reconcile.max_delete_share.")
]
DEFAULT_CONFIG = Path("ragstate.yaml")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _version(value: bool) -> None:
    if value:
        out.print(f"ragstate {__version__}")
        raise typer.Exit(0)


LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        envvar="RAGSTATE_LOG_FORMAT",
        metavar="FORMAT",
        help="text (for people) or json (one object a line).",
    ),
]


@app.callback()
def main_options(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level", envvar="RAGSTATE_LOG_LEVEL", metavar="LEVEL", help="debug, info, warning (daemon: info)."
        ),
    ] = None,
    log_format: LogFormatOpt = None,
) -> None:
    register_environment()
    ctx.obj = {"log_level": log_level, "log_format": log_format or "text"}
    _configure_logs(log_level or "warning", log_format or "text")


def _configure_logs(level: str, fmt: str) -> None:
    try:
        logs.configure(level, fmt)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-format") from None


# --- plumbing -------------------------------------------------------------------------


@contextmanager
def _handled(as_json: bool) -> Iterator[None]:
    """Turn ragstate errors into a message and an exit code; nothing else escapes."""
    try:
        yield
    except typer.Exit:
        raise
    except RagstateError as exc:
        reasons = [redact(r) for r in exc.reasons] if isinstance(exc, NotReady) else None
        _fail(str(exc), exc.exit_code, type(exc).__name__, as_json, reasons=reasons)
    except KeyboardInterrupt:
        _fail("interrupted; committed batches are kept and the next run resumes", 130, "KeyboardInterrupt", as_json)
    except Exception as exc:  # a bug: say so plainly, keep the traceback for --log-level debug
        logging.getLogger("ragstate").debug("internal error", exc_info=True)
        _fail(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --log-level debug for details)",
            1,
            "InternalError",
            as_json,
        )


def _fail(message: str, code: int, kind: str, as_json: bool, *, reasons: list[str] | None = None) -> None:
    message = redact(message)
    if as_json:
        data: dict[str, Any] = {"error": message, "error_type": kind, "exit_code": code}
        if reasons is not None:
            data["reasons"] = reasons
        out.print_json(json.dumps(data))
    else:
        err.print(f"[bold red]error:[/] {escape(message)}", markup=True)  # a name in it is not markup
    raise typer.Exit(code)


def _project(config: Path, profile: str | None) -> Project:
    return Project.from_file(config, profile=profile)


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    """Print ``data`` as JSON or ``text``, with every secret masked either way."""
    if as_json:
        out.print_json(json.dumps(redact_data(json.loads(json.dumps(data, default=str)))))
    else:
        out.print(redact(text), markup=False)


class _Eta(ProgressColumn):
    """Time left: from the measured rate once there is one, else from the plan's estimate
    (``estimate_s``, from the throughput of earlier runs), counting down."""

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text("done")
        left = task.time_remaining
        if left is None and task.fields.get("estimate_s"):
            left = max(0.0, task.fields["estimate_s"] - (task.elapsed or 0.0))
        if left is None:
            return Text("ETA -:--:--")
        return Text(f"ETA {int(left) // 3600}:{int(left) % 3600 // 60:02d}:{int(left) % 60:02d}")


class _Bar:
    """rich progress bar on stderr, for the library's Progress protocol: a bar per kind and,
    when several kinds build, an overall one whose ETA starts from the plan's estimate."""

    OVERALL = "all kinds"

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._progress: Progress | None = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> _Bar:
        if self.enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                _Eta(),
                console=err,
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def planned(self, estimate: Any) -> None:
        """The plan's ``Estimate``: documents over every kind, seconds expected."""
        if self._progress is not None and estimate.items:
            self._tasks[self.OVERALL] = self._progress.add_task(
                self.OVERALL, total=estimate.items, rate="", estimate_s=estimate.seconds
            )

    def start(self, kind: str, total: int) -> None:
        if self._progress is not None:
            self._tasks[kind] = self._progress.add_task(kind, total=total, rate="")

    def advance(self, kind: str, done: int) -> None:
        if self._progress is not None and kind in self._tasks:
            for name in (kind, self.OVERALL) if self.OVERALL in self._tasks else (kind,):
                task_id = self._tasks[name]
                self._progress.advance(task_id, done)
                task = self._progress.tasks[task_id]
                speed = task.finished_speed or task.speed
                self._progress.update(task_id, rate=f"{speed:.1f} docs/s" if speed else "")

    def finish(self, kind: str) -> None:
        pass

    def note(self, message: str) -> None:
        if self._progress is not None:
            self._progress.console.print(redact(message), markup=False)


def _bar(as_json: bool) -> _Bar:
    return _Bar(enabled=not as_json and err.is_terminal)


def _run_exit(record: RunRecord) -> int:
    """0 converged, 4 converged except items in quarantine, 5 a new generation failed
    verification (and was not switched in), 1 otherwise (``reconcile.run``'s outcomes)."""
    return run_exit_code(record.status, record.quarantined_total)


def _exits(command: str) -> Callable[[F], F]:
    """End a command's help with its exit codes, from the one table in ``ragstate.exits``."""

    def add(function: F) -> F:
        function.__doc__ = f"{inspect.cleandoc(function.__doc__ or '')}\n\n{exits.help_line(command)}"
        return function

    return add


# --- commands -------------------------------------------------------------------------


@app.command()
@_exits("init")
def init(
    source: Annotated[Path, typer.Option("--source", metavar="PATH", help="Folder (or file) of documents.")],
    store: Annotated[
        str, typer.Option("--store", metavar="URL", help="sqlite:///path.db or postgresql://user@host/db")
    ] = "sqlite:///ragstate.db",
    pipelines: Annotated[
        str, typer.Option("--pipelines", metavar="LIST", help="Comma-separated pipelines to enable.")
    ] = "basic",
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="Spec file to write.")
    ] = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing spec file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a working spec for a source and a store."""
    with _handled(as_json):
        if output.exists() and not force:
            _fail(f"{output} exists; use --force to overwrite it", 1, "FileExists", as_json)
        names = [p.strip() for p in pipelines.split(",") if p.strip()]
        formats = detect_formats(source) if source.exists() else None
        text = starter_spec(
            source=str(source), store=store, pipelines=names, spec_dir=output.resolve().parent, formats=formats
        )
        output.write_text(text, encoding="utf-8")
        _emit(as_json, {"written": str(output)}, f"Wrote {output}. Next: ragstate reconcile -c {output}")


@app.command()
@_exits("plan")
def plan(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    profile: ProfileOpt = None,
    deep: Annotated[bool, typer.Option("--deep", help="Re-read every document and audit every vector.")] = False,
    save: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Also save the plan as JSON for `apply PLAN`.")
    ] = None,
) -> None:
    """Show what drifted and what apply would do."""
    with _handled(as_json), _project(config, profile) as project:
        result = project.plan(depth="deep" if deep else "shallow")
        if save is not None:
            save.write_text(result.to_json(), encoding="utf-8")
        _emit(as_json, result.to_dict(), render_plan(result, store=project.store.description))
        raise typer.Exit(0 if result.in_sync else 2)


@app.command()
@_exits("apply")
def apply(
    plan_file: Annotated[
        Path | None, typer.Argument(metavar="PLAN", help="A plan saved by `plan --out`.", show_default=False)
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    profile: ProfileOpt = None,
    allow_destructive: DestructiveOpt = False,
    deep: Annotated[bool, typer.Option("--deep", help="Plan deeply first (as verify does).")] = False,
) -> None:
    """Carry out a plan (or a fresh one) in crash-safe batches; verify and switch new generations."""
    with _handled(as_json), _project(config, profile) as project:
        saved = None
        if plan_file is not None:
            try:
                saved = Plan.from_json(plan_file.read_text(encoding="utf-8"))
            except OSError as exc:
                _fail(f"{plan_file}: cannot read plan: {exc.strerror}", 1, "PlanError", as_json)
        with _bar(as_json) as bar:
            record = project.apply(
                saved, allow_destructive=allow_destructive, depth="deep" if deep else "audit", progress=bar
            )
        _emit(as_json, record.to_dict(), render_run(record))
        raise typer.Exit(_run_exit(record))


@app.command()
@_exits("reconcile")
def reconcile(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    profile: ProfileOpt = None,
    allow_destructive: DestructiveOpt = False,
) -> None:
    """Plan, apply and verify: the main job."""
    with _handled(as_json), _project(config, profile) as project:
        with _bar(as_json) as bar:
            record = project.reconcile(allow_destructive=allow_destructive, progress=bar)
        text = render_run(record)
        if record.verify is not None:
            text += "\n" + ("Verified: in sync." if record.verify["in_sync"] else "Verify still finds drift.")
        _emit(as_json, record.to_dict(), text)
        raise typer.Exit(_run_exit(record))


@app.command()
@_exits("verify")
def verify(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False, profile: ProfileOpt = None) -> None:
    """Audit every artifact against the source."""
    with _handled(as_json), _project(config, profile) as project:
        report = project.verify()
        _emit(as_json, report.to_dict(), render_verify(report))
        raise typer.Exit(0 if report.in_sync else 2)


@app.command()
@_exits("status")
def status(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    profile: ProfileOpt = None,
    duplicates: Annotated[
        bool, typer.Option("--duplicates", help="Also list documents that hold the same model input (duplicates).")
    ] = False,
) -> None:
    """Show each pipeline's readiness, generations and runs."""
    with _handled(as_json), _project(config, profile) as project:
        report = project.status()
        groups = project.duplicates() if duplicates else None
        data = report.to_dict() | ({"duplicates": groups} if groups is not None else {})
        _emit(as_json, data, render_status(report) + (render_duplicates(groups) if groups is not None else ""))
        raise typer.Exit(0 if report.ready else 2)


@app.command()
@_exits("history")
def history(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    profile: ProfileOpt = None,
    kind: Annotated[str | None, typer.Option("--kind", metavar="KIND", help="Only this artifact kind.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, metavar="N", help="Runs to list, newest first.")] = 20,
) -> None:
    """List generations and runs with their recipes and outcomes."""
    with _handled(as_json), _project(config, profile) as project:
        report = project.history(kind=kind, limit=limit)
        _emit(as_json, report.to_dict(), render_history(report))


@app.command()
@_exits("rollback")
def rollback(
    kind: Annotated[
        str, typer.Argument(metavar="KIND", help="Artifact kind, e.g. doc_embeddings; the kinds built from it follow.")
    ],
    to: Annotated[
        int | None,
        typer.Option("--to", metavar="GENERATION", help="Generation to switch to (default: the one active before)."),
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    profile: ProfileOpt = None,
) -> None:
    """Switch a kind back to an earlier generation, instantly, recomputing nothing."""
    with _handled(as_json), _project(config, profile) as project:
        record = project.rollback(kind, to=to)
        _emit(as_json, record.to_dict(), render_run(record))


@app.command()
@_exits("query")
def query(
    pipeline: Annotated[
        str, typer.Argument(metavar="PIPELINE", help="An enabled pipeline: basic, crag, hyde, colbert, noderag, ...")
    ],
    text: Annotated[str, typer.Argument(metavar="TEXT", help="The query.")],
    k: Annotated[
        int | None, typer.Option("-k", "--top", metavar="N", help="Documents to return (default query.k).")
    ] = None,
    readiness: Annotated[
        str | None,
        typer.Option(
            "--readiness",
            metavar="MODE",
            help="fail, warn or heal when the data is not ready (default query.readiness).",
        ),
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    profile: ProfileOpt = None,
) -> None:
    """Retrieve the documents that best answer a query."""
    with _handled(as_json), _project(config, profile) as project:
        result = project.query(pipeline, text, k, readiness=readiness)
        for warning in result.warnings:
            err.print(f"[bold yellow]warning:[/] {warning}", markup=True)
        _emit(as_json, result.to_dict(), render_retrieval(result))


@app.command()
@_exits("doctor")
def doctor(
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    profile: ProfileOpt = None,
    cheap: Annotated[
        bool, typer.Option("--cheap", help="Only the checks apply runs at start (no model load).")
    ] = False,
) -> None:
    """Check store, extensions, rights, models, memory and disk before any work."""
    with _handled(as_json), _project(config, profile) as project:
        report = project.doctor(cheap=cheap)
        _emit(as_json, report.to_dict(), render_doctor(report))
        raise typer.Exit(0 if report.ok else 1)


source_app = typer.Typer(
    rich_markup_mode=None,
    help="Use a table of your own database as the source, read in place through a view.",
    no_args_is_help=True,
)
app.add_typer(source_app, name="source")


@source_app.command("map-table")
@_exits("source map-table")
def map_table(
    table: Annotated[
        str,
        typer.Option(
            "--table", metavar="TABLE", help="SCHEMA.TABLE (PostgreSQL) or TABLE (SQLite) in the store's database."
        ),
    ],
    id_column: Annotated[str, typer.Option("--id", metavar="COLUMN", help="Column of unique, non-null document ids.")],
    text: Annotated[str, typer.Option("--text", metavar="COLUMN", help="Column holding the document's text.")],
    title: Annotated[str | None, typer.Option("--title", metavar="COLUMN", help="Column holding the title.")] = None,
    abstract: Annotated[
        str | None, typer.Option("--abstract", metavar="COLUMN", help="Column holding an abstract.")
    ] = None,
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", metavar="COLUMN", help="Column carried as metadata (repeatable).")
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            metavar="CONDITION",
            help="Keep rows where COLUMN=VALUE (also !=, <, <=, >, >=, 'COLUMN in A,B', 'COLUMN is null'); "
            "repeatable; values are bound, never SQL.",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", metavar="NAME", help="Mapping name (default: the table's name).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check only; create nothing.")] = False,
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    profile: ProfileOpt = None,
) -> None:
    """Check a table against a mapping; if it fits, create its view."""
    with _handled(as_json), _project(config, profile) as project:
        mapping = {"table": table, "id": id_column, "text": text, "title": title, "abstract": abstract}
        mapping.update(metadata=metadata or [], where=where or [], name=name)
        report = project.map_table(mapping, dry_run=dry_run)
        _emit(as_json, report.to_dict(), render_mapping(report, dry_run=dry_run))
        raise typer.Exit(0 if report.compatible else 1)


@source_app.command("check")
@_exits("source check")
def source_check(
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="A mapping recorded by map-table (default: the spec's source)."),
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    profile: ProfileOpt = None,
) -> None:
    """Re-check a table mapping against the table now."""
    with _handled(as_json), _project(config, profile) as project:
        report = project.check_source(name)
        _emit(as_json, report.to_dict(), render_mapping(report, dry_run=True))
        raise typer.Exit(1 if not report.compatible else 0 if report.view_state == "current" else 2)


quarantine_app = typer.Typer(
    rich_markup_mode=None,
    help="Items that failed for good (unreadable documents, documents the model fails on): list, retry, drop.",
    no_args_is_help=True,
)
app.add_typer(quarantine_app, name="quarantine")
ItemsArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="ITEM", help="Document ids, quarantine items or source paths.", show_default=False),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Every item in quarantine.")]


@quarantine_app.command("list")
@_exits("quarantine list")
def quarantine_list(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False, profile: ProfileOpt = None) -> None:
    """List the items in quarantine, with reason, attempts and first and last seen."""
    with _handled(as_json), _project(config, profile) as project:
        entries = project.quarantine_list()
        _emit(as_json, {"entries": [e.to_dict() for e in entries]}, render_quarantine(entries))


@quarantine_app.command("retry")
@_exits("quarantine retry")
def quarantine_retry(
    items: ItemsArg = None,
    all_items: AllOpt = False,
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    profile: ProfileOpt = None,
    allow_destructive: DestructiveOpt = False,
) -> None:
    """Try items again now, then apply."""
    with _handled(as_json), _project(config, profile) as project:
        with _bar(as_json) as bar:
            record = project.quarantine_retry(
                items or [], all_items=all_items, allow_destructive=allow_destructive, progress=bar
            )
        _emit(as_json, record.to_dict(), render_run(record))
        raise typer.Exit(_run_exit(record))


@quarantine_app.command("drop")
@_exits("quarantine drop")
def quarantine_drop(
    items: ItemsArg = None,
    all_items: AllOpt = False,
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    profile: ProfileOpt = None,
) -> None:
    """Leave items out on purpose: not built, no longer counted (tried again if their content changes)."""
    with _handled(as_json), _project(config, profile) as project:
        dropped = project.quarantine_drop(items or [], all_items=all_items)
        _emit(
            as_json,
            {"dropped": [e.to_dict() for e in dropped]},
            f"Dropped {len(dropped)} item(s); they stay unbuilt until their content changes.",
        )


@app.command()
@_exits("report")
def report(
    html_file: Annotated[
        Path, typer.Option("--html", metavar="FILE", help="Write the page here (one self-contained HTML file).")
    ],
    runs: Annotated[
        int, typer.Option("--runs", min=1, max=1000, metavar="N", help="Recent runs shown in the charts.")
    ] = 30,
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    profile: ProfileOpt = None,
) -> None:
    """Write a status page: conditions, drift, throughput and duration of recent runs."""
    with _handled(as_json), _project(config, profile) as project:
        data = project.report(runs=runs)
        html_file.write_text(render_html(data), encoding="utf-8")
        _emit(as_json, {"written": str(html_file), **data.to_dict()}, f"Wrote {html_file} ({len(data.runs)} runs).")


@app.command()
@_exits("daemon")
def daemon(
    ctx: typer.Context,
    config: ConfigOpt = DEFAULT_CONFIG,
    profile: ProfileOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Run one cycle and exit (exit codes as apply).")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            metavar="PORT",
            help="Serve /metrics, /healthz, /readyz, POST /reconcile (0: any free port).",
        ),
    ] = None,
    log_format: LogFormatOpt = None,
    allow_destructive: DestructiveOpt = False,
    live: Annotated[
        bool | None,
        typer.Option(
            "--live/--no-live",
            help="React to the source's change notifications within seconds (default: daemon.live).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Reconcile on an interval until SIGTERM/SIGINT.

    SIGTERM or SIGINT stops it after the current batch (a second one interrupts the batch);
    SIGHUP, SIGUSR1 or POST /reconcile on the metrics port runs a cycle now; with --live, a
    change to the source does too (the interval's full observation stays).
    """
    options = ctx.obj or {}
    _configure_logs(options.get("log_level") or "info", log_format or options.get("log_format") or "text")
    with _handled(as_json), _project(config, profile) as project:
        code = project.daemon(once=once, metrics_port=metrics_port, allow_destructive=allow_destructive, live=live)
        raise typer.Exit(code)


@app.command()
@_exits("serve")
def serve(
    ctx: typer.Context,
    config: ConfigOpt = DEFAULT_CONFIG,
    profile: ProfileOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="Require this bearer token (the file's first line).")
    ] = None,
    token_env: Annotated[
        str | None, typer.Option("--token-env", help="Require the bearer token this environment variable holds.")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Queries answered at once.")] = 8,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", min=1, help="Larger bodies get 413.")] = 16_384,
    log_format: LogFormatOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer queries over HTTP: POST /query, GET /status, /healthz, /readyz, /metrics."""
    options = ctx.obj or {}
    _configure_logs(options.get("log_level") or "info", log_format or options.get("log_format") or "text")
    with _handled(as_json), _project(config, profile) as project:
        from ragstate.serve import app as service  # FastAPI and uvicorn only for this command

        token = service.read_token(token_file, token_env)
        limits = service.ServeOptions(host=host, port=port, workers=workers, max_body_bytes=max_body_bytes)
        raise typer.Exit(service.serve(project, limits, token=token))


cache_app = typer.Typer(
    rich_markup_mode=None,
    help="The embedding cache: one vector per embedding recipe and exact text.",
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")


@cache_app.command("status")
@_exits("cache status")
def cache_status(config: ConfigOpt = DEFAULT_CONFIG, as_json: JsonOpt = False, profile: ProfileOpt = None) -> None:
    """Show the embedding cache's size, per embedding recipe, and recent hits."""
    with _handled(as_json), _project(config, profile) as project:
        report = project.cache_status()
        _emit(as_json, report.to_dict(), render_cache(report))


@cache_app.command("evict")
@_exits("cache evict")
def cache_evict(
    unreferenced: Annotated[
        bool, typer.Option("--unreferenced", help="Evict every entry no artifact references, not just to the limit.")
    ] = False,
    everything: Annotated[
        bool, typer.Option("--everything", help="Evict every entry (texts are embedded again when next needed).")
    ] = False,
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
    profile: ProfileOpt = None,
) -> None:
    """Evict unreferenced entries down to cache.max_mb (or more, see options)."""
    with _handled(as_json), _project(config, profile) as project:
        report = project.evict_cache("everything" if everything else "unreferenced" if unreferenced else "limit")
        _emit(as_json, report.to_dict(), render_cache(report))


def main() -> None:
    """Entry point of the ``ragstate`` script."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    app()


if __name__ == "__main__":
    main()
