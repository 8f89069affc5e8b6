"""Showing user text safely: escaping, masking secrets, shortening, log records."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from symbid.journal import EscapeFilter
from symbid.text import MaskStream, escape, json_text, mask, secret_parts, shorten


@pytest.mark.parametrize(("text", "shown"), [
    ("plain text, é, 漢字", "plain text, é, 漢字"),
    ("line\nbreak", "line\\x0abreak"),
    ("\x1b[31mred", "\\x1b[31mred"),
    ("a\u202eb", "a\\u202eb"),
    ("nul\x00", "nul\\x00"),
    ("c1\x9b", "c1\\x9b"),
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("lone\ud800", "lone\\ud800"),
])
def test_control_and_format_characters_are_escaped(text: str, shown: str) -> None:
    assert escape(text) == shown
    assert escape(shown) == shown  # escaping twice changes nothing


def test_secrets_are_masked_whole_by_line_and_at_a_cut() -> None:
    parts = secret_parts(["s3cr3t-value-0123456789", "abc", "line-one\nline-two"])
    assert "abc" not in parts  # too short to mask without hiding ordinary text
    assert mask("token s3cr3t-value-0123456789 and line-two", parts) == "token *** and ***"
    assert mask("capped at s3cr3t-val", parts, cut_end=True) == "capped at ***"
    assert mask("e-0123456789 tail", parts, cut_start=True) == "*** tail"
    assert mask("s3cr is not at a cut", parts) == "s3cr is not at a cut"


def test_json_text_is_the_same_json_and_safe_to_print() -> None:
    data = {"name": "x\u202ey", "out": "\x9b[2J", "raw": "ok é"}
    text = json_text(json.dumps(data, ensure_ascii=False, indent=2))
    assert json.loads(text) == data
    assert text.count("\n") == 4  # the layout stays
    assert all(line.isprintable() for line in text.splitlines()) and "é" in text


def test_long_values_are_shortened_in_messages() -> None:
    assert shorten("x" * 10) == "x" * 10
    assert shorten("x" * 300_000) == "x" * 80 + "... (300000 characters)"


def test_log_records_carry_user_text_escaped(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.escape")
    handler, escaping = caplog.handler, EscapeFilter()
    handler.addFilter(escaping)
    try:
        with caplog.at_level(logging.INFO, logger="test.escape"):
            logger.info("job %s: %s", "a\nINFO forged", 3,
                        extra={"SYMBID_JOB": "b\x1b[31m"})
            logger.info("plain message\x1b[2J")
    finally:
        handler.removeFilter(escaping)
    first, second = caplog.records
    assert first.getMessage() == "job a\\x0aINFO forged: 3"
    assert first.SYMBID_JOB == "b\\x1b[31m"  # type: ignore[attr-defined]
    assert second.getMessage() == "plain message\\x1b[2J"


def test_a_non_ascii_secret_cut_inside_a_character_is_masked() -> None:
    from symbid.text import mask, secret_parts

    parts = secret_parts(["pässwörd-geheim"])
    cut = "pässwörd-geheim".encode()[:7].decode("utf-8", "replace")  # ends inside "ö"
    assert cut.endswith("\ufffd")
    assert mask(f"x {cut}", parts, cut_end=True) == "x ***"
    tail = "pässwörd-geheim".encode()[7:].decode("utf-8", "replace")  # starts inside "ö"
    assert mask(f"{tail} y", parts, cut_start=True) == "*** y"


def _streamed(text: str, parts: list[str], cuts: list[int], cut: bool) -> list[str]:
    stream = MaskStream(parts)
    pieces, last = [], 0
    for at in sorted(set(cuts)) + [len(text)]:
        pieces.append(stream.feed(text[last:at]))
        last = at
    pieces.append(stream.end(cut=cut))
    return pieces


@given(text=st.text("abcdx-", max_size=60),
       secret=st.text("abcd", min_size=4, max_size=8),
       other=st.text("cdx", min_size=4, max_size=6),
       cuts=st.lists(st.integers(0, 60), max_size=12), cut=st.booleans())
def test_output_masked_as_it_arrives_is_what_masking_it_whole_gives(
        text: str, secret: str, other: str, cuts: list[int], cut: bool) -> None:
    parts = secret_parts([secret, other])
    cuts = [c for c in cuts if c <= len(text)]
    assert "".join(_streamed(text, parts, cuts, cut)) == mask(text, parts, cut_end=cut)


def test_output_masked_as_it_arrives_never_shows_the_start_of_a_secret() -> None:
    parts = secret_parts(["tok-0123456789"])
    stream = MaskStream(parts)
    assert stream.feed("key: tok-01") == "key: "
    assert stream.feed("23") == ""
    assert stream.feed("456789 done\n") == "*** done\n"
    assert stream.feed("tail tok") == "tail "
    assert stream.end() == "tok"  # not cut: the run ended there, as the store keeps it
    stream.feed("tok-0123")
    assert stream.end(cut=True) == "***"  # cut by the cap: the piece is masked


def test_output_without_secrets_is_given_out_as_it_arrives() -> None:
    stream = MaskStream([])
    assert stream.feed("abc") == "abc" and stream.end() == ""
