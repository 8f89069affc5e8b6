"""The client's text streams: UTF-8 decoded piece by piece."""

from __future__ import annotations

from symbid.client import decode_pieces


def test_a_character_split_between_two_pieces_comes_out_whole() -> None:
    data = "ok é 報告 🙂\n".encode()
    pieces = [data[i:i + 1] for i in range(len(data))]
    assert "".join(decode_pieces(pieces)) == "ok é 報告 🙂\n"
    assert "\ufffd" not in "".join(decode_pieces([data[:5], data[5:]]))


def test_bytes_that_are_not_utf8_are_replaced_not_raised() -> None:
    assert "".join(decode_pieces([b"a\xff", b"b\xe2\x82"])) == "a\ufffdb\ufffd"
