"""A bare engine process for crash tests: store + supervisor + executor + loop.

    python -m tests.integration.engine_main STATE_DIR AGENTS_JSON [CONFIG_JSON]

AGENTS_JSON maps agent names to {"command": [...], "env": {...}}; CONFIG_JSON
overrides SchedulerConfig fields. The process runs until SIGTERM/SIGINT
(graceful stop) or until it is killed. The benchmarks use it too.

With SYMBID_ENGINE_CLOCK_AT_MS set (epoch milliseconds), the engine's clock reads that
instant when the engine is built, after the process's imports and start-up, and goes on
from there as the system's does (tests/fakes.py OffsetClock); its loop waits on that
clock. A test simulates a downtime by starting the next engine further ahead, never by
setting the system clock, and however long the process takes to start, its clock starts
at the instant asked for.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sys

from symbid.agentdef import Agent
from symbid.clock import SystemClock
from symbid.config import SchedulerConfig
from symbid.engine import build_engine
from symbid.executor import Agents
from symbid.timer import ConditionWaiter
from tests.fakes import OffsetClock


def main() -> int:
    state_dir, agents_file = sys.argv[1], sys.argv[2]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with open(agents_file) as fh:
        spec = json.load(fh)
    agents = Agents({
        name: Agent(name=name, command=tuple(a["command"]), env=a.get("env", {}))
        for name, a in spec.items()
    })
    overrides = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    config = SchedulerConfig(**{"shutdown_timeout_seconds": 2, "kill_grace_seconds": 1,
                                **overrides})
    signals: queue.SimpleQueue[int] = queue.SimpleQueue()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: signals.put(signum))
    at = os.environ.get("SYMBID_ENGINE_CLOCK_AT_MS")
    if at is not None:
        clock = OffsetClock(int(at) - SystemClock().now())
        engine = build_engine(state_dir, config, agents, clock, waiter=ConditionWaiter(clock))
    else:
        engine = build_engine(state_dir, config, agents)
    report = engine.scheduler.recover()
    print(json.dumps({"ready": True, "interrupted": report.interrupted,
                      "killed_groups": report.killed_groups}), flush=True)
    engine.scheduler.start()
    signals.get()
    engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
