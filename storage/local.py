"""A store on a local filesystem (SSD).

See :mod:`oxen.storage.fs` for the write protocol (temporary file, fsync, rename; hard
link for ``put_if_absent``).  ``compare_and_swap`` holds an ``flock`` on a per-key lock
file in ``root/#locks``: cheap and released by the kernel if the process dies, but only
trustworthy on a local disk.  The NFS store (:mod:`oxen.storage.nfs`) does not rely on it.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from oxen.storage.fs import LOCK_DIR, FilesystemStore


class LocalStore(FilesystemStore):
    """Files under a root directory on a local disk."""

    @property
    def url(self) -> str:
        return self.root.as_uri()

    @contextmanager
    def _locked(self, key: str) -> Iterator[Callable[[], None]]:
        with open(self.root / LOCK_DIR / self._lock_name(key), "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield _still_held
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _still_held() -> None:
    """An flock cannot be broken by others while its holder lives."""
