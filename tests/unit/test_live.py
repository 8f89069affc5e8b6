"""Live output: what a running run printed so far, decoded, masked and released."""

from __future__ import annotations

import threading

from symbid.live import LiveOutputs
from symbid.text import mask, secret_parts


def test_output_is_decoded_across_pieces_that_split_a_character() -> None:
    live = LiveOutputs()
    out = live.open("r1", [])
    data = "café 報告\n".encode()
    for i in range(len(data)):
        out.feed(data[i:i + 1])
    assert out.text() == "café 報告\n"


def test_live_output_is_masked_as_the_stored_output_is() -> None:
    secrets = secret_parts(["s3cr3t-value-0123456789"])
    live = LiveOutputs()
    out = live.open("r1", secrets)
    out.feed(b"token=s3cr3t-val")
    assert "s3cr3t" not in out.text()
    out.feed(b"ue-0123456789 ok\nthen s3cr3t-va")
    assert out.text() == "token=*** ok\nthen "
    out.exited(truncated=True)  # cut by the cap in the middle of the secret
    whole = "token=s3cr3t-value-0123456789 ok\nthen s3cr3t-va"
    assert out.text() == mask(whole, secrets, cut_end=True) == "token=*** ok\nthen ***"


def test_a_reader_gets_new_pieces_and_sees_the_end_when_the_output_is_released() -> None:
    live = LiveOutputs()
    out = live.open("r1", [])
    out.feed(b"one\n")
    text, cursor, ended = out.read(0, timeout=30)
    assert (text, ended) == ("one\n", False)
    got: list[tuple[str, bool]] = []

    def reader() -> None:
        nonlocal cursor
        while True:
            text, cursor, ended = out.read(cursor, timeout=30)
            got.append((text, ended))
            if ended:
                return

    thread = threading.Thread(target=reader)
    thread.start()
    out.feed(b"two\n")
    out.exited(truncated=False)
    live.release("r1")
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert "".join(t for t, _ in got) == "two\n" and got[-1][1]
    assert live.get("r1") is None and live.count() == 0


def test_a_reader_waiting_for_a_run_to_start_gets_its_output() -> None:
    live = LiveOutputs()
    found = []
    thread = threading.Thread(target=lambda: found.append(live.wait("r1", timeout=30)))
    thread.start()
    opened = live.open("r1", [])
    thread.join(timeout=30)
    assert found == [opened]


def test_closing_ends_every_reader_and_keeps_nothing() -> None:
    live = LiveOutputs()
    out = live.open("r1", [])
    live.close()
    assert out.read(0, timeout=30) == ("", 0, True)
    assert live.wait("r2", timeout=30) is None
    assert live.open("r3", []).ended and live.count() == 0


def test_output_after_the_process_exited_is_not_added() -> None:
    live = LiveOutputs()
    out = live.open("r1", [])
    out.feed(b"a")
    out.exited(truncated=False)
    out.feed(b"b")
    assert out.text() == "a"
