"""bench/cron_peer.py (vs_cron): the lateness it computes and the reason it gives when it
cannot run here."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import cron_peer


def test_lateness_is_the_reading_minus_the_minute_boundary_before_it() -> None:
    minute_ms = 29_939_178 * 60_000  # a minute boundary (2026-12-04T02:18:00Z)
    readings = [(minute_ms + 1839) * 1_000_000 + 420_000, (minute_ms + 60_000) * 1_000_000,
                (minute_ms + 120_000 + 59_999) * 1_000_000]
    assert cron_peer.lateness_ms(readings) == [1839.42, 0.0, 59_999.0]


def test_without_the_container_tools_vs_cron_is_skipped_naming_what_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to be found
    reason = cron_peer.why_skipped()
    assert reason is not None
    assert "needs root" in reason or "systemd-nspawn, debootstrap, nsenter, tar" in reason
    result = cron_peer.vs_cron()
    assert result == {"skipped": reason}
