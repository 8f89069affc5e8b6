"""The Symbiont dialect (/symbiont/api/v1) takes only the query parameters its routes
use: anything else is refused, naming it, as on the native API."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import Harness


@pytest.mark.parametrize(("suffix", "taken"), [
    ("/history?limit=2", "limit"), ("/next-runs?count=2", "count"), ("", None)])
def test_an_unknown_query_parameter_on_the_dialect_is_refused_naming_it(
        tmp_path: Path, suffix: str, taken: str) -> None:
    h = Harness(tmp_path)
    job = h.add("hourly", cron="0 * * * *")
    path = f"/symbiont/api/v1/schedules/{job.id}{suffix}"
    assert h.api("GET", path)[0] == 200
    status, body = h.api("GET", path + ("&" if "?" in path else "?") + "colour=red")
    assert status == 400
    assert body["error"]["field"] == "colour"
    assert (f"takes only {taken}" if taken else "takes none") in body["error"]["message"]


def test_the_dialects_listing_and_health_take_no_query_parameter(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    for path in ("/symbiont/api/v1/schedules", "/symbiont/api/v1/health/scheduler"):
        assert h.api("GET", path)[0] == 200
        assert h.api("GET", path + "?status=active")[0] == 400
