"""Every route, with generated methods, paths, headers and bodies, sent byte for byte to the
server's application in this process. Whatever arrives: never a 5xx; an error the
application answers is JSON ``{"error", "status"}`` (a web page's, an HTML page saying
why); and nothing invalid changes the store (a pack is stored only when it verifies, a
branch moves only by a valid update, a repository appears or goes only by a valid create
or delete; the web pages change nothing)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import msgpack
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from oxen.formats.ids import ID_LEN, hash_bytes
from oxen.formats.nodes import CommitNode, DirNode, FileEntry, Schema, VNode, encode_with_id
from oxen.formats.packs import FOOTER_LEN, Kind, SealedPack, decode_trailer, trailer_span
from oxen.objects.pack_index import verify_pack_file
from oxen.server.auth import Role
from oxen.sync.protocol import PROTOCOL_HEADER
from tests.fuzz.conftest import fuzz_settings, outcome, tried
from tests.fuzz.live import Answer, LiveServer
from tests.fuzz.strategies import (
    ID_POOL,
    RAW,
    blobs,
    encodings,
    near_valid,
    pack_file,
    pack_files,
    pick,
)

NS, NAME = "ns", "r"  # the repository the requests are about (it holds two commits)
BASE = f"/api/repos/{NS}/{NAME}"


@dataclass(frozen=True)
class Seed:
    """What the repository holds: two commits, C2 a child of C1; main is at C1. Each holds
    a text file (f0.txt, f1.txt) and a csv with its schema (t.csv, edited by C2)."""

    c1: bytes
    c2: bytes
    objects: list[bytes]  # every id stored (commits, trees, vnodes, chunks)
    pack: bytes  # a valid pack of them


CSVS = [b"id,label\n1,a\n2,b\n", b"id,label\n1,a\n2,c\n3,d\n"]  # t.csv in C1, C2


def seed_objects() -> tuple[Seed, list[tuple[bytes, int, bytes]]]:
    blobs_: list[tuple[bytes, int, bytes]] = []
    parents: tuple[bytes, ...] = ()
    commits = []
    sid, schema = encode_with_id(Schema("csv", (("id", "int64"), ("label", "string"))))
    blobs_.append((sid, int(Kind.NODE), schema))
    for i, (text, csv) in enumerate(zip([b"first file", b"second file"], CSVS, strict=True)):
        chunk, table = hash_bytes(text), hash_bytes(csv)
        blobs_ += [(chunk, int(Kind.CHUNK), text), (table, int(Kind.CHUNK), csv)]
        entries = (
            FileEntry(f"f{i}.txt", chunk, len(text)),
            FileEntry("t.csv", table, len(csv), schema=sid, rows=csv.count(b"\n") - 1),
        )
        vid, vnode = encode_with_id(VNode(entries))
        did, dnode = encode_with_id(DirNode((vid,), len(text) + len(csv), 2, 2))
        cid, commit = encode_with_id(
            CommitNode(did, parents, "Ada", "ada@example.com", 1_700_000_000 + i, 0, f"c{i}")
        )
        blobs_ += [(vid, int(Kind.NODE), vnode), (did, int(Kind.NODE), dnode)]
        blobs_.append((cid, int(Kind.NODE), commit))
        commits.append(cid)
        parents = (cid,)
    seed = Seed(commits[0], commits[1], [b[0] for b in blobs_], pack_file(blobs_))
    return seed, blobs_


SEED, SEED_BLOBS = seed_objects()
KNOWN_IDS = SEED.objects + ID_POOL[:4]  # stored ones, and some nobody holds


def header(name: str, value: str | bytes) -> tuple[bytes, bytes]:
    return name.encode(), value if isinstance(value, bytes) else value.encode()


class Fuzzed(LiveServer):
    """The live server with tokens of each role and the seeded repository."""

    def setup(self) -> None:
        self.writer = self.issue("writer", Role.WRITER, ["*"])
        self.reader = self.issue("reader", Role.READER, [NS])
        self.admin = self.issue("admin", Role.ADMIN, ["scratch"])
        past = int(time.time()) - 3600
        self.expired = self.issue("expired", Role.WRITER, ["*"], created=past, expires=past + 1)
        good = self.auth(self.writer)
        for ns, name in ((NS, NAME), ("scratch", "s")):
            body = json.dumps({"namespace": ns, "name": name}).encode()
            assert self.send("POST", "/api/repos", good, body).status == 201
        assert self.send("POST", f"{BASE}/packs", good, SEED.pack).status == 201
        ref = json.dumps({"old": None, "new": SEED.c1.hex()}).encode()
        assert self.send("PUT", f"{BASE}/refs/heads/main", good, ref).status == 200
        # the web pages' CSRF secret is made in the store by the first form shown: here,
        # not during the fuzzing (whose requests may change nothing else)
        assert self.send("GET", "/-/signin", []).status == 200

    def auth(self, token: str) -> list[tuple[bytes, bytes]]:
        return [header("Authorization", f"Bearer {token}"), header(PROTOCOL_HEADER, "2")]

    def send(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
    ) -> Answer:
        length = [header("Content-Length", str(len(body)))] if body else []
        answer = self.request(method.encode(), path.encode(), headers + length, body)
        assert answer is not None
        return answer


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    server = Fuzzed(tmp_path_factory.mktemp("fuzzed-server"), body_idle_timeout=0.1)
    server.start()
    server.setup()
    yield server
    server.stop()


@dataclass
class Sent:
    """A request as it goes on the wire (Host and Connection: close are added)."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


def with_length(sent: Sent) -> Sent:
    """``sent`` with the Content-Length of its body (a body without one is read as the
    next request on the connection)."""
    if sent.body:
        sent.headers = [*sent.headers, header("Content-Length", str(len(sent.body)))]
    return sent


def send_and_check(live: Fuzzed, sent: Sent, group: str) -> Answer:
    """Send one generated request; check the answer and what it changed in the store."""
    tried(group)
    before = live.snapshot()
    answer = live.request(sent.method, sent.target, sent.headers, sent.body)
    after = live.snapshot()
    assert answer is not None, "the server closed the connection without an answer"
    assert answer.status < 500, answer
    if PROTOCOL_HEADER.lower() not in answer.headers:
        # refused by aiohttp's HTTP parser before the application saw it (an invalid
        # method, a byte that cannot be in a target or header, a bad Content-Length)
        assert answer.status == 400 and answer.headers["content-type"].startswith("text/plain")
        outcome(group, "parser-400")
    else:
        outcome(group, str(answer.status))
        if answer.status >= 400 and sent.method != b"HEAD":
            if answer.headers["content-type"].startswith("text/html"):
                check_error_page(sent, answer)
            else:
                assert answer.headers["content-type"].startswith("application/json"), answer
                error = answer.json()
                assert (
                    set(error) - {"paths", "incomplete"} == {"error", "status"}
                    and error["status"] == answer.status
                )
                if "incomplete" in error:  # a ref update reaching objects not stored
                    assert error["incomplete"] is True and answer.status == 400
                assert isinstance(error["error"], str) and error["error"]
    check_changes(sent, answer, before, after)
    return answer


API_PREFIXES = ("/api/", "/healthz", "/readyz", "/metrics", "/-/static/")


def check_error_page(sent: Sent, answer: Answer) -> None:
    """An error of a web page: an HTML page saying why (the sign-in form, for a bad sign
    in), never for a route of the API, and never with markup from the request in it."""
    path = unquote(urlsplit(sent.target.decode("latin-1")).path)
    assert not path.startswith(API_PREFIXES), answer
    html = answer.body.decode("utf-8")
    assert 'class="error"' in html, answer
    scripts = html.count("<script")
    assert scripts == 1 and '<script src="/-/static/oxen.js" defer>' in html, answer


def check_changes(
    sent: Sent, answer: Answer, before: dict[str, bytes], after: dict[str, bytes]
) -> None:
    """The store changed only as a successful request of its kind may change it."""
    if before == after:
        return
    added = {k: v for k, v in after.items() if k not in before}
    removed = {k for k in before if k not in after}
    changed = {k: after[k] for k in before.keys() & after.keys() if before[k] != after[k]}
    assert 200 <= answer.status < 300, (answer, added, removed, changed)
    path = unquote(urlsplit(sent.target.decode("latin-1")).path)
    method = sent.method.decode()
    if method == "POST" and path == "/api/repos":
        body = json.loads(sent.body)
        assert not removed and not changed
        assert list(added) == [f"repos/{body['namespace']}/{body['name']}/repo.json"]
    elif method == "POST" and path.endswith("/packs"):
        assert not removed and not changed and len(added) == 1
        key, stored = added.popitem()
        assert stored == sent.body and key.startswith(f"repos{path[len('/api/repos') : -6]}/packs/")
        check_stored_pack(key, stored)
    elif method == "DELETE" and "/refs/heads/" in path:
        branch = path.split("/refs/heads/", 1)[1]
        key = f"repos{path[len('/api/repos') :].split('/refs/heads/')[0]}/refs/heads/{branch}"
        assert not added and not removed and list(changed) == [key]
        assert changed[key] == b"deleted"
        assert before[key] == json.loads(sent.body)["old"].encode()
    elif method == "PUT" and "/refs/heads/" in path:
        branch = path.split("/refs/heads/", 1)[1]
        key = f"repos{path[len('/api/repos') :].split('/refs/heads/')[0]}/refs/heads/{branch}"
        body = json.loads(sent.body)
        assert not removed and list(added) + list(changed) == [key]
        assert after[key] == body["new"].encode()
        assert before.get(key, b"deleted") == (body.get("old") or "deleted").encode()
        # only to a commit whose whole history is stored: no other is, in these tests
        assert bytes.fromhex(body["new"]) in (SEED.c1, SEED.c2)
    elif "/workspaces" in path:  # a workspace, the packs of its rows, its commit's branch
        prefix = f"repos{path[len('/api/repos') :].split('/workspaces')[0]}/"
        kinds = ("workspaces/", "packs/", "refs/heads/")
        for key in [*added, *removed, *changed]:
            assert key.startswith(prefix) and key[len(prefix) :].startswith(kinds), key
        if method == "DELETE":  # the workspace, and the claim on its name if it has one
            assert not added and not changed and 1 <= len(removed) <= 2
    elif method == "DELETE":
        prefix = f"repos{path[len('/api/repos') :]}/"
        assert not added and not changed and removed
        assert all(k.startswith(prefix) for k in removed) and prefix + "repo.json" in removed
    else:
        raise AssertionError(f"{method} {path} changed the store: {added, removed, changed}")


def verified(data: bytes) -> SealedPack:
    """``data`` checked as the server checks a pack it receives."""
    fd, name = tempfile.mkstemp(suffix=".pack")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return verify_pack_file(Path(name), len(data))
    finally:
        os.unlink(name)


def check_stored_pack(key: str, data: bytes) -> None:
    assert key.endswith(f"/{verified(data).id.hex()}.pack")


# -- requests ---------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/api/health"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/api/repos"),
    ("GET", f"/api/repos/{NS}"),
    ("GET", BASE),
    ("DELETE", BASE),
    ("GET", f"{BASE}/refs"),
    ("POST", f"{BASE}/objects/missing"),
    ("POST", f"{BASE}/packs"),
    ("POST", f"{BASE}/uploads"),
    ("POST", f"{BASE}/uploads/complete"),
    ("POST", f"{BASE}/objects/fetch"),
    ("POST", f"{BASE}/objects/locate"),
    ("PUT", f"{BASE}/refs/heads/main"),
    ("DELETE", f"{BASE}/refs/heads/main"),
    ("GET", f"{BASE}/files/f0.txt"),
    ("GET", f"{BASE}/chunks/f0.txt"),
    ("GET", f"{BASE}/tree"),
    ("GET", f"{BASE}/schema/t.csv"),
    ("GET", f"{BASE}/rows/t.csv"),
    ("GET", f"{BASE}/diff/t.csv"),
    ("POST", f"{BASE}/workspaces"),
    ("GET", f"{BASE}/workspaces"),
    ("GET", f"{BASE}/workspaces/w"),
    ("POST", f"{BASE}/workspaces/w/files"),
    ("POST", f"{BASE}/workspaces/w/commit"),
    ("GET", f"{BASE}/workspaces/w/rows/t.csv"),
    # the web pages (their session is a cookie: see header_sets)
    ("GET", "/"),
    ("GET", "/-/signin"),
    ("POST", "/-/signin"),
    ("POST", "/-/signout"),
    ("GET", "/-/static/oxen.css"),
    ("GET", f"/{NS}"),
    ("GET", f"/{NS}/{NAME}"),
    ("GET", f"/{NS}/{NAME}/tree"),
    ("GET", f"/{NS}/{NAME}/file/t.csv"),
    ("GET", f"/{NS}/{NAME}/raw/f0.txt"),
    ("GET", f"/{NS}/{NAME}/commits"),
    ("GET", f"/{NS}/{NAME}/commit/{SEED.c1.hex()}"),
    ("GET", f"/{NS}/{NAME}/compare"),
    ("GET", f"/{NS}/{NAME}/rowdiff/t.csv"),
    ("GET", f"/{NS}/{NAME}/rowcounts/t.csv"),
]


def valid_body(path: str) -> bytes:
    """A body the route would take (some of them change nothing: old is not the tip)."""
    if path == "/api/repos":
        return json.dumps({"namespace": "scratch", "name": "t"}).encode()
    if path.endswith(("/objects/missing", "/objects/fetch", "/objects/locate")):
        return msgpack.packb(b"".join(SEED.objects[:3]))
    if path.endswith("/packs"):
        return SEED.pack
    if "/refs/heads/" in path:
        return json.dumps({"old": SEED.c2.hex(), "new": SEED.c2.hex()}).encode()
    return b""


TOKENS = ["writer"] * 4 + ["reader", "admin", "expired", "unknown"]


@st.composite
def authorizations(draw: st.DrawFn, live: Fuzzed) -> bytes | None:
    which = pick(
        draw, ["good"] * 4 + ["none", "scheme", "no space", "garbage", "utf-8", "latin-1", "long"]
    )
    token = live.tokens.get(pick(draw, TOKENS), "oxn_" + "A" * 43).encode()
    return {
        "good": b"Bearer " + token,
        "none": None,
        "scheme": b"Basic " + token,
        "no space": b"Bearer" + token,
        "garbage": b"Bearer " + draw(st.sampled_from([b"", b" ", b"x", b"Bearer", b"\t"])),
        "utf-8": b"Bearer " + "t\u00f6ken\u2028".encode(),
        "latin-1": b"Bearer \xff\xfe" + token,
        "long": b"Bearer " + token * 40,
    }[which]


@st.composite
def cookies(draw: st.DrawFn, live: Fuzzed) -> bytes | None:
    """The web pages' session and CSRF cookies: most often none (API clients send none),
    else a token of some role, an unknown one, or bytes no cookie holds."""
    which = pick(draw, [None] * 6 + ["good", "good", "unknown", "garbage", "nonce", "twice"])
    token = live.tokens.get(pick(draw, TOKENS), "oxn_" + "A" * 43).encode()
    return {
        None: None,
        "good": b"oxen_token=" + token,
        "unknown": b"oxen_token=oxn_nope; oxen_csrf=" + b"0" * 32,
        "garbage": b"oxen_token=" + draw(st.sampled_from([b"", b'"', b"\xff", b";;", b"=" * 50])),
        "nonce": b"oxen_token="
        + token
        + b"; oxen_csrf="
        + draw(st.sampled_from([b"x", b"0" * 32])),
        "twice": b"oxen_token=x; oxen_token=" + token,
    }[which]


@st.composite
def header_sets(draw: st.DrawFn, live: Fuzzed, body: bytes) -> list[tuple[bytes, bytes]]:
    """Authorization, protocol, content type and length: most right, some not."""
    headers = []
    if (authorization := draw(authorizations(live))) is not None:
        headers.append((b"Authorization", authorization))
    if (cookie := draw(cookies(live))) is not None:
        headers.append((b"Cookie", cookie))
    protocol = pick(draw, ["2"] * 5 + [None, "1", "3", "02", " 2", "2.0", "", "9" * 30, "\u0662"])
    if protocol is not None:
        headers.append(header(PROTOCOL_HEADER, protocol.encode()))
    content_type = pick(
        draw,
        [None, None, "application/json", "application/msgpack", "application/octet-stream"]
        + ["text/plain; charset=utf-16", "multipart/form-data; boundary=x", "\u00e9/\u00e9"],
    )
    if content_type is not None:
        headers.append(header("Content-Type", content_type.encode()))
    length = pick(
        draw,
        ["right"] * 8
        + [None, "short", "long", "zero", "huge", "negative", "text", "twice"]
        + ["chunked", "chunked and length"],
    )
    if length == "right":
        headers.append(header("Content-Length", str(len(body))))
    elif length == "short":
        headers.append(header("Content-Length", str(max(0, len(body) - 1))))
    elif length == "long":  # the body never ends: answered 408 once it stalls
        headers.append(header("Content-Length", str(len(body) + 5)))
    elif length == "zero":
        headers.append(header("Content-Length", "0"))
    elif length == "huge":
        headers.append(header("Content-Length", str(1 << 40)))
    elif length == "negative":
        headers.append(header("Content-Length", "-1"))
    elif length == "text":
        headers.append(header("Content-Length", "ten"))
    elif length == "twice":
        headers += [header("Content-Length", str(len(body)))] * 2
    elif length is not None:  # a chunked body that is not chunked
        headers.append(header("Transfer-Encoding", "chunked"))
        if length == "chunked and length":
            headers.append(header("Content-Length", str(len(body))))
    return headers


@st.composite
def header_requests(draw: st.DrawFn, live: Fuzzed) -> Sent:
    method, path = pick(draw, ROUTES)
    body = valid_body(path)
    return Sent(method.encode(), path.encode(), draw(header_sets(live, body)), body)


def test_health_and_seed(live: Fuzzed) -> None:
    """The fixture is what the fuzzing assumes: the repository holds main at C1."""
    answer = live.send("GET", f"{BASE}/refs", live.auth(live.writer))
    assert answer.json() == {"branches": {"main": SEED.c1.hex()}}


@fuzz_settings(250)
@given(st.data())
def test_headers(live: Fuzzed, data: st.DataObject) -> None:
    send_and_check(live, data.draw(header_requests(live)), "routes: headers")


# -- methods and paths -------------------------------------------------------------------------

SEGMENTS = [
    NS,
    NAME,
    "scratch",
    "s",
    "api",
    "repos",
    "refs",
    "heads",
    "main",
    "objects",
    "missing",
    "fetch",
    "packs",
    "health",
    "healthz",
    "readyz",
    "metrics",
    "",
    ".",
    "..",
    "%2e%2e",
    "%2F",
    "..%2F..",
    "a%00b",
    "%00",
    "%ff",
    "%",
    "%zz",
    "a b",
    "a%20b",
    "~",
    "-x",
    ".hidden",
    "\u00e9",
    "%C3%A9",
    "x" * 101,
    "y" * 300,
    "z" * 7000,
    "main.lock",
    "a..b",
    "HEAD",
    "@{",
    "?q=1",
    "#frag",
    ";p",
    "main/x",
    "%2e",
]
METHODS = ["GET", "POST", "PUT", "DELETE"] * 3 + ["HEAD", "OPTIONS", "PATCH", "TRACE"]
METHODS += ["get", "G\u00c9T", "FOO", "M-SEARCH", "CONNECT", ""]


@st.composite
def path_requests(draw: st.DrawFn, live: Fuzzed) -> Sent:
    method = pick(draw, METHODS)
    kind = pick(draw, ["route", "route", "segments", "target"])
    if kind == "route":  # a real route with one part replaced
        parts = pick(draw, ROUTES)[1].split("/")
        i = pick(draw, range(2, len(parts))) if len(parts) > 2 else 1
        parts[i] = pick(draw, SEGMENTS)
        path = "/".join(parts)
    elif kind == "segments":
        path = "/api/repos/" + "/".join(draw(st.lists(st.sampled_from(SEGMENTS), max_size=7)))
    else:
        path = pick(draw, ["*", "", "api/repos", "http://x/api/repos/ns/r", "//api/repos/ns"])
    target = (
        path.encode("utf-8")
        if pick(draw, [True, False, False])
        else quote(path, safe="/%?#;@{~").encode()
    )
    body = valid_body(path) if draw(st.booleans()) else b""
    headers = live.auth(pick(draw, [live.writer, live.writer, live.reader, live.admin]))
    return with_length(Sent(method.encode(), target, headers, body))


@fuzz_settings(250)
@given(st.data())
def test_methods_and_paths(live: Fuzzed, data: st.DataObject) -> None:
    send_and_check(live, data.draw(path_requests(live)), "routes: methods and paths")


# -- JSON bodies: repositories and branches ---------------------------------------------------------

BRANCHES = ["main", "dev", "feature/x", "main/x", "a" * 200, "a" * 201, "..", "x.lock", "-x"]
BRANCHES += ["a b", "\u00e9", "a%2Fb", "HEAD", "@{x", "a//b", "a/", "%2e%2e"]
# the two commits most often; trees, vnodes and chunks (stored, but no commits); an id
# nobody holds
COMMITS: list[Any] = [SEED.c1.hex(), SEED.c2.hex()] * 4 + [i.hex() for i in KNOWN_IDS]
ODD_COMMITS: list[Any] = [None, "", SEED.c1.hex().upper(), SEED.c1.hex()[:-1], "zz" * ID_LEN]
ODD_COMMITS += [SEED.c1.hex() + "00", 0, [SEED.c1.hex()], {"id": SEED.c1.hex()}]


@st.composite
def json_bodies(draw: st.DrawFn, value: dict[str, Any]) -> bytes:
    """``value`` as JSON, most often as is, else with fields of other types, dropped or
    added; or not JSON at all."""
    kind = pick(draw, ["json"] * 12 + ["raw", "deep", "not an object", "utf-16"])
    if kind == "raw":
        return draw(st.binary(max_size=40))
    if kind == "deep":
        return b"[" * draw(st.integers(1, 5000)) + b"]" * draw(st.integers(0, 1))
    if kind == "not an object":
        return pick(draw, [b"[]", b"null", b"1e999", b'"x"', b"1" * 5000, b"{}"])
    mutated = (
        draw(near_valid(st.just([value]), most=2)) if draw(st.integers(0, 2)) == 0 else [value]
    )
    if isinstance(mutated, list) and len(mutated) == 1:
        mutated = mutated[0]
    try:
        text = json.dumps(mutated)
    except (TypeError, ValueError):  # bytes: not JSON
        text = repr(mutated)
    return text.encode("utf-16" if kind == "utf-16" else "utf-8")


@st.composite
def ref_requests(draw: st.DrawFn, live: Fuzzed) -> Sent:
    kind = pick(draw, ["update"] * 6 + ["delete"] * 4 + ["create", "create", "drop repo"])
    token = pick(draw, [live.writer] * 10 + [live.reader, live.admin])
    if kind == "create":
        names = ["scratch", NS, "n" * 100, "n" * 101, "..", ".x", "-x", "a b", "\u00e9", ""]
        value = {"namespace": pick(draw, names), "name": pick(draw, names + ["s", "t", "u"])}
        return Sent(b"POST", b"/api/repos", live.auth(token), draw(json_bodies(value)))
    if kind == "drop repo":
        target = pick(draw, ["/api/repos/scratch/s", "/api/repos/scratch/t", BASE])
        return Sent(b"DELETE", target.encode(), live.auth(pick(draw, [live.admin, token])), b"")
    branch = pick(draw, BRANCHES[:1] * 12 + BRANCHES[1:3] * 3 + BRANCHES)
    commits = COMMITS if draw(st.integers(0, 3)) else COMMITS + ODD_COMMITS
    old = pick(draw, [SEED.c1.hex()] * len(commits) + [None, *commits])  # main is at C1
    new = pick(draw, commits)
    value = {"old": old, "new": new} if kind == "update" else {"old": old or pick(draw, COMMITS)}
    target = f"{BASE}/refs/heads/{quote(branch, safe='/%@{')}".encode()
    method = b"PUT" if kind == "update" else b"DELETE"
    return Sent(method, target, live.auth(token), draw(json_bodies(value)))


def put_back_main(live: Fuzzed) -> None:
    """Keep main where the examples expect it most of the time (at C1 or C2)."""
    refs = live.send("GET", f"{BASE}/refs", live.auth(live.writer)).json()["branches"]
    if refs.get("main") not in (SEED.c1.hex(), SEED.c2.hex()):
        body = json.dumps({"old": None, "new": SEED.c1.hex()}).encode()
        assert (
            live.send("PUT", f"{BASE}/refs/heads/main", live.auth(live.writer), body).status == 200
        )


@fuzz_settings(250)
@given(st.data())
def test_repositories_and_branches(live: Fuzzed, data: st.DataObject) -> None:
    sent = with_length(data.draw(ref_requests(live)))
    send_and_check(live, sent, "routes: repositories and branches")
    put_back_main(live)


# -- id lists: which objects are missing, fetch ------------------------------------------------------

ID_BODIES = st.one_of(
    st.lists(st.sampled_from(KNOWN_IDS), max_size=6).map(b"".join).map(msgpack.packb),
    encodings(st.lists(st.sampled_from(KNOWN_IDS), max_size=6).map(b"".join)),
    encodings(st.lists(st.sampled_from(KNOWN_IDS), max_size=3)),
    RAW,
)


@fuzz_settings(200)
@given(st.sampled_from(["missing", "fetch"]), ID_BODIES)
@example("fetch", msgpack.packb(SEED.c1 * 3))  # one id asked three times: sent once
def test_id_lists(live: Fuzzed, route: str, body: bytes) -> None:
    sent = with_length(
        Sent(b"POST", f"{BASE}/objects/{route}".encode(), live.auth(live.reader), body)
    )
    answer = send_and_check(live, sent, "routes: id lists")
    if answer.status != 200:
        return
    asked = msgpack.unpackb(body)
    wanted = [asked[i : i + ID_LEN] for i in range(0, len(asked), ID_LEN)]
    if route == "missing":
        lacking = msgpack.unpackb(answer.body)
        ids = set(lacking[i : i + ID_LEN] for i in range(0, len(lacking), ID_LEN))
        # the seed's objects are stored and vouched for; what is not stored is lacking
        assert ids <= set(wanted) and not ids & set(SEED.objects)
        assert set(wanted) - ids <= stored_ids(live.snapshot())
    else:
        check_fetched(answer.body, wanted)


def stored_ids(snapshot: dict[str, bytes]) -> set[bytes]:
    """Every object in the packs of the store."""
    out = set()
    for key, data in snapshot.items():
        if key.endswith(".pack"):
            data_size, trailer_len = trailer_span(len(data), data[-FOOTER_LEN:])
            trailer = data[data_size : data_size + trailer_len]
            out |= {e.id for e in decode_trailer(trailer, data_size)}
    return out


def check_fetched(data: bytes, wanted: list[bytes]) -> None:
    assert sorted(e.id for e in verified(data).entries) == sorted(set(wanted))


# -- packs ---------------------------------------------------------------------------------------

SEED_BLOB = st.sampled_from(SEED_BLOBS)
PACKS = st.one_of(
    pack_files(st.one_of(blobs(), SEED_BLOB)),
    pack_files(),
    st.binary(max_size=100),
    st.just(SEED.pack),
)


@fuzz_settings(200)
@given(PACKS)
@example(pack_file([(hash_bytes(b := msgpack.packb([3, [{}]])), int(Kind.NODE), b)]))  # was a 500
def test_packs(live: Fuzzed, body: bytes) -> None:
    sent = with_length(Sent(b"POST", f"{BASE}/packs".encode(), live.auth(live.writer), body))
    send_and_check(live, sent, "routes: packs")


# -- file reads: revisions, paths and ranges ---------------------------------------------------

FILES = {"f0.txt": b"first file", "f1.txt": b"second file"}  # in C1 and C2, one each
RANGES = ["bytes=0-3", "bytes=10-", "bytes=3-", "bytes=-0", "bytes=-4", "bytes=9-9"]
RANGES += ["bytes=11-12", "bytes=4-2", "bytes=0-1,3-4", "bytes=", "bytes=-", "items=0-1"]
RANGES += ["bytes=1-99", "bytes=0-" + "9" * 50, "bytes=\u0661-2", "bytes=+1-2"]
RANGES += [" bytes = 2 - 3 ", ""]


@st.composite
def file_requests(draw: st.DrawFn, live: Fuzzed) -> Sent:
    route = pick(draw, ["files"] * 4 + ["chunks"])
    odd_paths = ["f2.txt", "f0.txt/x", "..", "%2e%2e/f0.txt", ".oxen", "a//b"]
    path = pick(draw, ["f0.txt"] * 8 + ["f1.txt"] * 2 + odd_paths)
    rev = pick(draw, [None, "main", SEED.c1.hex(), SEED.c1.hex().upper()] * 2 + [SEED.c2.hex()])
    if path == "f1.txt":  # in C2 only
        rev = SEED.c2.hex()
    rev = rev if draw(st.integers(0, 4)) else pick(draw, [*BRANCHES, *ODD_COMMITS[:5], "%00"])
    target = f"{BASE}/{route}/{path}" + ("" if rev is None else f"?rev={quote(str(rev))}")
    headers = live.auth(pick(draw, [live.reader, live.writer]))
    if draw(st.integers(0, 3)):
        headers.append(header("Range", pick(draw, RANGES)))
    if draw(st.integers(0, 3)) == 0:
        etag = f'"{hash_bytes(FILES["f0.txt"]).hex()}"'
        headers.append(header("If-Range", pick(draw, [etag, '"x"', "garbage"])))
    return Sent(pick(draw, [b"GET"] * 3 + [b"HEAD"]), target.encode(), headers, b"")


@fuzz_settings(200)
@given(st.data())
def test_file_reads(live: Fuzzed, data: st.DataObject) -> None:
    sent = data.draw(file_requests(live))
    answer = send_and_check(live, sent, "routes: file reads")
    path = urlsplit(sent.target.decode()).path
    content = FILES.get(path.rsplit("/", 1)[-1], b"")
    if answer.status == 416:
        assert answer.headers["content-range"] == f"bytes */{len(content)}"
    if answer.status not in (200, 206) or "/chunks/" in path:
        return
    assert answer.headers["etag"] == f'"{hash_bytes(content).hex()}"'
    if answer.status == 200:
        assert answer.headers["content-length"] == str(len(content))
        assert sent.method == b"HEAD" or answer.body == content
        return
    first, last = answer.headers["content-range"].split()[1].split("/")[0].split("-")
    assert sent.method == b"HEAD" or answer.body == content[int(first) : int(last) + 1]


# -- tables: schemas, pages of rows, row diffs ----------------------------------------------

NUMBERS = ["0", "1", "2", "3", "1000", "1001", "-1", "", "1e3", "0x10", " 1", "9" * 30, "\u0663"]
NAMES = [
    "id",
    "label",
    "id,label",
    "label,id",
    "nope",
    "id,id",
    ",",
    "",
    "id,",
    "\u00e9",
    "a" * 300,
]
FILTERS = ["id > 1", "label = 'c'", "label LIKE '%'", "id IN (1, 3)", "lower(label) <> 'x'"]
FILTERS += ["", " ", "id >", "'", "(((", "1=1; DROP TABLE df", "1=1 UNION SELECT 1"]
FILTERS += ["id IN (SELECT 1)", "repeat(label, 1000000000) = ''", "current_setting('x') = ''"]
FILTERS += ["label + 1 = 2", "nope = 1", "id = ?", "\x00", "count(*) > 1", "(" * 2000 + "1"]
REVS = [None, "main", SEED.c1.hex(), SEED.c2.hex(), SEED.c1.hex().upper(), "nope", "a..b", "%00"]


@st.composite
def table_requests(draw: st.DrawFn, live: Fuzzed) -> Sent:
    route = pick(draw, ["schema", "rows", "rows", "rows", "diff", "diff"])
    path = pick(draw, ["t.csv"] * 8 + ["f0.txt", "nope.csv", "..", "%2e%2e/t.csv", "t.csv/x"])
    params: dict[str, str | None] = {"rev": pick(draw, REVS)}
    if route == "rows":
        params["offset"] = pick(draw, [None, None, *NUMBERS])
        params["limit"] = pick(draw, [None, None, *NUMBERS])
        params["columns"] = pick(draw, [None, None, *NAMES])
        params["filter"] = pick(draw, [None, None, *FILTERS, draw(st.text(max_size=20))])
    elif route == "diff":
        params = {"base": pick(draw, REVS), "head": pick(draw, REVS)}
        params["keys"] = pick(draw, [None, "id", "id", *NAMES])
        params["compare"] = pick(draw, [None, None, *NAMES])
        params["limit"] = pick(draw, [None, None, *NUMBERS])
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items() if v is not None)
    target = f"{BASE}/{route}/{path}" + (f"?{query}" if query else "")
    headers = live.auth(pick(draw, [live.reader, live.writer]))
    return Sent(pick(draw, [b"GET"] * 4 + [b"HEAD"]), target.encode(), headers, b"")


@fuzz_settings(150)
@given(st.data())
def test_table_reads(live: Fuzzed, data: st.DataObject) -> None:
    sent = data.draw(table_requests(live))
    answer = send_and_check(live, sent, "routes: tables")
    if answer.status != 200 or sent.method == b"HEAD":
        return
    body = answer.json()
    if "/rows/" in sent.target.decode():
        assert len(body["rows"]) <= body["limit"]
        stop = body["offset"] + len(body["rows"])
        assert body["next_offset"] in (None, stop)
    elif "/diff/" in sent.target.decode():
        assert {"added", "removed", "modified"} <= body.keys()
    else:
        assert body["format"] == "csv" and body["rows"] in (2, 3)


# -- workspaces: staged entries, removals, row edits, commits ------------------------------------

# (a repository of their own, in a namespace no admin token of these tests may delete in)
WS_REPO = "/api/repos/wsfuzz/r"
SCRATCH = f"{WS_REPO}/workspaces"
_T1 = hash_bytes(CSVS[0])
GOOD_ENTRY = {"path": "t.csv", "id": _T1.hex(), "size": len(CSVS[0]), "rows": 2}
ENTRY_FIELDS = {
    "path": ["t.csv", "a/b.csv", "", "..", "a//b", ".oxen/x", "/abs", "x" * 5000, 1, None],
    "id": [_T1.hex(), "00" * 32, "zz" * 32, _T1.hex()[:10], 5, None],
    "size": [len(CSVS[0]), 0, -1, 10**20, "9", True, None],
    "chunks": [None, None, "00" * 32, _T1.hex(), 7],
    "mode": [0o644, 0o644, 0o755, 0o100644, -1, "x"],
    "schema": [None, None, "00" * 32, _T1.hex()],
    "rows": [None, 2, -5, 1.5, "two"],
}
ROW_VALUES = [1, 2, 3, 99, "a", "x" * 50, None, 1.5, True, [], {}, -(2**70)]


@st.composite
def json_rows(draw: st.DrawFn, keys_only: bool = False) -> list[Any]:
    columns = ["id"] if keys_only else ["id", "label", "nope"]
    rows = []
    for _ in range(draw(st.integers(0, 3))):
        row = {c: pick(draw, ROW_VALUES) for c in columns if draw(st.booleans()) or c == "id"}
        rows.append(row if draw(st.integers(0, 9)) else pick(draw, [1, "x", None, []]))
    return rows


@st.composite
def workspace_requests(draw: st.DrawFn, live: Fuzzed, ws: str) -> Sent:
    kind = pick(
        draw,
        ["create", "files", "files", "files", "remove", "unstage", "status", "ls", "rows",
         "edit", "edit", "commit", "delete", "list"],
    )  # fmt: skip
    target = pick(draw, [ws] * 6 + ["nope", "%2e%2e", "a" * 300, ""])
    method, path, body = "GET", f"{SCRATCH}/{target}", None
    if kind == "create":
        method, path = "POST", SCRATCH
        body = {"branch": pick(draw, ["main", "main", "other", "", "../x", 5]),
                "name": pick(draw, [None, None, "w1", "w1", "", "../n", "x" * 200, 3])}  # fmt: skip
    elif kind == "files":
        method, path = "POST", f"{path}/files"
        files = []
        for _ in range(draw(st.integers(0, 3))):
            entry = dict(GOOD_ENTRY)
            for field in draw(st.lists(st.sampled_from(list(ENTRY_FIELDS)), max_size=2)):
                entry[field] = pick(draw, ENTRY_FIELDS[field])
            files.append(entry if draw(st.integers(0, 9)) else pick(draw, [1, "x", None]))
        body = {"files": files} if draw(st.integers(0, 9)) else pick(draw, [[], "x", {"files": 3}])
    elif kind in ("remove", "unstage"):
        method, path = "POST", f"{path}/{kind}"
        body = {
            "paths": draw(
                st.lists(st.sampled_from(["t.csv", "a", "nope", "..", "", 3]), max_size=3)
            )
        }
    elif kind == "ls":
        path += pick(draw, ["/ls", "/ls/a", "/ls/t.csv", "/ls/..", "/ls/nope"])
    elif kind == "rows":
        query = pick(
            draw, ["", "?limit=2", "?offset=-1", "?limit=0", "?filter=id%3E1", "?columns=nope"]
        )
        path += "/rows/" + pick(draw, ["t.csv", "t.csv", "nope.csv", "a/b.csv", ".."]) + query
    elif kind == "edit":
        method = "POST"
        path += "/rows/" + pick(draw, ["t.csv", "t.csv", "t.csv", "nope.csv", "a/b.csv"])
        body = {
            "keys": pick(draw, [["id"], ["id"], [], ["nope"], "id", [1], ["id", "label"]]),
            "append": draw(json_rows()),
            "update": draw(json_rows()),
            "delete": draw(json_rows(keys_only=True)),
        }
    elif kind == "commit":
        method, path = "POST", f"{path}/commit"
        body = {"message": pick(draw, ["m", "m", "", " ", None, 5, "x" * 10000])}
    elif kind == "delete":
        method = "DELETE"
    elif kind == "list":
        path = SCRATCH
    raw = b"" if body is None else json.dumps(body).encode()
    if body is not None and not draw(st.integers(0, 14)):
        raw = pick(draw, [b"{", b"[]", b"null", b"\xff", b'{"a":' * 50])
    token = pick(draw, [live.writer] * 4 + [live.reader, live.admin])
    headers = live.auth(token) + ([header("Content-Length", str(len(raw)))] if raw else [])
    return Sent(method.encode(), path.encode(), headers, raw)


@fuzz_settings(150)
@given(st.data())
def test_workspaces(live: Fuzzed, data: st.DataObject) -> None:
    if not getattr(live, "ws_seeded", False):  # a repository of their own, the seed in it
        good = live.auth(live.writer)
        repo = json.dumps({"namespace": "wsfuzz", "name": "r"}).encode()
        assert live.send("POST", "/api/repos", good, repo).status == 201
        assert live.send("POST", f"{WS_REPO}/packs", good, SEED.pack).status == 201
        main = json.dumps({"old": None, "new": SEED.c1.hex()}).encode()
        assert live.send("PUT", f"{WS_REPO}/refs/heads/main", good, main).status == 200
        made = live.send("POST", SCRATCH, good, json.dumps({"branch": "main"}).encode())
        assert made.status == 201, made
        live.scratch_ws = made.json()["id"]  # type: ignore[attr-defined]
        live.ws_seeded = True  # type: ignore[attr-defined]
    sent = data.draw(workspace_requests(live, live.scratch_ws))  # type: ignore[attr-defined]
    answer = send_and_check(live, sent, "routes: workspaces")
    if answer.status == 200 and sent.target.endswith(b"/files"):
        assert answer.json()["changes"] >= 1


# -- folders: pages of the tree --------------------------------------------------------------


@st.composite
def tree_requests(draw: st.DrawFn, live: Fuzzed) -> Sent:
    path = pick(draw, ["", "", "", "f0.txt", "t.csv", "nope", "..", "%2e%2e", ".oxen", "a//b"])
    path = path if draw(st.integers(0, 5)) else pick(draw, SEGMENTS)
    params = {
        "rev": pick(draw, REVS),
        "offset": pick(draw, [None] * 6 + NUMBERS),
        "limit": pick(draw, [None] * 6 + NUMBERS),
    }
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items() if v is not None)
    target = f"{BASE}/tree" + (f"/{path}" if path else "") + (f"?{query}" if query else "")
    headers = live.auth(pick(draw, [live.reader, live.writer]))
    return Sent(pick(draw, [b"GET"] * 4 + [b"HEAD"]), target.encode(), headers, b"")


@fuzz_settings(150)
@given(st.data())
def test_tree_reads(live: Fuzzed, data: st.DataObject) -> None:
    sent = data.draw(tree_requests(live))
    answer = send_and_check(live, sent, "routes: trees")
    if answer.status != 200 or sent.method == b"HEAD":
        return
    body = answer.json()
    assert body["path"] == "" and answer.headers["oxen-commit"] == body["commit"]
    names = [e["name"] for e in body["entries"]]
    offset = body["offset"]
    tops = [["f0.txt", "t.csv"], ["f1.txt", "t.csv"]]  # of C1 and C2, by name
    assert body["total"] == 2 and (names or offset >= 2)
    assert any(names == top[offset : offset + len(names)] for top in tops)
    stop = offset + len(names)
    assert body["next_offset"] in (None, stop) and (body["next_offset"] is None) == (stop >= 2)


# -- web pages: paths, revisions, pages, filters, row diffs, forms --------------------------------

WEB_PATHS = ["t.csv"] * 4 + ["f0.txt", "nope.csv", "..", "%2e%2e/t.csv", "t.csv/x", ".oxen"]
WEB_PATHS += ["%3Cscript%3E", "a%00b", "%ff", "x" * 300]


@st.composite
def web_requests(draw: st.DrawFn, live: Fuzzed) -> Sent:
    token = live.tokens.get(pick(draw, ["writer", "reader", "reader", "admin", "expired"]), "")
    cookie = [header("Cookie", f"oxen_token={token}; oxen_csrf={'ab' * 16}")]
    if draw(st.integers(0, 5)) == 0:  # the forms: sign in, sign out
        path = pick(draw, ["/-/signin", "/-/signout"])
        fields = {"csrf": pick(draw, ["", "0" * 64, "x"]), "token": pick(draw, ["", token, "x"])}
        fields["next"] = pick(draw, ["/", "//evil", "/team", "https://x", "\r\nX: y"])
        body = pick(
            draw,
            [
                urlencode(fields).encode(),
                b'--x\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n0\r\n--x--\r\n',
                draw(st.binary(max_size=60)),
                b"csrf=" + b"%" * 50,
                b"a=" + b"b" * 20_000,
            ],
        )
        kind = pick(
            draw,
            ["application/x-www-form-urlencoded"] * 3
            + ["multipart/form-data; boundary=x", "multipart/form-data", "text/plain", ""],
        )
        headers = cookie + [header("Content-Type", kind)] if kind else cookie
        origin = pick(draw, [None, None, "http://127.0.0.1", "http://evil.example", "null"])
        if origin is not None:
            headers.append(header("Origin", origin))
        return with_length(Sent(b"POST", path.encode(), headers, body))
    route = pick(
        draw, ["tree", "file", "raw", "commits", "commit", "compare", "rowdiff", "rowcounts"]
    )
    path = pick(draw, WEB_PATHS)
    params: dict[str, str | None] = {
        "rev": pick(draw, REVS),
        "offset": pick(draw, [None] * 4 + NUMBERS),
        "limit": pick(draw, [None] * 6 + NUMBERS),
    }
    if route == "file":
        params["filter"] = pick(draw, [None, None, *FILTERS])
    if route == "raw":
        params["download"] = pick(draw, [None, "1", ""])
    if route in ("compare", "rowdiff", "rowcounts"):
        params |= {"base": pick(draw, REVS), "head": pick(draw, REVS)}
        params["keys"] = pick(draw, [None, "id", *NAMES])
    target = f"/{NS}/{NAME}/{route}"
    if route in ("tree", "file", "raw", "rowdiff", "rowcounts") and (
        route != "tree" or draw(st.booleans())
    ):
        target += f"/{path}"
    elif route == "commit":
        target += "/" + pick(draw, [SEED.c1.hex(), SEED.c2.hex(), "main", "nope", "%00"])
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items() if v is not None)
    target += f"?{query}" if query else ""
    headers = list(cookie)
    if draw(st.integers(0, 3)) == 0:
        headers.append(header("Range", pick(draw, RANGES)))
    return Sent(pick(draw, [b"GET"] * 5 + [b"HEAD"]), target.encode(), headers, b"")


@fuzz_settings(200)
@given(st.data())
def test_web_pages(live: Fuzzed, data: st.DataObject) -> None:
    sent = data.draw(web_requests(live))
    answer = send_and_check(live, sent, "routes: web pages")
    if answer.status == 303:  # to sign in, or after signing in: always to this site
        location = answer.headers["location"]
        assert location.startswith("/") and not location.startswith("//"), location
