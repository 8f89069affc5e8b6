"""``symbid``: the daemon. Wiring, signals, sd_notify, reload, ordered shutdown.

Start order: configuration -> listeners (fail fast, before any daemonizing) ->
store -> agents.d -> engine (recovery of runs a crash left open) -> API servers
-> scheduler loop -> READY=1. Signal handlers only queue the signal; the main
thread acts on it. SIGTERM/SIGINT stop gracefully; SIGHUP (or `symbi reload`)
re-reads agents_dir and the reloadable part of the configuration.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import queue
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Optional

from symbid import __version__
from symbid.agentnotes import orphaned_agents, unready_llm_agents
from symbid.agentpin import AgentPinVerifier
from symbid.agents.slots import prepare, slots_dir
from symbid.api import ApiContext, make_app
from symbid.api.http import BodyCaps
from symbid.auth import FILES_ACTOR
from symbid.clock import Clock, SystemClock
from symbid.config import Config, ConfigError, SchedulerConfig, load_config, read_tokens
from symbid.control import (
    MAX_FOLLOWERS,
    ApiServer,
    Limits,
    Listener,
    bind_tcp,
    bind_unix,
    raise_open_files_limit,
    systemd_listeners,
)
from symbid.delivery.router import job_problem
from symbid.dispatch import endpoint_of, make_send
from symbid.dsl import LoadedFile, load_dir
from symbid.engine import Engine, build_engine
from symbid.errors import SymbidError
from symbid.executor import Agents
from symbid.identity import clear_ambient_capabilities, drop_supplementary_groups, user_problem
from symbid.jobs import JobService, NamesInUse
from symbid.journal import add_log_file, journal_drops, setup_logging
from symbid.metrics import Metrics
from symbid.model import JobStatus, name_problem
from symbid.outbox import DeliveryWorker
from symbid.registry import AgentService
from symbid.store import SqliteJobStore
from symbid.systemd import Notifier, watchdog_interval

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "/etc/symbid/symbid.toml"
AUDIT_PRUNE_EVERY = 3600.0  # seconds between two prunes of the audit trail while running
# Keys that take effect only at start; a reload that changes them says so.
_RESTART_ONLY = ("daemon", "api", "metrics")
# Config's sections, as the file names them.
_SECTIONS = {"daemon": "daemon", "api": "api", "scheduler": "scheduler",
             "delivery": "scheduler.delivery", "llm": "llm", "agentpin": "agentpin",
             "audit": "audit", "metrics": "metrics"}
# Keys of reloadable sections that the parts built at start hold (the metrics registry,
# the runs' kill grace, which the stop's wait must match, the worker threads).
_AT_START = {"scheduler": ("enable_metrics", "kill_grace_seconds"), "delivery": ("workers",)}


def reload_plan(old: Config, new: Config) -> tuple[Config, str, list[str]]:
    """What a reload applies of ``new``: ``new`` with what waits for the next start kept
    as in ``old``; the summary line; and what waits ("[api]", "[scheduler] workers")."""
    waiting = [f"[{s}]" for s in _RESTART_ONLY if getattr(new, s) != getattr(old, s)]
    kept: dict[str, Any] = {s: getattr(old, s) for s in _RESTART_ONLY}
    for section, keys in _AT_START.items():
        was, now = getattr(old, section), getattr(new, section)
        differ = [k for k in keys if getattr(was, k) != getattr(now, k)]
        waiting += [f"[{_SECTIONS[section]}] {k}" for k in differ]
        kept[section] = replace(now, **{k: getattr(was, k) for k in differ})
    applied = replace(new, **kept)
    changed = [f"[{_SECTIONS[s]}]" for s in _SECTIONS
               if getattr(applied, s) != getattr(old, s)]
    parts = ([f"changed {', '.join(changed)}"] if changed else []) + \
        ([f"at the next start: {', '.join(waiting)}"] if waiting else [])
    return applied, f"{old.path} reloaded: " + ("; ".join(parts) or "nothing changed"), waiting


def make_private(path: str, mode: int) -> None:
    """Take group and other access off ``path`` (a database left 0644 by an older
    symbid, a state directory made 0755 by hand): it holds every run's input and output."""
    try:
        current = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return
    extra = current & ~mode & 0o077
    if extra:
        try:
            os.chmod(path, mode)
            if extra & ~0o011:  # more than search: StateDirectoryMode= gives 0711 each start
                log.warning("%s was mode %o: made it %o (private)", path, current, mode)
        except OSError as exc:
            log.warning("%s is mode %o and cannot be made private: %s", path, current,
                        exc.strerror)


class Daemon:
    def __init__(self, config: Config, *, clock: Optional[Clock] = None,
                 args: Optional[argparse.Namespace] = None) -> None:
        self.config = config
        self.args = args  # the command line, whose overrides a reload keeps
        self.clock = clock or SystemClock()
        self.notifier = Notifier()
        # Signal handlers put on this queue: SimpleQueue.put is reentrant, Queue.put is not.
        self.events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.listeners: list[Listener] = []
        self.servers: list[ApiServer] = []
        self.engine: Optional[Engine] = None
        self.jobs: Optional[JobService] = None
        self.registry: Optional[AgentService] = None
        self._tokens: dict[str, str] = {}  # the TCP API's tokens by name
        self._watchdog = watchdog_interval()
        self.lock_fd: Optional[int] = None
        self._pruned_at: Optional[float] = None  # monotonic: the audit trail's last prune
        # Where the log goes ({"journal", "log_file"}), for `symbi logs` (set by main).
        self.log_target: dict[str, Any] = {"journal": False, "log_file": None}

    def _scheduler_config(self) -> SchedulerConfig:
        """The configured scheduler settings, with the loop's sleep capped so that it
        comes round well within systemd's watchdog interval."""
        cfg = self.config.scheduler
        if self._watchdog is not None and cfg.tick_interval_seconds > self._watchdog / 2:
            cfg = replace(cfg, tick_interval_seconds=self._watchdog / 2)
        return cfg

    def lock_state(self) -> None:
        """Hold an exclusive lock on the state directory for the daemon's lifetime.

        A second symbid on the same state (another socket, say) would kill this
        one's runs in its recovery and schedule every job twice.
        """
        import fcntl

        state = self.config.daemon.state_dir
        try:
            os.makedirs(state, mode=0o700, exist_ok=True)
            fd = os.open(os.path.join(state, "symbid.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SymbidError(f"state directory {state}: {exc.strerror}; fix it or point "
                              "--state-dir elsewhere") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SymbidError(f"another symbid is using the state directory {state}") \
                from None
        self.lock_fd = fd

    # --- start ---------------------------------------------------------------------
    def bind(self) -> None:
        """Listeners first: a clash with a running daemon fails before anything else."""
        adopted = systemd_listeners(os.environ)
        for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(var, None)
        control = adopted.get("control") or bind_unix(self.config.daemon.socket,
                                                      self.config.daemon.socket_group)
        self.listeners.append(control)
        http = adopted.get("http")
        if http is None and self.config.api.listen:
            http = bind_tcp(self.config.api.listen)
        if http is not None:
            self._tokens = read_tokens(self.config.api, os.environ)
            self.listeners.append(http)

    def start(self) -> None:
        cfg = self.config
        problem = user_problem(cfg.daemon.run_user)
        if problem is not None:
            raise ConfigError(f"[daemon] run_user: {problem}", field="daemon.run_user")
        agents = Agents()
        pins = AgentPinVerifier(lambda: self.config.agentpin, os.environ)
        metrics = Metrics(enabled=cfg.scheduler.enable_metrics,
                          per_job_labels=cfg.metrics.per_job_labels)
        engine = build_engine(cfg.daemon.state_dir, self._scheduler_config(), agents,
                              self.clock, metrics, runs_dir=cfg.daemon.runs_dir,
                              run_user=cfg.daemon.run_user, llm=cfg.llm,
                              environment=lambda: self.config.daemon.environment,
                              pin_required=lambda: self.config.agentpin.required,
                              verify_pin=pins)
        pins.documents.on_fetched = engine.scheduler.wake  # a run waits for the fetch
        engine.metrics.track_log_drops(journal_drops)
        self.engine = engine
        make_private(cfg.daemon.state_dir, 0o700)
        for suffix in ("", "-wal", "-shm"):  # SQLite gives WAL and SHM the file's mode
            make_private(engine.store.path + suffix, 0o600)
        self._prepare_llm_slots()  # before recovery: a resumed llm run needs its slots
        engine.outbox = self._outbox(engine)
        # The store's agents first: runs that recovery resumes may need them.
        self.registry = AgentService(engine.store, self.clock, agents,
                                     agents_dir=cfg.daemon.agents_dir,
                                     api_enabled=cfg.api.define_agents)
        self.registry.refresh()
        self.jobs = JobService(engine.store, self.clock, wake=engine.scheduler.wake,
                               agent_problem=engine.executor.agent_problem,
                               delivery_problem=lambda job: job_problem(
                                   job, self.config.delivery),
                               runs_dir=cfg.daemon.runs_dir, metrics=engine.metrics)
        report = engine.scheduler.recover()
        if report.interrupted:
            log.warning("%d run(s) may have been going when symbid last stopped: recorded "
                        "interrupted", report.interrupted)
        if report.resumed or report.skipped:
            log.info("%d run(s) had not started when symbid last stopped: %d start now, %d "
                     "skipped by their catch_up", report.resumed + report.skipped,
                     report.resumed, report.skipped)
        self._warn_old_names()
        self._prune_audit()
        result = self._load_agents()
        log.info("agents.d %s: %d agent(s) in the registry; jobs created %d, updated %d, "
                 "removed %d, unchanged %d", cfg.daemon.agents_dir, len(agents.names()),
                 len(result["created"]), len(result["updated"]), len(result["removed"]),
                 result["unchanged"])
        ctx = ApiContext(store=engine.store, jobs=self.jobs, scheduler=engine.scheduler,
                         clock=self.clock, agents=self.registry, metrics=engine.metrics,
                         reload=self.reload_from_api, live=engine.live,
                         backup_dir=cfg.daemon.state_dir, log_target=self.log_target)
        caps = BodyCaps(max_body=cfg.api.max_body_bytes, max_batch=cfg.api.max_batch_bytes)
        limits = Limits(max_body_bytes=cfg.api.max_body_bytes, body_cap=caps.of_route,
                        max_connections=cfg.api.max_connections,
                        head_timeout_seconds=cfg.api.head_timeout_seconds,
                        idle_timeout_seconds=cfg.api.idle_timeout_seconds)
        raise_open_files_limit(len(self.listeners) * limits.max_connections + 1024)
        for listener in self.listeners:
            app = make_app(ctx, transport=listener.kind, tokens=self._tokens,
                           caps=caps, max_followers=MAX_FOLLOWERS)
            server = ApiServer(app, listener, limits=limits, tokens=self._tokens)
            server.start()
            self.servers.append(server)
            log.info("API listening on %s", listener.description)
        engine.scheduler.start()
        engine.outbox.start()  # pending deliveries resume
        self.notifier.notify("READY=1", f"STATUS={self.status_line()}")
        log.info("symbid %s ready; state in %s", __version__, cfg.daemon.state_dir)

    def _outbox(self, engine: Engine) -> DeliveryWorker:
        """The delivery workers, on the log directory (the log_file channel's)."""
        try:
            os.makedirs(self.config.daemon.log_dir, mode=0o750, exist_ok=True)
        except OSError as exc:
            log.warning("log_dir %s cannot be made (%s): log_file deliveries fail until it "
                        "exists", self.config.daemon.log_dir, exc.strerror)
        settings = self.config.delivery
        worker = DeliveryWorker(
            engine.store, self.clock,
            make_send(lambda: self.config.delivery, os.environ,
                      log_dir=self.config.daemon.log_dir),
            workers=settings.workers, metrics=engine.metrics, endpoint=endpoint_of)
        worker.configure(settings)
        engine.scheduler.on_recorded = worker.wake
        return worker

    def _prepare_llm_slots(self) -> None:
        """``[llm] max_concurrent_requests`` slot files, in the runs' root; llm runs fail,
        naming the directory, while they cannot be made."""
        directory = slots_dir(self.config.daemon.runs_dir)
        try:
            prepare(directory, self.config.llm.max_concurrent_requests)
        except OSError as exc:
            log.error("cannot prepare the llm request slots (max_concurrent_requests) in "
                      "%s: %s", directory, exc.strerror or exc)

    def housekeep(self) -> None:
        """What the main thread does from time to time: prune the audit trail every
        AUDIT_PRUNE_EVERY seconds (a daemon that runs for months keeps to its
        retention)."""
        if self._pruned_at is None or \
                self.clock.monotonic() - self._pruned_at >= AUDIT_PRUNE_EVERY:
            self._prune_audit()

    def _prune_audit(self) -> None:
        """Audit events past ``[audit] retention_days`` go (at start, at each reload, and
        hourly: :meth:`housekeep`)."""
        assert self.engine is not None
        self._pruned_at = self.clock.monotonic()
        days = self.config.audit.retention_days
        try:
            gone = self.engine.store.prune_audit(self.clock.now() - int(days * 86_400_000))
        except SymbidError as exc:
            log.error("the audit trail could not be pruned: %s", exc.message)
            return
        if gone:
            log.info("audit: %d event(s) older than %g days dropped", gone, days)

    def _warn_old_names(self) -> None:
        """Names stored before the name rule keep working; they are listed once at start."""
        assert self.engine is not None
        old = [(name, problem) for name in self.engine.store.unusual_job_names()
               if (problem := name_problem(name)) is not None]
        for name, problem in old:
            log.warning("job name %r %s; it keeps working, but rename it (a new job cannot "
                        "be given such a name)", name, problem)

    def _load_agents(self, actor: str = FILES_ACTOR) -> dict[str, Any]:
        """Sync agents_dir into the store for ``actor``: its agents first (the registry,
        then the executor's view of it), then its schedules (jobs)."""
        assert self.engine is not None and self.jobs is not None and self.registry is not None
        directory = self.config.daemon.agents_dir
        if not os.path.isdir(directory):
            log.warning("agents_dir %s does not exist: no agents or file jobs loaded",
                        directory)
            files: list[LoadedFile] = []
        else:
            # Schedules may name any stored agent: one of the API's, or one a file that
            # fails to load now keeps.
            known = self.registry.names()
            files = load_dir(directory, self.clock.now(), known_agents=known,
                             legacy_names=NamesInUse(self.engine.store, known),
                             delivery_problem=self.jobs.delivery_problem)
        agents = self.registry.sync_files(files, actor)
        result = self.jobs.sync_files(files, actor)
        out = result.to_dict()
        out["warnings"] = list(agents.warnings) + out["warnings"]
        out["agents"] = self.engine.agents.names()
        out["agents_created"] = list(agents.created)
        out["agents_updated"] = list(agents.updated)
        out["agents_removed"] = list(agents.remove)
        out["warnings"] += orphaned_agents(self.engine.agents, self.engine.store, agents.remove) \
            + unready_llm_agents(self.engine.agents, self.config.llm, os.environ)
        return out

    # --- reload --------------------------------------------------------------------
    def reload(self, actor: str = FILES_ACTOR) -> dict[str, Any]:
        """Re-read agents_dir and the reloadable configuration (main thread only) for
        ``actor`` (who asked, through the API; a SIGHUP's is ``agents.d``), whom the
        audit trail names for what agents_dir changes."""
        assert self.engine is not None
        self.notifier.notify("RELOADING=1",
                             f"MONOTONIC_USEC={int(self.clock.monotonic() * 1_000_000)}")
        notes: list[str] = []
        config_error: Optional[str] = None
        config = "no configuration file: defaults and environment"
        if self.config.path is not None:
            try:
                new = load_config(self.config.path)
                if self.args is not None:
                    new = with_overrides(new, self.args)
            except SymbidError as exc:
                config_error = exc.message
                config = f"{self.config.path} not reloaded: unchanged ({exc.message})"
                log.error("reload: configuration not changed: %s", exc.message)
            else:
                new, config, waiting = reload_plan(self.config, new)
                notes += [f"{what} changed: restart symbid to apply it" for what in waiting]
                self.config = new
                self.engine.scheduler.config = self._scheduler_config()
                self.engine.store.keep_runs = new.scheduler.keep_runs
                self.engine.executor.llm = new.llm
                if self.engine.outbox is not None:
                    self.engine.outbox.configure(new.delivery)
                self._prepare_llm_slots()
        self._prune_audit()
        result = self._load_agents(actor)
        result["config"] = config
        result["config_error"] = config_error
        assert self.jobs is not None
        notes += self.jobs.unserved()
        result["warnings"] = list(result["warnings"]) + notes
        for line in result["errors"]:
            log.error("reload: %s", line)
        for line in notes:  # a SIGHUP's reload has no one to answer but the log
            log.warning("reload: %s", line)
        log.info("reload: configuration: %s", config)
        log.info("reload: created %s, updated %s, removed %s, %d unchanged, %d error(s)",
                 result["created"], result["updated"], result["removed"],
                 result["unchanged"], len(result["errors"]) + (1 if config_error else 0),
                 extra={"SYMBID_EVENT": "reload"})
        self.notifier.notify("READY=1", f"STATUS={self.status_line()}")
        return result

    def reload_from_api(self, actor: str) -> dict[str, Any]:
        """Called on an API thread for ``actor``: the main thread does the reload; wait
        for it."""
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        self.events.put(("reload", (future, actor)))
        return future.result(timeout=120)

    # --- run -----------------------------------------------------------------------
    def status_line(self) -> str:
        """The STATUS= line: job counts and runs going, or why the scheduler is degraded."""
        assert self.engine is not None
        within = 3 * self.engine.scheduler.config.tick_interval_seconds + 10
        state, error = self.engine.scheduler.health(within)
        running = self.engine.scheduler.in_flight()
        try:
            self.engine.store.probe()
            by = self.engine.store.totals().by_status
        except SymbidError as exc:
            state, error = ("degraded", exc.message) if state == "healthy" else (state, error)
            by = {}
        if error is not None:
            return f"{state}: {error}; {running} running"
        return (f"{by.get(JobStatus.ACTIVE.value, 0)} active, "
                f"{by.get(JobStatus.PAUSED.value, 0)} paused, "
                f"{by.get(JobStatus.DEAD_LETTER.value, 0)} dead letter; "
                f"{running} running")

    def run(self) -> None:
        """The main thread's loop until SIGTERM/SIGINT."""
        assert self.engine is not None
        watchdog = self._watchdog
        wait = min(watchdog or 5.0, 5.0)
        while True:
            try:
                kind, payload = self.events.get(timeout=wait)
            except queue.Empty:
                kind, payload = "tick", None
            if kind == "signal":
                if payload in (signal.SIGTERM, signal.SIGINT):
                    log.info("received %s; stopping", signal.Signals(payload).name)
                    return
                if payload == signal.SIGHUP:
                    try:
                        self.reload()
                    except Exception:  # a failed reload must not stop the daemon
                        log.exception("reload failed; running on with what was loaded")
                        self.notifier.notify("READY=1", "STATUS=reload failed; see the log")
            elif kind == "reload":
                future, actor = payload
                try:
                    future.set_result(self.reload(actor))
                except Exception as exc:
                    future.set_exception(exc)
            if watchdog is not None:
                if self.loop_is_alive(watchdog):
                    self.notifier.notify("WATCHDOG=1")
                else:
                    age = self.clock.monotonic() - self.engine.scheduler.last_pass
                    log.error("scheduler loop made no pass for %.0f s; not feeding the "
                              "watchdog", age)
            self.notifier.notify(f"STATUS={self.status_line()}")
            try:
                self.housekeep()
            except Exception:  # housekeeping must never stop the daemon
                log.exception("housekeeping failed; trying again within the hour")

    def loop_is_alive(self, within: float) -> bool:
        """Whether the scheduler loop made a pass in the last ``within`` seconds.

        Only a loop that keeps making passes keeps systemd's watchdog fed, so a hung
        loop gets the service restarted. A pass that fails (a full disk, a locked
        database) still counts: restarting would not help, and health says degraded.
        """
        assert self.engine is not None
        return bool(self.clock.monotonic() - self.engine.scheduler.last_pass < within)

    def install_signal_handlers(self) -> None:
        """SIGTERM, SIGINT and SIGHUP only go on the event queue (a SimpleQueue, whose put
        is reentrant); the main thread acts on them."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.events.put(("signal", signum))

    def stop(self) -> None:
        self.notifier.notify("STOPPING=1")
        if self.engine is not None:
            self.engine.live.close()  # streams of live output end, freeing their threads
        for server in self.servers:
            server.stop()
        if self.engine is not None:
            self.engine.stop()
        log.info("symbid stopped")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="symbid",
        description="The symbid scheduler daemon: runs AI agents on cron, at and heartbeat "
        "schedules. Runs in the foreground (for systemd); see symbid(8).",
    )
    p.add_argument("--config", metavar="FILE",
                   help=f"configuration file (default {DEFAULT_CONFIG} if it exists)")
    p.add_argument("--state-dir", metavar="DIR", help="directory of the SQLite database")
    p.add_argument("--socket", metavar="PATH", help="control socket path")
    p.add_argument("--agents-dir", metavar="DIR", help="directory of *.symbi definitions")
    p.add_argument("--listen", metavar="HOST:PORT", help="also serve the API on TCP")
    p.add_argument("--daemonize", action="store_true",
                   help="detach (for SysV init); needs --pidfile")
    p.add_argument("--pidfile", metavar="FILE", help="pid file written with --daemonize")
    p.add_argument("--log-level", default="info",
                   choices=("debug", "info", "warning", "error"))
    p.add_argument("--version", action="version", version=f"symbid {__version__}")
    return p


def load_effective_config(args: argparse.Namespace) -> Config:
    path = args.config
    if path is None and os.path.exists(DEFAULT_CONFIG):
        path = DEFAULT_CONFIG
    return with_overrides(load_config(path), args)


def with_overrides(config: Config, args: argparse.Namespace) -> Config:
    """``config`` with the command line's --state-dir, --socket, --agents-dir, --listen
    (also applied to a configuration re-read on reload, so they never look changed)."""
    path = config.path
    daemon = config.daemon
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0] or None
    if args.state_dir or (state and not path):
        daemon = replace(daemon, state_dir=os.path.abspath(args.state_dir or state or ""))
    if args.socket:
        daemon = replace(daemon, socket=os.path.abspath(args.socket))
    if args.agents_dir:
        daemon = replace(daemon, agents_dir=os.path.abspath(args.agents_dir))
    api = config.api
    if args.listen:
        api = replace(api, listen=args.listen)
    return replace(config, daemon=daemon, api=api)


def main(argv: Optional[Sequence[str]] = None) -> int:
    # Everything symbid creates (the database, its WAL and SHM, the socket's temporary
    # name, run directories) is private unless it says otherwise: whatever umask it was
    # started with, the database holding every run's input and output is 0600.
    os.umask(0o077)
    args = _parser().parse_args(argv)
    if args.daemonize and not args.pidfile:
        print("symbid: --daemonize needs --pidfile FILE", file=sys.stderr)
        return 2
    clear_ambient_capabilities()  # before any child: no run inherits the daemon's
    journal = setup_logging(getattr(logging, args.log_level.upper()))
    drop_supplementary_groups()  # before any thread: a run's file identity is its alone
    bound: list[Listener] = []
    try:
        config = load_effective_config(args)
        daemon = Daemon(config, args=args)
        bound = daemon.listeners
        daemon.lock_state()
        daemon.bind()
        # Check the store before detaching, so its problems reach the terminal.
        SqliteJobStore(os.path.join(config.daemon.state_dir, "symbid.db")).close()
    except SymbidError as exc:
        print(f"symbid: {exc.message}", file=sys.stderr)
        for listener in bound:
            listener.close()
        return 1
    context = None
    if args.daemonize:
        import daemon as python_daemon
        from daemon.pidfile import TimeoutPIDLockFile

        context = python_daemon.DaemonContext(
            pidfile=TimeoutPIDLockFile(os.path.abspath(args.pidfile), 5),
            files_preserve=[listener.sock.fileno() for listener in daemon.listeners]
            + [daemon.lock_fd],
            umask=0o077,
            working_directory="/",
        )
        context.open()
    log_file = config.daemon.log_file or (
        os.path.join(config.daemon.log_dir, "symbid.log") if args.daemonize else None)
    if log_file is not None:
        try:
            add_log_file(log_file)
        except OSError as exc:
            log.error("cannot write the log to %s ([daemon] log_file): %s", log_file, exc)
            return 1
    daemon.log_target = {"journal": journal, "log_file": log_file}
    daemon.install_signal_handlers()
    try:
        daemon.start()
    except SymbidError as exc:
        log.error("%s", exc.message)
        print(f"symbid: {exc.message}", file=sys.stderr)
        daemon.stop()
        return 1
    try:
        daemon.run()
    finally:
        daemon.stop()
        if context is not None:
            context.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
