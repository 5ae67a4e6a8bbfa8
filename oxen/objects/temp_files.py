"""Temporary files of packs being written, sent or received.

Each is named after the process that owns it (``<kind>-<pid>-<random><suffix>``), so one
left behind by a killed process can be told from one in use: :func:`sweep` removes those
whose process is gone, and any older than a day (a pid can be reused).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

STALE_AFTER = 24 * 3600  # seconds


def temp_path(tmp_dir: Path, kind: str, suffix: str) -> Path:
    return tmp_dir / f"{kind}-{os.getpid()}-{uuid.uuid4().hex}{suffix}"


def sweep(tmp_dir: Path, now: float | None = None) -> int:
    """Remove the temporary files of processes that are gone; returns how many (blocking)."""
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(os.scandir(tmp_dir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        parts = entry.name.split("-", 2)
        if len(parts) != 3 or not parts[1].isdigit() or not entry.is_file(follow_symlinks=False):
            continue
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER
            if old or not process_alive(int(parts[1])):
                os.unlink(entry.path)
                removed += 1
        except FileNotFoundError:
            continue  # its owner finished with it meanwhile
    return removed


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` is running (ours, or anyone's we may not signal)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
