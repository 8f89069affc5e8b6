"""Every example in the README and man/ works as written against `make run`.

The shell and Python code blocks of README.md, and the code blocks of the man pages, are
run in order against a daemon started the way `make run` starts it: from a copy of the
repository's examples/ with `.venv/bin/symbid --config examples/dev.toml --listen
127.0.0.1:$PORT`, in a directory laid out like a clone. Shell blocks of one document share
their environment, as one terminal would. A block that cannot run unattended is marked just
above it (`<!-- example: skip (why) -->` in Markdown, `; example: skip (why)` in scdoc) and
is reported as skipped with that reason. DSL blocks of symbi-dsl(5) are checked with
`symbi dsl check`, TOML blocks of symbid.toml(5) loaded as a configuration.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from tests.integration.daemon_helper import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
_SKIP = re.compile(r"(?:<!--|;)\s*example:\s*skip\s*\((.+?)\)")


@dataclass(frozen=True)
class Block:
    document: str
    line: int
    kind: str  # "sh", "python", "dsl", "toml" or "" (not an example: text, config)
    code: str
    skip: Optional[str]

    @property
    def id(self) -> str:
        return f"{self.document}:{self.line}"


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = _SKIP.search(before)
        lang = m.group(1)
        if path.suffix == ".scd":
            lang = {"symbi-dsl.5.scd": "dsl", "symbid.toml.5.scd": "toml"}.get(path.name, "sh")
        found.append(Block(path.name, line, lang if lang in ("sh", "python", "dsl", "toml")
                           else "", m.group(2), skip.group(1) if skip else None))
    return [b for b in found if b.kind]


README = blocks(ROOT / "README.md")
MAN = [b for page in sorted((ROOT / "man").glob("*.scd")) for b in blocks(page)]


class MakeRun:
    """A daemon started as `make run` starts it, in a directory laid out like a clone."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sy-ex-", dir="/tmp"))  # short socket path
        shutil.copytree(ROOT / "examples", self.dir / "examples")
        (self.dir / ".venv").symlink_to(VENV)
        (self.dir / ".symbid").mkdir(mode=0o700)
        token = self.dir / ".symbid" / "api-token"
        token.write_text("example-token-0123456789\n")
        token.chmod(0o600)
        self.port = free_port()
        self.log = open(self.dir / "symbid.log", "w")  # noqa: SIM115 - closed in stop()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SYMBI_", "LISTEN_", "NOTIFY_"))}
        self.proc = subprocess.Popen(
            [".venv/bin/symbid", "--config", "examples/dev.toml", "--listen",
             f"127.0.0.1:{self.port}"], cwd=self.dir, stdout=self.log,
            stderr=subprocess.STDOUT, env=env)
        sock = self.dir / ".symbid" / "control.sock"
        deadline = time.monotonic() + 30
        while not sock.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((self.dir / "symbid.log").read_text())
            time.sleep(0.05)
        self.env = dict(env, PORT=str(self.port), NO_COLOR="1")
        self.envfile = self.dir / ".example-env"

    def shell(self, code: str, *, man: bool) -> subprocess.CompletedProcess[str]:
        """A shell block in the terminal the earlier blocks left behind."""
        env = dict(self.env)
        if self.envfile.exists():
            env = dict(line.split("=", 1) for line in
                       self.envfile.read_text().split("\0") if "=" in line)
        if man:  # what `make run` prints: the socket and the venv's commands
            env.setdefault("SYMBI_SOCKET", ".symbid/control.sock")
            env["PATH"] = f"{self.dir}/.venv/bin:{env['PATH']}"
        script = f"set -eu -o pipefail\n{code}\nenv -0 > {self.envfile}\n"
        return subprocess.run(["bash", "-c", script], cwd=self.dir, env=env,
                              capture_output=True, text=True, timeout=120, check=False)

    def python(self, code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([".venv/bin/python", "-c", code], cwd=self.dir, env=self.env,
                              capture_output=True, text=True, timeout=120, check=False)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def readme_daemon() -> Iterator[MakeRun]:
    d = MakeRun()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def man_daemon() -> Iterator[MakeRun]:
    d = MakeRun()
    yield d
    d.stop()


def _run(d: MakeRun, block: Block, *, man: bool) -> None:
    if block.skip:
        pytest.skip(f"{block.id}: marked in the document: {block.skip}")
    if block.kind == "python":
        result = d.python(block.code)
    elif block.kind == "sh":
        result = d.shell(block.code, man=man)
    elif block.kind == "dsl":
        path = d.dir / f"example-{block.line}.symbi"
        path.write_text(block.code)
        result = subprocess.run([f"{d.dir}/.venv/bin/symbi", "dsl", "check", str(path)],
                                capture_output=True, text=True, check=False)
    else:
        from symbid.config import load_config

        path = d.dir / f"example-{block.line}.toml"
        path.write_text(block.code)
        load_config(str(path), environ={})
        return
    assert result.returncode == 0, (
        f"{block.id} failed ({result.returncode}):\n{block.code}\n--- stdout\n"
        f"{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}")
    assert "Traceback" not in result.stderr, result.stderr


def test_the_readme_has_runnable_shell_and_python_examples() -> None:
    runnable = [b for b in README if not b.skip]
    assert {b.kind for b in runnable} == {"sh", "python"}, README


@pytest.mark.parametrize("block", README, ids=[b.id for b in README])
def test_a_readme_example_works_as_written(readme_daemon: MakeRun, block: Block) -> None:
    _run(readme_daemon, block, man=False)


@pytest.mark.parametrize("block", MAN, ids=[b.id for b in MAN])
def test_a_man_page_example_works_as_written(man_daemon: MakeRun, block: Block) -> None:
    _run(man_daemon, block, man=True)


def test_make_run_loads_the_llm_example_disabled_and_says_why() -> None:
    d = MakeRun()
    try:
        listed = d.shell(".venv/bin/symbi --socket .symbid/control.sock agent list",
                         man=False)
        assert listed.returncode == 0, listed.stderr
        assert "operator" in listed.stdout
        log = (d.dir / "symbid.log").read_text()
        assert "agent 'operator': no endpoint: set the agent's endpoint or [llm] endpoint" \
            in log and "its runs fail until then" in log
        jobs = d.shell(".venv/bin/symbi --socket .symbid/control.sock cron list", man=False)
        assert "web-tier-check" not in jobs.stdout  # nothing that needs a model is scheduled
    finally:
        d.stop()
