"""schemathesis against /api/v1/openapi.json on a real daemon on loopback TCP with a token:
every operation, with valid and invalid data (its coverage, fuzzing and stateful phases),
under all its checks: no 5xx, no hang (a request timeout), every status, content type,
header and body as the document says, invalid data refused, no traceback in the log.

One check is left out: positive_data_acceptance, which expects every request the schema
allows to succeed; the daemon checks more than a JSON Schema can say (a cron expression's
syntax, exactly one of cron_expr and at, an agent that exists), and refuses those with a
400 naming the field, as it should.

The run is bounded by its number of examples per operation: 5 in `make test`, where all four
phases still run and the coverage phase's deterministic cases (boundaries, missing and
wrongly typed fields) are most of the ~2300 requests, in about 20 s on a loaded machine
(30 examples took about 55 s there). SYMBID_SCHEMATHESIS_EXAMPLES asks for more; the deeper
run is in CONTRIBUTING.md. The subprocess timeout is a hang guard, not a speed check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon_helper import BIN, TOKEN, Daemon, add_job

pytest.importorskip("schemathesis", reason="schemathesis is not installed (the test extra "
                                           "has it; the floors venv does not)")

AGENTS = ('agent echo { command: ["/bin/echo", "hi"] }\n'
          'agent hello { command: ["/bin/echo", "hello"] }\n')  # the document's examples use hello
EXAMPLES = os.environ.get("SYMBID_SCHEMATHESIS_EXAMPLES", "5")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path, {"agents.symbi": AGENTS})
    d.start()
    add_job(d, "nightly", "echo")  # something for the path parameters to find
    yield d
    d.cleanup()


def test_schemathesis_finds_nothing_against_the_openapi_document(daemon: Daemon,
                                                                 tmp_path: Path) -> None:
    st = shutil.which("st", path=str(BIN))
    assert st is not None, "schemathesis is installed but its st command is not in the venv"
    base = f"http://127.0.0.1:{daemon.port}"
    result = subprocess.run(
        [st, "run", f"{base}/api/v1/openapi.json", "--url", base,
         "-H", f"Authorization: Bearer {TOKEN}", "--checks", "all",
         "--exclude-checks", "positive_data_acceptance", "--max-examples", EXAMPLES,
         "--request-timeout", "10", "--workers", "1", "--no-color"],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"})
    report = result.stdout + result.stderr
    print(report[-1500:])
    assert result.returncode == 0, report[-20000:]
    assert " passed" in report and "Tested: " in report
    assert daemon.api("GET", "/api/v1/health/scheduler")[0] == 200
    log = daemon.log.read_text()
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
