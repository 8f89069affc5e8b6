"""The policy gate through a real daemon: the issue's own report (a job that must not run,
run by hand with `symbi cron run --wait`, ran and printed DEPLOYED) is a denied run that
says why, and `symbi run` is gated too."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.daemon_helper import Daemon

AGENTS = 'agent deployer { command: ["/bin/sh", "-c", "echo DEPLOYED"] }\n'


def test_a_manual_run_its_policy_denies_does_not_run_and_says_why(tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"agents.symbi": AGENTS})
    d.start()
    try:
        assert d.api("POST", "/api/v1/schedule", {
            "name": "prod-deploy", "agent_id": "deployer", "cron_expr": "0 0 1 1 *",
            "policy": {"allowed_environments": ["nowhere"],
                       "require_capabilities": ["deployment"]}})[0] == 201

        out = d.cli("cron", "run", "prod-deploy", "--wait")

        assert out.returncode == 1
        assert out.stdout.startswith("run ") and ": denied (allowed_environments nowhere; " \
            "this daemon's environment is production)" in out.stdout
        assert "DEPLOYED" not in out.stdout
        [run] = json.loads(d.cli("cron", "history", "prod-deploy", "--format", "json").stdout)
        assert (run["status"], run["started_at"], run["exit_code"]) == ("denied", None, None)
        _, job = d.api("GET", "/api/v1/schedule/prod-deploy")
        assert (job["status"], job["failure_count"]) == ("active", 0)
    finally:
        d.cleanup()


def test_agentpin_required_denies_symbi_run_when_no_credential_can_be_verified(
        tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"agents.symbi": AGENTS})
    d.start(env={"SYMBI_AGENTPIN_REQUIRED": "true"})
    try:
        out = d.cli("run", "deployer")
        assert out.returncode == 1, out.stdout + out.stderr
        said = out.stdout + out.stderr
        assert "denied" in said and "[agentpin] required: AgentPin verification is not set up" \
            in said
        assert "DEPLOYED" not in said
    finally:
        d.cleanup()
