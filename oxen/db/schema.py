"""The SQLite schema of a repository's ``.oxen/oxen.db``, shared by the async core and the
synchronous fast paths (``status`` must not pay for importing asyncio).

What lives here, and where it comes from:

* ``objects``, ``packs``: where each chunk and node is (pack, offset, length): rebuildable
  from the packs' trailers.
* ``chunk_maps``: file id -> ordered chunk ids: rebuildable from ChunkList nodes.
* ``refs``, ``state``: branches, HEAD and merge state.
* ``head_files``: HEAD's tree flattened (path -> id, size): rebuildable from the tree.
* ``staged`` (the staging area) and ``stat_cache``: local working-tree state.
* ``object_copies`` (a server's cache only): further copies of objects stored in more
  than one pack, so forgetting a pack (gc) points its objects at another copy.
* ``complete_nodes`` (a server's cache only): nodes whose every descendant is stored, so
  push negotiation may answer "present" for them (see ``oxen/serving/vouching.py``).
"""

from __future__ import annotations

import os
import sqlite3

DB_NAME = "oxen.db"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    id BLOB PRIMARY KEY, pack BLOB NOT NULL, offset INTEGER NOT NULL,
    length INTEGER NOT NULL, kind INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS packs (
    id BLOB PRIMARY KEY, size INTEGER NOT NULL, blobs INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunk_maps (
    file_id BLOB PRIMARY KEY, list_id BLOB NOT NULL, chunks BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refs (name TEXT PRIMARY KEY, commit_id BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS head_files (
    path TEXT PRIMARY KEY, id BLOB NOT NULL, size INTEGER NOT NULL,
    chunks BLOB, mode INTEGER NOT NULL, schema BLOB, rows INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS staged (
    path TEXT PRIMARY KEY, id BLOB, size INTEGER, chunks BLOB, mode INTEGER,
    schema BLOB, rows INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stat_cache (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL, ino INTEGER NOT NULL, id BLOB NOT NULL,
    racy INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS object_copies (
    id BLOB NOT NULL, pack BLOB NOT NULL, offset INTEGER NOT NULL,
    length INTEGER NOT NULL, kind INTEGER NOT NULL, PRIMARY KEY (id, pack)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS complete_nodes (id BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conflicts (
    path TEXT PRIMARY KEY, base BLOB, ours BLOB, theirs BLOB, theirs_path TEXT) WITHOUT ROWID;
"""

# Any change to what status compares with invalidates its snapshot (oxen/status_index.py).
SCHEMA += "\n".join(
    f"CREATE TRIGGER IF NOT EXISTS status_index_{table}_{event.lower()} AFTER {event} ON {table}"
    " BEGIN DELETE FROM state WHERE key = 'status_index'; END;"
    for table in ("head_files", "staged", "stat_cache")
    for event in ("INSERT", "UPDATE", "DELETE")
)

# Columns added since a table was first made: (table, column, type), added where missing
ADDED_COLUMNS = (
    ("head_files", "schema", "BLOB"),
    ("head_files", "rows", "INTEGER"),
    ("staged", "schema", "BLOB"),
    ("staged", "rows", "INTEGER"),
)
FILE_ROW_COLUMNS = "path, id, size, chunks, mode, schema, rows"

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=30000",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-65536",
)

# status reads these two in full: tracked files with their cached stat, and the staging area.
SELECT_TRACKED_WITH_STAT = """
SELECT h.path, h.id, h.size, s.size, s.mtime_ns, s.ctime_ns, s.ino, s.id, s.racy
FROM head_files h LEFT JOIN stat_cache s ON s.path = h.path
"""
SELECT_STAGED_WITH_STAT = """
SELECT g.path, g.id, g.size, s.size, s.mtime_ns, s.ctime_ns, s.ino, s.id, s.racy
FROM staged g LEFT JOIN stat_cache s ON s.path = g.path
"""
SELECT_STAT_CACHE = "SELECT path, size, mtime_ns, ctime_ns, ino, id, racy FROM stat_cache"
UPSERT_STAT = (
    "INSERT OR REPLACE INTO stat_cache (path, size, mtime_ns, ctime_ns, ino, id, racy) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def connect_sync(oxen_dir: str | os.PathLike[str]) -> sqlite3.Connection:
    """A plain sqlite3 connection, for short synchronous commands run in one thread."""
    conn = sqlite3.connect(os.path.join(oxen_dir, DB_NAME), isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn
