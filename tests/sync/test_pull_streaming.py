"""A fast-forward pull writes changed files as their chunks arrive, and an interrupted
one leaves the working tree as it was (in-process, against a remote served from a repo)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

import oxen.objects.pack_index as pack_index_mod
from oxen.errors import InvalidInput
from oxen.formats.packs import FOOTER_LEN, Kind, decode_footer, decode_trailer
from oxen.repo import AsyncRepo
from oxen.sync.clone import clone
from oxen.sync.fetch import pull
from oxen.worktree.status import compute_status
from tests.conftest import write


class RepoRemote:
    """The two calls fetch needs, answered from a local repository."""

    def __init__(self, source: AsyncRepo, fail_after: int | None = None) -> None:
        self.source = source
        self.fail_after = fail_after
        self.corrupt_last_chunk = False
        self.packs = 0
        self.bytes_sent = 0
        self.bytes_received = 0

    async def refs(self) -> dict[str, bytes]:
        _, head = await self.source.head()
        assert head is not None
        return {"main": head}

    async def fetch_pack(self, ids: list[bytes], dest: Path) -> None:
        if self.fail_after is not None and self.packs >= self.fail_after:
            raise ConnectionResetError("connection dropped")
        self.packs += 1
        self.bytes_received += await self.source.objects.write_pack_of(ids, dest)
        kinds = {loc.kind for loc in (await self.source.db.locate(ids)).values()}
        if self.corrupt_last_chunk and kinds == {Kind.CHUNK}:
            data = bytearray(dest.read_bytes())
            trailer_len = decode_footer(bytes(data[-FOOTER_LEN:]))
            data_size = len(data) - FOOTER_LEN - trailer_len
            last = max(
                decode_trailer(bytes(data[data_size:-FOOTER_LEN]), data_size),
                key=lambda e: e.offset,
            )
            assert last.offset > 0  # earlier chunks verify, and are written, before it fails
            data[last.offset] ^= 0xFF
            dest.write_bytes(bytes(data))


def tree_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".oxen" not in p.relative_to(root).parts
    }


@pytest.fixture
async def source_and_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    monkeypatch.chdir(src_dir)
    src = await AsyncRepo.init(src_dir)
    rng = random.Random(5)
    for i in range(30):
        write(src_dir, f"d{i % 3}/f{i}.bin", rng.randbytes(rng.randint(100, 5000)))
    write(src_dir, "big.bin", rng.randbytes(3_000_000))
    write(src_dir, "gone.txt", "to be removed")
    await src.add(["."])
    await src.commit("v1")
    dst, _ = await clone("mem://src", tmp_path / "dst", RepoRemote(src))
    # v2: a large file changed mid-way, a file removed, files added in a new folder
    data = bytearray((src_dir / "big.bin").read_bytes())
    data[1_000_000:1_000_100] = rng.randbytes(100)
    (src_dir / "big.bin").write_bytes(bytes(data))
    (src_dir / "gone.txt").unlink()
    write(src_dir, "new/a.txt", "added")
    write(src_dir, "d0/f0.bin", b"rewritten")
    await src.add(["."])
    await src.commit("v2")
    try:
        yield src, dst
    finally:
        await src.close()
        await dst.close()


async def test_fast_forward_pull_streams_the_changes(source_and_clone) -> None:
    src, dst = source_and_clone
    untouched = os.stat(dst.root / "d1" / "f1.bin")
    remote = RepoRemote(src)
    fetched, merged = await pull(dst, remote, "origin")
    assert merged.kind == "fast-forward"
    assert tree_of(dst.root) == tree_of(src.root)
    assert not list(dst.root.rglob("*.tmp"))
    # only the changed files were rewritten
    again = os.stat(dst.root / "d1" / "f1.bin")
    assert (again.st_ino, again.st_mtime_ns) == (untouched.st_ino, untouched.st_mtime_ns)
    # HEAD, the remote-tracking ref and the stat cache are in step: status is clean
    assert (await dst.head())[1] == (await src.head())[1]
    st = compute_status(dst.root)
    assert st.clean and not st.untracked
    # the big file's change travelled as a few chunks, not the whole file
    assert fetched.bytes_received < 1_000_000


@pytest.mark.parametrize("how", ["dropped", "bad chunk"])
async def test_interrupted_pull_leaves_the_tree_as_it_was(
    source_and_clone, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dropped after the history came; or a data pack whose last chunk is bad, so the
    chunks before it were already written to temporary files (one chunk per batch)."""
    monkeypatch.setattr(pack_index_mod, "CALLBACK_BATCH", 1)
    src, dst = source_and_clone
    before = tree_of(dst.root)
    head_before = await dst.head()
    remote = RepoRemote(src, fail_after=1 if how == "dropped" else None)
    remote.corrupt_last_chunk = how == "bad chunk"
    with pytest.raises((ConnectionResetError, InvalidInput)):
        await pull(dst, remote, "origin")
    assert tree_of(dst.root) == before
    assert not list(dst.root.rglob("*.tmp"))
    assert await dst.head() == head_before
    # and the next pull completes
    await pull(dst, RepoRemote(src), "origin")
    assert tree_of(dst.root) == tree_of(src.root)


async def test_pull_into_a_dirty_tree_changes_nothing(source_and_clone) -> None:
    src, dst = source_and_clone
    write(dst.root, "d0/f0.bin", b"my local edit")
    before = tree_of(dst.root)
    with pytest.raises(Exception, match="uncommitted|refused"):
        await pull(dst, RepoRemote(src), "origin")
    assert tree_of(dst.root) == before
