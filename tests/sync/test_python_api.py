"""The remote verbs of the Python API (``oxen.AsyncRepo`` and ``oxen.Repo``) against a real
``oxen-server`` on loopback: create, push, clone, fetch, pull, delete a remote branch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import oxen
from oxen.errors import NonFastForward, OxenError
from oxen.repo import AsyncRepo
from oxen.sync import remotes
from oxen.sync.http import HttpRemote
from tests.conftest import write
from tests.sync.conftest import Server


@pytest.fixture
def token(server: Server, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OXEN_AUTH_TOKEN", server.token)
    return server.token


async def test_async_repo_push_clone_fetch_pull(server: Server, token: str, tmp_path: Path) -> None:
    url = server.url("team/data")
    await remotes.create_remote(url)
    a = await AsyncRepo.init(tmp_path / "a")
    try:
        write(a.root, "images/1.png", b"\x89PNG" * 1000)
        write(a.root, "train.csv", "id,label\n1,cat\n")
        await a.add([str(a.root)])
        first = await a.commit("first")
        with pytest.raises(OxenError, match="no remote named 'origin'"):
            await a.push()
        await a.set_remote("origin", url)
        assert a.remotes() == {"origin": url}
        pushed = await a.push()
        assert (pushed.old, pushed.new) == (None, first) and pushed.chunks >= 2

        b, cloned = await AsyncRepo.clone(url, tmp_path / "b")
        try:
            assert isinstance(b, AsyncRepo) and cloned.branches == {"main": first}
            assert (b.root / "train.csv").read_text() == "id,label\n1,cat\n"
            assert (await b.status()).clean
            assert await b.refs.remote("origin", "main") == first

            write(a.root, "train.csv", "id,label\n1,cat\n2,dog\n")
            await a.add([str(a.root / "train.csv")])
            second = await a.commit("second")
            assert (await a.push()).new == second

            fetched = await b.fetch()
            assert fetched.branches == {"main": second}
            assert await b.refs.remote("origin", "main") == second
            assert (await b.head()).commit == first  # fetch moves no local branch
            _, merged = await b.pull()
            assert merged.kind == "fast-forward" and (await b.head()).commit == second
            assert (b.root / "train.csv").read_text().endswith("2,dog\n")

            # b moves on; a's next push, of another path, goes on top as a merge made of
            # trees alone (refused if asked not to merge); a's branch stays until it pulls
            write(b.root, "notes.txt", "from b")
            await b.add([str(b.root / "notes.txt")])
            await b.commit("from b")
            await b.push()
            write(a.root, "other.txt", "from a")
            await a.add([str(a.root / "other.txt")])
            mine = await a.commit("from a")
            with pytest.raises(NonFastForward):
                await a.push(merge=False)
            pushed = await a.push()
            assert pushed.merged is not None and pushed.merged.taken == ["notes.txt"]
            assert (await a.head()).commit == mine and not (a.root / "notes.txt").exists()
            _, merged = await a.pull()
            assert merged.kind == "fast-forward" and (a.root / "notes.txt").read_text() == "from b"
            top = (await a.log(limit=1))[0]
            assert top.message == "Merge origin/main into main (pushed without a pull)"
            assert (await a.push()).up_to_date

            await a.create_branch("tmp")
            await a.push(branch="tmp")
            assert await a.refs.remote("origin", "tmp") is not None
            await a.delete_remote_branch("origin", "tmp")
            assert await a.refs.remote("origin", "tmp") is None  # the tracking ref goes too
            assert "tmp" not in (await b.fetch()).branches
        finally:
            await b.close()
    finally:
        await a.close()


def test_sync_repo_push_and_clone(server: Server, token: str, tmp_path: Path) -> None:
    url = server.url("team/sync")
    asyncio.run(remotes.create_remote(url))
    repo = oxen.Repo.init(tmp_path / "src")
    write(tmp_path / "src", "a.txt", "hello")
    repo.add(tmp_path / "src" / "a.txt")
    cid = repo.commit("one")
    repo.set_remote("origin", url)
    assert repo.push().new.hex() == cid
    copy = oxen.Repo.clone(url, tmp_path / "copy")
    assert (tmp_path / "copy" / "a.txt").read_text() == "hello"
    assert [c.message for c in copy.log()] == ["one"]
    assert copy.pull().kind == "up-to-date"


async def test_a_branch_moved_between_the_refs_read_and_the_swap_is_merged_onto_again(
    server: Server, token: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remote's branch moves after a push read it and before its compare-and-swap: the
    swap is refused, and the push merges onto the new tip and swaps again; it never
    reports a commit the server refused as pushed."""
    url = server.url("ns/moving")
    await remotes.create_remote(url)
    a = await AsyncRepo.init(tmp_path / "a")
    write(a.root, "base.txt", "base")
    await a.add([str(a.root)])
    await a.commit("base")
    await a.set_remote("origin", url)
    await a.push()
    b, _ = await AsyncRepo.clone(url, tmp_path / "b")
    try:
        write(b.root, "from-b.txt", "b")
        await b.add([str(b.root / "from-b.txt")])
        theirs = await b.commit("from b")
        write(a.root, "from-a.txt", "a")
        await a.add([str(a.root / "from-a.txt")])
        mine = await a.commit("from a")

        swaps: list[tuple[bytes | None, bytes]] = []
        real = HttpRemote.update_ref

        async def update_ref(self: HttpRemote, branch: str, old: bytes | None, new: bytes) -> None:
            swaps.append((old, new))
            if len(swaps) == 1:
                await b.push()  # lands in the window: a's swap expects the old tip
            await real(self, branch, old, new)

        monkeypatch.setattr(HttpRemote, "update_ref", update_ref)
        pushed = await a.push()
        monkeypatch.setattr(HttpRemote, "update_ref", real)
        assert swaps[0][1] == mine and swaps[1][1] == theirs  # b's own swap, between
        assert len(swaps) == 3 and swaps[2] == (theirs, pushed.new)
        assert pushed.merged is not None and pushed.merged.theirs == theirs
        assert (await b.fetch()).branches["main"] == pushed.new
        assert await a.refs.remote("origin", "main") == pushed.new
        await b.pull()
        assert (b.root / "from-a.txt").read_text() == "a"
    finally:
        await a.close()
        await b.close()


async def test_checkout_of_a_branch_only_the_remote_has(
    server: Server, token: str, tmp_path: Path
) -> None:
    """`checkout relabel` after a fetch makes a local branch where origin/relabel is."""
    url = server.url("ns/dwim")
    await remotes.create_remote(url)
    a = await AsyncRepo.init(tmp_path / "a")
    write(a.root, "f.txt", "1")
    await a.add([str(a.root / "f.txt")])
    await a.commit("base")
    await a.set_remote("origin", url)
    await a.push()
    await a.create_branch("relabel")
    await a.checkout("relabel")
    write(a.root, "f.txt", "relabelled")
    await a.add([str(a.root / "f.txt")])
    tip = await a.commit("relabel")
    await a.push(branch="relabel")
    b, _ = await AsyncRepo.clone(url, tmp_path / "b")
    try:
        await b.fetch()
        assert await b.resolve("origin/relabel") == tip
        branch, cid = await b.checkout("relabel")
        assert (branch, cid) == ("relabel", tip)
        assert await b.refs.get("relabel") == tip
        assert (b.root / "f.txt").read_text() == "relabelled"
    finally:
        await a.close()
        await b.close()


async def test_a_clone_lacking_old_data_fetches_it_or_offline_refuses_first(
    server: Server, token: str, tmp_path: Path
) -> None:
    """A default clone holds the tip's data only: checking out or restoring an older
    version fetches exactly what it lacks; offline it refuses in one line naming
    `oxen fetch-data`, with the tree untouched."""
    url = server.url("ns/old-data")
    await remotes.create_remote(url)
    a = await AsyncRepo.init(tmp_path / "a")
    write(a.root, "keep.txt", "same in both")
    write(a.root, "data.bin", "version one")
    await a.add([str(a.root)])
    old = await a.commit("one")
    write(a.root, "data.bin", "version two")
    await a.add([str(a.root)])
    await a.commit("two")
    await a.set_remote("origin", url)
    await a.push()
    b, _ = await AsyncRepo.clone(url, tmp_path / "b")
    try:
        b.go_offline()
        before = {p.name: p.read_bytes() for p in b.root.iterdir() if p.is_file()}
        with pytest.raises(OxenError, match=r"nothing was changed.*fetch-data"):
            await b.checkout(old.hex())
        with pytest.raises(OxenError, match="fetch-data"):
            await b.restore([str(b.root / "data.bin")], source=old.hex())
        after = {p.name: p.read_bytes() for p in b.root.iterdir() if p.is_file()}
        assert after == before and (await b.head()).branch == "main"
        assert (await b.status()).clean
        b.go_online()
        await b.restore([str(b.root / "data.bin")], source=old.hex())
        assert (b.root / "data.bin").read_text() == "version one"
        await b.restore([str(b.root / "data.bin")])
        await b.fetch(all_data=True)
        await b.checkout(old.hex())
        assert (b.root / "data.bin").read_text() == "version one"
    finally:
        await a.close()
        await b.close()


def test_sync_repo_partial_clone_fetch_and_drop_data(
    server: Server, token: str, tmp_path: Path
) -> None:
    """oxen.Repo: clone with no data, fetch one folder's, drop it again."""
    url = server.url("ns/partial-api")
    a = oxen.Repo.init(tmp_path / "a")
    write(a.root, "images/1.png", b"\x89PNG" * 5000)
    write(a.root, "labels/1.csv", "id,label\n1,cat\n")
    a.add(a.root)
    a.commit("first")
    asyncio.run(remotes.create_remote(url))
    a.set_remote("origin", url)
    a.push()

    b = oxen.Repo.clone(url, tmp_path / "b", no_data=True)
    assert b.partial().paths == () and not (b.root / "images").exists()
    assert b.status().clean
    got = b.fetch_data(b.root / "images")
    assert got.files == 1 and (b.root / "images/1.png").read_bytes() == b"\x89PNG" * 5000
    assert b.partial().paths == ("images",)
    dropped = b.drop_data(b.root / "images")
    assert dropped.files == 1 and not (b.root / "images/1.png").exists()
    assert b.partial().paths == () and b.status().clean

    c = oxen.Repo.clone(url, tmp_path / "c", subtrees=["labels"], depth=1)
    assert (c.root / "labels/1.csv").exists() and not (c.root / "images").exists()
    assert c.partial().shallow == frozenset()  # one commit: nothing lies beyond it


def test_remote_repo_and_workspaces_without_a_clone(
    server: Server, token: str, tmp_path: Path
) -> None:
    remote = oxen.RemoteRepo(server.url("team/noclone"))
    remote.create()
    local = tmp_path / "local"
    write(local, "train.csv", "id,label\n1,cat\n")
    first = remote.upload([local / "train.csv"], "first", dst="data")
    assert remote.branches() == {"main": first}

    ws = remote.create_workspace("main", name="labels")
    ws.add_bytes("data/labels.txt", b"cat\ndog\n")
    ws.add(local / "train.csv", dst="copy")
    ws.rm("data/train.csv")
    status = ws.status()
    assert status["added"] == ["copy/train.csv", "data/labels.txt"]
    assert status["removed"] == ["data/train.csv"]
    assert [e["name"] for e in ws.ls("data")] == ["labels.txt"]
    assert [w["name"] for w in remote.workspaces()] == ["labels"]
    second = ws.commit("labels")
    assert remote.branches()["main"] == second and ws.status()["added"] == []
    assert remote.workspace("labels").id == ws.id
    ws.delete()
    assert remote.workspaces() == []

    got = remote.download("data/labels.txt", tmp_path / "labels.txt")
    assert got.out.read_bytes() == b"cat\ndog\n"
    third = remote.delete_file("copy", "no copy")
    assert remote.branches()["main"] == third

    async def with_async() -> None:
        async with oxen.AsyncRemoteRepo(server.url("team/noclone")) as repo:
            w = await repo.create_workspace()
            await w.add_bytes("data/labels.txt", b"cat\ndog\neel\n")
            await repo.upload([local / "train.csv"], "meanwhile", dst="other")  # moves main
            commit = await w.commit("eel")  # on top: the paths do not overlap
            assert (await repo.branches())["main"] == commit
            await w.delete()

    asyncio.run(with_async())
    b, _ = asyncio.run(AsyncRepo.clone(server.url("team/noclone"), tmp_path / "b"))
    asyncio.run(b.close())
    assert (tmp_path / "b" / "data" / "labels.txt").read_text() == "cat\ndog\neel\n"
    assert (tmp_path / "b" / "other" / "train.csv").exists()
    assert not (tmp_path / "b" / "copy").exists() and not (tmp_path / "b/data/train.csv").exists()
