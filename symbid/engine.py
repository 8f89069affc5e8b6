"""The engine: the running parts a daemon (or a test) builds, in start order, and how they
stop. Built by :func:`build_engine`; started and wired to the API by :mod:`symbid.daemon`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional

from symbid.clock import Clock, SystemClock
from symbid.config import DaemonConfig, LlmConfig, SchedulerConfig
from symbid.executor import Agents, Executor
from symbid.live import LiveOutputs
from symbid.metrics import Metrics
from symbid.outbox import DeliveryWorker
from symbid.policy import PinVerifier, PolicyGate, no_verifier
from symbid.sandbox import Supervisor
from symbid.scheduler import CronScheduler
from symbid.startlog import StartLog
from symbid.store import SqliteJobStore
from symbid.timer import Waiter


@dataclass
class Engine:
    """The running parts, in start order."""

    store: SqliteJobStore
    supervisor: Supervisor
    agents: Agents
    executor: Executor
    scheduler: CronScheduler
    metrics: Metrics
    start_log: StartLog
    live: LiveOutputs
    outbox: Optional[DeliveryWorker] = None  # the delivery workers (the daemon's)

    def stop(self, timeout: Optional[float] = None) -> None:
        self.live.close()  # followers of live output end first
        self.scheduler.stop(timeout)
        if self.outbox is not None:  # after the runs' final states (and outbox rows)
            self.outbox.stop()
        self.supervisor.close()
        self.start_log.close()
        self.store.close()


def build_engine(
    state_dir: str,
    config: SchedulerConfig,
    agents: Agents,
    clock: Optional[Clock] = None,
    metrics: Optional[Metrics] = None,
    *,
    runs_dir: Optional[str] = None,
    run_user: Optional[str] = None,
    llm: Optional[LlmConfig] = None,
    environment: Callable[[], str] = lambda: DaemonConfig().environment,
    pin_required: Callable[[], bool] = lambda: False,
    verify_pin: PinVerifier = no_verifier,
    waiter: Optional[Waiter] = None,
) -> Engine:
    """Open the store and build the engine (not yet started). Runs get their directories
    in ``runs_dir`` (default: ``STATE_DIR-runs``, beside the state directory, never in it:
    the state directory is 0700 and a run's user must reach its own directory).
    ``waiter``: how the loop waits (default: the native timer; a clock that is not the
    system's needs one that reads it)."""
    clock = clock or SystemClock()
    metrics = metrics or Metrics(enabled=config.enable_metrics)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    store = SqliteJobStore(os.path.join(state_dir, "symbid.db"), keep_runs=config.keep_runs)
    supervisor = Supervisor(clock)
    live = LiveOutputs()
    executor = Executor(
        supervisor, agents, clock,
        runs_dir=runs_dir or os.path.normpath(state_dir) + "-runs", run_user=run_user,
        kill_grace=config.kill_grace_seconds, live=live, contexts=store, llm=llm,
        metrics=metrics,
    )
    start_log = StartLog(os.path.join(state_dir, "start-log"))
    gate = PolicyGate(agents, environment=environment, pin_required=pin_required,
                      verify_pin=verify_pin)
    scheduler = CronScheduler(store, executor, clock, config, start_log=start_log,
                              metrics=metrics, gate=gate, waiter=waiter)
    return Engine(store, supervisor, agents, executor, scheduler, metrics, start_log, live)
