"""Async access to a repository's SQLite database (aiosqlite), in batched queries only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import aiosqlite

from oxen.db.rows import ConflictRow, FileRow, Location, StatRow
from oxen.db.schema import ADDED_COLUMNS, DB_NAME, FILE_ROW_COLUMNS, PRAGMAS, SCHEMA, UPSERT_STAT
from oxen.formats.ids import split_ids
from oxen.formats.packs import Kind, PackEntry

BATCH = 5000  # ids per IN (...) query
T = TypeVar("T")


def batched(items: Sequence[T], size: int = BATCH) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def _add_missing_columns(conn: aiosqlite.Connection) -> None:
    """A database made before a column existed gets it (empty) on its next open."""
    for table, column, kind in ADDED_COLUMNS:
        async with conn.execute(f"PRAGMA table_info({table})") as cur:
            have = {row[1] for row in await cur.fetchall()}
        if column not in have:
            await conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


class RepoDB:
    def __init__(self, conn: aiosqlite.Connection, track_copies: bool = False) -> None:
        self.conn = conn
        # Record every copy of an object held in more than one pack (a server's cache: two
        # clients racing upload the same chunk), so forgetting one pack points its objects
        # at another copy rather than losing them from the index.
        self.track_copies = track_copies
        self._tx_lock = asyncio.Lock()
        self._tx_owner: asyncio.Task | None = None

    @classmethod
    async def open(cls, oxen_dir: Path, track_copies: bool = False) -> RepoDB:
        conn = await aiosqlite.connect(oxen_dir / DB_NAME, isolation_level=None)
        for pragma in PRAGMAS:
            await conn.execute(pragma)
        await conn.executescript(SCHEMA)
        await _add_missing_columns(conn)
        return cls(conn, track_copies)

    async def close(self) -> None:
        await self.conn.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """BEGIN IMMEDIATE ... COMMIT: everything inside lands together or not at all.

        One connection is shared by the tasks of a process, so transactions are serialised
        by a lock; a task already inside one just joins it.
        """
        me = asyncio.current_task()
        if self._tx_owner is me:
            yield
            return
        async with self._tx_lock:
            self._tx_owner = me
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield
                except BaseException:
                    await self.conn.execute("ROLLBACK")
                    raise
                await self.conn.execute("COMMIT")
            finally:
                self._tx_owner = None

    # -- objects ---------------------------------------------------------------------
    async def locate(self, ids: Iterable[bytes]) -> dict[bytes, Location]:
        out: dict[bytes, Location] = {}
        unique = list(set(ids))
        for part in batched(unique):
            marks = ",".join("?" * len(part))
            sql = f"SELECT id, pack, offset, length, kind FROM objects WHERE id IN ({marks})"
            async with self.conn.execute(sql, part) as cur:
                for oid, pack, offset, length, kind in await cur.fetchall():
                    out[oid] = Location(pack, offset, length, kind)
        return out

    async def has_objects(self) -> bool:
        async with self.conn.execute("SELECT 1 FROM objects LIMIT 1") as cur:
            return await cur.fetchone() is not None

    async def missing(self, ids: Iterable[bytes]) -> set[bytes]:
        wanted = set(ids)
        unique = list(wanted)
        for part in batched(unique):
            marks = ",".join("?" * len(part))
            async with self.conn.execute(
                f"SELECT id FROM objects WHERE id IN ({marks})", part
            ) as cur:
                for (oid,) in await cur.fetchall():
                    wanted.discard(oid)
        return wanted

    async def add_pack(self, pack_id: bytes, size: int, entries: list[PackEntry]) -> None:
        async with self.transaction():
            await self.conn.execute(
                "INSERT OR REPLACE INTO packs (id, size, blobs) VALUES (?, ?, ?)",
                (pack_id, size, len(entries)),
            )
            rows = sorted((e.id, pack_id, e.offset, e.length, int(e.kind)) for e in entries)
            if self.track_copies:
                await self.conn.executemany(
                    "INSERT OR IGNORE INTO object_copies (id, pack, offset, length, kind) "
                    "SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS "
                    "(SELECT 1 FROM objects WHERE id = ?1 AND pack != ?2)",
                    rows,
                )
            await self.conn.executemany(
                "INSERT OR IGNORE INTO objects (id, pack, offset, length, kind) VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    async def forget_pack(self, pack_id: bytes) -> None:
        """Drop a pack and every object row pointing into it from the index; an object
        with a recorded copy in another pack is pointed at that copy instead."""
        async with self.transaction():
            await self.conn.execute("DELETE FROM object_copies WHERE pack = ?", (pack_id,))
            await self.conn.execute(
                "INSERT OR REPLACE INTO objects (id, pack, offset, length, kind) "
                "SELECT c.id, c.pack, c.offset, c.length, c.kind FROM object_copies c "
                "JOIN objects o ON o.id = c.id WHERE o.pack = ?",
                (pack_id,),
            )
            await self.conn.execute(
                "DELETE FROM object_copies WHERE (id, pack) IN (SELECT id, pack FROM objects)"
            )
            await self.conn.execute("DELETE FROM objects WHERE pack = ?", (pack_id,))
            await self.conn.execute("DELETE FROM packs WHERE id = ?", (pack_id,))

    async def object_sizes(self) -> dict[bytes, tuple[bytes, int]]:
        """Every indexed object: id -> (its pack, its length)."""
        async with self.conn.execute("SELECT id, pack, length FROM objects") as cur:
            return {oid: (pack, length) for oid, pack, length in await cur.fetchall()}

    async def all_refs(self) -> dict[str, bytes]:
        """Every ref row (branches and remote-tracking branches) by full name."""
        async with self.conn.execute("SELECT name, commit_id FROM refs") as cur:
            return {name: cid for name, cid in await cur.fetchall()}

    async def forget_chunk_maps(self, file_ids: Iterable[bytes]) -> None:
        ids = list(file_ids)
        async with self.transaction():
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                marks = ",".join("?" * len(part))
                await self.conn.execute(f"DELETE FROM chunk_maps WHERE file_id IN ({marks})", part)

    async def packs(self) -> list[tuple[bytes, int, int]]:
        async with self.conn.execute("SELECT id, size, blobs FROM packs") as cur:
            return [tuple(r) for r in await cur.fetchall()]  # type: ignore[misc]

    async def objects_in_pack(self, pack_id: bytes) -> list[tuple[bytes, int, int, int]]:
        sql = "SELECT id, offset, length, kind FROM objects WHERE pack = ? ORDER BY offset"
        async with self.conn.execute(sql, (pack_id,)) as cur:
            return [tuple(r) for r in await cur.fetchall()]  # type: ignore[misc]

    async def count_objects(self, kind: Kind | None = None) -> int:
        sql, args = "SELECT count(*) FROM objects", ()
        if kind is not None:
            sql, args = sql + " WHERE kind = ?", (int(kind),)
        async with self.conn.execute(sql, args) as cur:
            return (await cur.fetchone())[0]  # type: ignore[index]

    # -- complete nodes (a server's cache) ---------------------------------------------
    async def complete(self, ids: Iterable[bytes]) -> set[bytes]:
        """Those of ``ids`` recorded as complete (everything they reach is stored)."""
        out: set[bytes] = set()
        for part in batched(list(set(ids))):
            marks = ",".join("?" * len(part))
            sql = f"SELECT id FROM complete_nodes WHERE id IN ({marks})"
            async with self.conn.execute(sql, part) as cur:
                out.update(oid for (oid,) in await cur.fetchall())
        return out

    async def forget_complete(self) -> None:
        """Forget every node recorded complete (objects may have been removed since)."""
        await self.conn.execute("DELETE FROM complete_nodes")

    async def add_complete(self, ids: Iterable[bytes]) -> None:
        rows = sorted((oid,) for oid in set(ids))
        if rows:
            async with self.transaction():
                await self.conn.executemany(
                    "INSERT OR IGNORE INTO complete_nodes (id) VALUES (?)", rows
                )

    # -- chunk maps ------------------------------------------------------------------
    async def chunk_maps(self, file_ids: Iterable[bytes]) -> dict[bytes, list[bytes]]:
        out: dict[bytes, list[bytes]] = {}
        for part in batched(list(set(file_ids))):
            marks = ",".join("?" * len(part))
            sql = f"SELECT file_id, chunks FROM chunk_maps WHERE file_id IN ({marks})"
            async with self.conn.execute(sql, part) as cur:
                for fid, blob in await cur.fetchall():
                    out[fid] = split_ids(blob)
        return out

    async def add_chunk_maps(self, rows: list[tuple[bytes, bytes, list[bytes]]]) -> None:
        """Rows of (file id, chunk list node id, chunk ids)."""
        await self.conn.executemany(
            "INSERT OR IGNORE INTO chunk_maps (file_id, list_id, chunks) VALUES (?, ?, ?)",
            [(fid, lid, b"".join(ids)) for fid, lid, ids in rows],
        )

    # -- refs and state --------------------------------------------------------------
    async def get_ref(self, name: str) -> bytes | None:
        async with self.conn.execute("SELECT commit_id FROM refs WHERE name = ?", (name,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def list_refs(self, prefix: str = "") -> dict[str, bytes]:
        sql = "SELECT name, commit_id FROM refs WHERE name >= ? AND name < ? ORDER BY name"
        async with self.conn.execute(sql, (prefix, prefix + "\U0010ffff")) as cur:
            return {name: cid for name, cid in await cur.fetchall()}

    async def set_ref_if_equals(self, name: str, old: bytes | None, new: bytes) -> bool:
        """Compare-and-swap: move ``name`` to ``new`` only if it holds ``old`` (None: absent)."""
        if old is None:
            cur = await self.conn.execute(
                "INSERT OR IGNORE INTO refs (name, commit_id) VALUES (?, ?)", (name, new)
            )
        else:
            cur = await self.conn.execute(
                "UPDATE refs SET commit_id = ? WHERE name = ? AND commit_id = ?", (new, name, old)
            )
        return cur.rowcount == 1

    async def force_ref(self, name: str, new: bytes) -> None:
        """Set a ref unconditionally (remote-tracking refs mirror what the remote said)."""
        await self.conn.execute(
            "INSERT OR REPLACE INTO refs (name, commit_id) VALUES (?, ?)", (name, new)
        )

    async def remove_ref_if_equals(self, name: str, old: bytes) -> bool:
        cur = await self.conn.execute(
            "DELETE FROM refs WHERE name = ? AND commit_id = ?", (name, old)
        )
        return cur.rowcount == 1

    async def get_state(self, key: str) -> bytes | None:
        async with self.conn.execute("SELECT value FROM state WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def set_state(self, key: str, value: bytes | None) -> None:
        if value is None:
            await self.conn.execute("DELETE FROM state WHERE key = ?", (key,))
        else:
            await self.conn.execute(
                "INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value)
            )

    # -- HEAD's files and the staging area -------------------------------------------
    async def _file_rows(self, table: str, paths: Sequence[str] | None) -> dict[str, FileRow]:
        cols = FILE_ROW_COLUMNS
        if paths is None:
            async with self.conn.execute(f"SELECT {cols} FROM {table}") as cur:
                return {r[0]: FileRow(*r) for r in await cur.fetchall()}
        out: dict[str, FileRow] = {}
        for part in batched(list(paths)):
            marks = ",".join("?" * len(part))
            async with self.conn.execute(
                f"SELECT {cols} FROM {table} WHERE path IN ({marks})", part
            ) as cur:
                out.update({r[0]: FileRow(*r) for r in await cur.fetchall()})
        return out

    async def head_files(self, paths: Sequence[str] | None = None) -> dict[str, FileRow]:
        return await self._file_rows("head_files", paths)

    async def head_files_under(self, prefix: str) -> dict[str, FileRow]:
        """Tracked files equal to ``prefix`` or below the directory ``prefix``."""
        if not prefix:
            return await self.head_files()
        sql = (
            f"SELECT {FILE_ROW_COLUMNS} FROM head_files WHERE path = ? OR (path >= ? AND path < ?)"
        )
        async with self.conn.execute(sql, (prefix, prefix + "/", prefix + "0")) as cur:
            return {r[0]: FileRow(*r) for r in await cur.fetchall()}

    async def staged(self, paths: Sequence[str] | None = None) -> dict[str, FileRow]:
        return await self._file_rows("staged", paths)

    async def update_head_files(self, upserts: Iterable[FileRow], deletes: Iterable[str]) -> None:
        await self.conn.executemany(
            "DELETE FROM head_files WHERE path = ?", [(p,) for p in deletes]
        )
        await self.conn.executemany(
            f"INSERT OR REPLACE INTO head_files ({FILE_ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            sorted(upserts),
        )

    async def replace_head_files(self, rows: Iterable[FileRow]) -> None:
        await self.conn.execute("DELETE FROM head_files")
        await self.update_head_files(rows, ())

    async def stage(self, rows: Iterable[FileRow]) -> None:
        await self.conn.executemany(
            f"INSERT OR REPLACE INTO staged ({FILE_ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            sorted(rows),
        )

    async def unstage(self, paths: Iterable[str]) -> None:
        await self.conn.executemany("DELETE FROM staged WHERE path = ?", [(p,) for p in paths])

    async def clear_staged(self) -> None:
        await self.conn.execute("DELETE FROM staged")

    # -- stat cache ------------------------------------------------------------------
    async def stat_rows(self, paths: Sequence[str] | None = None) -> dict[str, StatRow]:
        cols = "path, size, mtime_ns, ctime_ns, ino, id, racy"
        if paths is None:
            async with self.conn.execute(f"SELECT {cols} FROM stat_cache") as cur:
                return {r[0]: StatRow(*r) for r in await cur.fetchall()}
        out: dict[str, StatRow] = {}
        for part in batched(list(paths)):
            marks = ",".join("?" * len(part))
            async with self.conn.execute(
                f"SELECT {cols} FROM stat_cache WHERE path IN ({marks})", part
            ) as cur:
                out.update({r[0]: StatRow(*r) for r in await cur.fetchall()})
        return out

    async def put_stats(self, rows: Iterable[StatRow]) -> None:
        await self.conn.executemany(UPSERT_STAT, sorted(rows))

    async def delete_stats(self, paths: Iterable[str]) -> None:
        await self.conn.executemany("DELETE FROM stat_cache WHERE path = ?", [(p,) for p in paths])

    # -- merge conflicts -------------------------------------------------------------
    async def conflicts(self) -> dict[str, ConflictRow]:
        sql = "SELECT path, base, ours, theirs, theirs_path FROM conflicts ORDER BY path"
        async with self.conn.execute(sql) as cur:
            return {r[0]: ConflictRow(*r) for r in await cur.fetchall()}

    async def set_conflicts(self, rows: Iterable[ConflictRow]) -> None:
        await self.conn.execute("DELETE FROM conflicts")
        await self.conn.executemany(
            "INSERT INTO conflicts (path, base, ours, theirs, theirs_path) VALUES (?, ?, ?, ?, ?)",
            list(rows),
        )

    async def resolve_conflicts(self, paths: Iterable[str]) -> None:
        await self.conn.executemany("DELETE FROM conflicts WHERE path = ?", [(p,) for p in paths])
