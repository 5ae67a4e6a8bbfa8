"""Trees the runner is done with are moved aside, and deleted only when the run ends.

Deleting 20,000 files and then creating 20,000 others soon after is slow on this
machine's ext4 (no journal): for a minute after a delete, every new inode is found by
skipping the recently deleted ones (``recently_deleted`` in the kernel's inode
allocator). A clone timed right after the previous run's clone was deleted took 12-14 s
instead of 6 s, for every tool alike. Moving a tree aside is one rename. Trees of few
files (a parquet file and its store) are deleted at once: they free the most disk and
cause no such slowdown.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from bench.paths import WORK

TRASH = WORK / "trash"
MANY_FILES = 1000


def discard(path: Path) -> None:
    """Take ``path`` out of the way now; its files are deleted by ``empty_trash``."""
    if not path.exists() and not path.is_symlink():
        return
    if not _has_many_files(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    TRASH.mkdir(parents=True, exist_ok=True)
    try:
        path.rename(TRASH / uuid.uuid4().hex)
    except OSError:  # another filesystem: nothing to gain, delete now
        shutil.rmtree(path, ignore_errors=True)


def empty_trash() -> None:
    shutil.rmtree(TRASH, ignore_errors=True)


def _has_many_files(path: Path) -> bool:
    count = 0
    for _, dirs, files in os.walk(path):
        count += len(dirs) + len(files)
        if count > MANY_FILES:
            return True
    return False
