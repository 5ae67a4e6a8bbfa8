"""The server-side repository (no HTTP): ref moves by compare-and-swap, completeness checks,
how many repositories stay open."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from oxen.errors import (
    AlreadyExists,
    InvalidInput,
    MissingObject,
    NonFastForward,
    NotFound,
    RefConflict,
)
from oxen.formats.ids import hash_bytes
from oxen.repo import AsyncRepo
from oxen.serving.registry import RepoRegistry
from oxen.serving.relisting import RelistLimit
from oxen.serving.served_repo import ServedRepo
from oxen.storage.local import LocalStore
from oxen.sync.push import push, send_objects
from oxen.trees.walk import reachable
from tests.conftest import write


async def hold(registry: RepoRegistry, namespace: str, name: str) -> ServedRepo:
    """The repository, held until the registry closes (a request lasting the whole test)."""
    return await registry.use(namespace, name).__aenter__()


class PausingStore(LocalStore):
    """A local store that, once armed with a key suffix, holds the next write of that key
    (a delete or a compare-and-swap) until released: one step of a ref update or delete
    can then be made to land between the steps of another."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.armed: str | None = None
        self.paused = asyncio.Event()
        self.release = asyncio.Event()

    async def _gate(self, key: str) -> None:
        if self.armed is not None and key.endswith(self.armed):
            self.armed = None
            self.paused.set()
            await self.release.wait()

    async def delete(self, key: str) -> None:
        await self._gate(key)
        await super().delete(key)

    async def compare_and_swap(self, key: str, expected: bytes | None, new: bytes) -> bool:
        await self._gate(key)
        return await super().compare_and_swap(key, expected, new)


class InProcessRemote:
    """The Remote protocol straight onto a ServedRepo: the sync algorithms without HTTP."""

    def __init__(self, served) -> None:
        self.served = served
        self.bytes_sent = 0
        self.bytes_received = 0

    async def refs(self):
        return await self.served.refs()

    async def missing(self, ids):
        return await self.served.missing(ids)

    async def upload_pack(self, path: Path) -> None:
        self.bytes_sent += path.stat().st_size
        copy = path.with_suffix(".upload")
        copy.write_bytes(path.read_bytes())
        await self.served.receive_pack(copy)

    async def update_ref(self, branch, old, new):
        await self.served.update_ref(branch, old, new)


@pytest.fixture
async def registry(tmp_path: Path):
    reg = RepoRegistry(LocalStore(tmp_path / "bucket"), tmp_path / "cache")
    yield reg
    await reg.close()


async def commit_files(repo: AsyncRepo, root: Path, files: dict[str, str], message: str) -> bytes:
    for path, text in files.items():
        write(root, path, text)
    await repo.add(["."])
    return await repo.commit(message)


async def test_registry_create_list_delete(registry: RepoRegistry) -> None:
    await registry.create("ns", "a")
    await registry.create("ns", "b")
    with pytest.raises(AlreadyExists):
        await registry.create("ns", "a")
    assert [r.name for r in await registry.list("ns")] == ["a", "b"]
    await registry.delete("ns", "a")
    with pytest.raises(NotFound):
        async with registry.use("ns", "a"):
            pass
    assert registry.open_count == 0
    with pytest.raises(InvalidInput):
        await registry.create("..", "x")


async def test_exactly_one_of_many_racing_ref_updates_wins(
    repo: AsyncRepo, workdir: Path, registry: RepoRegistry
) -> None:
    await registry.create("ns", "race")
    async with registry.use("ns", "race") as served:
        base = await commit_files(repo, workdir, {"a": "1"}, "base")
        await push(repo, InProcessRemote(served), "origin", "main")
        tips = []
        for i in range(8):  # eight different children of base, all ready on the server
            await repo.checkout(base.hex())
            tips.append(await commit_files(repo, workdir, {"a": f"child {i}"}, f"child {i}"))
            await send_objects(repo, InProcessRemote(served), tips[-1])  # branch not moved
        results = await asyncio.gather(
            *(served.update_ref("main", base, t) for t in tips), return_exceptions=True
        )
        winners = [r for r in results if r is None]
        assert len(winners) == 1
        assert all(isinstance(r, RefConflict) for r in results if r is not None)
        assert (await served.refs())["main"] in tips


async def test_not_fast_forward_is_refused(
    repo: AsyncRepo, workdir: Path, registry: RepoRegistry
) -> None:
    await registry.create("ns", "ff")
    base = await commit_files(repo, workdir, {"a": "1"}, "base")
    second = await commit_files(repo, workdir, {"a": "2"}, "second")
    async with registry.use("ns", "ff") as served:
        await push(repo, InProcessRemote(served), "origin", "main")
        with pytest.raises(NonFastForward):
            await served.update_ref("main", second, base)


async def test_a_fresh_cache_is_rebuilt_from_the_store(
    tmp_path: Path, repo: AsyncRepo, workdir: Path
) -> None:
    store = LocalStore(tmp_path / "bucket")
    first = RepoRegistry(store, tmp_path / "cache-1")
    await first.create("ns", "r")
    tip = await commit_files(repo, workdir, {"d/x": "x" * 50_000}, "one")
    async with first.use("ns", "r") as served:
        await push(repo, InProcessRemote(served), "origin", "main")
    await first.close()
    second = RepoRegistry(store, tmp_path / "cache-2")  # empty disk, same store
    async with second.use("ns", "r") as served:
        assert (await served.refs())["main"] == tip
        await served.verify_complete(tip)
    await second.close()


async def test_a_repository_deleted_and_created_again_starts_empty(
    tmp_path: Path, repo: AsyncRepo, workdir: Path
) -> None:
    """The old incarnation's cache (which objects it held, which commits were verified)
    must not serve the new one: the next push sends everything and a clone can read it,
    on this server at once and on another server on the store within its recheck time."""
    store = LocalStore(tmp_path / "bucket")
    this = RepoRegistry(store, tmp_path / "cache-1")
    other = RepoRegistry(store, tmp_path / "cache-2", recheck=0)  # rechecks on every open
    try:
        await this.create("ns", "r")
        tip = await commit_files(repo, workdir, {"d/x": "x" * 50_000, "y": "y"}, "one")
        async with this.use("ns", "r") as served:
            first = await push(repo, InProcessRemote(served), "origin", "main")
        assert first.chunks >= 2
        async with other.use("ns", "r") as served:
            assert (await served.refs())["main"] == tip

        await this.delete("ns", "r")
        await this.create("ns", "r")
        for registry in (this, other):
            async with registry.use("ns", "r") as served:
                assert await served.refs() == {}
                assert await served.missing([tip]) == {tip}
        async with this.use("ns", "r") as served:
            again = await push(repo, InProcessRemote(served), "origin", "main")
        assert (again.chunks, again.commits) == (first.chunks, first.commits)
        async with other.use("ns", "r") as served:
            await served.verify_complete(tip)
        assert not list((tmp_path / "cache-1" / "ns" / "r").iterdir())[1:]  # one incarnation
    finally:
        await this.close()
        await other.close()


async def _base_and_child(repo: AsyncRepo, workdir: Path, served) -> tuple[bytes, bytes]:
    """``main`` on the server at a base commit; a child of it stored there, not yet pushed."""
    base = await commit_files(repo, workdir, {"a": "1"}, "base")
    await push(repo, InProcessRemote(served), "origin", "main")
    child = await commit_files(repo, workdir, {"a": "2"}, "child")
    await send_objects(repo, InProcessRemote(served), child)
    return base, child


async def test_a_push_answered_ok_is_never_undone_by_a_racing_delete(
    tmp_path: Path, repo: AsyncRepo, workdir: Path
) -> None:
    """The delete has checked that ``main`` holds ``base`` and not yet written; a push moves
    ``main`` on and is answered; the delete must then fail, not remove the pushed commit."""
    store = PausingStore(tmp_path / "bucket")
    registry = RepoRegistry(store, tmp_path / "cache")
    try:
        await registry.create("ns", "r")
        served = await hold(registry, "ns", "r")
        base, child = await _base_and_child(repo, workdir, served)
        store.armed = "refs/heads/main"
        deleting = asyncio.create_task(served.delete_ref("main", base))
        await store.paused.wait()
        await served.update_ref("main", base, child)  # answered 200
        store.release.set()
        with pytest.raises(RefConflict):
            await deleting
        assert (await served.refs()) == {"main": child}
    finally:
        await registry.close()


async def test_open_repositories_stay_within_the_bound(tmp_path: Path) -> None:
    registry = RepoRegistry(LocalStore(tmp_path / "bucket"), tmp_path / "cache", max_open=4)
    names = [f"r{i}" for i in range(12)]  # three times the bound
    try:
        for name in names:
            await registry.create("ns", name)
        served = []
        for name in names:
            async with registry.use("ns", name) as one:
                assert await one.refs() == {}
                served.append(one)
            assert registry.open_count <= 4
        assert registry.open_count == 4
        assert [registry.is_open("ns", name) for name in names] == [False] * 8 + [True] * 4
        async with registry.use("ns", "r11") as again:  # the most recent: still open
            assert again is served[-1]
        async with registry.use("ns", "r0") as again:  # closed long ago: opened again
            assert again is not served[0] and await again.refs() == {}
        assert not registry.is_open("ns", "r8")  # the least recently used made room
    finally:
        await registry.close()
    assert registry.open_count == 0


async def test_a_repository_in_use_is_not_closed_under_its_request(tmp_path: Path) -> None:
    """A long request (a push streaming packs) holds its repository while many others are
    opened and released; it stays open and usable, and is closed once released if there
    are still too many open."""
    registry = RepoRegistry(LocalStore(tmp_path / "bucket"), tmp_path / "cache", max_open=2)
    closed: list[str] = []
    try:
        for i in range(7):
            await registry.create("ns", f"r{i}")
        holding = asyncio.Event()
        finish = asyncio.Event()

        async def long_request() -> None:
            async with registry.use("ns", "r0") as served:
                original_close = served.close

                async def close() -> None:
                    closed.append("r0")
                    await original_close()

                served.close = close  # type: ignore[method-assign]
                holding.set()
                await finish.wait()
                assert await served.refs() == {}  # its database still works
                assert "r0" not in closed

        task = asyncio.create_task(long_request())
        await holding.wait()
        for i in range(1, 7):
            async with registry.use("ns", f"r{i}") as served:
                assert await served.refs() == {}
            assert registry.open_count <= 2
            assert registry.is_open("ns", "r0")  # the held one is never evicted
        async with registry.use("ns", "r1"), registry.use("ns", "r2"):
            assert registry.open_count == 3  # three in use over a bound of two: all stay
            finish.set()
            await task
            assert closed == ["r0"]  # released while still over the bound: closed then
            assert registry.open_count == 2 and not registry.is_open("ns", "r0")
        assert registry.open_count == 2
    finally:
        await registry.close()


async def test_a_push_racing_a_delete_that_lands_first_is_refused(
    tmp_path: Path, repo: AsyncRepo, workdir: Path
) -> None:
    """The other order: the push has checked ``main`` and verified its commit, the delete
    lands, then the push's swap must fail (409), not recreate or move a deleted branch."""
    store = PausingStore(tmp_path / "bucket")
    registry = RepoRegistry(store, tmp_path / "cache")
    try:
        await registry.create("ns", "r")
        served = await hold(registry, "ns", "r")
        base, child = await _base_and_child(repo, workdir, served)
        store.armed = "refs/heads/main"
        pushing = asyncio.create_task(served.update_ref("main", base, child))
        await store.paused.wait()
        await served.delete_ref("main", base)  # answered 200
        store.release.set()
        with pytest.raises(RefConflict):
            await pushing
        assert await served.refs() == {}
        with pytest.raises(NotFound):
            await served.delete_ref("main", base)
        await served.update_ref("main", None, child)  # the name can be used again
        assert await served.refs() == {"main": child}
    finally:
        await registry.close()


async def test_only_nodes_whose_subtree_is_stored_read_as_present(
    tmp_path: Path, repo: AsyncRepo, workdir: Path
) -> None:
    """Negotiation skips what the server calls present, so a node stored without its
    chunks reads as missing; nodes an honest push sends read as present as soon as they
    arrive (a re-run after an interruption sends nothing again), and a new cache vouches
    for everything its branches reach without anything being sent."""
    store = LocalStore(tmp_path / "bucket")
    first = RepoRegistry(store, tmp_path / "cache-1")
    await first.create("ns", "r")
    served = await hold(first, "ns", "r")
    files = {"d/big.bin": random.Random(2).randbytes(500_000), "d/e/small.txt": "s"}
    tip = await commit_files(repo, workdir, files, "one")
    reached = await reachable(repo.objects, [tip])
    nodes = sorted(reached.nodes)
    assert len(nodes) >= 7  # commit, dirs, vnodes, a chunk list

    path = tmp_path / "nodes-only.pack"
    await repo.objects.write_pack_of(nodes, path)
    await InProcessRemote(served).upload_pack(path)
    assert await served.db.missing(nodes) == set()  # stored...
    assert await served.missing(nodes) == set(nodes)  # ...but not vouched for

    sent = await send_objects(repo, InProcessRemote(served), tip)
    assert sent.chunks == len(reached.chunks) and sent.commits == 1
    assert await served.missing([*nodes, *reached.chunks]) == set()
    again = await send_objects(repo, InProcessRemote(served), tip)
    assert (again.commits, again.nodes, again.chunks, again.packs) == (0, 0, 0, 0)
    await served.update_ref("main", None, tip)
    await first.close()

    second = RepoRegistry(store, tmp_path / "cache-2")  # a new disk: nothing vouched yet
    try:
        served = await hold(second, "ns", "r")
        assert await served.db.complete(nodes) == set()
        assert await served.missing(nodes) == set()
        assert await served.db.complete(nodes) == set(nodes)
    finally:
        await second.close()


class FakeTime:
    """A clock that moves only when slept on (each sleep also lets other tasks run)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class CountingStore(LocalStore):
    """Counts listings of pack folders."""

    listings = 0

    def list(self, prefix: str = ""):  # type: ignore[override]
        if prefix.endswith("packs/"):
            self.listings += 1
        return super().list(prefix)


async def test_fetches_of_unknown_ids_relist_the_packs_at_most_once_per_interval(
    tmp_path: Path, repo: AsyncRepo, workdir: Path
) -> None:
    store = CountingStore(tmp_path / "bucket")
    fake = FakeTime()
    registry = RepoRegistry(
        store, tmp_path / "cache", relist=10.0, clock=fake.clock, sleep=fake.sleep
    )
    try:
        await registry.create("ns", "r")
        served = await hold(registry, "ns", "r")
        assert store.listings == 1
        absent = hash_bytes(b"stored nowhere")
        for _ in range(3):
            with pytest.raises(MissingObject):
                await served.pack_of([absent], tmp_path / "out.pack")
        assert store.listings == 4 and fake.slept == [10.0] * 3  # each 10 s after the last
        fake.now += 60
        with pytest.raises(MissingObject):
            await served.pack_of([absent], tmp_path / "out.pack")
        assert store.listings == 5 and fake.slept == [10.0] * 3  # long enough ago: at once

        # what another server on the store stored is still found, by the next listing
        other = RepoRegistry(LocalStore(tmp_path / "bucket"), tmp_path / "cache-2")
        try:
            tip = await commit_files(repo, workdir, {"a": "1"}, "one")
            await push(repo, InProcessRemote(await hold(other, "ns", "r")), "origin", "main")
        finally:
            await other.close()
        # a branch names a commit this cache lacks: listed at once, without the wait
        assert await served.pack_of([tip], tmp_path / "out.pack") > 0
        assert store.listings == 6 and fake.slept == [10.0] * 3
    finally:
        await registry.close()


class SplitRemote(InProcessRemote):
    """A client behind a load balancer without stickiness: its branch reads and
    negotiation answered by one server, its packs and branch update by another."""

    def __init__(self, asked: ServedRepo, stored: ServedRepo) -> None:
        super().__init__(stored)
        self.asked = asked

    async def refs(self):
        return await self.asked.refs()

    async def missing(self, ids):
        return await self.asked.missing(ids)


@pytest.mark.parametrize("same_change", [False, True])
async def test_a_push_whose_objects_another_server_holds_lands_at_once(
    tmp_path: Path, repo: AsyncRepo, workdir: Path, same_change: bool
) -> None:
    """A merge pushed without a pull, its objects negotiated with one server and stored
    through another, which moves the branch: that server has not listed the pack of the
    branch's tip (stored through the first), and needs it to check the files the merge
    takes from it or, when both sides made the same change (the merge's tree is that of
    its first parent, which this server has verified), only to check that the merge
    descends from that tip.  Either miss lists the packs at once: a writer's miss does
    not wait out the interval."""
    fake = FakeTime()
    one, two = (
        RepoRegistry(
            LocalStore(tmp_path / "bucket"),
            tmp_path / f"cache-{i}",
            relist=10.0,
            clock=fake.clock,
            sleep=fake.sleep,
        )
        for i in (1, 2)
    )
    theirs_files = {"shared.txt": "same"} if same_change else {"main.txt": "1"}
    try:
        await one.create("ns", "r")
        await commit_files(repo, workdir, {"base.txt": "0"}, "base")
        a = await hold(one, "ns", "r")
        await push(repo, InProcessRemote(a), "origin", "main")
        b = await hold(two, "ns", "r")  # lists the packs now: a later miss would wait 10 s
        await repo.create_branch("side")
        theirs = await commit_files(repo, workdir, theirs_files, "on main")
        await push(repo, InProcessRemote(a), "origin", "main")  # through the first server
        await repo.checkout("side")
        side = await commit_files(repo, workdir, {"side.txt": "2", "shared.txt": "same"}, "on side")
        await push(repo, InProcessRemote(b), "origin", "side")  # the second knows it whole
        merged = await repo.merge("main")  # parents: (side's tip, main's tip)
        tip = (await repo.branches())["side"]
        assert merged.commit == tip and (await repo.log(limit=1))[0].parents[1] == theirs
        await send_objects(repo, SplitRemote(a, b), tip)  # the first says what it lacks
        await b.update_ref("main", theirs, tip)
        assert await a.refs() == await b.refs() == {"main": tip, "side": side}
        assert fake.slept == []
    finally:
        await one.close()
        await two.close()


async def test_a_server_holding_a_pushed_commit_but_not_its_data_lists_at_once(
    tmp_path: Path, repo: AsyncRepo, workdir: Path
) -> None:
    """A push's packs spread over the servers: the one that took the commit's pack
    indexed it, but not the data stored through the others.  Its first miss after the
    branch moved lists the packs at once (the branch moved since its last listing)."""
    fake = FakeTime()
    one, two = (
        RepoRegistry(
            LocalStore(tmp_path / "bucket"),
            tmp_path / f"cache-{i}",
            relist=10.0,
            clock=fake.clock,
            sleep=fake.sleep,
        )
        for i in (1, 2)
    )
    try:
        await one.create("ns", "r")
        a = await hold(one, "ns", "r")
        b = await hold(two, "ns", "r")  # lists the packs now: a later miss would wait 10 s
        tip = await commit_files(repo, workdir, {"data.bin": "x" * 300_000}, "one")
        await send_objects(repo, InProcessRemote(a), tip)  # every object, through the first
        commit_pack = tmp_path / "commit.pack"
        await repo.objects.write_pack_of([tip], commit_pack)
        assert await b.receive_pack(commit_pack) == 1  # the commit again, through the second
        await a.update_ref("main", None, tip)
        chunks = sorted((await reachable(repo.objects, [tip])).chunks)
        assert chunks and await b.pack_of(chunks, tmp_path / "out.pack") > 0
        assert fake.slept == []
        absent = hash_bytes(b"stored nowhere")  # the branches as listed: the interval holds
        with pytest.raises(MissingObject):
            await b.pack_of([absent], tmp_path / "out.pack")
        assert fake.slept == [10.0]
    finally:
        await one.close()
        await two.close()


async def test_a_branch_naming_an_absent_commit_lists_at_once_only_once(
    tmp_path: Path,
) -> None:
    """A damaged store (a branch naming a commit no pack holds) does not make every miss
    list the packs at once: the first looks, the next ones wait for the interval."""
    store = CountingStore(tmp_path / "bucket")
    fake = FakeTime()
    registry = RepoRegistry(
        store, tmp_path / "cache", relist=10.0, clock=fake.clock, sleep=fake.sleep
    )
    try:
        await registry.create("ns", "r")
        served = await hold(registry, "ns", "r")
        ghost = hash_bytes(b"a commit stored nowhere")
        await store.put("repos/ns/r/refs/heads/main", ghost.hex().encode())
        for _ in range(3):
            with pytest.raises(MissingObject):
                await served.pack_of([ghost], tmp_path / "out.pack")
        assert store.listings == 4 and fake.slept == [10.0, 10.0]
    finally:
        await registry.close()


async def test_misses_waiting_for_a_listing_share_it() -> None:
    fake = FakeTime()
    limit = RelistLimit(10.0, fake.clock, fake.sleep)
    listings = 0

    async def relist() -> int:
        nonlocal listings
        listings += 1
        return 1

    assert await limit.listing(relist) == 1  # opening the repository
    found = await asyncio.gather(*(limit.after_miss(relist) for _ in range(20)))
    assert listings == 2 and fake.slept == [10.0]
    assert found == [1] * 20  # each miss sees what the shared listing found
    assert await limit.after_miss(relist) == 1  # a later miss needs a later listing
    assert listings == 3 and fake.slept == [10.0, 10.0]


async def test_a_repository_deleted_while_in_use_is_closed_by_its_last_user(
    tmp_path: Path,
) -> None:
    registry = RepoRegistry(LocalStore(tmp_path / "bucket"), tmp_path / "cache")
    try:
        await registry.create("ns", "r")
        async with registry.use("ns", "r") as served:
            await registry.delete("ns", "r")
            assert registry.open_count == 0
            assert await served.missing([bytes(16)]) == {bytes(16)}  # not closed under it
        with pytest.raises(ValueError):  # closed once released
            await served.missing([bytes(16)])
    finally:
        await registry.close()
