"""Shared code of the filesystem stores (local disk and NFS).

Objects are plain files under ``root``.  Writes go to a uniquely named temporary file in
``root/#tmp`` (``#`` cannot appear in a key, so no key collides with it), are fsynced and
then renamed into place, and the directory is fsynced: a reader or a crash never sees a
partial object.  ``put_if_absent`` hard-links the finished temporary file to its final
name, which fails atomically if the name exists, on local filesystems and on NFS alike.

The one difference between the backends is how ``compare_and_swap`` serialises writers of
a key: subclasses provide :meth:`FilesystemStore._locked`.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import socket
import stat
import uuid
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TypeVar

import xxhash

from oxen.storage.base import ByteRange, Store, check_key, check_prefix
from oxen.storage.errors import StoreError, StoreUnavailable

# What opening a key's path raises when no object has that key: nothing there, a folder of
# other keys there (``refs/heads/nest`` beside ``refs/heads/nest/x``), or an object where a
# folder would be (``refs/heads/main/x`` beside ``refs/heads/main``).
ABSENT = (FileNotFoundError, IsADirectoryError, NotADirectoryError)

TMP_DIR = "#tmp"
LOCK_DIR = "#locks"
HOSTNAME = socket.gethostname()

T = TypeVar("T")


class LockLost(Exception):
    """Our lock was broken while we held it; the operation starts again."""


class FilesystemStore(Store):
    """Files under a root directory; blocking I/O runs in worker threads.

    ``get_ranges`` merges with the base class's defaults (``range_gap`` 256 KiB,
    ``max_read`` 16 MiB); the merged reads of one call share one open file and one thread.
    """

    #: How often an operation that hit ESTALE is retried (NFS file handles go stale when
    #: another host replaces or deletes the file we had open).
    stale_retries: int = 0

    def __init__(self, root: str | Path, *, fsync: bool = True) -> None:
        self.root = Path(root).resolve()
        self.fsync = fsync
        try:
            (self.root / TMP_DIR).mkdir(parents=True, exist_ok=True)
            (self.root / LOCK_DIR).mkdir(exist_ok=True)
        except OSError as e:
            raise StoreUnavailable(f"cannot use {self.root} as a store: {e.strerror}") from e

    # -- hooks -------------------------------------------------------------------------
    @abstractmethod
    def _locked(self, key: str) -> AbstractContextManager[Callable[[], None]]:
        """Hold the write lock of ``key``; yields a check that raises LockLost if it broke."""

    def _listable(self, name: str) -> bool:
        """Whether a file name found while listing can be a key."""
        return True

    # -- helpers -----------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _tmp_path(self) -> Path:
        return self.root / TMP_DIR / f"{HOSTNAME}-{os.getpid()}-{uuid.uuid4().hex}"

    def _lock_name(self, key: str) -> str:
        return xxhash.xxh3_128_hexdigest(key.encode())

    async def _run(self, what: str, fn: Callable[..., T], *args: object) -> T:
        """Run blocking I/O in a thread, retrying ESTALE and mapping OS errors."""
        try:
            return await asyncio.to_thread(self._retry_stale, fn, *args)
        except OSError as e:
            raise StoreError(f"{what} in store {self.root}: {e.strerror or e}") from e

    def _retry_stale(self, fn: Callable[..., T], *args: object) -> T:
        for attempt in range(self.stale_retries + 1):
            try:
                return fn(*args)
            except OSError as e:
                if e.errno != errno.ESTALE or attempt == self.stale_retries:
                    raise
        raise AssertionError("unreachable")

    # -- reads -------------------------------------------------------------------------
    def _read(self, key: str, start: int = 0, length: int | None = None) -> bytes | None:
        if start < 0 or (length is not None and length < 0):
            raise ValueError(f"invalid byte range: start={start} length={length}")
        try:
            with open(self._path(key), "rb") as f:
                if start:
                    f.seek(start)
                return f.read() if length is None else f.read(length)
        except ABSENT:
            return None

    async def get(self, key: str) -> bytes | None:
        return await self._run(f"reading {key!r}", self._read, key)

    async def get_range(self, key: str, start: int, length: int) -> bytes | None:
        return await self._run(f"reading {key!r}", self._read, key, start, length)

    def _read_spans(self, key: str, spans: list[ByteRange]) -> list[bytes] | None:
        try:
            with open(self._path(key), "rb") as f:
                out = []
                for span in spans:
                    f.seek(span.start)
                    out.append(f.read(span.length))
                return out
        except ABSENT:
            return None

    async def read_spans(self, key: str, spans: list[ByteRange]) -> list[bytes] | None:
        """Every merged read of a :meth:`get_ranges` call: one open file, one worker thread."""
        return await self._run(f"reading {key!r}", self._read_spans, key, spans)

    # -- writes ------------------------------------------------------------------------
    def _write_tmp(self, data: bytes | bytearray | memoryview) -> Path:
        tmp = self._tmp_path()
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    def _install(self, tmp: Path, final: Path, *, exclusive: bool) -> bool:
        """Move a finished temporary file to its final name; consumes ``tmp``."""
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            if exclusive:
                try:
                    os.link(tmp, final)
                except FileExistsError:
                    # NFS retransmits a LINK whose reply was lost and then reports EEXIST
                    # for a link it made itself: a link count of 2 means it is ours.
                    if os.stat(tmp).st_nlink != 2:
                        return False
            else:
                os.replace(tmp, final)
            if self.fsync:
                _fsync_dir(final.parent)
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def _put(self, key: str, data: bytes) -> None:
        final = self._path(key)
        self._install(self._write_tmp(data), final, exclusive=False)

    async def put(self, key: str, data: bytes) -> None:
        check_key(key)
        await self._run(f"writing {key!r}", self._put, key, data)

    def _put_file(self, key: str, path: Path, move: bool) -> None:
        final = self._path(key)
        if move:
            try:
                if self.fsync:
                    _fsync_file(path)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, final)
                if self.fsync:
                    _fsync_dir(final.parent)
                return
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
        tmp = self._tmp_path()
        try:
            shutil.copyfile(path, tmp)
            if self.fsync:
                _fsync_file(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._install(tmp, final, exclusive=False)

    async def put_file(self, key: str, path: Path, *, move: bool = False) -> None:
        check_key(key)
        await self._run(f"writing {key!r} from {path}", self._put_file, key, Path(path), move)

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        final = self._path(key)
        if final.exists():
            return False
        return self._install(self._write_tmp(data), final, exclusive=True)

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        check_key(key)
        return await self._run(f"creating {key!r}", self._put_if_absent, key, data)

    def _cas(self, key: str, expected: bytes | None, new: bytes) -> bool:
        final = self._path(key)
        for _ in range(3):
            try:
                with self._locked(key) as still_held:
                    if self._retry_stale(self._read, key) != expected:
                        return False
                    tmp = self._write_tmp(new)
                    try:
                        still_held()
                    except BaseException:
                        tmp.unlink(missing_ok=True)
                        raise
                    self._install(tmp, final, exclusive=False)
                    return True
            except LockLost:
                continue
        raise StoreError(f"lock on {key!r} in {self.root} kept being broken while held")

    async def compare_and_swap(self, key: str, expected: bytes | None, new: bytes) -> bool:
        check_key(key)
        return await self._run(f"updating {key!r}", self._cas, key, expected, new)

    # -- metadata ----------------------------------------------------------------------
    def _exists_many(self, keys: list[str]) -> set[str]:
        return {k for k in keys if self._path(k).is_file()}

    async def exists_many(self, keys: Iterable[str]) -> set[str]:
        wanted = [check_key(k) for k in keys]
        return await self._run("checking keys", self._exists_many, wanted)

    def _list(self, prefix: str) -> list[str]:
        base_dir = prefix.rpartition("/")[0]
        start = self.root / base_dir if base_dir else self.root
        if not start.is_dir():
            return []
        out = []
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = os.path.relpath(dirpath, self.root)
            if rel_dir == ".":
                rel_dir = ""
            # ``#`` is in no key: skip our own ``#tmp``/``#locks``, and those of a store
            # opened at a subdirectory (the URL of a PrefixedStore reopens as one).
            dirnames[:] = [d for d in dirnames if not d.startswith("#")]
            for name in filenames:
                key = f"{rel_dir}/{name}" if rel_dir else name
                if key.startswith(prefix) and self._listable(name):
                    out.append(key)
        return out

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        check_prefix(prefix)
        for key in await self._run(f"listing {prefix!r}", self._list, prefix):
            yield key

    def _size(self, key: str) -> int | None:
        try:
            st = self._path(key).stat()
        except ABSENT:
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    async def size(self, key: str) -> int | None:
        return await self._run(f"reading {key!r}", self._size, key)

    def _delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def delete(self, key: str) -> None:
        check_key(key)
        await self._run(f"deleting {key!r}", self._delete, key)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
