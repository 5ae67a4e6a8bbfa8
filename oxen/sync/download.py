"""download: one file of a remote repository's revision, without a repository here.

The bytes go to a temporary file beside the destination and are checked as they arrive:
each chunk is hashed (the server says where chunks end) and the file id made of those
hashes must be the id the server names.  Only a whole, checked file is renamed into
place, so an interrupted or refused download leaves nothing at the destination.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from blake3 import blake3

from oxen.errors import CorruptObject, PathError, RemoteError
from oxen.formats.ids import FileIdBuilder
from oxen.progress import ProgressFactory, null_progress
from oxen.sync.protocol import FileBody, FileLayout
from oxen.worktree.paths import check_repo_path, temp_name

WRITE_BATCH = 4 * 1024 * 1024  # bytes gathered before they are hashed and written


class FileSource(Protocol):
    """What a download needs from a remote (:class:`~oxen.sync.http.HttpRemote`)."""

    async def file_layout(self, path: str, rev: str | None = None) -> FileLayout: ...

    def read_file(
        self, path: str, rev: str | None = None
    ) -> contextlib.AbstractAsyncContextManager[FileBody]: ...


@dataclass(frozen=True)
class DownloadResult:
    path: str  # in the repository
    out: Path  # where it was written
    size: int
    id: bytes  # the file's id, checked against its bytes
    commit: bytes  # the commit it was read from


class ChunkHasher:
    """The file id of bytes fed in order, given where their chunks end (blocking)."""

    def __init__(self, lengths: list[int]) -> None:
        self._lengths = iter(lengths)
        self._left = next(self._lengths, 0)  # bytes of the current chunk still to come
        self._chunk = blake3()
        self._file = FileIdBuilder()
        self.extra = 0  # bytes past the last chunk (a server that sent too much)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            if not self._left:
                self.extra += len(view)
                return
            part, view = view[: self._left], view[self._left :]
            self._chunk.update(part)
            self._left -= len(part)
            if not self._left:
                self._file.update([self._chunk.digest()])
                self._chunk = blake3()
                self._left = next(self._lengths, 0)

    def digest(self) -> bytes | None:
        """The file id; None when bytes are missing or extra."""
        if self._left or self.extra:
            return None
        return self._file.digest()


def target_of(path: str, out: str | Path | None) -> Path:
    """Where ``path`` of a repository is written: ``out``, or into it when it is a
    folder, or the file's name in the current folder."""
    name = path.rsplit("/", 1)[-1]
    if out is None:
        return Path.cwd() / name
    target = Path(out)
    if target.is_dir() or str(out).endswith(("/", os.sep)):
        return target / name
    return target


async def download(
    source: FileSource,
    path: str,
    rev: str | None = None,
    out: str | Path | None = None,
    force: bool = False,
    progress: ProgressFactory = null_progress,
) -> DownloadResult:
    """Write the file at ``path`` of revision ``rev`` (default: main) to ``out``; an
    existing file there is refused unless ``force``."""
    check_repo_path(path)
    target = target_of(path, out).absolute()
    _check_target(target, force)
    layout = await source.file_layout(path, rev)
    tmp = target.parent / temp_name(target.name, f"{os.getpid()}-{uuid.uuid4().hex[:12]}")
    try:
        # the commit, not the revision: a branch moving meanwhile cannot mix two versions
        async with source.read_file(path, layout.commit.hex()) as body:
            if (body.id, body.size) != (layout.id, layout.size):
                raise RemoteError(f"the server described {path} as another file than it sent")
            hasher = ChunkHasher(layout.lengths)
            bar = progress(f"download {path.rsplit('/', 1)[-1]}", layout.size, "B")
            try:
                await _write(body.pieces, tmp, hasher, bar.update)
            except OSError as e:
                raise PathError(f"cannot write {tmp}: {e.strerror or e}") from None
            finally:
                bar.close()
        if hasher.digest() != layout.id:
            raise CorruptObject(
                f"the bytes received for {path} do not match its id {layout.id.hex()}: "
                "nothing was written"
            )
        try:
            await asyncio.to_thread(_put_in_place, tmp, target, force)
        except OSError as e:
            raise PathError(f"cannot write {target}: {e.strerror or e}") from None
    finally:
        await asyncio.to_thread(tmp.unlink, missing_ok=True)
    return DownloadResult(path, target, layout.size, layout.id, layout.commit)


def _check_target(target: Path, force: bool) -> None:
    if target.is_dir():
        raise PathError(f"{target} is a folder: name the file to write with -o")
    if not target.parent.is_dir():
        raise PathError(f"no folder {target.parent} to write {target.name} in")
    if target.exists() and not force:
        raise PathError(f"{target} exists: pass --force to overwrite it")


async def _write(
    pieces: AsyncIterator[bytes], tmp: Path, hasher: ChunkHasher, done: Callable[[int], object]
) -> None:
    """Bytes to ``tmp``, hashed and written a batch at a time in a worker thread while
    the next batch arrives."""
    f = await asyncio.to_thread(open, tmp, "xb")
    pending: asyncio.Future[None] | None = None
    try:
        buffer = bytearray()
        async for piece in pieces:
            buffer += piece
            if len(buffer) >= WRITE_BATCH:
                if pending is not None:
                    await pending
                pending = asyncio.ensure_future(asyncio.to_thread(_take, f, hasher, buffer))
                done(len(buffer))
                buffer = bytearray()
        if pending is not None:
            await pending
            pending = None
        await asyncio.to_thread(_take, f, hasher, buffer)
        done(len(buffer))
    finally:
        if pending is not None and not pending.done():
            await asyncio.wait([pending])  # the thread is using the file: let it finish
        f.close()


def _take(f: IO[bytes], hasher: ChunkHasher, data: bytearray) -> None:
    hasher.update(data)
    f.write(data)


def _put_in_place(tmp: Path, target: Path, force: bool) -> None:
    """Rename the checked file to ``target``; without ``force``, only if nothing is
    there yet (a hard link creates it exclusively, where links exist)."""
    if force:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise PathError(f"{target} exists: pass --force to overwrite it") from None
    except OSError:  # a filesystem without hard links
        if target.exists():
            raise PathError(f"{target} exists: pass --force to overwrite it") from None
        os.replace(tmp, target)
        return
    tmp.unlink()
