"""AgentPin credential verification (the reference implementation's format, PyPI
``agentpin`` 0.3.0), for the policy gate's ``require_agent_pin`` and ``[agentpin]
required``.

A credential is a JWT: header ``{"alg": "ES256", "typ": "agentpin-credential+jwt",
"kid": ...}``; claims ``iss`` (the issuing domain), ``sub`` (the agent's AgentPin
identity, ``urn:agentpin:DOMAIN:NAME``), ``iat``, ``exp``, optional ``nbf``, ``aud``,
``jti``, ``agentpin_version``, ``capabilities``, ``constraints`` (no looser than the
discovery document's for the agent). The reference signs with DER-encoded
ECDSA, not JOSE's raw ``r||s``, so standard JWT libraries refuse its tokens: both
encodings are accepted here; ``none``, HS*, RS*, other curves and a missing ``kid`` are
refused.

Where the seed differs: it matches the agent id against ``iss``; the reference carries
the domain in ``iss`` and the agent in ``sub``, and so does symbid.

Keys, agents and revocations come from the domain's discovery document: a trust bundle
file (``agentpin_bundle_version``, ``documents``, ``revocations``), read offline, or
``https://DOMAIN/.well-known/agent-identity.json`` and its revocation document, cached
for ``cache_ttl_seconds``, redirects refused. Every failure is a reason (never the
token), and a document that cannot be had fails closed.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from symbid.agentdef import Agent
from symbid.config import AgentPinConfig, resolve_refs
from symbid.errors import InvalidInput
from symbid.model import Job, format_instant

log = logging.getLogger(__name__)

TYP = "agentpin-credential+jwt"
MAX_TOKEN = 16 * 1024  # characters: a credential longer than this is refused unread
MAX_DOCUMENT = 1024 * 1024  # bytes of a discovery or revocation document
FETCH_TIMEOUT = 5.0  # seconds per socket operation of a well-known fetch
FETCH_DEADLINE = 15.0  # seconds a well-known fetch may take in all before it has failed
FAILURE_TTL = 30.0  # seconds a failed fetch is remembered (not retried on every run)


class Refused(Exception):
    """Why a credential does not verify (the message never holds the token)."""


class Pending(Exception):
    """The credential cannot be decided yet: a domain's documents are being fetched, off
    the scheduler loop. Its run stays queued; the loop is woken (``on_fetched``) when the
    fetch has ended, and decides it then."""


def _b64(part: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise Refused(f"the credential's {what} is not base64url") from None


def _json_part(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64(part, what))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refused(f"the credential's {what} is not JSON") from None
    if not isinstance(value, dict):
        raise Refused(f"the credential's {what} is not a JSON object")
    return value


def _public_key(jwk: Mapping[str, Any], kid: str) -> ec.EllipticCurvePublicKey:
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise Refused(f"key {kid!r} is not an EC P-256 key (kty {jwk.get('kty')!r}, crv "
                      f"{jwk.get('crv')!r}); only ES256 is accepted")
    try:
        x, y = (_b64(str(jwk[c]), f"key {kid!r} {c}") for c in ("x", "y"))
        if len(x) != 32 or len(y) != 32:
            raise ValueError
        return ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                             ec.SECP256R1()).public_key()
    except (KeyError, ValueError):
        raise Refused(f"key {kid!r} in the discovery document is not a valid P-256 key") \
            from None


def _verify_signature(key: ec.EllipticCurvePublicKey, signed: bytes, sig: bytes,
                      kid: str) -> None:
    """DER (the reference's) or JOSE's raw r||s (64 bytes)."""
    candidates = [sig]
    if len(sig) == 64:
        candidates.append(encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                               int.from_bytes(sig[32:], "big")))
    for candidate in candidates:
        try:
            key.verify(candidate, signed, ec.ECDSA(hashes.SHA256()))
            return
        except (InvalidSignature, ValueError):
            continue
    raise Refused(f"the signature does not verify with key {kid!r} (tampered, or signed "
                  "by another key)")


def _instant(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Refused(f"the credential's {what} is not a number of seconds")
    return int(value)


def _iso_seconds(text: Any) -> Optional[float]:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def _capabilities(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise Refused(f"{what} are not a list of strings")
    return value


def covers(held: str, wanted: str, *, plain: bool = True) -> bool:
    """The reference's capability matching (``action:resource``): the same action, and a
    resource that is ``*``, the same, or a scope of it (``db`` covers ``db.users``). A
    name without ``:`` covers only itself when ``plain`` (a policy's plain capability
    names); never otherwise, as in the reference."""
    if ":" not in held or ":" not in wanted:
        return plain and held == wanted
    if held == wanted:
        return True
    held_action, held_resource = held.split(":", 1)
    action, resource = wanted.split(":", 1)
    return held_action == action and (held_resource == "*" or resource.startswith(
        held_resource + "."))


CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")  # least to most
_PER_HOUR = {"second": 3600, "minute": 60, "hour": 1}


def _per_hour(rate: Any) -> Optional[int]:
    """A ``rate_limit`` such as ``100/hour`` in requests per hour (None: not one)."""
    if not isinstance(rate, str) or rate.count("/") != 1:
        return None
    count, unit = rate.split("/")
    if not count.isdigit() or unit not in _PER_HOUR:
        return None
    return int(count) * _PER_HOUR[unit]


def _domain_within(pattern: Any, domain: Any) -> bool:
    """``domain`` is ``pattern``, or under it when the pattern is ``*.SUFFIX``."""
    if not isinstance(pattern, str) or not isinstance(domain, str):
        return False
    if pattern.startswith("*."):
        return domain.endswith(pattern[1:]) and len(domain) > len(pattern) - 1
    return pattern == domain


def _looser_constraints(declared: Any, granted: Any) -> Optional[str]:
    """Why the credential's ``constraints`` give more than the discovery document's for
    the agent (step 9 of the reference's verification), or None. A credential without
    constraints, or without one of them, has the discovery's; one the discovery sets
    that the credential gives in a form that cannot be compared is refused (fail
    closed)."""
    if not declared:
        return None
    if not isinstance(declared, dict):
        return "the discovery document's constraints are not an object"
    if not granted:
        return None
    if not isinstance(granted, dict):
        return "its constraints are not an object"
    most, asked = declared.get("data_classification_max"), granted.get("data_classification_max")
    if most in CLASSIFICATIONS and asked is not None:
        if asked not in CLASSIFICATIONS:
            return f"data_classification_max {asked!r} is not one of {', '.join(CLASSIFICATIONS)}"
        if CLASSIFICATIONS.index(asked) > CLASSIFICATIONS.index(most):
            return f"data_classification_max {asked} is above {most}"
    limit, rate = _per_hour(declared.get("rate_limit")), granted.get("rate_limit")
    if limit is not None and rate is not None:
        per_hour = _per_hour(rate)
        if per_hour is None:
            return f"rate_limit {rate!r} is not COUNT/second|minute|hour"
        if per_hour > limit:
            return f"rate_limit {rate} is above {declared['rate_limit']}"
    within, domains = declared.get("allowed_domains"), granted.get("allowed_domains")
    if isinstance(within, list) and within and domains is not None:
        if not isinstance(domains, list):
            return "allowed_domains is not a list"
        outside = [str(d) for d in domains if not any(_domain_within(p, d) for p in within)]
        if outside:
            return f"allowed_domains {', '.join(outside)} outside {', '.join(map(str, within))}"
    return None


class Documents:
    """Discovery and revocation documents by domain, from a trust bundle file (reread
    when it changes) or fetched from the domain's well-known URLs (cached).

    A well-known fetch never runs on the caller's thread (the scheduler loop's): a
    document not in the cache is fetched by a thread of its own, the caller is told
    :class:`Pending`, and ``on_fetched`` is called once the fetch has ended, or has
    failed at ``FETCH_DEADLINE`` (a server that answers a byte at a time does not hold
    anything up; its late answer is dropped)."""

    def __init__(self, settings: Callable[[], AgentPinConfig],
                 fetch: Optional[Callable[[str, float], bytes]] = None, *,
                 deadline: float = FETCH_DEADLINE,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._fetch = fetch or _https_get
        self._deadline = deadline  # seconds (a real timer's)
        self._monotonic = monotonic  # the cache's ages
        self._lock = threading.Lock()
        self._bundle: tuple[Optional[str], float, dict[str, Any]] = (None, 0.0, {})
        self._cache: dict[str, tuple[float, Optional[dict[str, Any]]]] = {}
        self._inflight: dict[str, tuple[object, threading.Timer]] = {}  # url -> its fetch
        self._threads: dict[str, threading.Thread] = {}  # url -> its last fetch's thread
        self.on_fetched: Callable[[], None] = lambda: None  # the scheduler loop's wake

    def get(self, domain: str) -> tuple[dict[str, Any], Optional[dict[str, Any]]]:
        """(discovery, revocation or None) for ``domain``; raises Refused."""
        settings = self._settings()
        if settings.discovery == "wellknown":
            return self._wellknown(domain, settings.cache_ttl_seconds)
        if settings.trust_bundle is None:
            raise Refused("no trust bundle is configured ([agentpin] trust_bundle), so no "
                          "key can be trusted")
        bundle = self._read_bundle(settings.trust_bundle)
        docs = [d for d in bundle.get("documents") or [] if isinstance(d, dict)
                and d.get("entity") == domain]
        if not docs:
            raise Refused(f"domain {domain!r} is not in the trust bundle "
                          f"{settings.trust_bundle}")
        revs = [d for d in bundle.get("revocations") or [] if isinstance(d, dict)
                and d.get("entity") == domain]
        return docs[0], (revs[0] if revs else None)

    def _read_bundle(self, path: str) -> dict[str, Any]:
        try:
            mtime = os.stat(path).st_mtime
        except OSError as exc:
            raise Refused(f"the trust bundle {path} cannot be read: {exc.strerror}") from None
        with self._lock:
            known, seen, bundle = self._bundle
            if known == path and seen == mtime:
                return bundle
        try:
            with open(path, "rb") as f:
                data = json.loads(f.read(MAX_DOCUMENT + 1)[:MAX_DOCUMENT])
        except (OSError, ValueError) as exc:
            raise Refused(f"the trust bundle {path} is not readable JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("agentpin_bundle_version") != "0.1":
            raise Refused(f"the trust bundle {path} is not an AgentPin trust bundle "
                          "(agentpin_bundle_version 0.1)")
        with self._lock:
            self._bundle = (path, mtime, data)
        return data

    def _wellknown(self, domain: str, ttl: float
                   ) -> tuple[dict[str, Any], Optional[dict[str, Any]]]:
        discovery = self._document(f"https://{domain}/.well-known/agent-identity.json", ttl)
        if discovery is None:
            raise Refused(f"the discovery document of {domain} could not be fetched")
        endpoint = discovery.get("revocation_endpoint")
        revocation = self._document(endpoint, ttl) if isinstance(endpoint, str) and \
            endpoint.startswith("https://") else None
        if isinstance(endpoint, str) and revocation is None:
            raise Refused(f"the revocation document of {domain} could not be fetched: "
                          "failing closed")
        return discovery, revocation

    def _document(self, url: str, ttl: float) -> Optional[dict[str, Any]]:
        """The document at ``url`` (None: it could not be fetched), from the cache while
        it is fresh: a document for ``ttl`` but at least two fetch deadlines (so that a
        decision that needs a domain's two documents gets both, however small the ttl),
        a failure for FAILURE_TTL seconds (a domain that is down is asked once in that
        time, not on every run). Raises :class:`Pending` while it is being fetched. A
        fetch whose thread still hangs after its deadline is not started again: its
        failure stands until that thread has ended (one thread per URL, at most)."""
        now = self._monotonic()
        with self._lock:
            hit = self._cache.get(url)
            fresh = max(ttl, 2 * self._deadline) if hit is not None and hit[1] is not None \
                else FAILURE_TTL
            if hit is not None and now - hit[0] < fresh:
                return hit[1]
            hung = self._threads.get(url)
            if hit is not None and hung is not None and hung.is_alive():
                return hit[1]  # the last fetch hangs still: it has failed, and still does
            if url not in self._inflight:
                self._start_fetch(url)
                if url not in self._inflight:
                    return None  # its thread could not be started: failed
        raise Pending(f"{url} is being fetched")

    def _start_fetch(self, url: str) -> None:
        """A fetch of ``url`` on its own thread, failed at the deadline by a timer (the
        lock held). A thread that cannot be started is a failed fetch, never a fetch
        that stays in flight."""
        token = object()
        timer = threading.Timer(self._deadline, self._settle, (
            url, token, None, f"no answer within {self._deadline:g} s"))
        timer.daemon = True
        thread = threading.Thread(target=self._fetch_into, args=(url, token), daemon=True,
                                  name="agentpin-fetch")
        try:
            thread.start()
            timer.start()
        except RuntimeError as exc:  # can't start new thread: fail closed, try again later
            timer.cancel()
            self._cache[url] = (self._monotonic(), None)
            log.warning("agentpin: %s could not be fetched: %s", url, exc)
            if thread.is_alive():
                self._threads[url] = thread
            return
        self._inflight[url] = (token, timer)
        self._threads[url] = thread
        log.info("agentpin: fetching %s; runs that need it wait for it", url)

    def _fetch_into(self, url: str, token: object) -> None:
        try:
            value = json.loads(self._fetch(url, FETCH_TIMEOUT))
        except Exception as exc:
            self._settle(url, token, None, str(exc))
            return
        if isinstance(value, dict):
            self._settle(url, token, value)
        else:
            self._settle(url, token, None, "the document is not a JSON object")

    def _settle(self, url: str, token: object, doc: Optional[dict[str, Any]],
                failed: Optional[str] = None) -> None:
        """A fetch has ended (or its deadline has come first): cache what it got, then
        wake whoever waits for it. Only the first of the two counts."""
        with self._lock:
            current = self._inflight.get(url)
            if current is None or current[0] is not token:
                return
            del self._inflight[url]
            current[1].cancel()
            self._cache[url] = (self._monotonic(), doc)
        if failed is not None:
            log.warning("agentpin: %s could not be fetched: %s", url, failed)
        self.on_fetched()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an error: discovery must be served where it is asked


def _https_get(url: str, timeout: float, deadline: float = FETCH_DEADLINE) -> bytes:
    """GET ``url`` (https only, no redirects): ``timeout`` seconds per socket operation,
    and the body read in pieces within ``deadline`` seconds in all (a server that answers
    a byte at a time is given up on)."""
    if not url.startswith("https://"):
        raise OSError(f"{url} is not an https URL")
    ends = time.monotonic() + deadline
    opener = urllib.request.build_opener(_NoRedirects)
    request = urllib.request.Request(  # noqa: S310 - https only, checked above
        url, headers={"Accept": "application/json"})
    with opener.open(request, timeout=timeout) as reply:
        if reply.status != 200:
            raise OSError(f"HTTP {reply.status}")
        body = b""
        while len(body) <= MAX_DOCUMENT:
            if time.monotonic() > ends:
                raise OSError(f"the document took longer than {deadline:g} s")
            piece = reply.read1(65536)
            if not piece:
                return body
            body += piece
        raise OSError("the document is too large")


class AgentPinVerifier:
    """The policy gate's verifier: ``verifier(job, agent, now) -> None | reason``."""

    def __init__(self, settings: Callable[[], AgentPinConfig], environ: Mapping[str, str],
                 documents: Optional[Documents] = None) -> None:
        self._settings = settings
        self._environ = environ
        self.documents = documents or Documents(settings)

    def __call__(self, job: Job, agent: Agent, now: int) -> Optional[str]:
        try:
            try:
                self.verify(job, agent, now)
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError,
                    OverflowError) as exc:  # a hostile token or document: fail closed
                raise Refused(f"the credential or its documents are malformed "
                              f"({type(exc).__name__})") from None
        except Refused as exc:
            log.warning("job %s: AgentPin credential refused: %s", job.name, exc,
                        extra={"SYMBID_JOB": job.name, "SYMBID_EVENT": "agentpin_refused"})
            return f"AgentPin credential refused: {exc}"
        return None

    def verify(self, job: Job, agent: Agent, now: int) -> None:
        """Raises :class:`Refused` with the reason when ``job``'s credential does not
        verify for ``agent`` at ``now`` (epoch ms)."""
        settings = self._settings()
        if not job.agent_pin_jwt:
            raise Refused("the job has no agent_pin_jwt (a ${VAR} reference to the "
                          "credential in symbid's environment)")
        try:
            token = resolve_refs(job.agent_pin_jwt, self._environ, what="agent_pin_jwt").strip()
        except InvalidInput as exc:
            raise Refused(exc.message) from None
        if len(token) > MAX_TOKEN:
            raise Refused(f"the credential is longer than {MAX_TOKEN} characters")
        parts = token.split(".")
        if len(parts) != 3:
            raise Refused("the credential is not a JWT (three dot-separated parts)")
        header, claims = _json_part(parts[0], "header"), _json_part(parts[1], "claims")
        alg = header.get("alg")
        if alg != "ES256":
            raise Refused(f"alg {alg!r} is refused: only ES256 (ECDSA P-256) is accepted")
        if header.get("typ") != TYP:
            raise Refused(f"typ {header.get('typ')!r} is not {TYP!r}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Refused("the credential's header has no kid")
        domain = self._domain(settings, agent)
        if claims.get("iss") != domain:
            raise Refused(f"iss {claims.get('iss')!r} is not the expected domain {domain!r}")
        discovery, revocation = self.documents.get(domain)
        if discovery.get("entity") != domain:
            raise Refused(f"the discovery document is for {discovery.get('entity')!r}, not "
                          f"{domain!r}")
        if discovery.get("agentpin_version") != "0.1":
            raise Refused(f"{domain}'s discovery document has agentpin_version "
                          f"{discovery.get('agentpin_version')!r}; only 0.1 is understood")
        skew = settings.clock_skew_seconds
        seconds = now / 1000
        jwk = next((k for k in discovery.get("public_keys") or [] if isinstance(k, dict)
                    and k.get("kid") == kid), None)
        if jwk is None:
            raise Refused(f"key {kid!r} is not in {domain}'s discovery document")
        key_exp = _iso_seconds(jwk.get("exp"))
        if key_exp is not None and key_exp < seconds - skew:
            raise Refused(f"key {kid!r} expired at {jwk.get('exp')}")
        _verify_signature(_public_key(jwk, kid), f"{parts[0]}.{parts[1]}".encode(),
                          _b64(parts[2], "signature"), kid)
        self._times(claims, seconds, settings)
        identity = agent.agentpin_id or f"urn:agentpin:{domain}:{agent.name}"
        if claims.get("sub") != identity:
            raise Refused(f"sub {claims.get('sub')!r} is not agent {agent.name}'s AgentPin "
                          f"identity {identity!r}")
        self._revoked(revocation, claims, kid)
        declared = next((a for a in discovery.get("agents") or [] if isinstance(a, dict)
                         and a.get("agent_id") == identity), None)
        if declared is None:
            raise Refused(f"agent {identity!r} is not in {domain}'s discovery document")
        if declared.get("status") != "active":
            raise Refused(f"agent {identity!r} is {declared.get('status')!r} in the "
                          "discovery document, not active")
        granted = _capabilities(claims.get("capabilities"), "the credential's capabilities")
        allowed = _capabilities(declared.get("capabilities"),
                                f"agent {identity!r}'s capabilities in the discovery document")
        beyond = [c for c in granted if not any(covers(d, c, plain=False) for d in allowed)]
        if beyond:
            raise Refused(f"the credential grants {', '.join(beyond)}, beyond what the "
                          "discovery document declares for the agent")
        looser = _looser_constraints(declared.get("constraints"), claims.get("constraints"))
        if looser is not None:
            raise Refused(f"the credential's constraints are less restrictive than the "
                          f"discovery document's for the agent: {looser}")
        missing = [c for c in job.policy.require_capabilities
                   if not any(covers(g, c) for g in granted)]
        if missing:
            raise Refused(f"the credential does not grant {', '.join(missing)} (it grants "
                          f"{', '.join(map(str, granted)) or 'nothing'})")

    @staticmethod
    def _domain(settings: AgentPinConfig, agent: Agent) -> str:
        if settings.domain:
            return settings.domain
        parts = (agent.agentpin_id or "").split(":")
        if len(parts) >= 4 and parts[:2] == ["urn", "agentpin"] and parts[2]:
            return parts[2]
        raise Refused("no expected domain: set [agentpin] domain (or SYMBI_AGENTPIN_DOMAIN), "
                      f"or give agent {agent.name} an agentpin_id urn:agentpin:DOMAIN:NAME")

    @staticmethod
    def _times(claims: Mapping[str, Any], seconds: float, settings: AgentPinConfig) -> None:
        skew = settings.clock_skew_seconds
        iat, exp = _instant(claims.get("iat"), "iat"), _instant(claims.get("exp"), "exp")
        if iat > seconds + skew:
            raise Refused(f"the credential is issued in the future ({format_instant(iat * 1000)})")
        if exp <= seconds - skew:
            raise Refused(f"the credential expired at {format_instant(exp * 1000)}")
        if claims.get("nbf") is not None:
            nbf = _instant(claims.get("nbf"), "nbf")
            if nbf > seconds + skew:
                raise Refused(f"the credential is not valid before {format_instant(nbf * 1000)}")
        if exp - iat > settings.max_ttl_seconds:
            raise Refused(f"the credential's lifetime ({exp - iat} s) is longer than "
                          f"max_ttl_seconds ({settings.max_ttl_seconds:g} s)")

    @staticmethod
    def _revoked(revocation: Optional[Mapping[str, Any]], claims: Mapping[str, Any],
                 kid: str) -> None:
        if not revocation:
            return
        for key, value, what in (("revoked_credentials", claims.get("jti"), "jti"),
                                 ("revoked_agents", claims.get("sub"), "agent_id"),
                                 ("revoked_keys", kid, "kid")):
            for entry in revocation.get(key) or []:
                if isinstance(entry, dict) and value is not None and entry.get(what) == value:
                    reason = entry.get("reason")
                    thing = {"jti": "the credential", "agent_id": "the agent",
                             "kid": f"key {kid!r}"}[what]
                    raise Refused(f"{thing} is revoked" + (f" ({reason})" if reason else ""))
