"""Tokens are listed, revoked and expire; a revocation reaches every server on the store
within the recheck time, with no store read per request in between."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import aiohttp
import pytest

from oxen.server.app import create_app
from oxen.server.auth import (
    ID_LENGTH,
    TOKEN_RECHECK_SECONDS,
    TokenGrant,
    TokenStore,
    parse_duration,
    token_digest,
)
from oxen.server.main import main as server_main
from oxen.server.state import Settings
from oxen.storage.local import LocalStore
from tests.sync.conftest import Server, auth, serving
from tests.sync.test_server_input import expect_error


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(LocalStore):
    """Counts the reads of grants."""

    reads = 0

    async def get(self, key: str) -> bytes | None:
        if key.startswith("server/tokens/"):
            self.reads += 1
        return await super().get(key)


def grant(**fields: object) -> TokenGrant:
    return TokenGrant(email="ada@example.com", name="Ada", **fields)  # type: ignore[arg-type]


async def test_a_revocation_reaches_another_token_store_after_the_recheck(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "bucket")
    clock = Clock()
    here = TokenStore(store, recheck=5, clock=clock)
    there = TokenStore(store, recheck=5, clock=clock)  # another server on the same store
    token = await here.issue(grant())
    assert await there.lookup(token) is not None
    reads = store.reads
    for _ in range(100):  # fresh: no store read per request
        assert await there.lookup(token) is not None
    assert store.reads == reads

    await here.revoke(token_digest(token))
    assert await here.lookup(token) is None  # at once where it was revoked
    clock.now += 4.9
    assert await there.lookup(token) is not None  # the other trusts its entry a while...
    clock.now += 0.1
    assert await there.lookup(token) is None  # ...and no longer than the recheck time
    clock.now += 100
    assert await there.lookup(token) is None


async def test_a_revoked_token_is_refused_by_a_second_server_on_the_store(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "bucket")
    clocks = [Clock(), Clock()]
    apps = [
        create_app(Settings(str(tmp_path / "bucket"), tmp_path / f"data-{i}"), store, clocks[i])
        for i in range(2)
    ]
    token = await TokenStore(store).issue(grant())
    headers = auth(token)
    async with (
        serving(apps[0]) as one,
        serving(apps[1]) as two,
        aiohttp.ClientSession(headers=headers) as s,
    ):
        for base in (one, two):
            assert (await s.get(base + "/api/repos/ns")).status == 200
        digest = token_digest(token)
        listed = [d for d, _ in await TokenStore(store).grants()]
        assert listed == [digest]
        await TokenStore(store).revoke(digest)  # as `oxen-server revoke-token` does
        for clock in clocks:
            clock.now += TOKEN_RECHECK_SECONDS - 0.5
        for base in (one, two):  # each trusts what it read a while...
            assert (await s.get(base + "/api/repos/ns")).status == 200
        for clock in clocks:
            clock.now += 0.5  # ...and no longer than the recheck time
        for base in (one, two):
            err = await expect_error(await s.get(base + "/api/repos/ns"), 401)
            assert "invalid token" in err["error"]


async def test_an_expired_token_is_a_401_that_says_so(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "bucket")
    now = int(time.time())
    tokens = TokenStore(store)
    expired = await tokens.issue(grant(created=now - 7200, expires=now - 3600))
    valid = await tokens.issue(grant(created=now, expires=now + 3600))
    app = create_app(Settings(str(tmp_path / "bucket"), tmp_path / "data"), store)
    async with serving(app) as base, aiohttp.ClientSession() as s:
        r = await s.get(base + "/api/repos/ns", headers=auth(expired))
        err = await expect_error(r, 401)
        assert err["error"].startswith("this token expired on ")
        assert time.strftime("%Y-%m-%d", time.gmtime(now - 3600)) in err["error"]
        r = await s.get(base + "/api/repos/ns", headers=auth(valid))
        assert r.status == 200


def test_durations() -> None:
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration("45m") == 45 * 60
    assert parse_duration("90s") == 90
    assert parse_duration("2w") == 14 * 86400
    for bad in ("", "12", "d", "0d", "1y", "-1d", "1.5h"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def oxen_server(tmp_path: Path, *args: str) -> int:
    (tmp_path / "srv" / "store").mkdir(parents=True, exist_ok=True)  # as `start` makes it
    with pytest.raises(SystemExit) as done:
        server_main([*args, "--data-dir", str(tmp_path / "srv")])
    return int(done.value.code or 0)


def add_user(tmp_path: Path, email: str, *extra: str) -> str:
    out = tmp_path / f"{email}.toml"
    args = ["add-user", "--email", email, "--name", email.split("@")[0], "--output", str(out)]
    assert oxen_server(tmp_path, *args, *extra) == 0
    return out.read_text().split('token = "')[1].split('"')[0]


def test_list_and_revoke_tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ada = add_user(tmp_path, "ada@example.com", "--expires", "30d", "--namespace", "team")
    bob = [add_user(tmp_path, "bob@example.com", "--role", "reader") for _ in range(2)]
    out = capsys.readouterr().out
    assert "expires " in out
    assert oxen_server(tmp_path, "list-tokens") == 0
    listing = capsys.readouterr().out
    for token in (ada, *bob):
        assert token not in listing  # never the token
        assert token_digest(token)[:ID_LENGTH] in listing
    lines = listing.splitlines()
    assert lines[0].split() == ["ID", "NAME", "EMAIL", "ROLE", "NAMESPACES", "CREATED", "EXPIRES"]
    ada_line = next(line for line in lines if "ada@example.com" in line)
    assert " writer " in ada_line and " team " in ada_line
    assert len(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", ada_line)) == 2  # created, expires
    bob_lines = [line for line in lines if "bob@example.com" in line]
    assert len(bob_lines) == 2 and all(" reader " in x and x.endswith(" -") for x in bob_lines)

    ids = [token_digest(t)[:ID_LENGTH] for t in (ada, *bob)]
    assert oxen_server(tmp_path, "revoke-token", "zz") == 1
    assert "not a token id" in capsys.readouterr().err
    assert oxen_server(tmp_path, "revoke-token", ids[0][:8]) == 0
    assert f"revoked {ids[0]} (ada" in capsys.readouterr().out
    assert oxen_server(tmp_path, "revoke-token", ids[0]) == 1  # gone
    capsys.readouterr()
    # by email: every token of that user; a pasted token works as its own id
    assert oxen_server(tmp_path, "revoke-token", bob[0], "--email", "bob@example.com") == 0
    assert capsys.readouterr().out.count("revoked ") == 1
    assert oxen_server(tmp_path, "revoke-token", "--email", "bob@example.com") == 0
    assert capsys.readouterr().out.count("revoked ") == 1
    assert oxen_server(tmp_path, "list-tokens") == 0
    assert capsys.readouterr().out.splitlines()[1:] == []

    assert oxen_server(tmp_path, "revoke-token") == 1
    assert "name the token" in capsys.readouterr().err
    args = ["add-user", "--email", "e@x", "--name", "E", "--output", str(tmp_path / "e.toml")]
    assert oxen_server(tmp_path, *args, "--expires", "soon") == 1
    assert "--expires: not a duration" in capsys.readouterr().err


def test_an_id_prefix_must_name_one_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LocalStore(tmp_path / "srv" / "store")
    for digest in ("abcd" + "1" * 60, "abcd" + "2" * 60):
        asyncio.run(store.put(f"server/tokens/{digest}.json", grant().model_dump_json().encode()))
    assert oxen_server(tmp_path, "revoke-token", "abcd") == 1
    err = capsys.readouterr().err
    assert "is the start of 2 token ids" in err and "abcd11111111" in err
    assert oxen_server(tmp_path, "revoke-token", "abcd2") == 0
    assert [d[:5] for d, _ in asyncio.run(TokenStore(store).grants())] == ["abcd1"]


def test_a_running_server_refuses_a_token_revoked_from_the_command_line(
    make_server, tmp_path: Path
) -> None:
    """Another process on the store revokes; the server (rechecking every request here)
    refuses the token from then on."""
    server: Server = make_server(env={"OXEN_SERVER_TOKEN_RECHECK": "0"})
    import urllib.error
    import urllib.request

    def status() -> int:
        request = urllib.request.Request(
            f"http://{server.host}/api/repos/ns",
            headers=auth(server.token),
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    assert status() == 200
    with pytest.raises(SystemExit) as done:
        server_main(["revoke-token", server.token, "--data-dir", str(server.data_dir)])
    assert done.value.code == 0
    assert status() == 401
