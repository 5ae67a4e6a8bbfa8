"""A workspace on a server, driven from a machine without a clone: files are cut and
hashed here, only the chunks the server lacks are packed and sent, then the server stages
their entries and, on commit, builds the commit itself (:mod:`oxen.serving.workspaces`).

The chunks go through the same negotiation as a push: each block of a file (or batch of
small files) costs one "which of these do you lack" request, and only those chunks are
written to a scratch pack here and uploaded, so a 1 GiB parquet file with 1% of its rows
changed sends about 1% of its bytes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from oxen.config import ChunkingConfig
from oxen.db.repo_db import RepoDB
from oxen.db.rows import FileRow
from oxen.errors import IsAFolder, OxenError, PathError
from oxen.objects.object_store import ObjectStore
from oxen.objects.pack_index import stored_packs
from oxen.progress import ProgressFactory, null_progress
from oxen.storage import open_store
from oxen.sync.http import HttpRemote
from oxen.sync.protocol import PACK_TARGET
from oxen.verbs.staging import describe_tabular, file_mode
from oxen.worktree.paths import FileStat, check_repo_path, scan

ROUTE = "/workspaces"


@dataclass(frozen=True)
class Staged:
    """What ``add`` sent and staged."""

    files: list[str]  # their paths in the repository
    bytes_hashed: int
    bytes_sent: int  # packs of chunks and nodes the server lacked


class _AskTheServer:
    """The scratch store's database, except that "which of these are new" is asked of the
    server: the ingest then packs only what the server lacks."""

    def __init__(self, db: RepoDB, remote: HttpRemote) -> None:
        self._db = db
        self._remote = remote

    async def missing(self, ids: Iterable[bytes]) -> set[bytes]:
        wanted = sorted(set(ids))
        return await self._remote.missing(wanted) if wanted else set()

    async def has_objects(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def local_files(sources: list[str], dst: str) -> list[tuple[Path, str, str, FileStat]]:
    """(root, path under root, path in the repository, stat) of each file to upload: a
    file goes to ``dst/<its name>``, a folder's files to ``dst/<folder name>/...``."""
    dst = dst.strip("/")
    out: list[tuple[Path, str, str, FileStat]] = []
    for source in sources:
        local = Path(source)
        if local.is_file():
            name = local.name
            dest = f"{dst}/{name}" if dst else name
            out.append((local.parent, name, dest, FileStat.of(local.stat())))
        elif local.is_dir():
            top = local.resolve().name
            for rel, st in sorted(scan(local).items()):
                dest = "/".join(p for p in (dst, top, rel) if p)
                out.append((local, rel, dest, st))
        else:
            raise PathError(f"no such file or folder: {source}")
    for _, _, dest, _ in out:
        check_repo_path(dest)
    seen: set[str] = set()
    for _, _, dest, _ in out:
        if dest in seen:
            raise PathError(f"two files would go to {dest}")
        seen.add(dest)
    return out


async def send_files(
    remote: HttpRemote,
    files: list[tuple[Path, str, str, FileStat]],
    progress: ProgressFactory = null_progress,
    chunking: ChunkingConfig | None = None,
) -> tuple[list[FileRow], int, int]:
    """Cut and hash ``files`` (from :func:`local_files`), upload the chunks and nodes the
    server lacks; returns their entries (under their repository paths), the bytes hashed
    and the bytes sent."""
    from oxen.worktree.chunking import Chunker
    from oxen.worktree.ingest import Ingestor

    sent_before = remote.bytes_sent
    rows: list[FileRow] = []
    hashed = 0
    with tempfile.TemporaryDirectory(prefix="oxen-upload-") as scratch:
        root = Path(scratch)
        db = await RepoDB.open(root)
        store = open_store(str(root / "objects"))
        try:
            objects = ObjectStore(store, _AskTheServer(db, remote), root / "tmp", PACK_TARGET)  # type: ignore[arg-type]
            (root / "tmp").mkdir()
            by_root: dict[Path, list[tuple[str, str, FileStat]]] = {}
            for base, rel, dest, st in files:
                by_root.setdefault(base, []).append((rel, dest, st))
            chunker = Chunker(chunking or ChunkingConfig())
            total = sum(st.size for *_, st in files)
            bar = progress("hashing", total, "B")
            try:
                for base, group in by_root.items():
                    ingested = await Ingestor(objects, chunker, bar).run(
                        base, [(rel, st) for rel, _, st in group]
                    )
                    described = await describe_tabular(objects, base, ingested)
                    dest_of = {rel: dest for rel, dest, _ in group}
                    for ing in ingested:
                        schema = described.get(ing.path, ())
                        rows.append(
                            FileRow(
                                dest_of[ing.path],
                                ing.id,
                                ing.size,
                                ing.chunks,
                                file_mode(ing.stat),
                                *schema,
                            )
                        )
                        hashed += ing.size
            finally:
                bar.close()
            await _upload_packs(remote, store, progress)
        finally:
            await db.close()
            await store.close()
    return rows, hashed, remote.bytes_sent - sent_before


async def _upload_packs(remote: HttpRemote, store: Any, progress: ProgressFactory) -> None:
    keys = [key async for _, key in stored_packs(store)]
    paths = [Path(store.root) / key for key in keys]
    sizes = [await asyncio.to_thread(os.path.getsize, p) for p in paths]
    bar = progress("uploading", sum(sizes), "B")
    limit = asyncio.Semaphore(4)

    async def one(path: Path, size: int) -> None:
        async with limit:
            await remote.upload_pack(path)
            bar.update(size)

    try:
        await asyncio.gather(*(one(p, n) for p, n in zip(paths, sizes, strict=True)))
    finally:
        bar.close()


def _entry(row: FileRow) -> dict[str, Any]:
    assert row.id is not None
    return {
        "path": row.path,
        "id": row.id.hex(),
        "size": row.size,
        "chunks": row.chunks.hex() if row.chunks else None,
        "mode": row.mode,
        "schema": row.schema.hex() if row.schema else None,
        "rows": row.rows,
    }


# -- the routes, one call each ----------------------------------------------------------
async def create(remote: HttpRemote, branch: str, name: str | None = None) -> dict[str, Any]:
    return await remote.call("POST", ROUTE, {"branch": branch, "name": name})


async def list_all(remote: HttpRemote) -> list[dict[str, Any]]:
    return list((await remote.call("GET", ROUTE))["workspaces"])


async def status(remote: HttpRemote, ws: str) -> dict[str, Any]:
    return await remote.call("GET", f"{ROUTE}/{ws}")


async def delete(remote: HttpRemote, ws: str) -> None:
    await remote.call("DELETE", f"{ROUTE}/{ws}")


async def add(
    remote: HttpRemote,
    ws: str,
    sources: list[str],
    dst: str = "",
    progress: ProgressFactory = null_progress,
) -> Staged:
    """Upload local files or folders into the workspace (under ``dst``) and stage them."""
    files = await asyncio.to_thread(local_files, sources, dst)
    if not files:
        raise OxenError("no files to add")
    return await stage(remote, ws, files, progress)


async def stage(
    remote: HttpRemote,
    ws: str,
    files: list[tuple[Path, str, str, FileStat]],
    progress: ProgressFactory = null_progress,
) -> Staged:
    """Upload ``files`` (from :func:`local_files` or :func:`placed_files`) and stage them."""
    rows, hashed, sent = await send_files(remote, files, progress)
    for i in range(0, len(rows), 10_000):
        batch = [_entry(r) for r in rows[i : i + 10_000]]
        await remote.call("POST", f"{ROUTE}/{ws}/files", {"files": batch})
    return Staged([r.path for r in rows], hashed, sent)


def placed_files(
    pairs: list[tuple[Path, str]], scratch: Path
) -> list[tuple[Path, str, str, FileStat]]:
    """(root, path under root, path in the repository, stat) of local files each going to
    the repository path it is paired with. A file whose name differs from its
    destination's is linked (or copied) into ``scratch`` under that name first: the name
    decides whether it is described as a table."""
    out: list[tuple[Path, str, str, FileStat]] = []
    seen: set[str] = set()
    for i, (local, dest) in enumerate(pairs):
        check_repo_path(dest)
        if dest in seen:
            raise PathError(f"two files would go to {dest}")
        seen.add(dest)
        if not local.is_file():
            raise PathError(f"no such file: {local}")
        name = dest.rsplit("/", 1)[-1]
        if local.name != name:
            renamed = scratch / str(i) / name
            renamed.parent.mkdir(parents=True)
            try:
                os.link(local, renamed)
            except OSError:  # another filesystem, or one without hard links
                shutil.copyfile(local, renamed)
            local = renamed
        out.append((local.parent, name, dest, FileStat.of(local.stat())))
    return out


async def remove(remote: HttpRemote, ws: str, paths: list[str]) -> dict[str, Any]:
    return await remote.call("POST", f"{ROUTE}/{ws}/remove", {"paths": paths})


async def unstage(remote: HttpRemote, ws: str, paths: list[str]) -> dict[str, Any]:
    return await remote.call("POST", f"{ROUTE}/{ws}/unstage", {"paths": paths})


async def listing(remote: HttpRemote, ws: str, path: str = "") -> dict[str, Any]:
    route = f"{ROUTE}/{ws}/ls" + (f"/{path.strip('/')}" if path.strip("/") else "")
    return await remote.call("GET", route)


async def rows(
    remote: HttpRemote,
    ws: str,
    path: str,
    offset: int = 0,
    limit: int = 100,
    columns: list[str] | None = None,
    where: str | None = None,
) -> dict[str, Any]:
    """A page of the workspace's version of a tabular file (staged, else the branch's)."""
    params = {"offset": str(offset), "limit": str(limit)}
    if columns:
        params["columns"] = ",".join(columns)
    if where is not None:
        params["filter"] = where
    return await remote.call("GET", f"{ROUTE}/{ws}/rows/{quote(path)}", params=params)


async def edit_rows(
    remote: HttpRemote,
    ws: str,
    path: str,
    keys: list[str] | None = None,
    append: list[dict[str, Any]] | None = None,
    update: list[dict[str, Any]] | None = None,
    delete: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Append rows, and update or delete rows by ``keys``, of a tabular file: the server
    writes its next version and stages it.  Counts of rows appended, updated, deleted."""
    body = {
        "keys": keys or [],
        "append": append or [],
        "update": update or [],
        "delete": delete or [],
    }
    return await remote.call("POST", f"{ROUTE}/{ws}/rows/{quote(path)}", body)


async def commit(remote: HttpRemote, ws: str, message: str) -> dict[str, Any]:
    return await remote.call("POST", f"{ROUTE}/{ws}/commit", {"message": message})


async def change_branch(
    remote: HttpRemote,
    branch: str,
    message: str,
    files: list[tuple[Path, str]] | None = None,
    removals: list[str] | None = None,
    progress: ProgressFactory = null_progress,
    recursive: bool = True,
) -> str:
    """One commit on ``branch`` made on the server: local files put at repository paths
    (``(local, path)`` pairs) and paths removed (files, or every file under a folder;
    without ``recursive``, a folder among ``removals`` is IsAFolder and nothing is
    committed), through a workspace deleted afterwards. The new commit's id (hex)."""
    if not files and not removals:
        raise OxenError("nothing to change")
    ws = (await create(remote, branch))["id"]
    try:
        if files:
            with tempfile.TemporaryDirectory(prefix="oxen-put-") as scratch:
                placed = await asyncio.to_thread(placed_files, files, Path(scratch))
                await stage(remote, ws, placed, progress)
        if removals:
            await remove(remote, ws, removals)
            if not recursive:
                await _refuse_folders(remote, ws, removals)
        done = await commit(remote, ws, message)
    finally:
        try:
            await delete(remote, ws)
        except OxenError:
            pass  # it expires on its own
    return str(done["commit"])


async def _refuse_folders(remote: HttpRemote, ws: str, removals: list[str]) -> None:
    """IsAFolder when removing ``removals`` staged the removal of a folder's files (the
    workspace's status, one request, says which)."""
    removed = (await status(remote, ws))["removed"]
    named = set(removals)
    folders = sorted({p for p in named for r in removed if r.startswith(p + "/")})
    if folders:
        raise IsAFolder(f"{folders[0]} is a folder: remove it recursively")


async def upload(
    remote: HttpRemote,
    sources: list[str],
    message: str,
    branch: str = "main",
    dst: str = "",
    progress: ProgressFactory = null_progress,
) -> tuple[str, Staged]:
    """A workspace, the files added, committed, the workspace removed: the new commit."""
    ws = (await create(remote, branch))["id"]
    try:
        staged = await add(remote, ws, sources, dst, progress)
        done = await commit(remote, ws, message)
    finally:
        try:
            await delete(remote, ws)
        except OxenError:
            pass  # it expires on its own
    return str(done["commit"]), staged
