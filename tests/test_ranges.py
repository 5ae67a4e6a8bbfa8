"""The Range header of a file read: one range served as 206, the rest as the whole file,
a range past the end unsatisfiable (416)."""

from __future__ import annotations

import pytest

from oxen.server.ranges import Span, Unsatisfiable, parse_range

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "span"),
    [
        ("bytes=0-99", Span(0, 100)),
        ("bytes=0-0", Span(0, 1)),
        ("bytes=500-", Span(500, SIZE)),
        ("bytes=999-", Span(999, SIZE)),
        ("bytes=-1", Span(999, SIZE)),
        ("bytes=-100", Span(900, SIZE)),
        ("bytes=-5000", Span(0, SIZE)),  # more than the file: all of it
        ("bytes=900-5000", Span(900, SIZE)),  # past the end: cut to it
        ("bytes=10-10", Span(10, 11)),
        ("BYTES = 1-2", Span(1, 3)),
        ("bytes= 1-2 ", Span(1, 3)),
    ],
)
def test_one_range(header: str, span: Span) -> None:
    assert parse_range(header, SIZE) == span


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes",
        "bytes=",
        "bytes=-",
        "bytes=5",
        "bytes=a-b",
        "bytes=+1-2",
        "bytes=1_0-20",
        "bytes=\u0661-2",  # an Arabic-Indic digit: isdigit(), but not ASCII
        "bytes=20-10",  # last before first: invalid, so ignored
        "bytes=0-1,5-6",  # several ranges: the whole file
        "items=0-1",
        "bytes=0-" + "9" * 5000,  # too long to be a number we parse
    ],
)
def test_what_is_not_one_range_asks_for_the_whole_file(header: str | None) -> None:
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize(
    "header", ["bytes=1000-", "bytes=1000-2000", "bytes=5000-6000", "bytes=-0"]
)
def test_a_range_past_the_end_is_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, SIZE)


def test_an_empty_file_has_no_byte_to_serve() -> None:
    for header in ("bytes=0-", "bytes=0-0", "bytes=-1"):
        with pytest.raises(Unsatisfiable):
            parse_range(header, 0)
    assert parse_range(None, 0) is None


def test_content_range() -> None:
    assert Span(0, 100).content_range(SIZE) == "bytes 0-99/1000"
    assert Span(100, 100).length == 0
