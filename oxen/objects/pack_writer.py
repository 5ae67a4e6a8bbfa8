"""Writing packs: blobs appended to a temporary file through page-aligned staging buffers,
written behind on a thread (with O_DIRECT where the filesystem allows it), sealed with
the trailer that :mod:`oxen.formats.packs` defines."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from oxen.formats.ids import hash_bytes
from oxen.formats.packs import (
    FOOTER,
    FOOTER_LEN,
    MAGIC,
    Kind,
    PackEntry,
    SealedPack,
    encode_trailer,
)
from oxen.objects.temp_files import temp_path


class PackWriter:
    """Appends blobs to a temporary file; ``finish`` seals it. Not thread-safe.

    Blobs are copied into a page-aligned staging buffer; a full stage is written out on a
    background thread while the next one fills, so adding returns once the bytes are
    copied.  With ``direct=True`` (packs that go into a store, which fsyncs them anyway)
    those writes use O_DIRECT: the bytes go to the disk once instead of being copied into
    the page cache and flushed from there, which halves the memory traffic of adding a
    large file.  Where the filesystem refuses O_DIRECT (tmpfs), ordinary writes are used.
    """

    def __init__(self, tmp_dir: Path, *, direct: bool = False) -> None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self.path = temp_path(tmp_dir, "pack", ".tmp")
        self._fd, self._direct = _create(self.path, direct)
        self._stage = _take_stage()
        self._staged = 0
        self._spares: list[mmap.mmap] = []
        self._writing: deque[tuple[Future[None], mmap.mmap]] = deque()
        self._writer: ThreadPoolExecutor | None = None
        self.entries: list[PackEntry] = []
        self.size = 0

    def add(self, oid: bytes, kind: Kind, data: bytes | memoryview) -> None:
        self.entries.append(PackEntry(oid, kind, self.size, len(data)))
        self._append(data)
        self.size += len(data)

    def add_many(self, blobs: list[tuple[bytes, Kind, bytes | memoryview]]) -> None:
        entries, offset = self.entries, self.size
        for oid, kind, data in blobs:
            entries.append(PackEntry(oid, kind, offset, len(data)))
            offset += len(data)
        if offset - self.size < SMALL_BLOBS * len(blobs):
            # many small blobs (small files): one join costs less than a copy per blob
            self._append(b"".join(data for _, _, data in blobs))
        else:
            for _, _, data in blobs:
                self._append(data)
        self.size = offset

    def _append(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        done = 0
        while done < len(view):
            take = min(len(view) - done, STAGE_SIZE - self._staged)
            self._stage[self._staged : self._staged + take] = view[done : done + take]
            self._staged += take
            done += take
            if self._staged == STAGE_SIZE:
                self._write_behind()

    def _write_behind(self) -> None:
        """Queue the full stage for the writer thread and go on filling another one."""
        while len(self._writing) >= WRITES_QUEUED:
            self._wait_for_write()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="oxen-pack")
        full = self._stage
        self._stage = self._spares.pop() if self._spares else _take_stage()
        self._writing.append((self._writer.submit(self._write, full, STAGE_SIZE), full))
        self._staged = 0

    def _wait_for_write(self) -> None:
        """Wait for the oldest queued write; its stage becomes a spare."""
        future, stage = self._writing.popleft()
        self._spares.append(stage)
        future.result()

    def _wait_for_writes(self) -> None:
        while self._writing:
            self._wait_for_write()

    def _write(self, stage: mmap.mmap, length: int) -> None:
        """Write a stage out; only whole, aligned stages may go out with O_DIRECT."""
        if self._direct and length % ALIGN:
            self._direct = _set_direct(self._fd, False)
        with memoryview(stage) as whole:
            view = whole[:length]
            try:
                _write_all(self._fd, view)
            except OSError as e:
                if not self._direct or e.errno != errno.EINVAL:
                    raise
                self._direct = _set_direct(self._fd, False)
                _write_all(self._fd, view)
            finally:
                view.release()

    def finish(self) -> SealedPack:
        trailer = encode_trailer(self.entries)
        self._append(trailer)
        self._append(FOOTER.pack(len(trailer)))
        self._append(MAGIC)
        self._wait_for_writes()
        self._write(self._stage, self._staged)
        self._close()
        size = self.size + len(trailer) + FOOTER_LEN
        return SealedPack(hash_bytes(trailer), self.path, self.entries, size)

    def abort(self) -> None:
        while self._writing:
            with contextlib.suppress(Exception):  # the pack is being thrown away anyway
                self._wait_for_write()
        self._close()
        self.path.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._fd < 0:
            return
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        os.close(self._fd)
        self._fd = -1
        # the staging buffers go back to the pool exactly once
        for stage in (self._stage, *self._spares):
            _give_stage(stage)
        self._spares.clear()


STAGE_SIZE = 8 * 1024 * 1024
SMALL_BLOBS = 32 * 1024  # average blob size below which add_many joins before copying
ALIGN = 4096  # O_DIRECT wants buffers, lengths and offsets aligned to the block size
WRITES_QUEUED = 2  # full stages waiting for the disk while the next one fills
KEPT_STAGES = WRITES_QUEUED + 1
# Staging buffers are kept for the next writer: touching fresh pages for every pack costs
# more than the copy into them (a page fault per 4 KiB).
_stages: list[mmap.mmap] = []
_stages_lock = threading.Lock()


def _take_stage() -> mmap.mmap:
    with _stages_lock:
        if _stages:
            return _stages.pop()
    return mmap.mmap(-1, STAGE_SIZE)


def _give_stage(stage: mmap.mmap) -> None:
    with _stages_lock:
        if len(_stages) < KEPT_STAGES:
            _stages.append(stage)
            return
    stage.close()


def _create(path: Path, direct: bool) -> tuple[int, bool]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    if direct and hasattr(os, "O_DIRECT"):
        try:
            return os.open(path, flags | os.O_DIRECT, 0o644), True
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
    return os.open(path, flags, 0o644), False


def _set_direct(fd: int, on: bool) -> bool:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    flags = flags | os.O_DIRECT if on else flags & ~os.O_DIRECT
    fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    return on


def _write_all(fd: int, view: memoryview) -> None:
    done = 0
    while done < len(view):
        done += os.write(fd, view[done:])
