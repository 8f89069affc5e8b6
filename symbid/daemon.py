"""``symbid``: wiring the engine into a process, signals, ordered shutdown.

Signal handlers only queue the signal; the main thread acts on it.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import sys
from dataclasses import dataclass
from typing import Optional, Sequence

from symbid.clock import Clock, SystemClock
from symbid.config import SchedulerConfig
from symbid.errors import SymbidError
from symbid.executor import Agents, Executor
from symbid.sandbox import Supervisor
from symbid.scheduler import CronScheduler
from symbid.store import SqliteJobStore

log = logging.getLogger(__name__)


@dataclass
class Engine:
    """The running parts, in start order."""

    store: SqliteJobStore
    supervisor: Supervisor
    agents: Agents
    executor: Executor
    scheduler: CronScheduler

    def stop(self, timeout: Optional[float] = None) -> None:
        self.scheduler.stop(timeout)
        self.supervisor.close()
        self.store.close()


def build_engine(
    state_dir: str,
    config: SchedulerConfig,
    agents: Agents,
    clock: Optional[Clock] = None,
) -> Engine:
    """Open the store and build the engine (not yet started)."""
    clock = clock or SystemClock()
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    store = SqliteJobStore(os.path.join(state_dir, "symbid.db"), keep_runs=config.keep_runs)
    supervisor = Supervisor(clock)
    executor = Executor(
        supervisor, agents, clock,
        runs_dir=os.path.join(state_dir, "runs"),
        kill_grace=config.kill_grace_seconds,
    )
    scheduler = CronScheduler(store, executor, clock, config)
    return Engine(store, supervisor, agents, executor, scheduler)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="symbid", description="The symbid scheduler daemon.")
    parser.add_argument("--state-dir", default=os.environ.get("STATE_DIRECTORY",
                                                              "/var/lib/symbid"),
                        help="directory of the SQLite database (default $STATE_DIRECTORY "
                        "or /var/lib/symbid)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signals: queue.Queue[int] = queue.Queue()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: signals.put(signum))
    try:
        engine = build_engine(args.state_dir, SchedulerConfig(), Agents())
        report = engine.scheduler.recover()
    except SymbidError as exc:
        print(f"symbid: {exc.message}", file=sys.stderr)
        return 1
    if report.interrupted:
        log.warning("%d run(s) interrupted by the previous stop", report.interrupted)
    engine.scheduler.start()
    log.info("symbid running; state in %s", args.state_dir)
    signum = signals.get()
    log.info("received %s; stopping", signal.Signals(signum).name)
    engine.stop()
    return 0
