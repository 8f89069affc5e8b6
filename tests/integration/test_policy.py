"""The policy gate through a real daemon: the issue's own report (a job that must not run,
run by hand with `symbi cron run --wait`, ran and printed DEPLOYED) is a denied run that
says why, and `symbi run` is gated too."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path
from typing import Any, Optional

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
        assert "denied" in said and "[agentpin] required: AgentPin credential refused: the " \
            "job has no agent_pin_jwt" in said
        assert "DEPLOYED" not in said
    finally:
        d.cleanup()


def _guarded(d: Daemon, name: str, approvers: list[str], **policy: object) -> None:
    assert d.api("POST", "/api/v1/schedule", {
        "name": name, "agent_id": "deployer", "cron_expr": "0 0 1 1 *",
        "policy": {"require_approval": True, "approvers": approvers, **policy}})[0] == 201


def _awaiting(d: Daemon, name: str) -> str:
    out = d.cli("cron", "run", name)
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip()
    d.wait_for(lambda: d.api("GET", f"/api/v1/runs/{run_id}")[1]["status"]
               == "awaiting_approval")
    return run_id


def _ended(d: Daemon, run_id: str, status: str) -> dict[str, object]:
    def ended() -> object:
        run = d.api("GET", f"/api/v1/runs/{run_id}")[1]
        return run if run["status"] == status else None
    return dict(d.wait_for(ended, timeout=15))  # type: ignore[call-overload]


def test_an_approver_approves_over_the_socket_and_the_run_starts(tmp_path: Path) -> None:
    me = pwd.getpwuid(os.getuid()).pw_name  # the socket peer's user name
    d = Daemon(tmp_path, {"agents.symbi": AGENTS})
    d.start()
    try:
        _guarded(d, "deploy", [me, "alice"])
        run_id = _awaiting(d, "deploy")
        listed = d.cli("cron", "pending")
        assert run_id[:8] in listed.stdout and "deploy" in listed.stdout
        assert f"{me}, alice" in listed.stdout

        out = d.cli("cron", "approve", run_id[:8], "--comment", "looks right")

        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(f"run {run_id}: ") and out.stdout.rstrip().endswith(
            f" by {me}")  # pending again (or already running) by its approver
        done = _ended(d, run_id, "succeeded")
        assert (done["approved_by"], done["approval_note"]) == (me, "looks right")
        assert done["output"] == "DEPLOYED\n"
        assert d.cli("cron", "pending").stdout.strip() == "no runs await approval"
    finally:
        d.cleanup()


def test_a_non_approver_gets_403_naming_the_approvers(tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"agents.symbi": AGENTS})
    d.start()
    try:
        _guarded(d, "deploy", ["alice", "bob"])
        run_id = _awaiting(d, "deploy")
        status, body = d.api("POST", f"/api/v1/runs/{run_id}/approve", {"comment": "me"})
        assert status == 403 and body["error"]["code"] == "forbidden"
        assert d.api("GET", "/api/v1/audit?type=ApprovalGranted")[1] == []  # nothing granted
        assert body["error"]["message"].startswith("only alice, bob may approve or deny run")
        out = d.cli("cron", "deny", run_id, "--reason", "no")
        assert out.returncode == 1 and "only alice, bob may" in out.stderr
        assert d.api("GET", f"/api/v1/runs/{run_id}")[1]["status"] == "awaiting_approval"
        bad = d.api("POST", f"/api/v1/runs/{run_id}/approve", {"reason": "x"})
        assert bad[0] == 400 and bad[1]["error"]["field"] == "reason"
    finally:
        d.cleanup()


def test_an_approval_not_given_in_time_cancels_the_run(tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"agents.symbi": AGENTS})
    d.start()
    try:
        _guarded(d, "deploy", ["alice"], approval_timeout="2s")
        run_id = _awaiting(d, "deploy")
        done = _ended(d, run_id, "cancelled")
        assert "(its approval_timeout); cancelled" in str(done["error_message"])
        assert done["started_at"] is None
        _, events = d.api("GET", "/api/v1/audit?job=deploy")
        types = [e["type"] for e in reversed(events)]  # oldest first
        assert types[-1] == "ApprovalExpired" and "ApprovalRequested" in types
    finally:
        d.cleanup()


def test_a_run_awaiting_approval_waits_on_across_a_restart_and_is_denied_after(
        tmp_path: Path) -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    d = Daemon(tmp_path, {"agents.symbi": AGENTS})
    d.start()
    try:
        _guarded(d, "deploy", [me])
        run_id = _awaiting(d, "deploy")
        d.kill()
        d.start()
        status, run = d.api("GET", f"/api/v1/runs/{run_id}")
        assert (status, run["status"]) == (200, "awaiting_approval")
        out = d.cli("cron", "deny", run_id, "--reason", "change freeze")
        assert out.returncode == 0, out.stderr
        _, run = d.api("GET", f"/api/v1/runs/{run_id}")
        assert (run["status"], run["error_message"]) == ("denied",
                                                         f"denied by {me}: change freeze")
        _, [denied] = d.api("GET", "/api/v1/audit?type=ApprovalDenied")
        assert (denied["actor"], denied["run_id"], denied["details"]["reason"]) == \
            (me, run_id, "change freeze")
    finally:
        d.cleanup()


def test_agentpin_through_the_daemon_verifies_a_good_credential_and_denies_each_bad_one(
        tmp_path: Path) -> None:
    import time

    from agentpin.crypto import generate_key_id, generate_key_pair
    from agentpin.discovery import build_discovery_document
    from agentpin.jwk import pem_to_jwk
    from agentpin.jwt import base64url_encode, encode_jwt
    from agentpin.revocation import add_revoked_credential, build_revocation_document

    private, public = generate_key_pair()
    kid = generate_key_id(public)
    sub = "urn:agentpin:example.com:deployer"
    discovery = build_discovery_document(
        "example.com", "deployer", [pem_to_jwk(public, kid)],
        [{"agent_id": sub, "name": "deployer", "capabilities": ["deploy:production"],
          "status": "active"}], 0, "2026-01-01T00:00:00Z")
    revocation = build_revocation_document("example.com")
    add_revoked_credential(revocation, "revoked-one", "key_compromise")
    (tmp_path / "bundle.json").write_text(json.dumps({
        "agentpin_bundle_version": "0.1", "created_at": "2026-01-01T00:00:00Z",
        "documents": [discovery], "revocations": [revocation]}))
    now = int(time.time())

    def credential(jti: str, header: Optional[dict[str, Any]] = None, **claims: Any) -> str:
        return encode_jwt(header or {"alg": "ES256", "typ": "agentpin-credential+jwt",
                                     "kid": kid},
                          {"iss": "example.com", "sub": sub, "iat": now - 60,
                           "exp": now + 3600, "jti": jti, "agentpin_version": "0.1",
                           "capabilities": ["deploy:production"], **claims}, private)

    good_token = credential("good-one")
    head, _, sig = good_token.split(".")
    forged = base64url_encode(json.dumps({"iss": "example.com", "sub": sub, "iat": now,
                                          "exp": now + 60, "capabilities": ["root"]}).encode())
    claims = base64url_encode(json.dumps({"iss": "example.com", "sub": sub, "iat": now,
                                          "exp": now + 60}).encode())
    bad = {  # job name -> (its credential, what the denial says)
        "tampered": (f"{head}.{forged}.{sig}", "the signature does not verify"),
        "expired": (credential("e", iat=now - 7200, exp=now - 3600), "expired at"),
        "wrong-domain": (credential("w", iss="evil.example"), "is not the expected domain"),
        "wrong-agent": (credential("a", sub="urn:agentpin:example.com:other"),
                        "is not agent deployer's AgentPin identity"),
        "unknown-kid": (credential("k", header={"alg": "ES256", "kid": "nope",
                                                "typ": "agentpin-credential+jwt"}),
                        "key 'nope' is not in example.com's discovery document"),
        "revoked": (credential("revoked-one"), "the credential is revoked (key_compromise)"),
        "alg-none": (base64url_encode(b'{"alg":"none","typ":"agentpin-credential+jwt",'
                                      b'"kid":"k"}') + f".{claims}.", "alg 'none' is refused"),
        "hs256": (base64url_encode(b'{"alg":"HS256","typ":"agentpin-credential+jwt",'
                                   b'"kid":"k"}') + f".{claims}.c2ln", "alg 'HS256' is refused"),
    }
    d = Daemon(tmp_path, {"agents.symbi": AGENTS},
               config='\n[agentpin]\ndomain = "example.com"\ntrust_bundle = "bundle.json"\n')
    revoked_token = bad["revoked"][0]
    d.start(env={"GOOD_PIN": good_token,
                 **{f"PIN_{i}": token for i, (token, _) in enumerate(bad.values())}})
    try:
        refs = {"pinned": "${GOOD_PIN}", **{name: f"${{PIN_{i}}}" for i, name in
                                            enumerate(bad)}}
        for name, ref in refs.items():
            assert d.api("POST", "/api/v1/schedule", {
                "name": name, "agent_id": "deployer", "cron_expr": "0 0 1 1 *",
                "agent_pin_jwt": ref, "policy": {"require_agent_pin": True}})[0] == 201
        good = d.cli("cron", "run", "pinned", "--wait")
        assert good.returncode == 0 and "DEPLOYED" in good.stdout, good.stdout + good.stderr
        for name, (token, why) in bad.items():
            out = d.cli("cron", "run", name, "--wait")
            assert out.returncode == 1, name
            assert ": denied (require_agent_pin: AgentPin credential refused: " in out.stdout
            assert why in out.stdout, (name, out.stdout)
            assert token.split(".")[1] not in out.stdout
        _, events = d.api("GET", "/api/v1/audit?type=AgentPinVerificationFailed&limit=100")
        assert sorted(e["job"] for e in events) == sorted(bad)
        _, executed = d.api("GET", "/api/v1/audit?type=CronJobExecuted&job=pinned")
        assert len(executed) == 1
        logged = d.log.read_text()
        assert "AgentPin credential refused: the credential is revoked" in logged
        _, job = d.api("GET", "/api/v1/schedule/revoked")
        _, trail = d.api("GET", "/api/v1/audit?limit=1000")
        for said in (logged, json.dumps(job), json.dumps(trail)):
            assert revoked_token not in said and revoked_token.split(".")[2] not in said
    finally:
        d.cleanup()


def test_a_named_tcp_token_approves_as_its_name_and_the_default_token_is_refused(
        tmp_path: Path) -> None:
    d = Daemon(tmp_path, {"agents.symbi": AGENTS},
               config='\n[api.tokens]\nalice = "${ALICE_TOKEN}"\n')
    # [api.tokens] follows [scheduler] in the file: the helper's [api] table is earlier
    d.start(env={"ALICE_TOKEN": "alice-token-value-0123456789"})
    try:
        _guarded(d, "deploy", ["alice"])
        run_id = _awaiting(d, "deploy")
        status, body = d.api("POST", f"/api/v1/runs/{run_id}/approve", tcp=True)
        assert status == 403 and "you are default" in body["error"]["message"]
        status, run = d.api("POST", f"/api/v1/runs/{run_id}/approve", {"comment": "ok"},
                            tcp=True, token="alice-token-value-0123456789")
        assert status == 200 and run["approved_by"] == "alice", run
        assert d.api("GET", "/api/v1/schedule", tcp=True, token="wrong")[0] == 401
    finally:
        d.cleanup()


def test_the_audit_trail_records_each_decision_and_answers_the_seeds_query(
        tmp_path: Path) -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    d = Daemon(tmp_path, {"agents.symbi": AGENTS + 'agent broken { command: ["/bin/false"] }\n'})
    d.start()
    try:
        assert d.api("POST", "/api/v1/schedule", {
            "name": "nowhere", "agent_id": "deployer", "cron_expr": "0 0 1 1 *",
            "policy": {"allowed_environments": ["nowhere"]}})[0] == 201
        assert d.cli("cron", "run", "nowhere", "--wait").returncode == 1
        _guarded(d, "deploy", [me])
        run_id = _awaiting(d, "deploy")
        assert d.cli("cron", "approve", run_id).returncode == 0
        _ended(d, run_id, "succeeded")
        assert d.api("POST", "/api/v1/schedule", {
            "name": "failing", "agent_id": "broken", "cron_expr": "0 0 1 1 *"})[0] == 201
        assert d.cli("cron", "run", "failing", "--wait").returncode == 1

        _, events = d.api("GET", "/api/v1/audit?limit=1000")
        kinds = [(e["type"], e["actor"], e["job"]) for e in reversed(events)]
        assert ("CronJobCreated", me, "nowhere") in kinds
        assert ("CronJobTriggered", me, "nowhere") in kinds
        assert ("PolicyDenied", "scheduler", "nowhere") in kinds
        assert kinds.index(("ApprovalRequested", "scheduler", "deploy")) < \
            kinds.index(("ApprovalGranted", me, "deploy")) < \
            kinds.index(("CronJobExecuted", "scheduler", "deploy"))
        denied = next(e for e in events if e["type"] == "PolicyDenied")
        assert "allowed_environments nowhere" in denied["details"]["reason"]

        seed = d.cli("audit", "query", "--type", "CronJobFailed", "--since", "2026-02-01",
                     "--limit", "50")
        assert seed.returncode == 0 and "CronJobFailed" in seed.stdout and "failing" in \
            seed.stdout
        csv = d.cli("audit", "query", "--job", "deploy", "--format", "csv").stdout
        assert csv.splitlines()[0] == "time,type,actor,job,run_id,details"
        assert d.api("GET", "/api/v1/audit?since=yesterday")[1]["error"]["field"] == "since"
        assert d.api("GET", "/api/v1/audit?until=2000-01-01")[1] == []
    finally:
        d.cleanup()


def test_what_agents_dir_changes_is_on_the_audit_trail_by_who_reloaded(
        tmp_path: Path) -> None:
    """At start (and on a SIGHUP) no one asked: the actor is agents.d; a `symbi reload`
    is the caller's (here root, over the socket); each event says it came via agents.d."""
    d = Daemon(tmp_path, {"agents.symbi": AGENTS})
    d.start()
    try:
        d.write_agents("jobs.symbi", 'schedule { name: "filed", agent: "deployer", '
                                     'cron: "0 5 * * *" }\n')
        assert d.cli("reload").returncode == 0
        (d.agents_dir / "jobs.symbi").unlink()
        assert d.cli("reload").returncode == 0
        _, events = d.api("GET", "/api/v1/audit?limit=100")
        got = [(e["type"], e["actor"], e["job"] or e["details"].get("agent"))
               for e in reversed(events) if e["details"].get("via") == "agents.d"]
        me = pwd.getpwuid(os.getuid()).pw_name
        assert got == [("AgentDefined", "agents.d", "deployer"),
                       ("CronJobCreated", me, "filed"), ("CronJobDeleted", me, "filed")]
    finally:
        d.cleanup()
