"""Files a command is writing into the working tree, and what a killed one left of them.

Checkout, merge, restore and pull write each file to a temporary name beside its target
(:func:`~oxen.worktree.paths.temp_name`) and rename it over the target once whole. A
command killed where it cannot clean up (SIGKILL, power loss) leaves those files: scans
never take them for the user's (:func:`~oxen.worktree.paths.is_temp_name`), and before
writing any, a command lists its targets in ``.oxen/pending/<pid>-<random>``, so the next
command that opens the repository removes what it left (:func:`sweep`).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from oxen.objects.temp_files import STALE_AFTER, process_alive
from oxen.worktree.paths import OXEN_DIR, temp_name

PENDING_DIR = "pending"  # in .oxen


class PendingWrites:
    """The temporary names of one command's writes, listed before any is written."""

    def __init__(self, root: Path, token: str | None = None) -> None:
        """``token``: ``<pid>-<12 hex digits>``, by default this process's and a new one."""
        self.root = root
        self.token = token or f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.journal = root / OXEN_DIR / PENDING_DIR / self.token

    def begin(self, targets: Iterable[str]) -> None:
        """List the repository paths about to be written (blocking); none: no list."""
        listed = "".join(f"{rel}\n" for rel in targets)
        if listed:
            self.journal.parent.mkdir(exist_ok=True)
            self.journal.write_text(listed)

    def temporary(self, target: str | Path) -> str:
        """Where ``target`` (a filesystem path) is written before it is renamed over it."""
        head, name = os.path.split(target)
        return os.path.join(head, temp_name(name, self.token))

    def end(self) -> None:
        """Every temporary file is renamed or removed: forget the list (blocking)."""
        self.journal.unlink(missing_ok=True)


def sweep(root: Path) -> int:
    """Remove the temporary files that commands whose process is gone left in the working
    tree, and their lists; returns how many files (blocking)."""
    folder = root / OXEN_DIR / PENDING_DIR
    try:
        journals = list(folder.iterdir())
    except FileNotFoundError:
        return 0
    removed = 0
    now = time.time()
    for journal in journals:
        pid = journal.name.partition("-")[0]
        try:
            # a day old: its pid may have been reused, as temp_files.sweep reasons
            old = now - journal.stat().st_mtime > STALE_AFTER
            if not pid.isdigit() or (process_alive(int(pid)) and not old):
                continue
            targets = journal.read_text().splitlines()
        except FileNotFoundError:
            continue
        for rel in targets:
            head, name = os.path.split(os.path.join(root, rel))
            try:
                os.unlink(os.path.join(head, temp_name(name, journal.name)))
                removed += 1
            except (FileNotFoundError, NotADirectoryError):
                pass
        journal.unlink(missing_ok=True)
    return removed
