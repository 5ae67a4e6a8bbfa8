"""`oxen-server gc`: what no branch or workspace reaches goes, everything reached stays,
and a push racing a gc is refused or rescued, never left pointing at deleted objects."""

from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from oxen.db.repo_db import RepoDB
from oxen.errors import IncompletePush, InvalidInput
from oxen.formats.packs import Kind, PackEntry
from oxen.repo import AsyncRepo
from oxen.server.gc import collect_all
from oxen.serving.gc import GcReport, collect
from oxen.serving.gc_marks import MARKS, GcMarks
from oxen.serving.registry import RepoRegistry
from oxen.serving.served_repo import ServedRepo
from oxen.serving.store_check import check_store
from oxen.serving.workspaces import Workspaces
from oxen.storage.local import LocalStore
from oxen.storage.prefixed import PrefixedStore
from oxen.sync.push import push, send_objects
from oxen.trees.reach import reached
from tests.test_serving import InProcessRemote, commit_files
from tests.test_workspaces import Clock, staged_rows

PREFIX = "repos/ns/r"


def blob(seed: int, size: int = 300_000) -> bytes:
    return random.Random(seed).randbytes(size)


async def pack_bytes(store: LocalStore) -> int:
    total = 0
    async for key in store.list(f"{PREFIX}/packs/"):
        total += await store.size(key) or 0
    return total


async def readable(served: ServedRepo, tip: bytes) -> None:
    """Everything ``tip`` reaches is read back and matches its id."""
    ids = await reached(served.objects, [tip], [])
    await served.objects.read_blobs(sorted(ids))  # checks each blob against its id


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "bucket")


@pytest.fixture
async def registry(store: LocalStore, tmp_path: Path):
    clock = Clock()
    reg = RepoRegistry(store, tmp_path / "cache", clock=clock)
    reg.test_clock = clock  # type: ignore[attr-defined]
    await reg.create("ns", "r")
    yield reg
    await reg.close()


async def deleted_branch(
    repo: AsyncRepo, workdir: Path, served: ServedRepo, more: dict[str, bytes] | None = None
) -> bytes:
    """main (keep.bin) pushed; a branch with old.bin (and ``more``) pushed and then
    deleted on the server.  Returns main's tip."""
    main = await commit_files(repo, workdir, {"keep.bin": blob(1)}, "main")  # type: ignore[dict-item]
    await push(repo, InProcessRemote(served), "origin", "main")
    await repo.create_branch("old")
    await repo.checkout("old")
    files = {"old.bin": blob(2, 2_000_000), **(more or {})}
    old = await commit_files(repo, workdir, files, "old")  # type: ignore[arg-type]
    await push(repo, InProcessRemote(served), "origin", "old")
    await served.delete_ref("old", old)
    await repo.checkout("main")
    return main


async def follow(registry: RepoRegistry) -> None:
    """Let the server's recheck interval pass and serve a request: it reads the marks."""
    registry.test_clock.now += 60  # type: ignore[attr-defined]
    async with registry.use("ns", "r"):
        pass


async def test_a_deleted_branch_goes_and_everything_reached_stays(
    repo: AsyncRepo, workdir: Path, registry: RepoRegistry, store: LocalStore, tmp_path: Path
) -> None:
    async with registry.use("ns", "r") as served:
        main = await deleted_branch(repo, workdir, served)
        spaces = Workspaces(served)
        ws = await spaces.create("main", "ada@example.com")
        rows = await staged_rows(repo, served, {"staged.bin": blob(3, 500_000)})
        await spaces.stage(ws.id, rows)  # staged in a workspace only: reached
    before = await pack_bytes(store)
    repo_store = PrefixedStore(store, PREFIX)

    dry = await collect(repo_store, "ns/r", tmp_path / "dry", grace=0, dry_run=True)
    assert dry.state == "dry run" and dry.marked_packs >= 1 and dry.freed_bytes >= 2_000_000
    assert await pack_bytes(store) == before  # a dry run changes nothing

    async def marked(marks: GcMarks) -> None:
        await follow(registry)  # a running server reads the marks within the grace period

    report = await collect(repo_store, "ns/r", tmp_path / "gc", grace=0, marked=marked)
    assert report.state == "swept" and report.deleted_packs == dry.marked_packs
    assert before - await pack_bytes(store) >= 2_000_000
    done = GcMarks.decode(await store.get(f"{PREFIX}/{MARKS}") or b"")
    assert not done.pending and not done.packs  # replaced by the record of the sweep
    assert (await check_store(store, None, None)).problems == []

    await follow(registry)  # and sees them gone
    async with registry.use("ns", "r") as served:
        await readable(served, main)
        cid = await Workspaces(served).commit(ws.id, "staged", ("Ada", "ada@example.com"))
        await readable(served, cid)
    again = await collect(repo_store, "ns/r", tmp_path / "again", grace=0)
    assert again.state == "nothing to collect"


async def test_a_push_told_the_server_has_x_is_refused_once_marked_never_accepted(
    repo: AsyncRepo, workdir: Path, registry: RepoRegistry, store: LocalStore, tmp_path: Path
) -> None:
    async with registry.use("ns", "r") as served:
        main = await deleted_branch(repo, workdir, served)
        remote = InProcessRemote(served)
        # old.bin's chunks are in the store, reached by nothing: the server says it has them
        new = await commit_files(repo, workdir, {"again.bin": blob(2, 2_000_000)}, "again")  # type: ignore[dict-item]
        await send_objects(repo, remote, new)
        assert remote.bytes_sent < 100_000  # only nodes went

    async def marked(marks: GcMarks) -> None:
        assert marks.packs
        await follow(registry)  # the server reads the marks before the push moves its ref

    await collect(PrefixedStore(store, PREFIX), "ns/r", tmp_path / "gc", grace=0, marked=marked)
    async with registry.use("ns", "r") as served:
        with pytest.raises(InvalidInput, match="incomplete push"):
            await served.update_ref("main", main, new)
        assert (await served.refs())["main"] == main  # refused: the branch did not move
        await push(repo, InProcessRemote(served), "origin", "main")  # asks again, sends X
        assert (await served.refs())["main"] == new
        await readable(served, new)
    assert (await check_store(store, None, None)).problems == []


class GcBeforeTheRefMoves(InProcessRemote):
    """A remote whose server runs a whole gc (grace 0) between a push's negotiation and
    its branch update, once: the objects the push was told the server has are swept."""

    def __init__(self, served: ServedRepo, registry: RepoRegistry, scratch: Path) -> None:
        super().__init__(served)
        self.registry, self.scratch, self.refused = registry, scratch, 0

    async def update_ref(self, branch, old, new):  # noqa: ANN001, ANN201 - as the protocol
        if not self.scratch.exists():
            report = await collect(self.served.store, "ns/r", self.scratch, grace=0)
            assert report.deleted_packs > 0
            await follow(self.registry)
        try:
            await self.served.update_ref(branch, old, new)
        except IncompletePush:
            self.refused += 1
            raise


async def test_a_push_whose_objects_gc_swept_meanwhile_sends_them_and_lands(
    repo: AsyncRepo, workdir: Path, registry: RepoRegistry, store: LocalStore, tmp_path: Path
) -> None:
    async with registry.use("ns", "r") as served:
        main = await deleted_branch(repo, workdir, served)
        await commit_files(repo, workdir, {"again.bin": blob(2, 2_000_000)}, "again")  # type: ignore[dict-item]
        remote = GcBeforeTheRefMoves(served, registry, tmp_path / "gc")
        result = await push(repo, remote, "origin", "main")
        assert remote.refused == 1  # refused once, then the push asked again and sent X
        assert remote.bytes_sent > 2_000_000
        assert result.old == main and (await served.refs())["main"] == result.new
        await readable(served, result.new)
    assert (await check_store(store, None, None)).problems == []


async def test_a_push_landed_through_a_server_that_had_not_read_the_marks_is_rescued(
    repo: AsyncRepo, workdir: Path, registry: RepoRegistry, store: LocalStore, tmp_path: Path
) -> None:
    stale = RepoRegistry(store, tmp_path / "cache-stale", clock=Clock())  # never rechecks
    async with registry.use("ns", "r") as served:
        main = await deleted_branch(repo, workdir, served)
    new = await commit_files(repo, workdir, {"again.bin": blob(2, 2_000_000)}, "again")  # type: ignore[dict-item]
    async with stale.use("ns", "r") as served:
        await send_objects(repo, InProcessRemote(served), new)  # told it has old.bin's chunks

    async def marked(marks: GcMarks) -> None:
        await follow(registry)  # this server reads the marks; the stale one does not
        async with stale.use("ns", "r") as served:  # its cache still lists the marked packs
            await served.update_ref("main", main, new)

    report = await collect(
        PrefixedStore(store, PREFIX), "ns/r", tmp_path / "gc", grace=0, marked=marked
    )
    assert report.copied > 0 and report.deleted_packs > 0  # the landed push's chunks copied out
    assert (await check_store(store, None, None)).problems == []
    fresh = RepoRegistry(store, tmp_path / "cache-fresh")
    async with fresh.use("ns", "r") as served:
        assert (await served.refs())["main"] == new
        await readable(served, new)
    await fresh.close()
    await follow(registry)
    async with registry.use("ns", "r") as served:
        await readable(served, new)
    await stale.close()


async def test_a_server_idle_through_a_gc_forgets_the_deleted_packs_before_it_answers(
    repo: AsyncRepo, workdir: Path, registry: RepoRegistry, store: LocalStore, tmp_path: Path
) -> None:
    """A server holding the repository open with no request during the whole grace
    period never read the marks: at its next recheck the record of the sweep makes it
    forget the deleted packs, so a push told "has X" is not accepted with X gone.  (A
    file of one chunk is checked by the index alone: nothing reads it back.)"""
    clock = Clock()
    idle = RepoRegistry(store, tmp_path / "cache-idle", clock=clock)
    small = blob(5, 20_000)  # one chunk
    async with registry.use("ns", "r") as served:
        main = await deleted_branch(repo, workdir, served, {"small.bin": small})
    async with idle.use("ns", "r"):
        pass  # open, its cache indexing every pack, the deleted branch's included
    report = await collect(PrefixedStore(store, PREFIX), "ns/r", tmp_path / "gc", grace=0)
    assert report.deleted_packs > 0
    new = await commit_files(repo, workdir, {"again.bin": small}, "again")  # type: ignore[dict-item]
    clock.now += 60  # its next request rechecks
    async with idle.use("ns", "r") as served:
        remote = InProcessRemote(served)
        await send_objects(repo, remote, new)
        assert remote.bytes_sent > len(small)  # told it lacks the chunk: sent
        await served.update_ref("main", main, new)
        await readable(served, new)
        vouched = await served.db.complete(await reached(served.objects, [new], []))
        assert vouched  # the nodes of the pack it received
    assert (await check_store(store, None, None)).problems == []
    await idle.close()
    reopened = RepoRegistry(store, tmp_path / "cache-idle")
    async with reopened.use("ns", "r") as served:  # from its cache, which followed the sweep:
        assert await served.db.complete(vouched) == vouched  # nothing forgotten again
        await readable(served, new)
    await reopened.close()


async def test_forgetting_a_pack_points_its_objects_at_another_copy(tmp_path: Path) -> None:
    db = await RepoDB.open(tmp_path, track_copies=True)
    a, b, c = (bytes([i]) * 32 for i in (1, 2, 3))
    p1, p2 = b"\x01" * 32, b"\x02" * 32
    await db.add_pack(p1, 100, [PackEntry(a, Kind.CHUNK, 0, 10), PackEntry(b, Kind.CHUNK, 10, 10)])
    await db.add_pack(p2, 100, [PackEntry(b, Kind.CHUNK, 0, 10), PackEntry(c, Kind.CHUNK, 10, 10)])
    await db.forget_pack(p1)
    located = await db.locate([a, b, c])
    assert set(located) == {b, c} and located[b].pack == p2
    await db.forget_pack(p2)
    assert await db.locate([a, b, c]) == {}
    await db.close()


def test_the_command_reports_and_collects(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = data / "store"
    (store / "repos").mkdir(parents=True)

    def gc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "oxen.server.main", "gc", "--data-dir", str(data), *args],
            capture_output=True,
            text=True,
            env={**os.environ},
            check=False,
        )

    empty = gc("--grace", "0")
    assert empty.returncode == 0 and empty.stdout == ""
    missing = gc("--repo", "ns/none")
    assert missing.returncode == 1 and "no repository ns/none" in missing.stderr
    bad = gc("--grace", "soon")
    assert bad.returncode == 1 and "not a duration" in bad.stderr


async def test_the_command_frees_a_deleted_branch(
    repo: AsyncRepo, workdir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    store = LocalStore(data / "store")
    registry = RepoRegistry(store, tmp_path / "cache")
    await registry.create("ns", "r")
    async with registry.use("ns", "r") as served:
        await deleted_branch(repo, workdir, served)
    await registry.close()
    base = [sys.executable, "-m", "oxen.server.main", "gc", "--data-dir", str(data)]
    dry = subprocess.run([*base, "--dry-run"], capture_output=True, text=True, check=True)
    assert re.match(r"ns/r: would free \d", dry.stdout), dry.stdout
    done = subprocess.run([*base, "--grace", "0s"], capture_output=True, text=True, check=True)
    assert re.match(r"ns/r: freed .* deleted [1-9]", done.stdout), done.stdout
    after = subprocess.run([*base, "--grace", "0s"], capture_output=True, text=True, check=True)
    assert after.stdout.startswith("ns/r: nothing to collect"), after.stdout


async def test_the_grace_periods_of_several_repositories_overlap(
    repo: AsyncRepo, workdir: Path, tmp_path: Path
) -> None:
    """Each repository's wait starts once it is marked, without holding a turn: the
    second is marked while the first waits (a gc one repository at a time would wait
    here for ever, and the test would time out)."""
    store = LocalStore(tmp_path / "bucket")
    registry = RepoRegistry(store, tmp_path / "cache")
    for name in ("r", "s"):
        await registry.create("ns", name)
    async with registry.use("ns", "r") as served:
        await deleted_branch(repo, workdir, served)
    async with registry.use("ns", "s") as served:
        await push(repo, InProcessRemote(served), "origin", "main")
        await push(repo, InProcessRemote(served), "origin", "old")
        await served.delete_ref("old", (await served.refs())["old"])
    await registry.close()
    waited: list[str] = []
    both_marked = asyncio.Event()

    def waiting(label: str, marks: GcMarks) -> None:
        waited.append(label)
        if len(waited) == 2:
            both_marked.set()

    async def sleep(seconds: float) -> None:
        assert seconds > 0
        await both_marked.wait()

    reports: list[GcReport] = []
    got = await asyncio.wait_for(
        collect_all(store, [("ns", "r"), ("ns", "s")], 600, False, reports.append, waiting, sleep),
        timeout=60,
    )
    assert sorted(waited) == ["ns/r", "ns/s"]
    assert [r.state for r in got] == ["swept", "swept"] and len(reports) == 2
    assert all(r.deleted_packs > 0 for r in got)
    assert (await check_store(store, None, None)).problems == []
