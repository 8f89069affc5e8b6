"""The benchmark report (bench/report.py), rendered from fixture results."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench import report

MACHINE = {"cpu": "Test CPU 9000", "cores": 2, "ram_gib": 7.8, "kernel": "Linux 6.1.0",
           "python": "3.11.2"}
APS = {
    "peer": "APScheduler 3.11.3 (test)",
    "rows": [
        {"figure": "one one-shot at a time: child start after slot, p99", "symbid": 1.5,
         "peer": 3.0, "unit": "ms", "ratio": 0.5, "target": "≤ 2 ms"},
        {"figure": "1,000 one-shots due at one instant, concurrency 20: child start after "
                   "slot, p99", "symbid": 400.0, "peer": 1000.0, "unit": "ms",
         "ratio": 99.0, "target": "ratio ≤ 0.5"},
        {"figure": "adding jobs one by one through its API, one client", "symbid": 1080,
         "peer": 636, "unit": "jobs/s", "ratio": None, "target": ""},
    ],
    "single": {"symbid": {"p99_ms": 1.5}, "peer": {"p99_ms": 3.0}},
    "finished_at": "2026-12-04T03:00:00Z",
}


def results_dir(tmp_path: Path, **suites: Any) -> Path:
    out = tmp_path / "results"
    out.mkdir()
    for name, data in suites.items():
        (out / f"{name}.json").write_text(json.dumps(data))
    return out


def readme(tmp_path: Path, inside: str = "old tables\n") -> Path:
    path = tmp_path / "README.md"
    path.write_text(f"# x\n\n## Performance\n\nintro\n\n{report.BEGIN}\n{inside}{report.END}\n"
                    "\n## Layout\n\nafter\n")
    return path


def test_a_figure_whose_suite_has_not_run_reads_not_measured(tmp_path: Path) -> None:
    body = report.render(report.load(results_dir(tmp_path, machine=MACHINE)))
    assert "No peer suite has run" in body
    for figure in ("sustained runs/s", "10,000 jobs added", "1,000,000 active jobs: RSS",
                   "`symbi cron status` round trip", "single job, child-observed start"):
        line = next(x for x in body.splitlines() if x.startswith(f"| {figure}"))
        assert "| not measured | — |" in line, line


def test_peer_rows_become_a_table_with_the_ratio_computed_from_the_two_figures(
        tmp_path: Path) -> None:
    body = report.render(report.load(results_dir(tmp_path, vs_apscheduler=APS)))
    assert "**symbid vs APScheduler 3.11.3 (test)** (suite `vs_apscheduler`)" in body
    # the row's own ratio (99.0) is not trusted: 400 / 1000 is computed
    assert ("| 1,000 one-shots due at one instant, concurrency 20: child start after slot, "
            "p99 | 400 ms | 1,000 ms | 0.4 | ratio ≤ 0.5 |") in body
    assert "| adding jobs one by one through its API, one client | 1,080 jobs/s | " \
           "636 jobs/s | 1.7 | — |" in body
    burst = next(x for x in body.splitlines() if x.startswith("| 1,000 one-shots at one"))
    assert "| ratio 0.4 (400 ms vs 1,000 ms) | yes |" in burst
    single = next(x for x in body.splitlines() if x.startswith("| single job"))
    assert "| 1.5 ms" in single and single.endswith("| yes |")


def test_every_suite_with_rows_gets_a_peer_table_peers_first(tmp_path: Path) -> None:
    cron = {"peer": "Debian cron 3.0pl1", "rows": [
        {"figure": "single job: child start after slot (cron: minute resolution)",
         "symbid": 1.2, "peer": 0, "unit": "ms", "target": ""}]}
    other = {"peer": "something", "rows": [
        {"figure": "a figure", "symbid": 2, "peer": None, "unit": "ms", "target": ""}]}
    body = report.render(report.load(results_dir(tmp_path, a_suite=other, vs_cron=cron,
                                                 vs_apscheduler=APS)))
    order = [body.index(f"(suite `{n}`)") for n in ("vs_apscheduler", "vs_cron", "a_suite")]
    assert order == sorted(order)
    # a peer figure of 0 or none gives no ratio, never a made-up one
    assert "| single job: child start after slot (cron: minute resolution) | 1.2 ms | 0 ms " \
           "| — |" in body
    assert "| a figure | 2 ms | not measured | — |" in body


def test_a_small_ratio_keeps_two_significant_digits() -> None:
    assert report.ratio(4.7, 1853.68) == 0.0025
    assert report.num(report.ratio(4.7, 1853.68)) == "0.0025"
    assert report.ratio(400, 1000) == 0.4 and report.ratio(1, 0) is None


def test_targets_say_no_when_a_figure_misses_and_nan_is_not_measured(tmp_path: Path) -> None:
    results = report.load(results_dir(
        tmp_path,
        throughput={"offered_runs_per_s": 700, "succeeded_runs_per_s": 699.5},
        add_10k={"batch_10k_seconds": 2.4},
        scale={"sizes": [{"jobs": 1000, "rss_mib": 30.0},
                         {"jobs": 1_000_000, "rss_mib": 250.0, "idle_cpu_percent": 0.2,
                          "startup_ready_s": 4.1}]},
        status_round_trip={"p50_ms": float("nan"), "p90_ms": float("nan")}))
    lines = {x.split(" | ")[0][2:]: x for x in report.render(results).splitlines()
             if x.startswith("| ")}
    assert lines["sustained runs/s, `/bin/true`, every run durably recorded"].endswith(
        "| 699.5/s done of 700/s offered | no |")
    assert lines["10,000 jobs added through the API"].endswith(
        "| 2.4 s (one batch request) | yes |")
    on = "(per-job labels on)"
    assert lines["1,000,000 active jobs: RSS"].endswith(f"| 262.1 MB {on} | yes |")  # MiB->MB
    assert lines["1,000,000 active jobs: idle CPU"].endswith(f"| 0.2% {on} | no |")
    assert lines["1,000,000 active jobs: start-up (exec to READY=1)"].endswith(
        f"| 4.1 s {on} | yes |")
    assert lines["`symbi cron status` round trip"].endswith("| not measured | — |")


def test_the_million_job_figures_come_from_the_run_with_per_job_labels_off(
        tmp_path: Path) -> None:
    late = {"spawn_late_ms": {"p50": 0.5, "p99": 1.5}, "child_late_ms": {"p50": 1, "p99": 2}}
    results = report.load(results_dir(tmp_path, scale={"sizes": [
        {"jobs": 1_000_000, "config": "", "rss_mib": 400.0, **late},
        {"jobs": 1_000_000, "config": "[metrics]\nper_job_labels = false",
         "rss_mib": 200.0, **late}]}))
    body = report.render(results)
    rss = next(x for x in body.splitlines() if x.startswith("| 1,000,000 active jobs: RSS"))
    assert rss.endswith("| 209.7 MB (per-job labels off) | yes |")
    assert "Scaling (suite `scale`)" in body
    assert "| 1,000,000 | [metrics] per_job_labels = false | not measured | 200 MiB | " \
           "not measured | 0.5 / 1.5 | 1 / 2 |" in body


def test_the_machine_and_the_run_dates_are_described(tmp_path: Path) -> None:
    later = dict(APS, finished_at="2026-12-04T03:30:00Z")
    body = report.render(report.load(results_dir(
        tmp_path, machine=MACHINE, vs_apscheduler=APS, throughput=later)))
    first = body.splitlines()[0]
    assert first == ("Machine: Test CPU 9000, 2 cores, 7.8 GiB RAM, Linux 6.1.0, Python "
                     "3.11.2. Runs: 2026-12-04T03:00:00Z to 2026-12-04T03:30:00Z.")


def test_without_a_recorded_machine_the_report_says_it_describes_this_one(
        tmp_path: Path) -> None:
    first = report.render(report.load(results_dir(tmp_path))).splitlines()[0]
    assert first.startswith("Machine (where this report was written; the runs recorded "
                            "none): ")
    assert f"{report.machine()['cores']} cores" in first


def test_a_results_file_that_is_not_a_json_object_is_named_and_left_out(
        tmp_path: Path) -> None:
    out = results_dir(tmp_path, vs_apscheduler=APS)
    (out / "broken.json").write_text("{not json")
    (out / "alist.json").write_text("[1, 2]")
    body = report.render(report.load(out))
    assert "Left out (not readable as a JSON object): alist.json, broken.json." in body
    assert "`vs_apscheduler`" in body


def test_writing_replaces_the_readme_section_between_the_markers_idempotently(
        tmp_path: Path) -> None:
    out = results_dir(tmp_path, machine=MACHINE, vs_apscheduler=APS)
    path = readme(tmp_path)
    body = report.write(out, path)
    once = path.read_text()
    assert "old tables" not in once
    assert once.startswith("# x\n\n## Performance\n\nintro\n\n" + report.BEGIN + "\n" + body)
    assert once.endswith(report.END + "\n\n## Layout\n\nafter\n")
    assert once.count(report.BEGIN) == 1 and once.count(report.END) == 1
    report.write(out, path)
    assert path.read_text() == once
    assert (out / "README.md").read_text() == "# symbid benchmark results\n\n" + body


def test_a_readme_without_the_markers_is_refused_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text("# x\n")
    with pytest.raises(ValueError, match=re.escape("<!-- bench:begin --> ... <!-- bench:end -->")):
        report.write(results_dir(tmp_path), path)
    assert path.read_text() == "# x\n"


def test_the_repository_readme_has_the_performance_section() -> None:
    text = report.README.read_text()
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
    assert text.index("## Performance") < text.index(report.BEGIN) < text.index(report.END)
