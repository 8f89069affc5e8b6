"""The docs describe what was built: every flag has a description, the README shows the
two commands, the run-state table matches the code (the man pages: test_man_pages.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from symbid.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {opt for a in parser._actions for opt in a.option_strings
            if opt.startswith("--") and a.help != argparse.SUPPRESS and opt != "--help"}


TOP = build_parser()
CRON = subcommands(subcommands(TOP)["cron"])
GLOBAL = options(TOP) - {"--version"}  # every command takes these; symbi(1) documents them


def test_every_flag_has_a_description() -> None:
    def walk(parser: argparse.ArgumentParser, where: str) -> None:
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{where} {action.option_strings or action.dest}"
        for name, sub in subcommands(parser).items():
            walk(sub, f"{where} {name}")

    walk(TOP, "symbi")


def test_the_readme_shows_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def _state_table() -> dict[str, list[str]]:
    text = (ROOT / "docs" / "run-states.md").read_text()
    section = text.split("## The states", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {row.split("|")[1].strip().strip("`"): [c.strip() for c in row.split("|")[2:-1]]
            for row in rows}


def test_the_run_state_table_matches_the_code() -> None:
    from symbid.model import RunStatus

    table = _state_table()
    assert set(table) == {s.value for s in RunStatus}
    for status in RunStatus:
        terminal, counts, failure, one_shot, delivered, alert = table[status.value]
        assert terminal.startswith("yes") is not status.is_open, status
        assert counts.startswith("yes") is status.counts_toward_max_concurrent, status
        assert failure.startswith("yes") is status.is_failure, status
        end = status.one_shot_end
        assert one_shot.startswith(f"`{end.value}`") if end else one_shot == "—", status
        assert delivered.startswith("yes") is status.executed, status
        assert alert.startswith("yes") is status.alerts, status


def test_the_code_that_moves_runs_links_to_the_state_table() -> None:
    for module in ("model.py", "planner.py", "lifecycle.py"):
        assert "docs/run-states.md" in (ROOT / "symbid" / module).read_text(), module


def test_make_run_creates_the_state_directory_private() -> None:
    import subprocess

    out = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert "mkdir -m 0700 -p .symbid" in out and "umask 077" in out
