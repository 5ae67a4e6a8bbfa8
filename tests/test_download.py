"""download without a server: bytes checked against the file id as they arrive, written
to a temporary file, renamed into place only when whole and right."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from oxen.config import ChunkingConfig
from oxen.errors import CorruptObject, PathError, RemoteError
from oxen.formats.ids import file_id, hash_bytes
from oxen.sync.download import ChunkHasher, download, target_of
from oxen.sync.protocol import FileBody, FileLayout
from oxen.worktree.chunking import Chunker

DATA = random.Random(3).randbytes(700_000)
CHUNKS = Chunker(ChunkingConfig()).cut(DATA)
LENGTHS = [c.length for c in CHUNKS]
FILE_ID = file_id(c.id for c in CHUNKS)
COMMIT = hash_bytes(b"a commit")


class FakeSource:
    """A remote serving one file; ``sent`` is what it sends as that file's bytes."""

    def __init__(self, sent: bytes = DATA, fail_after: int | None = None) -> None:
        self.sent = sent
        self.fail_after = fail_after
        self.calls: list[tuple[str, str | None]] = []

    async def file_layout(self, path: str, rev: str | None = None) -> FileLayout:
        self.calls.append(("layout", rev))
        return FileLayout(COMMIT, FILE_ID, len(DATA), LENGTHS)

    @asynccontextmanager
    async def read_file(self, path: str, rev: str | None = None) -> AsyncIterator[FileBody]:
        self.calls.append(("read", rev))
        yield FileBody(FILE_ID, len(DATA), COMMIT, self._pieces())

    async def _pieces(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self.sent), 50_000):
            if self.fail_after is not None and i >= self.fail_after:
                raise RemoteError("the answer was cut off")
            yield self.sent[i : i + 50_000]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("piece", [999, 8192, 65_536, 1_000_000])
def test_the_hasher_finds_the_file_id_however_the_bytes_arrive(piece: int) -> None:
    assert len(LENGTHS) > 3
    hasher = ChunkHasher(LENGTHS)
    for i in range(0, len(DATA), piece):
        hasher.update(DATA[i : i + piece])
    assert hasher.digest() == FILE_ID


def test_the_hasher_knows_bytes_missing_or_extra() -> None:
    short = ChunkHasher(LENGTHS)
    short.update(DATA[:-1])
    assert short.digest() is None
    long = ChunkHasher(LENGTHS)
    long.update(DATA + b"x")
    assert long.digest() is None
    empty = ChunkHasher([])
    empty.update(b"")
    assert empty.digest() == hash_bytes(b"")


async def test_a_download_is_checked_and_pinned_to_the_commit(tmp_path: Path) -> None:
    source = FakeSource()
    result = await download(source, "data/file.bin", "main", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == DATA
    assert (result.size, result.id, result.commit) == (len(DATA), FILE_ID, COMMIT)
    assert source.calls == [("layout", "main"), ("read", COMMIT.hex())]
    assert leftovers(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("wrong", ["one byte changed", "cut off"])
async def test_wrong_or_missing_bytes_leave_nothing(tmp_path: Path, wrong: str) -> None:
    if wrong == "cut off":
        source = FakeSource(fail_after=300_000)
        with pytest.raises(RemoteError, match="cut off"):
            await download(source, "file.bin", None, tmp_path / "out.bin")
    else:
        changed = bytearray(DATA)
        changed[400_000] ^= 1
        with pytest.raises(CorruptObject, match="do not match its id"):
            await download(FakeSource(bytes(changed)), "file.bin", None, tmp_path / "out.bin")
    assert leftovers(tmp_path) == []


async def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "file.bin").write_bytes(b"mine")
    source = FakeSource()
    with pytest.raises(PathError, match="exists: pass --force"):
        await download(source, "file.bin", None, tmp_path)  # a folder: the file's name in it
    assert source.calls == []  # refused before asking the server anything
    assert (tmp_path / "file.bin").read_bytes() == b"mine"
    await download(source, "file.bin", None, tmp_path, force=True)
    assert (tmp_path / "file.bin").read_bytes() == DATA
    assert leftovers(tmp_path) == ["file.bin"]


async def test_a_folder_or_a_missing_folder_is_no_place_to_write(tmp_path: Path) -> None:
    (tmp_path / "sub" / "file.bin").mkdir(parents=True)
    with pytest.raises(PathError, match="is a folder"):
        await download(FakeSource(), "file.bin", None, tmp_path / "sub", force=True)
    with pytest.raises(PathError, match="no folder"):
        await download(FakeSource(), "file.bin", None, tmp_path / "nope" / "x")


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/./b", ".oxen/config.toml", ""])
async def test_unsafe_paths_are_refused_before_any_request(tmp_path: Path, path: str) -> None:
    source = FakeSource()
    with pytest.raises(PathError):
        await download(source, path, None, tmp_path / "out")
    assert source.calls == []


def test_where_a_file_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert target_of("a/b/c.csv", None) == tmp_path / "c.csv"
    assert target_of("a/b/c.csv", tmp_path) == tmp_path / "c.csv"
    assert target_of("a/b/c.csv", "new/") == Path("new/c.csv")
    assert target_of("a/b/c.csv", "x.csv") == Path("x.csv")
