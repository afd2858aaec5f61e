"""The exit codes in README.md and in every command's --help come from ragstate.exits, and agree."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from conftest import REPO
from ragstate.cli import app
from ragstate.exits import EXIT_CODES, help_line, readme_cell


def readme_rows() -> dict[str, str]:
    """README's command table: command -> its exit-code cell."""
    rows: dict[str, str] = {}
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `ragstate "):
            continue
        usage, cell = line.split(" | ")[0][len("| `ragstate ") :], line.rstrip(" |").split(" | ")[-1]
        names = [c for c in EXIT_CODES if usage == c or usage.startswith((c + " ", c + "`"))]
        assert names, f"README row for an unknown command: {line}"
        command = max(names, key=len)
        assert command not in rows, f"two README rows for {command}"
        rows[command] = cell
    return rows


def cli_commands() -> list[str]:
    """Every command the CLI has, as typed after ``ragstate``."""
    group = typer.main.get_command(app)
    names = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        if hasattr(command, "commands"):  # a group (typer may vendor its own click)
            names += [f"{name} {sub}" for sub in command.commands]
        else:
            names.append(name)
    return names


def test_every_command_has_its_exit_codes() -> None:
    assert sorted(cli_commands()) == sorted(EXIT_CODES)


def test_readme_table_matches_the_exit_codes() -> None:
    rows = readme_rows()
    assert sorted(rows) == sorted(EXIT_CODES)
    wrong = {c: (cell, readme_cell(c)) for c, cell in rows.items() if cell != readme_cell(c)}
    assert wrong == {}, "README cell -> expected (from ragstate.exits)"


def test_help_ends_with_the_exit_codes() -> None:
    runner = CliRunner()
    for command in EXIT_CODES:
        result = runner.invoke(app, [*command.split(), "--help"], terminal_width=100)
        assert result.exit_code == 0, command
        assert " ".join(help_line(command).split()) in " ".join(result.stdout.split()), command


def test_apply_and_daemon_help_say_what_they_do() -> None:
    runner = CliRunner()
    apply_help = " ".join(runner.invoke(app, ["apply", "--help"]).stdout.split())
    assert "5 a new generation failed verification" in apply_help
    daemon_help = " ".join(runner.invoke(app, ["daemon", "--help"]).stdout.split())
    assert "POST /reconcile" in daemon_help and "SIGHUP" in daemon_help and "130 a second signal" in daemon_help


def test_flags_show_no_value_placeholder() -> None:
    runner = CliRunner()
    for args in (["--help"], ["apply", "--help"], ["init", "--help"], ["quarantine", "retry", "--help"]):
        out = runner.invoke(app, args).stdout
        assert "<bool>" not in out and "<str>" not in out, (args, out)
    assert "--profile NAME" in runner.invoke(app, ["plan", "--help"]).stdout
