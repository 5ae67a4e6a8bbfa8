"""The index ``status`` compares the working tree with, and a snapshot of it kept beside
the database so that an unchanged repository need not be re-read row by row.

The index is HEAD's files overlaid with the staging area, each row carrying the file's
cached stat: ``(path, id, size, cached size, mtime_ns, ctime_ns, ino, cached id, racy)``.
Building its 20k Python rows from SQLite costs ~40 ms; unpacking the msgpack snapshot
~12 ms.

The snapshot is valid only while the database still holds its token: SQLite triggers
on ``head_files``, ``staged`` and ``stat_cache`` delete the token on any change, and a
new token is written in the same transaction as the rows it vouches for are read. So a
stale snapshot can never be taken for a current one, whoever wrote to the database.
"""

from __future__ import annotations

import os
import sqlite3

import msgpack

from oxen.db.schema import SELECT_STAGED_WITH_STAT, SELECT_TRACKED_WITH_STAT, UPSERT_STAT

SNAPSHOT_NAME = "status-index"
SNAPSHOT_FORMAT = 1
TOKEN_KEY = "status_index"
SELECT_TOKEN = f"SELECT value FROM state WHERE key = '{TOKEN_KEY}'"
SET_TOKEN = f"INSERT OR REPLACE INTO state (key, value) VALUES ('{TOKEN_KEY}', ?)"


class Index:
    """``rows``: path -> row; ``added``/``modified``/``removed``: the staged paths."""

    def __init__(
        self,
        rows: dict[str, tuple],
        added: list[str],
        modified: list[str],
        removed: list[str],
        token: bytes | None,
    ) -> None:
        self.rows = rows
        self.added = added
        self.modified = modified
        self.removed = removed
        self.token = token


def load_index(conn: sqlite3.Connection, oxen_dir: str) -> Index:
    """The index, from the snapshot when it is still valid, else from the database (and
    then the snapshot is rewritten)."""
    token = conn.execute(SELECT_TOKEN).fetchone()
    if token is not None:
        index = _read_snapshot(oxen_dir, token[0])
        if index is not None:
            return index
    new_token = os.urandom(16)
    conn.execute("BEGIN")
    try:
        index = _query_index(conn)
        conn.execute(SET_TOKEN, (new_token,))
        conn.execute("COMMIT")
    except sqlite3.OperationalError:  # another process is writing: no snapshot this time
        conn.execute("ROLLBACK")
        return _query_index(conn)
    index.token = new_token
    _write_snapshot(oxen_dir, index)
    return index


def save_stats(conn: sqlite3.Connection, oxen_dir: str, index: Index, rows: list[tuple]) -> None:
    """Record refreshed stat-cache rows ``(path, size, mtime, ctime, ino, id, racy)`` and,
    if nothing else changed the database meanwhile, keep the snapshot valid."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        token = conn.execute(SELECT_TOKEN).fetchone()
        unchanged = token is not None and token[0] == index.token
        conn.executemany(UPSERT_STAT, rows)  # the triggers delete the token
        new_token = os.urandom(16)
        if unchanged:
            conn.execute(SET_TOKEN, (new_token,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if unchanged:
        for path, size, mtime_ns, ctime_ns, ino, oid, racy in rows:
            row = index.rows[path]
            index.rows[path] = (path, row[1], row[2], size, mtime_ns, ctime_ns, ino, oid, racy)
        index.token = new_token
        _write_snapshot(oxen_dir, index)


def _query_index(conn: sqlite3.Connection) -> Index:
    rows = {r[0]: r for r in conn.execute(SELECT_TRACKED_WITH_STAT).fetchall()}
    head_ids = {path: row[1] for path, row in rows.items()}
    added: list[str] = []
    modified: list[str] = []
    removed: list[str] = []
    for row in conn.execute(SELECT_STAGED_WITH_STAT).fetchall():
        path = row[0]
        if row[1] is None:
            removed.append(path)
            rows.pop(path, None)
            continue
        head_id = head_ids.get(path)
        if head_id is None:
            added.append(path)
        elif head_id != row[1]:
            modified.append(path)
        rows[path] = row
    return Index(rows, added, modified, removed, None)


def _read_snapshot(oxen_dir: str, token: bytes) -> Index | None:
    try:
        with open(os.path.join(oxen_dir, SNAPSHOT_NAME), "rb") as f:
            data = msgpack.unpackb(f.read(), use_list=False)
        fmt, saved_token, added, modified, removed, rows = data
    except (OSError, ValueError, TypeError, msgpack.UnpackException):
        return None
    if fmt != SNAPSHOT_FORMAT or saved_token != token:
        return None
    return Index({r[0]: r for r in rows}, list(added), list(modified), list(removed), token)


def _write_snapshot(oxen_dir: str, index: Index) -> None:
    """Best effort: a snapshot that cannot be written only costs the next status time."""
    path = os.path.join(oxen_dir, SNAPSHOT_NAME)
    tmp = f"{path}.{os.getpid()}.tmp"
    data = msgpack.packb(
        [
            SNAPSHOT_FORMAT,
            index.token,
            index.added,
            index.modified,
            index.removed,
            list(index.rows.values()),
        ],
        use_bin_type=True,
    )
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
