"""Custom channels: ``custom:NAME``, an entry point or a command.

``custom:NAME`` resolves, in this order, to:

1. a Python entry point named NAME in group ``symbid.delivery``, whose object (a module,
   an instance, or a class, made once with no arguments) implements the router protocol
   :class:`symbid.delivery.base.DeliveryRouter` (``route(channel, job, run, output)``).
   It runs in the daemon, in a thread of its own given ``webhook_timeout_seconds``: a
   ``route`` that has not returned by then is a retryable failure (its thread is left to
   finish, as a thread cannot be killed). While such a call is still hung, the entry
   point is not called again: each attempt meanwhile is a retryable failure that says
   so, so a plugin that hangs holds one thread, never one per attempt;
2. ``[scheduler.delivery.custom.NAME] command = [...]``: a process (in its own process
   group, working directory ``/``) that gets the payload's JSON on stdin. Its environment
   is not symbid's (which holds every channel's secrets): ``PATH`` and ``LANG`` from it,
   ``SYMBID_DELIVERY_ID``, ``SYMBID_JOB``, ``SYMBID_RUN``, ``SYMBID_STATUS`` and
   ``SYMBID_CHANNEL``, and the table's ``env`` with ``${VAR}`` resolved. Exit 0 is
   success; any other exit is a retryable failure with the tail of its stderr; past
   ``webhook_timeout_seconds`` its whole group is killed.
"""

from __future__ import annotations

import importlib.metadata
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import IO, Any, Optional

from symbid.channels import CUSTOM_NAME, CUSTOM_PREFIX
from symbid.config import CustomChannel, DeliverySettings
from symbid.delivery.base import (
    DeliveryFailed,
    Payload,
    Receipt,
    Target,
    clean,
    elapsed_ms,
    refused,
    resolve,
    secrets_of,
)
from symbid.errors import InvalidInput

PREFIX = CUSTOM_PREFIX
GROUP = "symbid.delivery"
TAIL = 2048  # bytes of a command's stderr (and stdout) read back


def _entry_point(name: str) -> Optional[importlib.metadata.EntryPoint]:
    if sys.version_info >= (3, 10):
        found = importlib.metadata.entry_points(group=GROUP)
    else:  # pragma: no cover - Python 3.9 returns a dict of groups
        found = importlib.metadata.entry_points().get(GROUP, ())  # type: ignore[attr-defined]
    return next((ep for ep in found if ep.name == name), None)


def problem(target: Target, settings: DeliverySettings, *, name: str) -> Optional[str]:
    """Why ``custom:NAME`` cannot be delivered to, or None when it resolves."""
    if not CUSTOM_NAME.fullmatch(name):
        return (f"channel {PREFIX + name!r}: a custom channel's name takes letters, digits, "
                "'.', '_' and '-', starts with a letter or digit, at most 64 characters")
    if _entry_point(name) is not None or name in settings.custom:
        return None
    return (f"channel {PREFIX + name!r} is not defined: install a Python entry point "
            f"{name!r} in group {GROUP!r}, or set [scheduler.delivery.custom.{name}] "
            "command = [...] in symbid.toml")


_loaded: dict[str, Any] = {}
_loading = threading.Lock()


def _router(ep: importlib.metadata.EntryPoint) -> Any:
    """The entry point's object (a class made once); raises what loading it raises."""
    key = f"{ep.name}={ep.value}"
    with _loading:
        if key not in _loaded:
            obj = ep.load()
            _loaded[key] = obj() if isinstance(obj, type) else obj
        return _loaded[key]


def _job_and_run(payload: Payload, target: Target) -> tuple[dict[str, Any], dict[str, Any]]:
    delivery_config = {k: v for k, v in target.to_dict().items() if k != "webhook_secret"}
    job = {"id": payload.job_id, "name": payload.job, "delivery_config": delivery_config}
    run = {k: v for k, v in payload.to_json().items() if k not in ("output", "job")}
    run["id"] = run.pop("run")
    return job, run


_hung: dict[str, tuple[threading.Thread, float]] = {}  # entry point: its call past time


def _still_hung(key: str) -> Optional[float]:
    """Since when (monotonic) the entry point's last call has been hung, or None."""
    with _loading:
        hung = _hung.get(key)
        if hung is not None and not hung[0].is_alive():
            del _hung[key]
            hung = None
        return None if hung is None else hung[1]


def _via_entry_point(ep: importlib.metadata.EntryPoint, channel: str, payload: Payload,
                     target: Target, *, timeout: float, secrets: list[str],
                     started: float) -> Receipt:
    outcome: dict[str, Any] = {}
    where = f"entry point {ep.name} ({ep.value})"
    key = f"{ep.name}={ep.value}"
    since = _still_hung(key)
    if since is not None:
        return refused(channel, f"{where}: an earlier route() has not returned for "
                                f"{time.monotonic() - since:.0f}s; not called again until "
                                "it does", started, permanent=False)

    def call() -> None:
        try:
            route = _router(ep).route
            job, run = _job_and_run(payload, target)
            outcome["value"] = route(channel, job, run, payload.output)
        except BaseException as exc:  # reported in the receipt, whatever the plugin raised
            outcome["error"] = exc

    thread = threading.Thread(target=call, name=f"symbid-{channel}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        with _loading:
            _hung[key] = (thread, started)
        return refused(channel, f"{where}: route() did not return within {timeout:g}s",
                       started, permanent=False)
    exc = outcome.get("error")
    if isinstance(exc, DeliveryFailed):
        return Receipt(channel, ok=False, error=clean(f"{where}: {exc.message}", secrets),
                       permanent=exc.permanent, retry_after=exc.retry_after,
                       duration_ms=elapsed_ms(started))
    if exc is not None:
        return refused(channel, clean(f"{where}: {type(exc).__name__}: {exc}", secrets),
                       started, permanent=False)
    value = outcome.get("value")
    if value is None:
        return Receipt(channel, ok=True, reply=f"delivered by {where}",
                       duration_ms=elapsed_ms(started))
    if isinstance(value, Receipt):
        return Receipt(channel, ok=value.ok, status=value.status,
                       reply=None if value.reply is None else clean(value.reply, secrets),
                       error=None if value.error is None else clean(value.error, secrets),
                       retry_after=value.retry_after, permanent=value.permanent,
                       duration_ms=elapsed_ms(started))
    return refused(channel, f"{where}: route() returned a {type(value).__name__}; it returns "
                            "None (delivered) or a Receipt, or raises", started)


def _tail(stream: IO[bytes]) -> str:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(0, size - TAIL))
    return stream.read().decode("utf-8", "replace").strip()


DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def _via_command(spec: CustomChannel, channel: str, payload: Payload,
                 environ: Mapping[str, str], *, timeout: float, secrets: list[str],
                 started: float) -> Receipt:
    try:
        table = f"[scheduler.delivery.custom.{channel[len(PREFIX):]}]"
        env = {name: resolve(value, environ, f"{table} env {name}")
               for name, value in spec.env.items()}
    except InvalidInput as exc:
        return refused(channel, exc.message, started)
    env.setdefault("PATH", environ.get("PATH", DEFAULT_PATH))
    for name in ("LANG", "LC_ALL"):
        if name in environ:
            env.setdefault(name, environ[name])
    env.update(SYMBID_DELIVERY_ID=payload.delivery_id, SYMBID_JOB=payload.job,
               SYMBID_RUN=payload.run_id, SYMBID_STATUS=payload.status,
               SYMBID_CHANNEL=channel)
    command = spec.command
    program = command[0]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=out,
                                    stderr=err, env=env, cwd="/", close_fds=True,
                                    start_new_session=True)
        except OSError as exc:
            return refused(channel, clean(f"command {program!r} cannot start: "
                                          f"{exc.strerror}", secrets), started)
        try:
            proc.communicate(payload.body(), timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group: its children too
            except ProcessLookupError:
                pass
            proc.wait()
            return refused(channel, clean(f"command {program!r} did not finish within "
                                          f"{timeout:g}s; its process group was killed",
                                          secrets), started, permanent=False)
        stdout, stderr = _tail(out), _tail(err)
    reply = clean(stdout, secrets) if stdout else None
    if proc.returncode == 0:
        return Receipt(channel, ok=True, reply=reply, duration_ms=elapsed_ms(started))
    how = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
           else f"exited with status {proc.returncode}")
    return Receipt(channel, ok=False, reply=reply, duration_ms=elapsed_ms(started),
                   error=clean(f"command {program!r} {how}"
                               + (f": {stderr}" if stderr else ""), secrets, 600))


def send(payload: Payload, target: Target, settings: DeliverySettings,
         environ: Mapping[str, str], *, name: str) -> Receipt:
    """Deliver to ``custom:NAME`` once. Never raises for what the plugin or the command
    does."""
    started = time.monotonic()
    channel = PREFIX + name
    bad = problem(target, settings, name=name)
    if bad is not None:
        return refused(channel, bad, started)
    secrets = secrets_of(target, settings, environ)
    timeout = settings.webhook_timeout_seconds
    ep = _entry_point(name)
    if ep is not None:
        return _via_entry_point(ep, channel, payload, target, timeout=timeout,
                                secrets=secrets, started=started)
    return _via_command(settings.custom[name], channel, payload, environ,
                        timeout=timeout, secrets=secrets, started=started)
