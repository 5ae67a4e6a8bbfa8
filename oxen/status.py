"""``status``: what is staged, modified, removed and untracked, re-hashing nothing it need not.

Deliberately synchronous and light on imports (no asyncio, no pydantic): on an
unchanged tree of 20k files the whole command, process start included, has ~0.15 s.
A file is re-hashed only when its stat differs from the stat cache, or when the cache
entry is "racy" (the file changed in the same timestamp tick it was hashed in).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from oxen.ids import hash_file
from oxen.schema import (
    SELECT_STAGED_WITH_STAT,
    SELECT_TRACKED_WITH_STAT,
    UPSERT_STAT,
    connect_sync,
)
from oxen.worktree import OXEN_DIR, fs_clock, is_under, scan


@dataclass
class Status:
    branch: str | None
    head: str | None
    merging: bool = False
    staged_added: list[str] = field(default_factory=list)
    staged_modified: list[str] = field(default_factory=list)
    staged_removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    # path -> current content id (hex) of every tracked file present in the working tree
    current_ids: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def clean(self) -> bool:
        return not (
            self.staged_added
            or self.staged_modified
            or self.staged_removed
            or self.modified
            or self.removed
            or self.conflicts
        )

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("current_ids")
        return d


def compute_status(root: Path, prefix: str = "", refresh: bool = True) -> Status:
    """Status of the files at or below ``prefix`` ('' for the whole tree)."""
    oxen_dir = root / OXEN_DIR
    conn = connect_sync(oxen_dir)
    try:
        head_state = conn.execute("SELECT value FROM state WHERE key = 'HEAD'").fetchone()
        merge = conn.execute("SELECT value FROM state WHERE key = 'MERGE_HEAD'").fetchone()
        branch, head = _describe_head(conn, head_state[0] if head_state else None)
        status = Status(branch=branch, head=head, merging=merge is not None)
        status.conflicts = [r[0] for r in conn.execute("SELECT path FROM conflicts ORDER BY path")]
        clock = fs_clock(oxen_dir) if refresh else None
        on_disk = scan(root, prefix)
        head_rows = {
            r[0]: r for r in conn.execute(SELECT_TRACKED_WITH_STAT) if is_under(r[0], prefix)
        }
        staged_rows = {
            r[0]: r for r in conn.execute(SELECT_STAGED_WITH_STAT) if is_under(r[0], prefix)
        }

        # What the next commit would record for each path (None: nothing).
        index: dict[str, tuple] = dict(head_rows)
        for path, row in staged_rows.items():
            head_row = head_rows.get(path)
            if row[1] is None:
                status.staged_removed.append(path)
                index.pop(path, None)
                continue
            if head_row is None:
                status.staged_added.append(path)
            elif head_row[1] != row[1]:
                status.staged_modified.append(path)
            index[path] = row

        refreshed: list[tuple] = []
        current_ids = status.current_ids
        modified = status.modified
        for path, row in index.items():
            st = on_disk.get(path)
            if st is None:
                status.removed.append(path)
                continue
            # row[3:7] is the cached (size, mtime, ctime, inode); row[7] its id; row[8] racy
            current = row[7] if (not row[8] and st[:4] == row[3:7]) else None
            if current is None:
                try:
                    current = hash_file(os.path.join(root, path))
                except FileNotFoundError:
                    status.removed.append(path)
                    continue
                racy = int(clock is None or st.mtime_ns >= clock)
                refreshed.append((path, st.size, st.mtime_ns, st.ctime_ns, st.ino, current, racy))
            current_ids[path] = current
            if current != row[1]:
                modified.append(path)
        # not tracked, or staged for removal (index holds neither)
        status.untracked = [p for p in on_disk if p not in index]
        if refresh and refreshed:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(UPSERT_STAT, refreshed)
            conn.execute("COMMIT")
        for name in (
            "staged_added",
            "staged_modified",
            "staged_removed",
            "modified",
            "removed",
            "untracked",
        ):
            getattr(status, name).sort()
        return status
    finally:
        conn.close()


def _describe_head(conn, value: bytes | None) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    text = value.decode()
    if text.startswith("ref: "):
        ref = text[5:]
        row = conn.execute("SELECT commit_id FROM refs WHERE name = ?", (ref,)).fetchone()
        return ref.removeprefix("refs/heads/"), row[0].hex() if row else None
    return None, text
