"""Roles over HTTP: what a reader, a writer and an admin token may do on each route."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import aiohttp
import msgpack
import pytest

from oxen.formats.ids import hash_bytes
from oxen.formats.packs import Kind
from oxen.server.auth import Role, TokenGrant, required_role, token_key
from oxen.server.main import main as server_main
from oxen.server.routes import routes
from oxen.storage.local import LocalStore
from tests.sync.conftest import Server, auth
from tests.sync.test_server_input import expect_error, pack_bytes


def client(token: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(headers=auth(token))


async def legacy_token(server: Server, **fields: object) -> str:
    """A grant as servers stored them before roles: no ``role``, maybe ``read_only``."""
    token = "oxn_" + secrets.token_urlsafe(32)
    grant = {"email": "old@example.com", "name": "Old", "namespaces": ["*"], **fields}
    store = LocalStore(server.data_dir / "store")
    await store.put(token_key(token), json.dumps(grant).encode())
    return token


async def test_each_route_needs_its_role(server: Server, tmp_path: Path) -> None:
    host = f"http://{server.host}"
    base = host + "/api/repos/ns/r"
    tokens = {role: server.add_user("--role", role, "--namespace", "ns") for role in Role}
    blob = b"some data"
    pack = pack_bytes(tmp_path, [(hash_bytes(blob), Kind.CHUNK, blob)])
    ids = msgpack.packb(hash_bytes(blob))
    # (method, url, body, status for a role allowed to do it, least role allowed)
    cases = [
        ("POST", host + "/api/repos", {"namespace": "ns", "name": "r"}, 201, Role.WRITER),
        ("GET", host + "/api/repos/ns", None, 200, Role.READER),
        ("GET", base, None, 200, Role.READER),
        ("GET", base + "/refs", None, 200, Role.READER),
        ("POST", base + "/packs", pack, 201, Role.WRITER),
        ("POST", base + "/objects/missing", ids, 200, Role.READER),
        ("POST", base + "/objects/fetch", ids, 200, Role.READER),
        # past the role check: refused for what they ask, not for who asks
        ("PUT", base + "/refs/heads/main", {"old": None, "new": "ab" * 32}, 400, Role.WRITER),
        ("DELETE", base + "/refs/heads/main", {"old": "ab" * 32}, 404, Role.WRITER),
        ("GET", base + "/files/x.txt", None, 404, Role.READER),  # no branch main yet
        ("GET", base + "/chunks/x.txt", None, 404, Role.READER),
        ("DELETE", base, None, 200, Role.ADMIN),
    ]
    for method, url, body, status, least in cases:
        for role in sorted(Role, key=lambda r: r.includes(least)):  # refused ones first
            kwargs = {"json": body} if isinstance(body, dict) else {"data": body}
            async with client(tokens[role]) as s:
                r = await s.request(method, url, **kwargs)
                if role.includes(least):
                    assert r.status == status, (method, url, role, await r.text())
                    if status == 201:  # created once: the next role gets a 409, that is fine
                        break
                else:
                    err = await expect_error(r, 403)
                    assert f"it is a {role.value}, this needs {least.value}" in err["error"]


async def test_a_namespace_outside_the_grant_is_refused_whatever_the_role(
    server: Server,
) -> None:
    admin = server.add_user("--role", "admin", "--namespace", "mine")
    async with client(admin) as s:
        err = await expect_error(
            await s.post(f"http://{server.host}/api/repos", json={"namespace": "ns", "name": "x"}),
            403,
        )
        assert err["error"] == "this token may not write to namespace ns"
        err = await expect_error(await s.delete(f"http://{server.host}/api/repos/ns/x"), 403)
        assert err["error"] == "this token may not administer namespace ns"


async def test_grants_stored_before_roles_keep_working(server: Server) -> None:
    """read_only grants are readers; the others writers (deleting a repository now needs
    an admin token)."""
    writer = await legacy_token(server, read_only=False)
    reader = await legacy_token(server, read_only=True)
    plain = await legacy_token(server)
    host = f"http://{server.host}"
    for token in (writer, plain):
        async with client(token) as s:
            name = secrets.token_hex(4)
            r = await s.post(host + "/api/repos", json={"namespace": "ns", "name": name})
            assert r.status == 201, await r.text()
            await expect_error(await s.delete(f"{host}/api/repos/ns/{name}"), 403)
    async with client(reader) as s:
        assert (await s.get(host + "/api/repos/ns")).status == 200
        await expect_error(
            await s.post(host + "/api/repos", json={"namespace": "ns", "name": "z"}), 403
        )


def test_a_reader_grant_is_stored_read_only_for_older_servers() -> None:
    stored = json.loads(TokenGrant(email="a", name="a", role=Role.READER).model_dump_json())
    assert stored["read_only"] is True and stored["role"] == "reader"
    stored = json.loads(TokenGrant(email="a", name="a", role=Role.ADMIN).model_dump_json())
    assert stored["read_only"] is False


def test_every_namespaced_route_says_which_role_it_needs() -> None:
    for route in routes:
        if route.path.startswith("/api/repos"):  # type: ignore[attr-defined]
            assert hasattr(route.handler, "oxen_required_role"), route  # type: ignore[attr-defined]
            assert required_role(route.handler) in Role  # type: ignore[attr-defined]


def _add_user(tmp_path: Path, *extra: str) -> int:
    args = ["add-user", "--email", "a@b.c", "--name", "A", "--output", str(tmp_path / "u.toml")]
    (tmp_path / "srv" / "store").mkdir(parents=True, exist_ok=True)  # as `start` makes it
    with pytest.raises(SystemExit) as done:
        server_main([*args, "--data-dir", str(tmp_path / "srv"), *extra])
    return int(done.value.code or 0)


def test_add_user_says_when_a_token_may_use_every_namespace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _add_user(tmp_path) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if "every namespace" in line]
    assert len(notes) == 1 and "--namespace" in notes[0], out
    assert "(writer)" in out
    assert _add_user(tmp_path, "--namespace", "team", "--role", "admin") == 0
    out = capsys.readouterr().out
    assert "every namespace" not in out and "(admin)" in out
    assert _add_user(tmp_path, "--read-only", "--role", "admin") == 1
    assert "disagree" in capsys.readouterr().err
