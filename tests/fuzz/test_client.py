"""The client's reading of a server's answers (oxen/sync/http.py): whatever a server (or
something in front of it) answers, the client gets well-formed ids and refs or an
OxenError (RemoteError, NotFound, NonFastForward), never another exception."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack
import pytest
from aiohttp import web
from hypothesis import example, given
from hypothesis import strategies as st

from oxen.errors import OxenError
from oxen.formats.ids import ID_LEN
from oxen.formats.refnames import check_branch_name
from oxen.sync.http import HttpRemote
from oxen.sync.protocol import PROTOCOL_HEADER, RemoteURL
from tests.fuzz.conftest import fuzz_settings, tried
from tests.fuzz.live import LoopThread
from tests.fuzz.strategies import IDS, RAW, encodings, near_valid, pick


@dataclass
class Canned:
    """What the fake server answers next."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class FakeServer(LoopThread):
    """Answers every request with ``canned``; the client under test runs on its loop."""

    def __init__(self) -> None:
        super().__init__()
        self.canned = Canned()

    async def answer(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(
            status=self.canned.status, body=self.canned.body, headers=self.canned.headers
        )

    def start(self) -> None:  # type: ignore[override]
        super().start()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.answer)
        port = self.serve(app)
        url = RemoteURL.parse(f"http://127.0.0.1:{port}/ns/r")

        async def connect() -> HttpRemote:
            return HttpRemote(url, token="oxn_fuzz")

        self.remote = self.call(connect())

    def stop(self) -> None:
        self.call(self.remote.close())
        super().stop()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    server.start()
    yield server
    server.stop()


STATUSES = [200] * 6 + [201, 204, 400, 401, 403, 404, 409, 413, 500, 502]
PROTOCOLS = ["2"] * 6 + [None, "1", "3", "two", ""]
CONTENT_TYPES = ["application/msgpack", "application/json", "text/plain", None]


@st.composite
def json_near(draw: st.DrawFn, value: dict[str, Any]) -> bytes:
    """``value`` as JSON, perhaps with a field of another type, dropped or added."""
    mutated = draw(near_valid(st.just([value])))
    if isinstance(mutated, list) and len(mutated) == 1:
        mutated = mutated[0]
    try:
        return json.dumps(mutated).encode()
    except (TypeError, ValueError):  # bytes: not JSON
        return repr(mutated).encode()


@st.composite
def answers(draw: st.DrawFn, bodies: st.SearchStrategy[bytes]) -> Canned:
    status = pick(draw, STATUSES)
    if status >= 400 and draw(st.booleans()):
        body = draw(json_near({"error": "refused", "status": status}))
    else:
        body = draw(bodies)
    headers = {}
    if (protocol := pick(draw, PROTOCOLS)) is not None:
        headers[PROTOCOL_HEADER] = protocol
    if (content_type := pick(draw, CONTENT_TYPES)) is not None:
        headers["Content-Type"] = content_type
    return Canned(status, body, headers)


# -- which ids the server lacks --------------------------------------------------------------

ID_ANSWERS = st.one_of(
    encodings(st.lists(IDS, max_size=4).map(b"".join)),
    encodings(st.lists(IDS, max_size=2)),
    encodings(st.lists(st.just("x" * ID_LEN), max_size=2).map("".join)),  # ids as text
    RAW,
)
ASKED = st.lists(IDS, min_size=1, max_size=4, unique=True)


@fuzz_settings(200)
@given(answers(ID_ANSWERS), ASKED)
@example(Canned(200, msgpack.packb("x" * ID_LEN), {PROTOCOL_HEADER: "2"}), [bytes(ID_LEN)])
def test_missing(fake: FakeServer, canned: Canned, asked: list[bytes]) -> None:
    tried("client: missing answer")
    fake.canned = canned
    try:
        missing = fake.call(fake.remote.missing(asked))
    except OxenError:
        return
    assert canned.status < 300 and canned.headers.get(PROTOCOL_HEADER) == "2"
    assert all(type(i) is bytes and len(i) == ID_LEN for i in missing)


# -- the branches a server lists ---------------------------------------------------------------


@st.composite
def refs_bodies(draw: st.DrawFn) -> bytes:
    names = ["main", "dev", "a/b", "feature/x", "..", "a b", "", "x" * 300, "HEAD", "-x"]
    commits = [draw(IDS).hex(), "ab" * 16, "AB" * 32, "zz" * 32, ""]
    branches = {
        pick(draw, names if draw(st.integers(0, 4)) == 0 else names[:4]): pick(
            draw, commits if draw(st.integers(0, 4)) == 0 else commits[:1]
        )
        for _ in range(draw(st.integers(0, 3)))
    }
    return draw(json_near({"branches": branches}))


@fuzz_settings(200)
@given(answers(st.one_of(refs_bodies(), refs_bodies(), st.binary(max_size=40))))
@example(Canned(200, b'{"branches": []}', {PROTOCOL_HEADER: "2"}))
@example(Canned(200, b'{"branches": {"main": "abab"}}', {PROTOCOL_HEADER: "2"}))
@example(Canned(200, b"<html>", {PROTOCOL_HEADER: "2", "Content-Type": "text/html"}))
def test_refs(fake: FakeServer, canned: Canned) -> None:
    tried("client: refs answer")
    fake.canned = canned
    try:
        refs = fake.call(fake.remote.refs())
    except OxenError:
        return
    assert canned.status < 300 and canned.headers.get(PROTOCOL_HEADER) == "2"
    for name, commit in refs.items():
        assert check_branch_name(name) == name
        assert type(commit) is bytes and len(commit) == ID_LEN
