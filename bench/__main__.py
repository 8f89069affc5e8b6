"""symbid benchmarks. `make bench` runs them all; `python -m bench NAME...` runs some.

Numbers go to stdout and to bench/results/<name>.json. They are measured, never
asserted: targets live in the issue notes. After the suites ran, the report
(bench/report.py) is rewritten from every result on disk: bench/results/README.md and
the performance section of README.md.
"""

from __future__ import annotations

import json
import os
import sys
import time

from bench import (
    add_bench,
    api_bench,
    cli_bench,
    cron_peer,
    daemon_bench,
    delivery_bench,
    engine_bench,
    heartbeat_bench,
    llm_daemon,
    llm_start,
    peer_bench,
    report,
    scale_bench,
)
from symbid.clock import SystemClock
from symbid.model import format_instant

SUITES = {
    "lateness_single": engine_bench.lateness_single,
    "lateness_500": engine_bench.lateness_500,
    "lateness_1000": daemon_bench.lateness_1000,
    "lateness_single_vs_base": daemon_bench.lateness_single_vs_base,
    "throughput": engine_bench.throughput,
    "idle_100k": engine_bench.idle_100k,
    "control_plane": api_bench.control_plane,
    "add_10k": add_bench.add_10k,
    "heartbeat_rss": heartbeat_bench.heartbeat_rss,
    "llm_start": llm_start.llm_start,
    "llm_slot_to_request": llm_daemon.llm_slot_to_request,
    "dead_endpoint": delivery_bench.dead_endpoint,
    "vs_apscheduler": peer_bench.vs_apscheduler,
    "vs_cron": cron_peer.vs_cron,
    "status_round_trip": cli_bench.status_round_trip,
    "scale": scale_bench.scale,
}


def main(argv: list[str]) -> int:
    names = argv or list(SUITES)
    out_dir = os.path.join(os.path.dirname(__file__), "results")
    os.makedirs(out_dir, exist_ok=True)
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        print(f"no such suite: {', '.join(unknown)} (suites: {', '.join(SUITES)})",
              file=sys.stderr)
        return 2
    with open(os.path.join(out_dir, f"{report.MACHINE}.json"), "w") as fh:
        json.dump(report.machine(), fh, indent=2)
    for name in names:
        started = time.monotonic()
        result = SUITES[name]()
        result["wall_seconds"] = round(time.monotonic() - started, 1)
        result["finished_at"] = format_instant(SystemClock().now() // 1000 * 1000)
        print(f"{name}: {json.dumps(result)}", flush=True)
        with open(os.path.join(out_dir, f"{name}.json"), "w") as fh:
            json.dump(result, fh, indent=2)
    print(report.write(), flush=True)
    print(f"report: {report.RESULTS / 'README.md'} and the performance section of "
          f"{report.README}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
