"""A store on a shared network filesystem (NFS), safe for several processes and hosts.

It relies only on what NFS makes atomic on the server: ``rename`` and ``link``, with
close-to-open consistency for file contents.  Nothing uses ``flock``/``fcntl`` locks or
``mmap``, which NFS implements poorly or not at all.

* Writes: a temporary file named ``host-pid-random`` in ``root/#tmp`` (same filesystem),
  fsync, rename into place, fsync the directory (see :mod:`oxen.storage.fs`).
* ``put_if_absent``: ``link`` of the temporary file; two hosts writing the same
  content-addressed object both succeed, one of them reports True.  A lost LINK reply
  that NFS retransmits shows up as EEXIST with a link count of 2, which counts as ours.
* Reads retry ``ESTALE`` (another host replaced or deleted the file we had opened) and
  treat a file that vanished as missing.  Listings skip ``.nfsXXXX`` silly-rename files.
* ``compare_and_swap``: a lock file created by exclusive ``link`` (:class:`LinkLock`),
  then read, compare, replace.  A lock is stale when its owner is a dead process on this
  host or when it is older than ``lock_stale_after`` seconds; stale locks are broken.
  Ages are measured with file mtimes set by the file server, so client clocks do not
  matter.  The writer checks, just before replacing the value, that its lock still holds,
  and starts over if it was broken meanwhile.
"""

from __future__ import annotations

import errno
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from oxen.storage.errors import LockTimeout
from oxen.storage.fs import ABSENT, HOSTNAME, LOCK_DIR, FilesystemStore, LockLost


def _host_id() -> str:
    """This host and PID namespace: a PID is only meaningful within both."""
    try:
        return f"{HOSTNAME}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return HOSTNAME


HOST_ID = _host_id()


class NfsStore(FilesystemStore):
    """Files under a root directory on a filesystem shared by several hosts."""

    stale_retries = 5

    def __init__(
        self,
        root: str | Path,
        *,
        fsync: bool = True,
        lock_stale_after: float = 30.0,
        lock_wait: float = 60.0,
    ) -> None:
        super().__init__(root, fsync=fsync)
        self.lock_stale_after = lock_stale_after
        self.lock_wait = lock_wait

    @property
    def url(self) -> str:
        return "nfs://" + self.root.as_posix()

    def _listable(self, name: str) -> bool:
        return not name.startswith(".nfs")

    @contextmanager
    def _locked(self, key: str) -> Iterator[Callable[[], None]]:
        lock = LinkLock(
            self.root / LOCK_DIR,
            self._lock_name(key),
            key=key,
            stale_after=self.lock_stale_after,
            wait=self.lock_wait,
            fsync=self.fsync,
        )
        lock.acquire()
        try:
            yield lock.check
        finally:
            lock.release()


@dataclass(frozen=True, slots=True)
class LockOwner:
    """What a lock file says about its owner."""

    host: str
    pid: int
    time: float
    token: str

    @classmethod
    def parse(cls, raw: bytes) -> LockOwner | None:
        try:
            d = json.loads(raw)
            return cls(str(d["host"]), int(d["pid"]), float(d["time"]), str(d["token"]))
        except (ValueError, KeyError, TypeError):
            return None


class LinkLock:
    """A lock file created atomically with ``link``, with stale-lock breaking."""

    def __init__(
        self,
        lock_dir: Path,
        name: str,
        *,
        key: str,
        stale_after: float,
        wait: float,
        fsync: bool = True,
    ) -> None:
        self.path = lock_dir / f"{name}.lock"
        self.key = key
        self.stale_after = stale_after
        self.wait = wait
        self.fsync = fsync
        self.token = f"{HOSTNAME}-{os.getpid()}-{uuid.uuid4().hex}"

    def _body(self) -> bytes:
        owner = {
            "host": HOST_ID,
            "pid": os.getpid(),
            "time": time.time(),
            "token": self.token,
            "key": self.key,
        }
        return json.dumps(owner).encode()

    def acquire(self) -> None:
        mine = self.path.with_name(f"{self.path.name}.{self.token}")
        with open(mine, "wb") as f:
            f.write(self._body())
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        deadline = time.monotonic() + self.wait
        delay = 0.001
        try:
            while True:
                try:
                    os.link(mine, self.path)
                    return
                except FileExistsError:
                    if os.stat(mine).st_nlink == 2:  # a retransmitted LINK that did work
                        return
                found = _read_with_stat(self.path)
                if found is None:
                    continue  # released meanwhile: try again at once
                raw, holder_stat = found
                holder = LockOwner.parse(raw)
                os.utime(mine)  # "now" by the file server's clock (NFS sets server time)
                if self._is_stale(holder, holder_stat, os.stat(mine)):
                    self._break(raw)
                    continue
                if time.monotonic() >= deadline:
                    who = f"{holder.host} pid {holder.pid}" if holder else "an unknown owner"
                    raise LockTimeout(
                        f"timed out after {self.wait:g}s waiting for the lock on {self.key!r} "
                        f"({self.path}), held by {who}"
                    )
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        finally:
            mine.unlink(missing_ok=True)

    def _is_stale(
        self, holder: LockOwner | None, holder_stat: os.stat_result, mine: os.stat_result
    ) -> bool:
        if holder is not None and holder.host == HOST_ID and not _pid_alive(holder.pid):
            return True
        # Both mtimes come from the file server's clock.
        return mine.st_mtime - holder_stat.st_mtime > self.stale_after

    def _break(self, stale_raw: bytes) -> None:
        """Remove a stale lock, unless someone replaced it with a live one meanwhile.

        Unlinking by name could delete a fresh lock taken after another breaker removed
        the stale one; so the lock is first renamed aside (atomic: only one breaker gets
        it), then checked, and put back if it turns out not to be the stale one.
        """
        aside = self.path.with_name(f"{self.path.name}.broken.{uuid.uuid4().hex}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            if _read(aside) != stale_raw:
                try:
                    os.link(aside, self.path)
                except FileExistsError:
                    pass  # its owner sees the loss in check() and starts over
        finally:
            aside.unlink(missing_ok=True)

    def check(self) -> None:
        """Raise LockLost unless the lock file is still ours."""
        raw = _read(self.path)
        owner = LockOwner.parse(raw) if raw is not None else None
        if owner is None or owner.token != self.token:
            raise LockLost(self.key)

    def release(self) -> None:
        raw = _read(self.path)
        owner = LockOwner.parse(raw) if raw is not None else None
        if owner is not None and owner.token == self.token:
            self.path.unlink(missing_ok=True)


def _read_with_stat(path: Path) -> tuple[bytes, os.stat_result] | None:
    """Contents and metadata of one and the same file (None if missing), retrying ESTALE."""
    for attempt in range(5):
        try:
            with open(path, "rb") as f:
                return f.read(), os.fstat(f.fileno())
        except ABSENT:
            return None
        except OSError as e:
            if e.errno != errno.ESTALE or attempt == 4:
                raise
    return None


def _read(path: Path) -> bytes | None:
    found = _read_with_stat(path)
    return None if found is None else found[0]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
