"""AgentPin verification against credentials, keys, discovery documents, trust bundles and
revocations made with the reference package (PyPI ``agentpin`` 0.3.0): what it issues
verifies; each way a credential can be wrong is refused with its own reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from pathlib import Path
from typing import Any, Optional

import pytest
from agentpin.crypto import generate_key_id, generate_key_pair
from agentpin.discovery import build_discovery_document
from agentpin.jwk import pem_to_jwk
from agentpin.jwt import base64url_encode, encode_jwt
from agentpin.revocation import (
    add_revoked_agent,
    add_revoked_credential,
    add_revoked_key,
    build_revocation_document,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from symbid.agentdef import Agent
from symbid.agentpin import AgentPinVerifier, Documents, Pending, _https_get
from symbid.config import AgentPinConfig
from symbid.model import Job, Policy

DOMAIN = "example.com"
AGENT = Agent(name="deployer", command=("/bin/true",))
SUB = f"urn:agentpin:{DOMAIN}:deployer"
NOW = 1_790_000_000  # seconds


class World:
    """One issuing domain: its key, discovery document, revocations and trust bundle."""

    def __init__(self, tmp_path: Path) -> None:
        self.private, self.public = generate_key_pair()
        self.kid = generate_key_id(self.public)
        self.discovery = build_discovery_document(
            DOMAIN, "deployer", [pem_to_jwk(self.public, self.kid)],
            [{"agent_id": SUB, "name": "deployer", "capabilities": ["deploy:production"],
              "status": "active"}], 0, "2026-01-01T00:00:00Z")
        self.revocation = build_revocation_document(DOMAIN)
        self.path = tmp_path / "bundle.json"
        self.save()

    def save(self) -> None:
        self.path.write_text(json.dumps({
            "agentpin_bundle_version": "0.1", "created_at": "2026-01-01T00:00:00Z",
            "documents": [self.discovery], "revocations": [self.revocation]}))

    def credential(self, *, header: Optional[dict[str, Any]] = None, **claims: Any) -> str:
        payload = {"iss": DOMAIN, "sub": SUB, "iat": NOW - 60, "exp": NOW + 3600,
                   "jti": "cred-1", "agentpin_version": "0.1",
                   "capabilities": ["deploy:production"], **claims}
        return encode_jwt(header or {"alg": "ES256", "typ": "agentpin-credential+jwt",
                                     "kid": self.kid}, payload, self.private)

    def verify(self, token: str, *, policy: Optional[Policy] = None, **settings: Any
               ) -> Optional[str]:
        config = AgentPinConfig(**{"required": True, "domain": DOMAIN,
                                   "trust_bundle": str(self.path), **settings})
        verifier = AgentPinVerifier(lambda: config, {"PIN": token})
        job = Job(id="j", name="deploy", agent_id="deployer", cron_expr="@daily",
                  agent_pin_jwt="${PIN}", policy=policy or Policy())
        return verifier(job, AGENT, NOW * 1000)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def refused(world: World, token: str, **kw: Any) -> str:
    why = world.verify(token, **kw)
    assert why is not None and why.startswith("AgentPin credential refused: ")
    assert token not in why
    return why[len("AgentPin credential refused: "):]


def test_a_credential_the_reference_issues_verifies(world: World) -> None:
    assert world.verify(world.credential()) is None


def test_a_jose_raw_signature_verifies_too(world: World) -> None:
    token = world.credential()
    head, body, sig = token.split(".")
    r, s = decode_dss_signature(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw = base64url_encode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    assert world.verify(f"{head}.{body}.{raw}") is None


def test_a_tampered_credential_is_refused(world: World) -> None:
    head, _, sig = world.credential().split(".")
    forged = base64url_encode(json.dumps({
        "iss": DOMAIN, "sub": SUB, "iat": NOW - 60, "exp": NOW + 3600, "jti": "cred-1",
        "capabilities": ["deploy:production", "root"]}).encode())
    assert "the signature does not verify" in refused(world, f"{head}.{forged}.{sig}")


def test_an_expired_credential_is_refused(world: World) -> None:
    why = refused(world, world.credential(iat=NOW - 7200, exp=NOW - 3600))
    assert why.startswith("the credential expired at ")


def test_a_credential_within_the_clock_skew_still_verifies(world: World) -> None:
    assert world.verify(world.credential(exp=NOW - 30)) is None
    assert "issued in the future" in refused(world, world.credential(iat=NOW + 600))
    assert "not valid before" in refused(world, world.credential(nbf=NOW + 600))


def test_a_lifetime_longer_than_max_ttl_is_refused(world: World) -> None:
    why = refused(world, world.credential(iat=NOW - 60, exp=NOW + 86400 * 3))
    assert "longer than max_ttl_seconds (86400 s)" in why


def test_the_wrong_domain_is_refused(world: World) -> None:
    assert "iss 'evil.example' is not the expected domain 'example.com'" in refused(
        world, world.credential(iss="evil.example"))


def test_the_wrong_agent_is_refused(world: World) -> None:
    why = refused(world, world.credential(sub=f"urn:agentpin:{DOMAIN}:someone-else"))
    assert f"is not agent deployer's AgentPin identity '{SUB}'" in why


def test_an_unknown_kid_is_refused(world: World) -> None:
    header = {"alg": "ES256", "typ": "agentpin-credential+jwt", "kid": "not-a-key"}
    assert "key 'not-a-key' is not in example.com's discovery document" in refused(
        world, world.credential(header=header))


@pytest.mark.parametrize("what", ["credential", "agent", "key"])
def test_revocations_are_honoured(world: World, what: str) -> None:
    if what == "credential":
        add_revoked_credential(world.revocation, "cred-1", "key_compromise")
    elif what == "agent":
        add_revoked_agent(world.revocation, SUB, "privilege_withdrawn")
    else:
        add_revoked_key(world.revocation, world.kid, "superseded")
    world.save()
    why = refused(world, world.credential())
    assert "is revoked" in why


def test_alg_none_and_hs256_are_refused(world: World) -> None:
    claims = base64url_encode(json.dumps({"iss": DOMAIN, "sub": SUB, "iat": NOW,
                                          "exp": NOW + 60}).encode())
    none = base64url_encode(b'{"alg":"none","typ":"agentpin-credential+jwt","kid":"k"}')
    assert "alg 'none' is refused" in refused(world, f"{none}.{claims}.")
    hs = base64url_encode(b'{"alg":"HS256","typ":"agentpin-credential+jwt","kid":"k"}')
    public_der = serialization.load_pem_public_key(world.public.encode()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    mac = hmac.new(public_der, f"{hs}.{claims}".encode(), hashlib.sha256).digest()
    assert "alg 'HS256' is refused" in refused(world, f"{hs}.{claims}.{base64url_encode(mac)}")


def test_a_missing_kid_is_refused(world: World) -> None:
    header = {"alg": "ES256", "typ": "agentpin-credential+jwt"}
    assert "has no kid" in refused(world, world.credential(header=header))


def test_a_suspended_agent_is_refused(world: World) -> None:
    world.discovery["agents"][0]["status"] = "suspended"
    world.save()
    assert "is 'suspended' in the discovery document" in refused(world, world.credential())


def test_capabilities_the_policy_requires_must_be_granted(world: World) -> None:
    why = refused(world, world.credential(),
                  policy=Policy(require_capabilities=("deploy:production", "db:write")))
    assert "does not grant db:write" in why


def test_a_domain_missing_from_the_bundle_fails_closed(world: World) -> None:
    assert "domain 'other.example' is not in the trust bundle" in refused(
        world, world.credential(iss="other.example"), domain="other.example")


def test_a_job_without_a_credential_or_with_an_unset_variable_is_refused(
        world: World) -> None:
    config = AgentPinConfig(required=True, domain=DOMAIN, trust_bundle=str(world.path))
    verifier = AgentPinVerifier(lambda: config, {})
    bare = Job(id="j", name="d", agent_id="deployer", cron_expr="@daily")
    assert "has no agent_pin_jwt" in (verifier(bare, AGENT, NOW * 1000) or "")
    unset = Job(id="j", name="d", agent_id="deployer", cron_expr="@daily",
                agent_pin_jwt="${NOT_SET}")
    assert "NOT_SET" in (verifier(unset, AGENT, NOW * 1000) or "")


def test_the_expected_domain_can_come_from_the_agents_agentpin_id(world: World) -> None:
    config = AgentPinConfig(required=True, trust_bundle=str(world.path))
    verifier = AgentPinVerifier(lambda: config, {"PIN": world.credential()})
    job = Job(id="j", name="d", agent_id="deployer", cron_expr="@daily", agent_pin_jwt="${PIN}")
    pinned = Agent(name="deployer", command=("/bin/true",), agentpin_id=SUB)
    assert verifier(job, pinned, NOW * 1000) is None
    assert "no expected domain" in (verifier(job, AGENT, NOW * 1000) or "")


def settled(verifier: AgentPinVerifier, job: Job, agent: Agent) -> Optional[str]:
    """The verifier's answer once the fetches it starts (off the caller's thread) have
    ended: each ``Pending`` waits for the documents' ``on_fetched``."""
    fetched = threading.Event()
    verifier.documents.on_fetched = fetched.set
    for _ in range(4):
        try:
            return verifier(job, agent, NOW * 1000)
        except Pending:
            assert fetched.wait(10), "the fetch never ended"
            fetched.clear()
    raise AssertionError("still pending after every document was fetched")


def test_wellknown_discovery_fetches_the_domains_documents_caches_them_and_fails_closed(
        world: World) -> None:
    """The domain's servers lie outside this machine: ``fetch`` stands in for them."""
    asked: list[str] = []
    served = {f"https://{DOMAIN}/.well-known/agent-identity.json": world.discovery,
              world.discovery["revocation_endpoint"]: world.revocation}

    def fetch(url: str, timeout: float) -> bytes:
        asked.append(url)
        if url not in served:
            raise OSError("connection refused")
        return json.dumps(served[url]).encode()

    config = AgentPinConfig(required=True, domain=DOMAIN, discovery="wellknown")
    verifier = AgentPinVerifier(lambda: config, {"PIN": world.credential()},
                                Documents(lambda: config, fetch))
    job = Job(id="j", name="d", agent_id="deployer", cron_expr="@daily", agent_pin_jwt="${PIN}")
    assert settled(verifier, job, AGENT) is None
    assert verifier(job, AGENT, NOW * 1000) is None  # from the cache: no fetch, no wait
    assert len(asked) == 2  # one fetch of each document within cache_ttl_seconds
    del served[world.discovery["revocation_endpoint"]]
    cold = AgentPinVerifier(lambda: config, {"PIN": world.credential()},
                            Documents(lambda: config, fetch))
    assert "revocation document of example.com could not be fetched: failing closed" in (
        settled(cold, job, AGENT) or "")
    with pytest.raises(OSError, match="is not an https URL"):
        _https_get("http://example.com/.well-known/agent-identity.json", 1.0)


def test_a_domain_that_does_not_answer_never_holds_the_caller_and_fails_at_the_deadline(
        world: World) -> None:
    """A server that never answers (or drips a byte at a time): the caller is told
    Pending at once, every time, while the fetch hangs; at the deadline the document has
    failed (closed), and the hung fetch's late answer is dropped."""
    release = threading.Event()

    def hang(url: str, timeout: float) -> bytes:
        release.wait(30)
        return json.dumps(world.discovery).encode()

    config = AgentPinConfig(required=True, domain=DOMAIN, discovery="wellknown")
    verifier = AgentPinVerifier(lambda: config, {"PIN": world.credential()},
                                Documents(lambda: config, hang, deadline=0.2))
    job = Job(id="j", name="d", agent_id="deployer", cron_expr="@daily", agent_pin_jwt="${PIN}")
    for _ in range(3):  # the fetch hangs, and the caller is not held by it
        with pytest.raises(Pending):
            verifier(job, AGENT, NOW * 1000)
    assert "discovery document of example.com could not be fetched" in (
        settled(verifier, job, AGENT) or "")
    release.set()  # the hung fetch answers at last: too late, the failure stands
    for thread in threading.enumerate():
        if thread.name == "agentpin-fetch":
            thread.join(10)
    assert "could not be fetched" in (verifier(job, AGENT, NOW * 1000) or "")


def test_a_hostile_credential_fails_closed_without_an_exception(world: World) -> None:
    head = base64url_encode(json.dumps({"alg": "ES256", "typ": "agentpin-credential+jwt",
                                        "kid": world.kid}).encode())
    huge = base64url_encode(b'{"iss": ' + b"9" * 5000 + b"}")
    deep = base64url_encode(b"[" * 5000 + b"]" * 5000)
    for claims in (huge, deep):
        why = refused(world, f"{head}.{claims}.AAAA")
        assert "malformed" in why or "not JSON" in why or "not a JSON object" in why


def test_capabilities_follow_the_references_rules(world: World) -> None:
    beyond = refused(world, world.credential(capabilities=["deploy:production", "db:write"]))
    assert "grants db:write, beyond what the discovery document declares" in beyond
    assert "not a list of strings" in refused(
        world, world.credential(capabilities="xdeploy:productionx"))
    world.discovery["agents"][0]["capabilities"] = ["deploy:*"]
    world.save()
    assert world.verify(world.credential(capabilities=["deploy:staging.eu"]),
                        policy=Policy(require_capabilities=("deploy:staging.eu",))) is None
    assert "does not grant read:logs" in refused(
        world, world.credential(capabilities=["deploy:staging"]),
        policy=Policy(require_capabilities=("read:logs",)))


def test_a_capability_without_an_action_is_beyond_any_discovery_as_in_the_reference(
        world: World) -> None:
    world.discovery["agents"][0]["capabilities"] = ["deploy:production", "deployment"]
    world.save()
    why = refused(world, world.credential(capabilities=["deployment"]))
    assert "grants deployment, beyond what the discovery document declares" in why


@pytest.mark.parametrize(("granted", "why"), [
    ({"data_classification_max": "restricted"}, "data_classification_max restricted is above "
                                                "confidential"),
    ({"data_classification_max": "secret"}, "data_classification_max 'secret' is not one of"),
    ({"rate_limit": "2/second"}, "rate_limit 2/second is above 100/hour"),
    ({"rate_limit": "lots"}, "rate_limit 'lots' is not COUNT/second|minute|hour"),
    ({"allowed_domains": ["api.example.com", "evil.test"]},
     "allowed_domains evil.test outside *.example.com"),
    ({"allowed_domains": ["example.com"]}, "allowed_domains example.com outside"),
])
def test_a_credential_looser_than_its_discovery_constraints_is_refused(
        world: World, granted: dict[str, Any], why: str) -> None:
    """Step 9 of the reference's verification: a credential may narrow the discovery
    document's constraints for its agent, never widen them."""
    world.discovery["agents"][0]["constraints"] = {
        "data_classification_max": "confidential", "rate_limit": "100/hour",
        "allowed_domains": ["*.example.com"]}
    world.save()
    said = refused(world, world.credential(constraints=granted))
    assert said.startswith("the credential's constraints are less restrictive than the "
                           "discovery document's for the agent: ") and why in said


def test_a_credential_as_strict_or_stricter_than_its_discovery_constraints_verifies(
        world: World) -> None:
    world.discovery["agents"][0]["constraints"] = {
        "data_classification_max": "confidential", "rate_limit": "100/hour",
        "allowed_domains": ["*.example.com"]}
    world.save()
    for granted in (None, {}, {"data_classification_max": "internal"},
                    {"rate_limit": "1/minute", "allowed_domains": ["api.example.com"]},
                    {"data_classification_max": "confidential", "rate_limit": "100/hour"}):
        claims = {} if granted is None else {"constraints": granted}
        assert world.verify(world.credential(**claims)) is None, granted


def test_a_cache_ttl_of_zero_still_decides_with_both_documents(world: World) -> None:
    """A document just fetched serves the decision that waited for it, however small the
    ttl: the loop is never left refetching the two documents in turn."""
    asked: list[str] = []
    served = {f"https://{DOMAIN}/.well-known/agent-identity.json": world.discovery,
              world.discovery["revocation_endpoint"]: world.revocation}

    def fetch(url: str, timeout: float) -> bytes:
        asked.append(url)
        return json.dumps(served[url]).encode()

    config = AgentPinConfig(required=True, domain=DOMAIN, discovery="wellknown",
                            cache_ttl_seconds=0)
    verifier = AgentPinVerifier(lambda: config, {"PIN": world.credential()},
                                Documents(lambda: config, fetch))
    job = Job(id="j", name="d", agent_id="deployer", cron_expr="@daily", agent_pin_jwt="${PIN}")
    assert settled(verifier, job, AGENT) is None
    assert len(asked) == 2


def test_a_fetch_that_hangs_past_its_deadline_is_not_started_again_while_it_hangs(
        world: World) -> None:
    """One thread per URL at most: once the failure of a hung fetch is old, the domain is
    still failed (closed) without a second thread, until the first has ended."""
    release = threading.Event()
    started: list[str] = []
    ages = [0.0]

    def hang(url: str, timeout: float) -> bytes:
        started.append(url)
        release.wait(30)
        raise OSError("gone")

    config = AgentPinConfig(required=True, domain=DOMAIN, discovery="wellknown")
    documents = Documents(lambda: config, hang, deadline=0.1, monotonic=lambda: ages[0])
    verifier = AgentPinVerifier(lambda: config, {"PIN": world.credential()}, documents)
    job = Job(id="j", name="d", agent_id="deployer", cron_expr="@daily", agent_pin_jwt="${PIN}")
    assert "could not be fetched" in (settled(verifier, job, AGENT) or "")
    ages[0] += 3600  # the failure is long past FAILURE_TTL; the thread still hangs
    assert "could not be fetched" in (verifier(job, AGENT, NOW * 1000) or "")
    assert len(started) == 1
    release.set()
    for thread in threading.enumerate():
        if thread.name == "agentpin-fetch":
            thread.join(10)
    with pytest.raises(Pending):  # it has ended: the next decision fetches again
        verifier(job, AGENT, NOW * 1000)
    assert len(started) == 2
    release.set()


def test_a_fetch_thread_that_cannot_start_is_a_failure_not_a_wait_for_ever(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    config = AgentPinConfig(required=True, domain=DOMAIN, discovery="wellknown")
    documents = Documents(lambda: config, lambda url, timeout: b"{}")
    verifier = AgentPinVerifier(lambda: config, {"PIN": world.credential()}, documents)
    job = Job(id="j", name="d", agent_id="deployer", cron_expr="@daily", agent_pin_jwt="${PIN}")

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert "discovery document of example.com could not be fetched" in (
        verifier(job, AGENT, NOW * 1000) or "")
