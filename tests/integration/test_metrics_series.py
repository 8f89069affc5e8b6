"""Per-job metric series through a real daemon: they go with their job (removed through
the API, renamed, or dropped from agents.d), and ``[metrics] per_job_labels = false``
makes /metrics count all jobs together, without a job label."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.daemon_helper import Daemon, add_job, final_run, start_run

AGENTS = ('agent ok { command: ["/bin/true"] }\nagent bad { command: ["/bin/false"] }\n'
          'agent slow { command: ["sleep", "1.5"] }\n')
PER_JOB = ("symbiont_cron_runs_total", "symbiont_cron_execution_duration_seconds",
           "symbiont_cron_dead_letter_total")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("series"), {"agents.symbi": AGENTS})
    d.start()
    yield d
    d.cleanup()


def scrape(d: Daemon) -> str:
    status, text = d.api("GET", "/metrics")
    assert status == 200
    families = list(text_string_to_metric_families(text))  # valid exposition text
    assert {f.name for f in families} >= {"symbiont_cron_runs", "symbiont_cron_in_flight_jobs"}
    return str(text)


def job_series(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if f'job_name="{name}"' in line]


def ran(d: Daemon, name: str) -> None:
    final_run(d, start_run(d, name))
    d.wait_for(lambda: any("_runs_total" in line for line in job_series(scrape(d), name)))


def test_a_deleted_jobs_series_are_removed_and_the_others_stay(daemon: Daemon) -> None:
    add_job(daemon, "m-gone", "ok")
    add_job(daemon, "m-kept", "ok")
    add_job(daemon, "m-failing", "bad", max_retries=0)
    for name in ("m-gone", "m-kept"):
        ran(daemon, name)
    final_run(daemon, start_run(daemon, "m-failing"))
    daemon.wait_for(lambda: job_series(scrape(daemon), "m-failing"))
    before = scrape(daemon)
    assert any("execution_duration_seconds_bucket" in s
               for s in job_series(before, "m-gone"))
    for name in ("m-gone", "m-failing"):
        assert daemon.api("DELETE", f"/api/v1/schedule/{name}")[0] == 200
    after = scrape(daemon)
    assert job_series(after, "m-gone") == [] and job_series(after, "m-failing") == []
    assert job_series(after, "m-kept") == job_series(before, "m-kept")


def test_a_renamed_jobs_series_under_its_old_name_are_removed(daemon: Daemon) -> None:
    add_job(daemon, "m-old", "ok")
    ran(daemon, "m-old")
    status, _ = daemon.api("PUT", "/api/v1/schedule/m-old", {"name": "m-new"})
    assert status == 200
    assert job_series(scrape(daemon), "m-old") == []


def _running(d: Daemon, name: str) -> str:
    run_id = start_run(d, name)
    d.wait_for(lambda: d.api("GET", f"/api/v1/runs/{run_id}")[1]["status"] == "running")
    return run_id


def _idle(d: Daemon) -> bool:
    return any(line.startswith("symbiont_cron_in_flight_jobs ")
               and float(line.split()[1]) == 0 for line in scrape(d).splitlines())


def test_a_job_deleted_while_its_run_goes_does_not_get_its_series_back(daemon: Daemon) -> None:
    add_job(daemon, "m-deleted-running", "slow")
    _running(daemon, "m-deleted-running")
    assert daemon.api("DELETE", "/api/v1/schedule/m-deleted-running")[0] == 200
    daemon.wait_for(lambda: _idle(daemon))  # its run has ended and been dealt with
    assert job_series(scrape(daemon), "m-deleted-running") == []


def test_a_run_of_a_job_renamed_while_it_goes_is_counted_under_the_new_name(
        daemon: Daemon) -> None:
    add_job(daemon, "m-before", "slow")
    run_id = _running(daemon, "m-before")
    assert daemon.api("PUT", "/api/v1/schedule/m-before", {"name": "m-after"})[0] == 200
    assert final_run(daemon, run_id)["status"] == "succeeded"
    daemon.wait_for(lambda: _idle(daemon))
    text = scrape(daemon)
    assert job_series(text, "m-before") == []
    assert any("_runs_total" in line for line in job_series(text, "m-after"))


def test_a_job_dropped_from_agents_d_loses_its_series_on_reload(daemon: Daemon) -> None:
    daemon.write_agents("filed.symbi", 'schedule { name: "m-filed", agent: "ok", '
                                       'cron: "0 0 1 1 *" }\n')
    assert daemon.cli("reload").returncode == 0
    ran(daemon, "m-filed")
    (daemon.agents_dir / "filed.symbi").unlink()
    reloaded = daemon.cli("reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert daemon.api("GET", "/api/v1/schedule/m-filed")[0] == 404
    assert job_series(scrape(daemon), "m-filed") == []


def test_without_per_job_labels_metrics_count_all_jobs_with_no_job_label(
    tmp_path: Path,
) -> None:
    d = Daemon(tmp_path, {"agents.symbi": AGENTS},
               config="\n[metrics]\nper_job_labels = false\n")
    try:
        d.start()
        for name in ("p-one", "p-two"):
            add_job(d, name, "ok")
            final_run(d, start_run(d, name))
        d.wait_for(lambda: 'symbiont_cron_runs_total{status="succeeded"} 2.0' in scrape(d))
        text = scrape(d)
        assert "job_name" not in text
        assert "symbiont_cron_execution_duration_seconds_count 2.0" in text
        assert d.api("DELETE", "/api/v1/schedule/p-one")[0] == 200
        assert 'symbiont_cron_runs_total{status="succeeded"} 2.0' in scrape(d)
    finally:
        d.cleanup()
