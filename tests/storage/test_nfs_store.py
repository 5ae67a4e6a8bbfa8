"""NFS store specifics: several processes on one directory, lock files, stale handles.

There is no NFS server here: the tests run the NFS code paths on the local filesystem,
which is what the store is written against (rename, link and exclusive creation only).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from oxen.storage import LockTimeout, open_store
from oxen.storage.fs import LOCK_DIR, LockLost
from oxen.storage.nfs import HOST_ID, LinkLock, NfsStore

WORKER = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    from oxen.storage.nfs import NfsStore

    root, go, mode, n, me = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

    def content(i):
        return (b"%08d" % i) * 8192  # 64 KiB, the same in every process

    async def create(store):
        sem = asyncio.Semaphore(8)
        async def one(i):
            async with sem:
                return await store.put_if_absent(f"objs/{i:04d}", content(i))
        order = range(n) if me % 2 == 0 else range(n - 1, -1, -1)  # meet in the middle
        done = dict(zip(order, await asyncio.gather(*(one(i) for i in order))))
        return [done[i] for i in range(n)]

    async def increment(store):
        retries = 0
        for _ in range(n):
            while True:
                cur = await store.get("counter")
                new = str(int(cur or b"0") + 1).encode()
                if await store.compare_and_swap("counter", cur, new):
                    break
                retries += 1
        return retries

    async def main():
        store = NfsStore(root, fsync=False)
        open(f"{go}.ready.{os.getpid()}", "w").close()
        while not os.path.exists(go):
            time.sleep(0.001)
        result = await (create(store) if mode == "create" else increment(store))
        print(json.dumps(result))

    asyncio.run(main())
    """
)


def run_workers(root: Path, mode: str, n: int, processes: int = 2) -> list:
    go = root.parent / f"go-{mode}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(root), str(go), mode, str(n), str(me)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me in range(processes)
    ]
    while len(list(go.parent.glob(f"{go.name}.ready.*"))) < processes:  # all imported
        time.sleep(0.005)
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    return results


async def test_processes_create_the_same_objects(tmp_path: Path) -> None:
    root = tmp_path / "store"
    NfsStore(root)
    n = 200
    a, b = run_workers(root, "create", n)
    print("created by each process:", sum(a), sum(b))
    for i in range(n):
        assert a[i] + b[i] == 1, f"object {i}: created by both or neither"
    store = NfsStore(root)
    for i in range(0, n, 17):
        assert await store.get(f"objs/{i:04d}") == (b"%08d" % i) * 8192
    assert len([k async for k in store.list()]) == n
    assert os.listdir(root / "#tmp") == []


async def test_processes_never_lose_an_increment(tmp_path: Path) -> None:
    root = tmp_path / "store"
    NfsStore(root)
    print("CAS conflicts per process:", run_workers(root, "increment", 25))
    assert await NfsStore(root).get("counter") == b"50"
    assert os.listdir(root / LOCK_DIR) == []


def lock_path(store: NfsStore, key: str) -> Path:
    return store.root / LOCK_DIR / f"{store._lock_name(key)}.lock"


def write_lock(path: Path, host: str, pid: int, age: float = 0.0) -> None:
    body = {"host": host, "pid": pid, "time": 0, "token": f"{host}-{pid}-x", "key": "k"}
    path.write_text(json.dumps(body))
    if age:
        st = path.stat()
        os.utime(path, (st.st_atime - age, st.st_mtime - age))


def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    return int(done.stdout)


async def test_lock_of_a_dead_process_is_broken(tmp_path: Path) -> None:
    store = NfsStore(tmp_path / "s", lock_wait=5)
    write_lock(lock_path(store, "refs/main"), HOST_ID, dead_pid())
    assert await store.compare_and_swap("refs/main", None, b"a") is True
    assert not lock_path(store, "refs/main").exists()


async def test_old_lock_of_another_host_is_broken(tmp_path: Path) -> None:
    store = NfsStore(tmp_path / "s", lock_stale_after=30, lock_wait=5)
    write_lock(lock_path(store, "refs/main"), "elsewhere:1", 4242, age=3600)
    assert await store.compare_and_swap("refs/main", None, b"a") is True
    assert await store.get("refs/main") == b"a"


async def test_live_lock_of_another_host_times_out(tmp_path: Path) -> None:
    store = NfsStore(tmp_path / "s", lock_stale_after=30, lock_wait=0.05)
    write_lock(lock_path(store, "refs/main"), "elsewhere:1", 4242)
    with pytest.raises(LockTimeout, match="elsewhere:1 pid 4242"):
        await store.compare_and_swap("refs/main", None, b"a")
    assert await store.get("refs/main") is None
    assert lock_path(store, "refs/main").exists()  # not ours to remove


def test_broken_lock_is_noticed_by_its_holder(tmp_path: Path) -> None:
    tmp_path.joinpath("locks").mkdir()
    first = LinkLock(tmp_path / "locks", "n", key="k", stale_after=30, wait=1)
    first.acquire()
    first.check()
    # a second writer that (wrongly) considers every lock stale takes it over
    second = LinkLock(tmp_path / "locks", "n", key="k", stale_after=-1, wait=1)
    second.acquire()
    with pytest.raises(LockLost):
        first.check()
    first.release()  # must not remove the second writer's lock
    second.check()
    second.release()
    assert os.listdir(tmp_path / "locks") == []


async def test_stale_file_handles_are_retried(tmp_path: Path) -> None:
    class Flaky(NfsStore):
        failures = 2

        def _read(self, key: str, start: int = 0, length: int | None = None) -> bytes | None:
            if self.failures:
                self.failures -= 1
                raise OSError(errno.ESTALE, "Stale file handle")
            return super()._read(key, start, length)

    store = Flaky(tmp_path / "s")
    await store.put("k", b"v")
    assert await store.get("k") == b"v"
    store.failures = 10
    with pytest.raises(Exception, match="Stale file handle"):
        await store.get("k")


async def test_listing_skips_silly_renames(tmp_path: Path) -> None:
    store = NfsStore(tmp_path / "s")
    await store.put("a/b", b"1")
    (store.root / "a" / ".nfs000000000001").write_bytes(b"deleted but open")
    assert [k async for k in store.list()] == ["a/b"]


def test_urls(tmp_path: Path) -> None:
    assert isinstance(open_store(f"nfs://{tmp_path}/a"), NfsStore)
    store = open_store(f"file://{tmp_path}/b?nfs=1&lock_wait=2.5")
    assert isinstance(store, NfsStore) and store.lock_wait == 2.5
    assert open_store(store.url).root == store.root
