"""The import ladder: a module may import only from the rungs below its own.

Every module under ``symbid/`` is parsed with :mod:`ast`; every ``import`` of a
``symbid`` module counts, at module level or inside a function (lazy imports are
still dependencies), and so does ``importlib.import_module("symbid...")``.

A new module must be given a rung in ``LADDER`` below, or the tests fail.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

import symbid

ROOT = Path(symbid.__file__).resolve().parent
PACKAGE = "symbid"

# Entries: an exact module name, "pkg.**" for a package and all its submodules (they form
# one component and may import each other), or "pkg.*" for each direct submodule of a
# package, each its own component. An exact entry beats a pattern; a longer pattern beats a
# shorter one.
LADDER: dict[str, float] = {
    # level 0: the vocabulary; standard library only
    "symbid.errors": 0,
    "symbid.model": 0,
    "symbid.agentdef": 0.25,  # agent definitions, on the model's output cap
    "symbid.channels": 0.25,  # delivery channel names and a job's delivery definition
    "symbid.records": 0.25,  # run records, on the model's statuses
    # The model's wire form (API JSON): a half rung above the model it writes.
    "symbid.wire": 0.5,
    "symbid.text": 0,
    "symbid.auth": 0,
    "symbid.clock": 0,
    "symbid.components": 0,  # the daemon's log components (symbi logs --filter)
    # Cron expressions, parsed and checked (issue 9 split them out of timing): below it.
    "symbid.cronexpr": 0.75,
    # The walk of a normalised cron expression's matches (issue 15): croniter's get_next
    # at a fraction of its cost, below the parser that hands it the expression.
    "symbid.cronwalk": 0.7,
    # level 1: pure rules over the vocabulary
    "symbid.timing": 1,
    "symbid.config": 1,
    # The JSON Schema subset of llm tools: checked when a tool is defined (the DSL) and
    # when the model calls it (the agent child), so it stands below both.
    "symbid.toolschema": 1,
    # Claimed spans walk a timing Schedule (issue 7): half a rung up, below the DSL.
    "symbid.spans": 1.25,
    # A job's policy as defined (issue 12): checked by the DSL and the API, on timing.
    "symbid.policydef": 1.25,
    # The DSL validates a schedule's cron/at/timezone with timing when it loads a file
    # (issue 3), so it stands half a rung above timing and config.
    "symbid.dsl.**": 1.5,
    # The daemon's identity towards runs (capabilities, a run owner's file identity).
    "symbid.identity": 1.7,
    # A run's places on disk (the runs' root, a run's files): below the sandbox that uses them.
    "symbid.runfiles": 1.75,
    # level 2: the edges (durable state, native waits, processes, channels); mutually blind
    "symbid.store.**": 2,
    "symbid.timer": 2,
    "symbid.startlog": 2,
    "symbid.sandbox": 2,
    "symbid.leftovers": 2.1,  # a crashed daemon's runs' processes, by the sandbox's marks
    "symbid.live": 2,  # running runs' output, fed by the sandbox's reads through the executor
    "symbid.agentpin": 2,
    "symbid.journal": 2,
    "symbid.systemd": 2,  # sd_notify and the watchdog interval
    "symbid.metrics": 2,
    # The channels' shared vocabulary (Payload, Target, Receipt, the HTTP POST): just
    # below the channels, which are mutually blind (issue 11).
    "symbid.delivery.base": 1.9,
    "symbid.delivery.*": 2,  # one module per delivery channel
    "symbid.agents.**": 2,
    # level 3: the engine. The run lifecycle applies the planner's pure decisions, and
    # the loop sequences both (issue 7), so they stand on quarter rungs above it.
    "symbid.planner": 3,
    # What the lifecycle exchanges with the executor (split out of it, issue 12).
    "symbid.launch": 3,
    # What a start-up does with open runs (split out of the lifecycle, issue 12).
    "symbid.recovery": 3.1,
    # The lifecycle's approval moves (issue 12), which it inherits.
    "symbid.approvals": 3.2,
    "symbid.lifecycle": 3.25,
    "symbid.scheduler": 3.5,
    # The executor and the job operations apply the sessions' and heartbeats' rules
    # (issue 10), so they stand a fifth of a rung above them.
    "symbid.executor": 3.2,
    # The agent registry derives the executor's agents from the store (issue 9).
    "symbid.registry": 3.25,
    "symbid.jobs": 3.2,
    "symbid.sessions": 3,
    # An llm run's launch and result (issue 10): above sessions, below the executor.
    "symbid.llmrun": 3.1,
    "symbid.llmresult": 3.1,
    # The delivery workers (issue 11): take the store's outbox rows to the router's channels.
    "symbid.outbox": 3.1,
    "symbid.dispatch": 3.1,  # an outbox row, its job and run -> the router's payload
    # The warnings about loaded agents (issue 10): above the executor's registry view.
    "symbid.agentnotes": 3.3,
    # The engine's parts built and stopped in order (split out of the daemon, issue 11):
    # above the loop, the executor and the outbox it holds.
    "symbid.engine": 3.75,
    "symbid.heartbeat": 3,
    "symbid.policy": 3,
    "symbid.audit": 3,
    "symbid.delivery": 3,  # the package itself: it routes to the channels
    "symbid.delivery.router": 3,
    # level 4: the control surface
    "symbid.api.**": 4,
    "symbid.control": 4,
    # level 5: entry points; nothing imports them (but see CLI_MAY_IMPORT)
    "symbid.daemon": 5,
    "symbid.cli.**": 5,
    "symbid.client": 5,
}

# Modules that share a component with another module although their entries differ.
SAME_COMPONENT: dict[str, str] = {"symbid.delivery.router": "symbid.delivery"}

# The CLI must start fast and work without the daemon's machinery: besides its own
# submodules it may import only these (and their submodules).
CLI_MAY_IMPORT: tuple[str, ...] = (
    "symbid.client", "symbid.model", "symbid.agentdef", "symbid.channels", "symbid.records",
    "symbid.wire",
    "symbid.errors",
    "symbid.timing",
    "symbid.cronexpr", "symbid.dsl",
    "symbid.text",
    "symbid.clock",
    "symbid.components",
    # `symbi dsl check --config` checks channels against the daemon's delivery settings,
    # as the daemon does (imported in that command only)
    "symbid.config", "symbid.delivery.router",
)

EXEMPT = frozenset({"symbid"})  # symbid/__init__.py: version only


# --- the checker ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    importer: str
    imported: str


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([root.name, *parts])


def discover(root: Path) -> dict[str, Path]:
    """Every module under ``root`` (a package directory), by dotted name."""
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def _entry(module: str) -> Optional[str]:
    if module in LADDER:
        return module
    best: Optional[str] = None
    for pattern in LADDER:
        if pattern.endswith(".**"):
            base = pattern[:-3]
            matches = module == base or module.startswith(base + ".")
        elif pattern.endswith(".*"):
            base = pattern[:-2]
            matches = module.startswith(base + ".") and "." not in module[len(base) + 1:]
        else:
            continue
        if matches and (best is None or len(base) > len(best.rsplit(".", 1)[0])):
            best = pattern
    return best


def level_of(module: str) -> Optional[int]:
    entry = _entry(module)
    return None if entry is None else LADDER[entry]


def component_of(module: str) -> str:
    if module in SAME_COMPONENT:
        return SAME_COMPONENT[module]
    entry = _entry(module)
    if entry is not None and entry.endswith(".**"):
        return entry[:-3]
    return module


def _within(module: str, base: str) -> bool:
    return module == base or module.startswith(base + ".")


def _resolve_from(node: ast.ImportFrom, importer: str, is_package: bool) -> Optional[str]:
    """The absolute module named by ``from X import ...`` (relative imports resolved)."""
    if node.level == 0:
        return node.module
    package = importer if is_package else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports_of(path: Path, importer: str, known: set[str]) -> list[Import]:
    """Every import of a ``symbid`` module made anywhere in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def add(line: int, name: str) -> None:
        if _within(name, PACKAGE):
            found.append(Import(path, line, importer, name))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(node, importer, is_package)
            if base is None:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(node.lineno, sub if sub in known else base)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if (name in ("import_module", "__import__") and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                add(node.lineno, node.args[0].value)
    return found


def why_forbidden(importer: str, imported: str, known: set[str]) -> Optional[str]:
    """Why ``importer`` may not import ``imported``; None if it may."""
    if imported in EXEMPT or importer in EXEMPT:
        return None
    if imported not in known:
        return "no such module under symbid/"
    if component_of(importer) == component_of(imported):
        return None
    if component_of(importer) == "symbid.cli":
        if any(_within(imported, allowed) for allowed in CLI_MAY_IMPORT):
            return None
        return "the CLI may import only " + ", ".join(CLI_MAY_IMPORT) + " and its own modules"
    low, high = level_of(imported), level_of(importer)
    if low is None or high is None:
        return "a module without a level"  # reported by the unknown-module test
    if low < high or low == high == 0:
        return None
    if low == high:
        return f"both are level {low}; modules of one level must not import each other"
    return f"level {high} must not import level {low}"


def violations(root: Path) -> list[str]:
    modules = discover(root)
    known = set(modules)
    found = []
    for importer, path in modules.items():
        if importer in EXEMPT:
            continue
        for imp in imports_of(path, importer, known):
            reason = why_forbidden(importer, imp.imported, known)
            if reason is not None:
                rel = imp.path.relative_to(root.parent)
                found.append(f"{rel}:{imp.line}: {importer} imports {imp.imported} ({reason})")
    return found


def unplaced(root: Path) -> list[str]:
    return [
        f"{path.relative_to(root.parent)} ({name}) has no level: add it to LADDER in "
        f"{Path(__file__).name}"
        for name, path in discover(root).items()
        if name not in EXEMPT and level_of(name) is None
    ]


# --- the ladder holds for symbid -----------------------------------------------------------


def test_every_symbid_module_has_a_level() -> None:
    missing = unplaced(ROOT)
    assert not missing, "\n".join(missing)


def test_no_symbid_module_imports_above_or_beside_its_level() -> None:
    found = violations(ROOT)
    assert not found, f"{len(found)} layering violation(s):\n" + "\n".join(found)


def test_level_zero_modules_import_only_the_standard_library() -> None:
    stdlib = getattr(sys, "stdlib_module_names", None)
    if stdlib is None:  # pragma: no cover - Python < 3.10
        pytest.skip("sys.stdlib_module_names needs Python 3.10")
    found = []
    for name, path in discover(ROOT).items():
        if level_of(name) != 0:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            found += [f"{path.relative_to(ROOT.parent)}:{node.lineno}: {name} imports {top}"
                      for top in tops
                      if top not in stdlib and top not in ("__future__", PACKAGE)]
    assert not found, "level 0 is standard library only:\n" + "\n".join(found)


def test_the_cli_starts_without_the_store_the_scheduler_or_heavy_libraries() -> None:
    forbidden = ("sqlite3", "_sqlite3", "symbid.store", "symbid.scheduler", "cryptography",
                 "lark")
    code = "import json, sys; import symbid.cli.main; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT.parent)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr

    loaded = set(json.loads(proc.stdout))

    assert "symbid.cli.main" in loaded
    heavy = sorted(m for m in loaded if any(_within(m, f) for f in forbidden))
    assert not heavy, f"importing symbid.cli.main loaded {heavy}"


# --- the checker itself catches what it should ---------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / PACKAGE
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_the_checker_reports_every_violation_with_its_file_and_module(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "errors.py": "",
        "model.py": "from symbid.errors import X\n",  # level 0 among itself: fine
        "clock.py": "",
        "timing.py": "from symbid import errors\n",  # fine
        "config.py": "from symbid.timing import parse\n",  # 1 -> 1
        "store.py": "import symbid.model\ndef f():\n    from symbid.timer import Wake\n",  # 2 -> 2
        "timer.py": "from .clock import Clock\n",  # fine, relative
        "sandbox.py": "from . import scheduler\n",  # 2 -> 3, relative
        "executor.py": "from symbid.sandbox import Spawned\n",  # fine
        "scheduler.py": "from symbid.model import RunOutcome\nfrom symbid.api import A\n",
        "jobs.py": "from symbid.store import JobStore\n",  # fine
        "daemon.py": "from symbid.cli import main\n",  # 5 -> 5
        "client.py": "",
        "cli/__init__.py": "from symbid.cli.main import main\n",  # own submodule: fine
        "cli/main.py": (
            "from symbid.client import Client\n"  # allowed
            "from symbid.dsl.parse import p\n"  # allowed
            "def cmd():\n"
            "    import symbid.store\n"  # lazy, still forbidden
            "    from symbid.spans import load\n"  # below, but not on the CLI's list
        ),
        "dsl/__init__.py": "from symbid.dsl import parse\n",  # own component
        "dsl/parse.py": "import importlib\nimportlib.import_module('symbid.jobs')\n",  # 1 -> 3
        "delivery/__init__.py": "from symbid.delivery.router import route\n",  # one component
        "delivery/router.py": "from symbid.delivery import slack\n",  # 3 -> 2: fine
        "delivery/slack.py": "from symbid.delivery.webhook import post\n",  # 2 -> 2
        "delivery/webhook.py": "",
    })

    found = violations(root)

    assert [line.split(" (")[0] for line in found] == [
        "symbid/cli/main.py:4: symbid.cli.main imports symbid.store",
        "symbid/cli/main.py:5: symbid.cli.main imports symbid.spans",
        "symbid/config.py:1: symbid.config imports symbid.timing",
        "symbid/daemon.py:1: symbid.daemon imports symbid.cli.main",
        "symbid/delivery/slack.py:1: symbid.delivery.slack imports symbid.delivery.webhook",
        "symbid/dsl/parse.py:2: symbid.dsl.parse imports symbid.jobs",
        "symbid/sandbox.py:1: symbid.sandbox imports symbid.scheduler",
        "symbid/scheduler.py:2: symbid.scheduler imports symbid.api",
        "symbid/store.py:3: symbid.store imports symbid.timer",
    ]
    assert "level 2 must not import level 3" in "\n".join(found)


def test_the_checker_names_a_module_missing_from_the_ladder(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"errors.py": "", "gadget.py": "from symbid.errors import E\n",
                            "api/__init__.py": "", "api/routes.py": ""})

    assert unplaced(root) == [
        f"symbid/gadget.py (symbid.gadget) has no level: add it to LADDER in {Path(__file__).name}"
    ]
