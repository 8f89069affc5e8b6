"""The benchmark report: Markdown tables from the results on disk.

After the suites ran, :func:`write` reads ``bench/results/*.json`` and writes

* ``bench/results/README.md``: the machine, the peer tables (every suite whose result has
  ``rows`` of ``figure, symbid, peer, unit, ratio, target``) and the issue's targets with
  what was measured against each;
* the same text into ``README.md`` between ``<!-- bench:begin -->`` and
  ``<!-- bench:end -->``.

A figure whose suite has not run (or did not give it) reads "not measured"; nothing is
filled in. Ratios are symbid / peer, computed here from the two figures.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
MACHINE = "machine"  # bench/results/machine.json, written by `python -m bench`
NOT_MEASURED = "not measured"
# Peer suites first, in this order; any other suite with rows follows by name.
PEER_ORDER = ("vs_apscheduler", "vs_cron")

Results = dict[str, dict[str, Any]]


# --- reading ----------------------------------------------------------------------------
def load(results_dir: Path = RESULTS) -> Results:
    """Every ``NAME.json`` in ``results_dir`` by NAME; a file that is not a JSON object is
    left out (and named in ``_unreadable``), never guessed at."""
    out: Results = {}
    unreadable: list[str] = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            unreadable.append(path.name)
            continue
        if isinstance(data, dict):
            out[path.stem] = data
        else:
            unreadable.append(path.name)
    if unreadable:
        out["_unreadable"] = {"files": unreadable}
    return out


def machine() -> dict[str, Any]:
    """This machine: CPU model, cores, RAM, kernel, Python."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_kib = int(line.split()[1])
                break
    except OSError:
        pass
    return {"cpu": model or platform.processor() or "unknown CPU",
            "cores": os.cpu_count() or 0,
            "ram_gib": round(ram_kib / 2**20, 1),
            "kernel": f"{platform.system()} {platform.release()}",
            "python": platform.python_version()}


# --- formatting -------------------------------------------------------------------------
def is_num(value: Any) -> bool:
    """A finite number (a suite with no samples reports NaN: not a measurement)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def num(value: Any) -> str:
    """1234.5 -> "1,234.5"; 0.0312 -> "0.031"; whole numbers without decimals."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return NOT_MEASURED
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) < 0.01:
        return f"{value:.2g}"  # 0.0025, not 0
    digits = 3 if abs(value) < 1 else 2 if abs(value) < 100 else 1
    return f"{value:,.{digits}f}".rstrip("0").rstrip(".")


def _with_unit(value: Any, unit: str) -> str:
    if not is_num(value):
        return NOT_MEASURED
    text = num(value)
    if not unit:
        return text
    return f"{text}{unit}" if unit.startswith(("/", "%")) else f"{text} {unit}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def ratio(ours: Any, theirs: Any) -> Optional[float]:
    """symbid / peer, or None when either is missing or the peer's figure is 0."""
    if not is_num(ours) or not is_num(theirs):
        return None
    if theirs == 0:
        return None
    value = float(ours) / float(theirs)
    return float(f"{value:.2g}") if abs(value) < 0.01 else round(value, 2)


# --- the peer tables --------------------------------------------------------------------
def peer_suites(results: Results) -> list[str]:
    with_rows = [name for name, r in results.items()
                 if not name.startswith("_") and isinstance(r.get("rows"), list)]
    first = [name for name in PEER_ORDER if name in with_rows]
    return first + sorted(name for name in with_rows if name not in first)


def peer_tables(results: Results) -> list[str]:
    lines: list[str] = []
    for name in peer_suites(results):
        result = results[name]
        peer = str(result.get("peer") or name)
        lines += ["", f"**symbid vs {peer}** (suite `{name}`):", ""]
        rows = []
        for row in result["rows"]:
            if not isinstance(row, dict):
                continue
            unit = str(row.get("unit") or "")
            r = ratio(row.get("symbid"), row.get("peer"))
            rows.append((str(row.get("figure", "")), _with_unit(row.get("symbid"), unit),
                         _with_unit(row.get("peer"), unit),
                         num(r) if r is not None else "—", str(row.get("target") or "—")))
        lines += _table(("figure", "symbid", "peer", "ratio (symbid / peer)", "target"), rows)
        if result.get("note"):
            lines += ["", str(result["note"])]
    for name in sorted(n for n, r in results.items() if not n.startswith("_")
                       and r.get("skipped") and n not in peer_suites(results)):
        lines += ["", f"`{name}` was skipped: {results[name]['skipped']}."]
    if not lines:
        lines = ["", f"No peer suite has run: peer tables {NOT_MEASURED}."]
    return lines


# --- the targets ------------------------------------------------------------------------
@dataclass
class Target:
    figure: str
    target: str
    measure: Callable[[Results], Optional[tuple[str, bool]]]  # (measured, met) or None


def _get(results: Results, suite: str, *keys: Any) -> Any:
    value: Any = results.get(suite)
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
            value = value[key]
        else:
            return None
    return value


def _row_of(results: Results, suite: str, starts: str) -> Optional[dict[str, Any]]:
    for row in _get(results, suite, "rows") or []:
        if isinstance(row, dict) and str(row.get("figure", "")).startswith(starts):
            return row
    return None


def _burst(results: Results) -> Optional[tuple[str, bool]]:
    row = _row_of(results, "vs_apscheduler", "1,000 one-shots")
    if row is None:
        return None
    r = ratio(row.get("symbid"), row.get("peer"))
    if r is None:
        return None
    return (f"ratio {num(r)} ({num(row['symbid'])} ms vs {num(row['peer'])} ms)", r <= 0.5)


def _sustained(results: Results) -> Optional[tuple[str, bool]]:
    done = _get(results, "throughput", "succeeded_runs_per_s")
    offered = _get(results, "throughput", "offered_runs_per_s")
    if not is_num(done):
        return None
    text = f"{num(done)}/s done"
    if is_num(offered):
        text += f" of {num(offered)}/s offered"
    return text, done >= 1500


def _single(results: Results) -> Optional[tuple[str, bool]]:
    p99 = _get(results, "vs_apscheduler", "single", "symbid", "p99_ms")
    if not is_num(p99):
        return None
    return f"{num(p99)} ms (real daemon, vs_apscheduler)", p99 <= 2


def _adds(results: Results) -> Optional[tuple[str, bool]]:
    seconds = _get(results, "add_10k", "batch_10k_seconds")
    if not is_num(seconds):
        return None
    return f"{num(seconds)} s (one batch request)", seconds <= 3


def _labels_off(row: dict[str, Any]) -> bool:
    return "per_job_labels = false" in str(row.get("config") or "").replace("  ", " ")


def _million(results: Results) -> Optional[dict[str, Any]]:
    """The 1,000,000-job row of ``scale``; the issue asks for it with ``[metrics]
    per_job_labels`` off, so such a row is preferred."""
    rows = [row for row in _get(results, "scale", "sizes") or []
            if isinstance(row, dict) and row.get("jobs") == 1_000_000]
    rows.sort(key=lambda row: not _labels_off(row))
    return rows[0] if rows else None


def _million_figure(key: str, unit: str, limit: float,
                    scale: float = 1.0) -> Callable[[Results], Optional[tuple[str, bool]]]:
    def measure(results: Results) -> Optional[tuple[str, bool]]:
        row = _million(results) or {}
        value = row.get(key)
        if not is_num(value):
            return None
        shown = round(float(value or 0) * scale, 3)
        labels = "per-job labels off" if _labels_off(row) else "per-job labels on"
        return f"{_with_unit(shown, unit)} ({labels})", shown <= limit
    return measure


def scale_table(results: Results) -> list[str]:
    """``scale``'s rows: how start-up, memory, idle CPU and lateness grow with N."""
    rows = []
    for row in _get(results, "scale", "sizes") or []:
        if not isinstance(row, dict):
            continue
        late = []
        for key in ("spawn_late_ms", "child_late_ms"):
            value = row.get(key)
            figures: dict[str, Any] = value if isinstance(value, dict) else {}
            late.append(f"{num(figures.get('p50'))} / {num(figures.get('p99'))}")
        rows.append((num(row.get("jobs")), str(row.get("config") or "—"),
                     _with_unit(row.get("startup_ready_s"), "s"),
                     _with_unit(row.get("rss_mib"), "MiB"),
                     _with_unit(row.get("idle_cpu_percent"), "%"), *late))
    if not rows:
        return []
    return ["", "Scaling (suite `scale`), the real daemon on N active jobs:", "",
            *_table(("jobs", "config", "start-up (READY=1)", "RSS", "idle CPU",
                     "spawn late p50 / p99 ms", "child late p50 / p99 ms"), rows)]


def _status(results: Results) -> Optional[tuple[str, bool]]:
    p50 = _get(results, "status_round_trip", "p50_ms")
    if not is_num(p50):
        return None
    p90 = _get(results, "status_round_trip", "p90_ms")
    text = f"{num(p50)} ms p50" + (f", {num(p90)} ms p90" if is_num(p90) else "")
    return text, p50 <= 40


TARGETS = (
    Target("1,000 one-shots at one instant through the real daemon, p99 child start after "
           "slot", "≤ 0.5 \u00d7 APScheduler's p99 in the same run", _burst),
    Target("sustained runs/s, `/bin/true`, every run durably recorded", "≥ 1,500/s",
           _sustained),
    Target("single job, child-observed start, p99", "≤ 2 ms", _single),
    Target("10,000 jobs added through the API", "≤ 3 s", _adds),
    # rss_mib is MiB; the target is in MB (10^6 bytes).
    Target("1,000,000 active jobs: RSS", "≤ 300 MB",
           _million_figure("rss_mib", "MB", 300, 2**20 / 1e6)),
    Target("1,000,000 active jobs: idle CPU", "≤ 0.1 %",
           _million_figure("idle_cpu_percent", "%", 0.1)),
    Target("1,000,000 active jobs: start-up (exec to READY=1)", "≤ 5 s",
           _million_figure("startup_ready_s", "s", 5)),
    Target("`symbi cron status` round trip", "≤ 40 ms p50", _status),
)


def targets_table(results: Results) -> list[str]:
    rows = []
    for t in TARGETS:
        got = t.measure(results)
        if got is None:
            rows.append((t.figure, t.target, NOT_MEASURED, "—"))
        else:
            rows.append((t.figure, t.target, got[0], "yes" if got[1] else "no"))
    return _table(("figure", "target", "measured", "met?"), rows)


# --- the whole ------------------------------------------------------------------------
def machine_line(results: Results) -> str:
    m = results.get(MACHINE)
    where = "Machine"
    if not m:
        m, where = machine(), "Machine (where this report was written; the runs recorded none)"
    return (f"{where}: {m.get('cpu', 'unknown CPU')}, {m.get('cores', '?')} cores, "
            f"{num(m.get('ram_gib'))} GiB RAM, {m.get('kernel', '?')}, "
            f"Python {m.get('python', '?')}.")


def dates_line(results: Results) -> str:
    dates = sorted(str(r["finished_at"]) for name, r in results.items()
                   if not name.startswith("_") and name != MACHINE and r.get("finished_at"))
    if not dates:
        return "Run dates: not recorded."
    if dates[0] == dates[-1]:
        return f"Run: {dates[0]}."
    return f"Runs: {dates[0]} to {dates[-1]}."


def render(results: Results) -> str:
    """The report's Markdown (without a heading of its own)."""
    lines = [machine_line(results) + " " + dates_line(results), "",
             "Peers, side by side in one run:"]
    lines += peer_tables(results)
    lines += ["", "The issue's targets:", ""]
    lines += targets_table(results)
    lines += scale_table(results)
    suites = sorted(n for n in results if not n.startswith("_") and n != MACHINE)
    lines += ["", "Suites with results: " + (", ".join(f"`{n}`" for n in suites) or "none")
              + ". Each suite's full figures are in `bench/results/NAME.json`."]
    if "_unreadable" in results:
        lines += ["", "Left out (not readable as a JSON object): "
                  + ", ".join(results["_unreadable"]["files"]) + "."]
    return "\n".join(lines) + "\n"


def replace_section(text: str, section: str) -> str:
    """``text`` with what lies between the markers replaced by ``section``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {BEGIN} ... {END} section to write the "
                         "benchmark tables into")
    return text[:start + len(BEGIN)] + "\n" + section + text[end:]


def write(results_dir: Path = RESULTS, readme: Path = README) -> str:
    """Write ``results_dir/README.md`` and the README's section; returns the report."""
    results = load(results_dir)
    body = render(results)
    text = readme.read_text()
    updated = replace_section(text, body)
    (results_dir / "README.md").write_text("# symbid benchmark results\n\n" + body)
    if updated != text:
        readme.write_text(updated)
    return body
