"""The docs describe what was built: every CLI command and option is in its man page."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from symbid.cli.main import build_parser
from symbid.config import ENV_OVERRIDES, Config
from symbid.daemon import _parser as daemon_parser

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


@pytest.mark.parametrize("name", sorted(CRON))
def test_every_cron_subcommand_and_option_is_in_its_man_page(name: str) -> None:
    page = (ROOT / "man" / "symbi-cron.1.scd").read_text()
    assert f"*{name}*" in page
    for opt in options(CRON[name]) - GLOBAL:
        assert f"*{opt}*" in page, f"{name} {opt} is not documented"


def test_every_other_command_and_the_global_options_are_in_symbi_1() -> None:
    page = (ROOT / "man" / "symbi.1.scd").read_text()
    for opt in GLOBAL | {"--version"}:
        assert f"*{opt}*" in page, f"{opt} is not documented"
    for name, parser in subcommands(TOP).items():
        if name == "cron":
            continue
        nested = subcommands(parser)
        for sub_name, sub in (nested.items() if nested else [("", parser)]):
            assert f"*symbi {name}{' ' + sub_name if sub_name else ''}*" in page, name
            for opt in options(sub) - GLOBAL:
                assert f"*{opt}*" in page, f"{name} {sub_name} {opt} is not documented"


def test_every_flag_has_a_description() -> None:
    def walk(parser: argparse.ArgumentParser, where: str) -> None:
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{where} {action.option_strings or action.dest}"
        for name, sub in subcommands(parser).items():
            walk(sub, f"{where} {name}")

    walk(TOP, "symbi")


def test_every_daemon_option_is_in_symbid_8() -> None:
    page = (ROOT / "man" / "symbid.8.scd").read_text()
    for opt in options(daemon_parser()) - {"--version", "--log-level"}:
        assert f"*{opt}*" in page, opt


def test_every_config_key_and_variable_is_in_symbid_toml_5() -> None:
    page = (ROOT / "man" / "symbid.toml.5.scd").read_text()
    config = Config()
    for section in ("daemon", "api", "scheduler", "delivery", "agentpin", "llm"):
        for key in vars(getattr(config, section)):
            assert f"*{key}*" in page, f"[{section}] {key} is not documented"
    for var in ENV_OVERRIDES:
        assert f"*{var}*" in page


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
