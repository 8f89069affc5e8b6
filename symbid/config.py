"""Daemon configuration: one TOML file plus a few environment variables.

Sections and keys (defaults in the dataclasses below; symbid.toml(5) documents
each): ``[daemon]`` paths, ``[api]``, ``[scheduler]`` with the seed guide's keys
and defaults plus symbid's additions, ``[scheduler.delivery]`` with the seed's
delivery keys, ``[agentpin]``, ``[llm]``, ``[audit]`` and ``[metrics]``. Unknown
keys and wrong types are errors naming the file and the key. Relative paths are
relative to the file.
Values such as ``"${SMTP_PASS}"`` stay references until they are used.

Environment variables from the seed guide override their keys:
SYMBI_SCHEDULER_MAX_JITTER, SYMBI_SCHEDULER_MAX_CONCURRENT, SYMBI_SLACK_TOKEN,
SYMBI_WEBHOOK_AUTH_HEADER, SYMBI_AGENTPIN_REQUIRED, SYMBI_AGENTPIN_DOMAIN.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import re
import stat
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Optional
from urllib.parse import urlsplit

from symbid.auth import DEFAULT_TOKEN_NAME, FILES_ACTOR, SCHEDULER
from symbid.channels import CUSTOM_NAME
from symbid.errors import InvalidInput

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(InvalidInput):
    code = "invalid_config"


@dataclass(frozen=True)
class SchedulerConfig:
    # The seed's CronSchedulerConfig, with its defaults.
    tick_interval_seconds: float = 1.0  # caps the loop's sleep; not a poll interval
    max_jitter_seconds: float = 0.0
    max_concurrent_jobs: int = 10
    enable_metrics: bool = True
    default_max_retries: int = 3
    shutdown_timeout_seconds: float = 30.0
    # symbid's additions.
    misfire_grace_seconds: float = 60.0  # a slot later than this is "missed" (catch-up applies)
    retry_backoff_seconds: float = 30.0  # first retry delay; doubles per attempt
    retry_backoff_max_seconds: float = 3600.0
    keep_runs: int = 1000  # run records kept per job
    kill_grace_seconds: float = 5.0  # SIGTERM -> SIGKILL grace for a run's process group
    approval_timeout_seconds: float = 3600.0  # a run awaiting approval is cancelled after it


@dataclass(frozen=True)
class CustomChannel:
    """``[scheduler.delivery.custom.NAME]``: a ``custom:NAME`` channel run as a command."""

    command: tuple[str, ...]  # argv; the delivery's JSON payload arrives on its stdin
    # Its environment beyond PATH, LANG and the SYMBID_* variables: values may be ${VAR}
    # references to symbid's environment, resolved at each send and masked in receipts.
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliverySettings:
    """``[scheduler.delivery]``: the seed's keys, plus what symbid's channels need.

    ``smtp_starttls`` and ``smtp_ssl`` are never both true once loaded: ``smtp_ssl = true``
    without ``smtp_starttls`` written turns STARTTLS off (the connection is TLS already),
    and ``smtp_port`` then defaults to 465.
    """

    webhook_timeout_seconds: float = 30.0  # every network delivery and custom command
    webhook_retry_attempts: int = 3
    backoff_seconds: float = 2.0  # a failed delivery's first wait; doubles each time
    workers: int = 4  # deliveries attempted at once
    webhook_auth_header: Optional[str] = None  # default Authorization header for webhooks
    slack_api_token: Optional[str] = None
    slack_default_channel: Optional[str] = None
    slack_webhook_url: Optional[str] = None
    slack_api_base: str = "https://slack.com/api"  # the Web API's base URL
    smtp_host: Optional[str] = None
    smtp_port: int = 587
    smtp_username: Optional[str] = None
    smtp_password: Optional[str] = None
    smtp_starttls: bool = True  # STARTTLS is required (never sent in clear) when true
    smtp_ssl: bool = False  # implicit TLS (SMTPS, port 465)
    email_from: Optional[str] = None
    ca_bundle: Optional[str] = None  # PEM file of CAs trusted instead of the system store
    custom: Mapping[str, CustomChannel] = field(default_factory=dict)


@dataclass(frozen=True)
class DaemonConfig:
    state_dir: str = "/var/lib/symbid"
    socket: str = "/run/symbid/control.sock"
    socket_group: Optional[str] = None  # group owning the socket (mode 0660)
    agents_dir: str = "/etc/symbid/agents.d"
    log_dir: str = "/var/log/symbid"
    runs_dir: str = "/var/lib/symbid-runs"  # runs' private directories (0711; each 0700)
    # The user runs execute as when their agent names none (the packaged config: symbid-run);
    # unset, runs execute as the daemon's own user.
    run_user: Optional[str] = None
    log_file: Optional[str] = None  # the daemon's log is also written here, as JSON lines
    environment: str = "production"  # matched by policy.allowed_environments


@dataclass(frozen=True)
class ApiConfig:
    listen: Optional[str] = None  # "HOST:PORT"; TCP is off unless set
    token_file: Optional[str] = None  # bearer token for TCP (or SYMBI_API_KEY)
    max_body_bytes: int = 1024 * 1024  # a larger request body gets 413, from its headers
    # A JSON array body on POST /api/v1/schedule (a batch create): its own cap
    max_batch_bytes: int = 16 * 1024 * 1024
    max_connections: int = 2048  # per listener; RLIMIT_NOFILE is raised to fit
    head_timeout_seconds: float = 10.0  # to send a complete request head (slowloris)
    idle_timeout_seconds: float = 60.0  # an open connection with no request going
    define_agents: bool = True  # POST/DELETE /api/v1/agents; false: agents_dir files only
    # [api.tokens]: NAME = "${VAR}", one named TCP token each (the name is the actor, as
    # approvers are listed); token_file / SYMBI_API_KEY is the token named "default"
    tokens: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentPinConfig:
    required: bool = False  # every run needs its AgentPin credential verified
    domain: Optional[str] = None  # the issuer (iss) credentials must name; else the agent's
    discovery: str = "bundle"  # where keys come from: "bundle" (trust_bundle) | "wellknown"
    trust_bundle: Optional[str] = None  # a trust bundle file (agentpin_bundle_version 0.1)
    clock_skew_seconds: float = 60.0  # allowed for iat, exp, nbf and key expiry
    max_ttl_seconds: float = 86400.0  # a credential's lifetime (exp - iat) at most
    cache_ttl_seconds: float = 300.0  # discovery and revocation documents fetched (wellknown)


@dataclass(frozen=True)
class MetricsConfig:
    # Series per job (job_name label) in /metrics; false: those families aggregate over
    # all jobs, without the label (for very large installs). Taken at start.
    per_job_labels: bool = True


@dataclass(frozen=True)
class AuditConfig:
    retention_days: float = 365.0  # events older than this go (start, reload, hourly)


@dataclass(frozen=True)
class LlmConfig:
    endpoint: Optional[str] = None  # base URL of an OpenAI-compatible API
    api_key: Optional[str] = None
    model: Optional[str] = None
    timeout_seconds: float = 120.0  # one request
    max_retries: int = 3  # of a request answered 429/5xx or not at all
    max_tool_calls: int = 16  # per run
    max_context_bytes: int = 256 * 1024  # the conversation sent, oldest turns dropped
    max_concurrent_requests: int = 4  # requests in flight across all runs (slot files)


@dataclass(frozen=True)
class Config:
    path: Optional[str] = None
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    agentpin: AgentPinConfig = field(default_factory=AgentPinConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


_SECTIONS: dict[str, type] = {
    "daemon": DaemonConfig, "api": ApiConfig, "scheduler": SchedulerConfig,
    "agentpin": AgentPinConfig, "llm": LlmConfig, "audit": AuditConfig,
    "metrics": MetricsConfig,
}
_PATH_KEYS = {("daemon", "state_dir"), ("daemon", "socket"), ("daemon", "agents_dir"),
              ("daemon", "log_dir"), ("daemon", "runs_dir"), ("daemon", "log_file"),
              ("api", "token_file"),
              ("scheduler.delivery", "ca_bundle"), ("agentpin", "trust_bundle")}
# Environment variable -> (section, key) it overrides.
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "SYMBI_SCHEDULER_MAX_JITTER": ("scheduler", "max_jitter_seconds"),
    "SYMBI_SCHEDULER_MAX_CONCURRENT": ("scheduler", "max_concurrent_jobs"),
    "SYMBI_SLACK_TOKEN": ("scheduler.delivery", "slack_api_token"),
    "SYMBI_WEBHOOK_AUTH_HEADER": ("scheduler.delivery", "webhook_auth_header"),
    "SYMBI_AGENTPIN_REQUIRED": ("agentpin", "required"),
    "SYMBI_AGENTPIN_DOMAIN": ("agentpin", "domain"),
}
# Keys whose value must be at least this (everything numeric must be >= 0).
_MINIMUM = {"tick_interval_seconds": 0.001, "max_concurrent_jobs": 1, "keep_runs": 1,
            "smtp_port": 1, "timeout_seconds": 0.001, "webhook_timeout_seconds": 0.001,
            "max_body_bytes": 1024, "max_batch_bytes": 1024, "max_connections": 1,
            "head_timeout_seconds": 0.1,
            "idle_timeout_seconds": 1, "max_context_bytes": 1024,
            "max_concurrent_requests": 1, "backoff_seconds": 0.001, "workers": 1,
            "approval_timeout_seconds": 1, "retention_days": 1}
# Keys whose value must be at most this: smtp_port is a port; max_concurrent_requests is
# one slot file each, made at start and on reload; a delivery attempt holds a worker for
# up to webhook_timeout_seconds.
_MAXIMUM = {"smtp_port": 65535, "max_concurrent_requests": 1024, "workers": 64,
            "webhook_retry_attempts": 100, "webhook_timeout_seconds": 300,
            "approval_timeout_seconds": 30 * 86400, "retention_days": 36500}



def _type_name(tp: Any) -> str:
    return {bool: "a boolean (true/false)", int: "a whole number", float: "a number",
            str: "a string"}.get(tp, str(tp))


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        args = typing.get_args(tp)
        if args and type(None) in args:  # Optional[X]
            tp = next(a for a in args if a is not type(None))
        out[f.name] = tp
    return out


def _check_value(where: str, key: str, tp: Any, value: Any) -> Any:
    ok = (tp is bool and isinstance(value, bool)) or \
        (tp is int and isinstance(value, int) and not isinstance(value, bool)) or \
        (tp is float and isinstance(value, (int, float)) and not isinstance(value, bool)) or \
        (tp is str and isinstance(value, str))
    if not ok:
        raise ConfigError(f"{where}: {key} must be {_type_name(tp)}, got {value!r}",
                          field=key)
    if tp in (int, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: {key} must be a finite number", field=key)
        minimum = _MINIMUM.get(key.rsplit(".", 1)[-1], 0)
        if value < minimum:
            raise ConfigError(f"{where}: {key} must be at least {minimum}, got {value!r}",
                              field=key)
        maximum = _MAXIMUM.get(key.rsplit(".", 1)[-1])
        if maximum is not None and value > maximum:
            raise ConfigError(f"{where}: {key} must be at most {maximum}", field=key)
    return float(value) if tp is float else value


def _build(cls: type, table: Mapping[str, Any], section: str, where: str,
           skip: tuple[str, ...] = ()) -> Any:
    types = _field_types(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in skip:
            continue
        dotted = f"{section}.{key}"
        if key not in types:
            hint = difflib.get_close_matches(key, list(types), n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(f"{where}: unknown key {dotted!r}{extra}", field=dotted)
        values[key] = _check_value(where, dotted, types[key], value)
    return cls(**values)


def _parse_env(name: str, key: str, text: str, tp: Any) -> Any:
    try:
        if tp is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(text)
        if tp is int:
            value: Any = int(text)
        elif tp is float:
            value = float(text)
        else:
            return text
    except ValueError:
        raise ConfigError(f"environment variable {name}={text!r} is not "
                          f"{_type_name(tp)}", field=name) from None
    _check_value(f"environment variable {name}", key, tp, value)
    return value


def _at_line(message: str, raw: bytes) -> str:
    """The TOML parser's message with its "(at end of document)" made a line and column
    like its other messages', so every one names where in the file."""
    text = raw.decode("utf-8")
    line = text.count("\n") + 1
    col = len(text) - (text.rfind("\n") + 1) + 1
    return message.replace("(at end of document)", f"(at line {line}, column {col})")


def load_config(path: Optional[str], environ: Optional[Mapping[str, str]] = None) -> Config:
    """Read the config file (or only defaults when ``path`` is None) and the env overrides.

    Raises :class:`ConfigError` naming the file and the key.
    """
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    base = os.getcwd()
    where = "defaults"
    if path is not None:
        where = path
        base = os.path.dirname(os.path.abspath(path))
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
            data = tomllib.loads(raw.decode("utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
            raise ConfigError(f"{path}: not valid TOML: not UTF-8 (at line {line}, column "
                              f"{col})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {_at_line(str(exc), raw)}") from None
    for key in data:
        if key not in _SECTIONS:
            hint = difflib.get_close_matches(key, list(_SECTIONS), n=1)
            extra = f"; did you mean [{hint[0]}]?" if hint else \
                f"; sections are {', '.join('[' + s + ']' for s in _SECTIONS)}"
            raise ConfigError(f"{where}: unknown section [{key}]{extra}", field=key)
        if not isinstance(data[key], dict):
            raise ConfigError(f"{where}: {key} must be a table ([{key}])", field=key)
    sched_table = dict(data.get("scheduler", {}))
    delivery_table = sched_table.get("delivery", {})
    if not isinstance(delivery_table, dict):
        raise ConfigError(f"{where}: scheduler.delivery must be a table "
                          "([scheduler.delivery])", field="scheduler.delivery")
    tables: dict[str, dict[str, Any]] = {name: dict(data.get(name, {})) for name in _SECTIONS}
    tables["scheduler"] = {k: v for k, v in sched_table.items() if k != "delivery"}
    tables["scheduler.delivery"] = dict(delivery_table)
    classes = dict(_SECTIONS, **{"scheduler.delivery": DeliverySettings})
    for var, (section, key) in ENV_OVERRIDES.items():
        if var in environ:
            tp = _field_types(classes[section])[key]
            tables[section][key] = _parse_env(var, key, environ[var], tp)
    for section, key in _PATH_KEYS:
        value = tables[section].get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            tables[section][key] = os.path.normpath(os.path.join(base, value))
    built = {name: _build(cls, tables[name], name, where, skip=("custom", "tokens"))
             for name, cls in classes.items()}
    built["api"] = replace(built["api"], tokens=_tokens(tables["api"].get("tokens", {}),
                                                        where))
    built["scheduler.delivery"] = _delivery(built["scheduler.delivery"],
                                            tables["scheduler.delivery"], where, base)
    listen = built["api"].listen
    m = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})", listen or "")
    if listen is not None and (m is None or not 1 <= int(m.group(2)) <= 65535):
        raise ConfigError(f"{where}: api.listen must be HOST:PORT with a port from 1 to "
                          f"65535, got {listen!r}", field="api.listen")
    _check_agentpin(built["agentpin"], where)
    return Config(
        path=os.path.abspath(path) if path else None,
        daemon=built["daemon"], api=built["api"], scheduler=built["scheduler"],
        delivery=built["scheduler.delivery"], agentpin=built["agentpin"], llm=built["llm"],
        audit=built["audit"], metrics=built["metrics"],
    )


# A custom channel's NAME (``custom:NAME``), as entry-point names and TOML keys can carry it.
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_WHOLE_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


def url_problem(url: str, *, references: bool = True) -> Optional[str]:
    """Why ``url`` cannot be POSTed to by a delivery, or None: it must be http(s) with a
    host, no credentials and no space or control character. With ``references`` (a value
    resolved when sent), ``${VAR}`` references may stand after the scheme, and the whole
    URL may be one (a secret URL such as a Slack incoming webhook, held whole in a
    variable): it is checked once resolved. Without (a resolved URL, or a key that is
    never resolved), a ``${`` is a problem."""
    if references and _WHOLE_REFERENCE.fullmatch(url):
        return None
    if not references and "${" in url:
        return "holds a ${...} reference, which is not resolved here"
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not rest or rest[0] in "/?#":
        return "has no host"
    if "@" in rest.split("/", 1)[0]:
        return "must not hold credentials (user:password@); send them in a header"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "has a space or a control character in it"
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "${" not in authority:  # a reference is checked once it is resolved, when sent
        try:
            urlsplit(url).port  # noqa: B018 - raises for a port out of range, a bad host
        except ValueError as exc:
            return f"has a bad host or port ({exc})"
    return None


def _is_loopback(host: str) -> bool:
    """``localhost``, or a loopback address written as one (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _tokens(table: Any, where: str) -> dict[str, str]:
    """``[api.tokens]``: NAME = "${VAR}" (a reference: a token is never written in the
    file), the name a token's holder is known by."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: api.tokens must be a table ([api.tokens])",
                          field="api.tokens")
    out: dict[str, str] = {}
    for name, value in table.items():
        key = f"api.tokens.{name}"
        if not TOKEN_NAME.fullmatch(name):
            raise ConfigError(f"{where}: {key}: a token's name takes letters, digits, '.', "
                              "'_' and '-', starting with a letter or digit", field=key)
        if name in (SCHEDULER, FILES_ACTOR):
            what = "the scheduler decides" if name == SCHEDULER else "agents_dir loads"
            raise ConfigError(f"{where}: {key}: {name!r} is the audit trail's name for what "
                              f"{what}; give the token another name", field=key)
        if not isinstance(value, str) or not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}",
                                                          value):
            raise ConfigError(f"{where}: {key} must be a ${{VAR}} reference to the token in "
                              "symbid's environment (a token is never written in the file)",
                              field=key)
        out[name] = value
    return out


def _check_agentpin(pin: AgentPinConfig, where: str) -> None:
    """The [agentpin] keys that span each other: a discovery that can work."""
    if pin.discovery not in ("bundle", "wellknown"):
        raise ConfigError(f"{where}: agentpin.discovery must be \"bundle\" or \"wellknown\", "
                          f"got {pin.discovery!r}", field="agentpin.discovery")
    if pin.discovery == "bundle" and pin.trust_bundle is not None and \
            not os.path.isfile(pin.trust_bundle):
        raise ConfigError(f"{where}: agentpin.trust_bundle {pin.trust_bundle!r} is not a "
                          "readable file", field="agentpin.trust_bundle")
    if pin.discovery == "wellknown" and pin.trust_bundle is not None:
        raise ConfigError(f"{where}: agentpin.trust_bundle is for discovery = \"bundle\"; "
                          "with \"wellknown\" keys are fetched from each domain",
                          field="agentpin.trust_bundle")


def _delivery(settings: DeliverySettings, table: Mapping[str, Any], where: str,
              base: str) -> DeliverySettings:
    """The delivery settings with the checks that span keys, and the custom channels."""
    prefix = "scheduler.delivery"
    for key in ("slack_api_base", "slack_webhook_url"):
        value = getattr(settings, key)  # only the webhook URL is resolved when sent
        problem = None if value is None else url_problem(
            value, references=key == "slack_webhook_url")
        if problem is not None:
            raise ConfigError(f"{where}: {prefix}.{key} {problem}, got {value!r}",
                              field=f"{prefix}.{key}")
    changes: dict[str, Any] = {}
    if settings.smtp_ssl:
        if table.get("smtp_starttls") is True:
            raise ConfigError(
                f"{where}: {prefix}.smtp_starttls and {prefix}.smtp_ssl are both true; "
                "choose one: smtp_ssl (implicit TLS, port 465) or smtp_starttls (port 587)",
                field=f"{prefix}.smtp_ssl")
        changes["smtp_starttls"] = False
        if "smtp_port" not in table:
            changes["smtp_port"] = 465
    in_clear = not settings.smtp_ssl and not settings.smtp_starttls
    if in_clear and (settings.smtp_username or settings.smtp_password) and \
            settings.smtp_host and not _is_loopback(settings.smtp_host):
        raise ConfigError(
            f"{where}: {prefix}.smtp_username/smtp_password with smtp_starttls = false and "
            f"no smtp_ssl would send the password in clear to {settings.smtp_host!r}; turn "
            "smtp_starttls or smtp_ssl on (only a relay on loopback may go without TLS)",
            field=f"{prefix}.smtp_password")
    if settings.ca_bundle is not None and not os.path.isfile(settings.ca_bundle):
        raise ConfigError(f"{where}: {prefix}.ca_bundle {settings.ca_bundle!r} is not a "
                          "readable file", field=f"{prefix}.ca_bundle")
    custom = table.get("custom", {})
    if not isinstance(custom, dict):
        raise ConfigError(f"{where}: {prefix}.custom must hold tables "
                          f"([{prefix}.custom.NAME])", field=f"{prefix}.custom")
    channels: dict[str, CustomChannel] = {}
    for name, sub in custom.items():
        dotted = f"{prefix}.custom.{name}"
        if not CUSTOM_NAME.fullmatch(name):
            raise ConfigError(f"{where}: [{dotted}]: a custom channel's name takes letters, "
                              "digits, '.', '_' and '-', starts with a letter or digit, at "
                              "most 64 characters", field=dotted)
        if not isinstance(sub, dict):
            raise ConfigError(f"{where}: {dotted} must be a table ([{dotted}])", field=dotted)
        unknown = sorted(set(sub) - {"command", "env"})
        if unknown:
            raise ConfigError(f"{where}: unknown key {dotted + '.' + unknown[0]!r}; "
                              f"[{dotted}] takes command and env",
                              field=f"{dotted}.{unknown[0]}")
        command = sub.get("command")
        if (not isinstance(command, list) or not command
                or not all(isinstance(a, str) and a and "\0" not in a for a in command)):
            raise ConfigError(f"{where}: {dotted}.command must be a non-empty list of "
                              f"non-empty strings (the program and its arguments), got "
                              f"{command!r}", field=f"{dotted}.command")
        program = command[0]
        if "/" in program and not os.path.isabs(program):
            program = os.path.normpath(os.path.join(base, program))
        env = sub.get("env", {})
        if not isinstance(env, dict) or not all(
                isinstance(k, str) and ENV_NAME.fullmatch(k) and not k.startswith("SYMBID_")
                and isinstance(v, str) for k, v in env.items()):
            raise ConfigError(f"{where}: {dotted}.env must be a table of variable names "
                              "(letters, digits, '_', not starting with SYMBID_) to strings",
                              field=f"{dotted}.env")
        channels[name] = CustomChannel(command=(program, *command[1:]), env=dict(env))
    changes["custom"] = channels
    return dataclasses.replace(settings, **changes)


_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def referenced_values(value: str, environ: Mapping[str, str]) -> list[str]:
    """The values the ``${NAME}`` references in ``value`` resolve to (the secrets in it)."""
    return [environ[m.group(1)] for m in _REF.finditer(value) if m.group(1) in environ]


def resolve_refs(value: str, environ: Mapping[str, str], *, what: str) -> str:
    """Replace each ``${NAME}`` with the daemon's environment variable NAME.

    Done only at the moment a value is used; raises :class:`InvalidInput` naming
    the variable when it is not set.
    """

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in environ:
            raise InvalidInput(
                f"{what}: ${{{name}}} is not set in symbid's environment "
                "(set it in the service's Environment= or EnvironmentFile=)",
                field=what,
            )
        return environ[name]

    return _REF.sub(sub, value)


def read_tokens(api: ApiConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """The TCP API's tokens by name: ``default`` from SYMBI_API_KEY or [api]
    token_file, and each of [api.tokens] resolved from the environment."""
    token = environ.get("SYMBI_API_KEY", "").strip()
    path = api.token_file
    if not token and path:
        try:
            with open(path, encoding="utf-8") as fh:
                mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
                token = fh.read().strip()
        except OSError as exc:
            raise ConfigError(f"api.token_file {path}: {exc.strerror}") from None
        if mode & 0o007:  # the runs' users are others: they must not read it
            raise ConfigError(f"api.token_file {path} is mode {mode:04o}: other users (runs "
                              "too) may read or change it; chmod 0600 (or 0640 with the "
                              "daemon's group)", field="api.token_file")
    tokens = {DEFAULT_TOKEN_NAME: token} if token else {}
    for name, ref in api.tokens.items():
        if name in tokens:
            raise ConfigError(f"api.tokens.{name}: the name {name!r} is the token of "
                              "[api] token_file / SYMBI_API_KEY; choose another")
        value = resolve_refs(ref, environ, what=f"api.tokens.{name}").strip()
        if not value:
            raise ConfigError(f"api.tokens.{name}: {ref} is empty in symbid's "
                              "environment")
        tokens[name] = value
    for name, value in tokens.items():
        if not all(0x21 <= ord(c) <= 0x7E for c in value):
            where = "[api] token_file / SYMBI_API_KEY" if name == DEFAULT_TOKEN_NAME \
                else f"api.tokens.{name}"
            raise ConfigError(f"{where}: a token must be printable ASCII without spaces "
                              "(an HTTP header cannot carry anything else exactly)")
    if len(set(tokens.values())) != len(tokens):
        raise ConfigError("two [api] tokens have the same value: each name needs its own "
                          "token, or a request could not say who it is")
    if not tokens:
        raise ConfigError("the HTTP API is enabled ([api] listen) but has no token: set "
                          "[api] token_file, SYMBI_API_KEY or [api.tokens]")
    return tokens
