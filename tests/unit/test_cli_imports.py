"""What ``symbi`` imports to start: building the parser imports no command's module, and a
command imports only what it needs (``symbi cron status`` runs on the client alone: no
model, DSL, timing rules or their libraries). Checked in a fresh interpreter, where
``sys.modules`` starts empty."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from symbid.cli.main import build_parser
args = build_parser().parse_args(sys.argv[1:])
import importlib
{handler_import}
print(json.dumps(sorted(sys.modules)))
"""

HEAVY = ("symbid.model", "symbid.timing", "symbid.cronexpr", "symbid.dsl", "symbid.config",
         "croniter", "dateutil", "lark", "dataclasses")


def loaded(*argv: str, handler_module: str = "") -> set[str]:
    code = PROBE.format(handler_import=f"import symbid.cli.{handler_module}"
                        if handler_module else "")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                         text=True, check=True, timeout=60)
    return set(json.loads(out.stdout))


def test_building_the_parser_imports_no_command_module() -> None:
    modules = loaded("cron", "status", "some-job")
    for name in ("symbid.cli.cron", "symbid.cli.runs", "symbid.cli.agents",
                 "symbid.cli.local", "symbid.cli.system"):
        assert name not in modules, name


@pytest.mark.parametrize("heavy", HEAVY)
def test_cron_status_starts_without_the_model_the_dsl_or_the_timing_rules(heavy: str) -> None:
    modules = loaded("cron", "status", "some-job", handler_module="cron")
    # the handler's own lazy imports too (history rows)
    modules |= loaded("cron", "status", "some-job", handler_module="runs")
    assert not any(m == heavy or m.startswith(heavy + ".") for m in modules), heavy


def test_a_handler_runs_its_module_function_when_called() -> None:
    from symbid.cli.main import build_parser

    args = build_parser().parse_args(["dsl", "check", "/nonexistent/file.symbi"])
    assert args.handler.__name__ == "cmd_dsl_check"
    assert args.handler(args) != 0  # the real check ran and found no file
