"""Looking inside a repository: ``info`` on a path, the merkle ``tree``, one ``node``, ``fsck``."""

from __future__ import annotations

import asyncio
import mimetypes
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from oxen.core.repository import Repository
from oxen.errors import CorruptObject, MissingObject, OxenError, PathError
from oxen.formats.ids import from_hex
from oxen.formats.nodes import (
    ChunkIndex,
    CommitNode,
    DirEntry,
    DirNode,
    FileEntry,
    Node,
    Schema,
    VNode,
    decode_node,
)
from oxen.objects import chunklists
from oxen.objects.pack_check import check_pack
from oxen.objects.pack_index import stored_packs
from oxen.trees import history as history_walks
from oxen.trees.integrity import check_reachable
from oxen.trees.walk import Follow
from oxen.verbs.schemas import read_schemas

HISTORY = Follow.PARENTS | Follow.TREES  # what a working copy always holds of its refs
TIPS_DATA = Follow.TREES | Follow.CHUNK_LISTS  # and the data of their tips, not of their past

DataType = Literal["text", "image", "audio", "video", "tabular", "binary", "dir"]
_TABULAR = {".csv", ".tsv", ".parquet", ".arrow", ".feather", ".jsonl", ".ndjson", ".orc", ".avro"}
_EXTRA_MIME = {
    ".parquet": "application/vnd.apache.parquet",
    ".arrow": "application/vnd.apache.arrow.file",
    ".jsonl": "application/jsonl",
    ".ndjson": "application/x-ndjson",
}


def data_type(path: str) -> tuple[DataType, str, str]:
    """(data type, mime type, extension) guessed from the name, as Oxen labels them."""
    ext = os.path.splitext(path)[1].lower()
    mime = _EXTRA_MIME.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"
    kind: DataType
    if ext in _TABULAR:
        kind = "tabular"
    else:
        major = mime.split("/")[0]
        kind = major if major in ("image", "video", "audio", "text") else "binary"  # type: ignore[assignment]
        if mime in ("application/json", "application/xml", "application/x-yaml"):
            kind = "text"
    return kind, mime, ext.lstrip(".")


@dataclass(frozen=True)
class FileInfo:
    """What ``oxen info`` says of a path (in a revision, else in the working tree)."""

    path: str
    data_type: DataType
    mime_type: str
    extension: str
    id: str
    size: int
    tracked: bool
    chunks: int | None = None  # files in a revision
    files: int | None = None  # directories
    last_commit: str | None = None  # tracked paths: the newest commit that changed it
    format: str | None = None  # tabular files: csv, parquet, ...
    rows: int | None = None
    columns: list[str] | None = None  # "name: type"
    note: str | None = None  # why a file of a tabular type is versioned as binary
    pages: str | None = None  # parquet: whether its pages were cut by content

    def as_dict(self) -> dict[str, Any]:
        """Fields in display order, without those that do not apply."""
        return {k: v for k, v in asdict(self).items() if v is not None or k == "last_commit"}


TreeRowKind = Literal["dir", "vnode", "file"]


@dataclass(frozen=True)
class TreeRow:
    depth: int
    kind: TreeRowKind
    name: str
    id: bytes
    size: int
    count: int


@dataclass(frozen=True)
class NodeInfo:
    id: bytes
    node: Node

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id.hex(), **node_as_dict(self.node)}


@dataclass
class FsckReport:
    packs: int = 0
    objects: int = 0
    bytes: int = 0
    commits: int = 0
    problems: list[str] = field(default_factory=list)
    absent_held: int = 0  # objects not here that the remote holds (a partial clone)
    absent_unchecked: int = 0  # ...not asked of the remote (offline)


def node_as_dict(node: Node) -> dict[str, Any]:
    if isinstance(node, CommitNode):
        return {
            "type": "commit",
            "tree": node.tree.hex(),
            "parents": [p.hex() for p in node.parents],
            "author": node.author,
            "email": node.email,
            "timestamp": node.timestamp,
            "tz_offset": node.tz_offset,
            "message": node.message,
        }
    if isinstance(node, DirNode):
        return {
            "type": "dir",
            "vnodes": [v.hex() for v in node.vnodes],
            "size": node.size,
            "files": node.count,
            "entries": node.entries,
        }
    if isinstance(node, ChunkIndex):
        return {
            "type": "chunk-index",
            "lists": [c.hex() for c in node.lists],
            "sizes": list(node.sizes),
            "counts": list(node.counts),
        }
    if isinstance(node, VNode):
        rows = []
        for e in node.entries:
            if isinstance(e, FileEntry):
                rows.append(
                    {
                        "type": "file",
                        "name": e.name,
                        "id": e.id.hex(),
                        "size": e.size,
                        "chunks": e.chunks.hex() if e.chunks else None,
                        "mode": oct(e.mode),
                        **(
                            {"schema": e.schema.hex(), "rows": e.rows}
                            if e.schema is not None
                            else {}
                        ),
                    }
                )
            else:
                rows.append(
                    {
                        "type": "dir",
                        "name": e.name,
                        "id": e.id.hex(),
                        "size": e.size,
                        "files": e.count,
                    }
                )
        return {"type": "vnode", "entries": rows}
    if isinstance(node, Schema):
        return {
            "type": "schema",
            "format": node.format,
            "columns": [list(c) for c in node.columns],
            **({"error": node.error} if node.error else {}),
        }
    return {
        "type": "chunks",
        "chunks": [[c.hex(), n] for c, n in zip(node.ids, node.lengths, strict=True)],
    }


async def info(repo: Repository, user_path: str, rev: str = "HEAD") -> FileInfo:
    path = repo.repo_path(user_path)
    if not path:
        raise PathError("info needs a path inside the repository")
    head = (await repo.head()).commit
    cid = await repo.resolve(rev) if head is not None or rev != "HEAD" else None
    tree = (await repo.read_commit(cid)).tree if cid else None
    entry = await repo.trees.lookup(tree, path) if tree else None
    kind, mime, ext = data_type(path)
    if entry is None:
        local = repo.root / path
        if not await asyncio.to_thread(local.is_file):
            raise PathError(f"no such file in {rev} or the working tree: {user_path}")
        oid = await asyncio.to_thread(repo.chunker().file_id_of, str(local))
        size = (await asyncio.to_thread(local.stat)).st_size
        found = FileInfo(path, kind, mime, ext, oid.hex(), size, tracked=False)
        if ext == "parquet":
            found = replace(found, pages=await asyncio.to_thread(_local_pages, local))
        return found
    assert cid is not None
    last = (await _last_change(repo, cid, path)).hex()
    if isinstance(entry, DirEntry):
        directory = FileInfo(path, "dir", "inode/directory", "", entry.id.hex(), entry.size, True)
        return replace(directory, files=entry.count, last_commit=last)
    chunks = 1
    if entry.chunks is not None:
        expanded = await chunklists.expand(repo.objects, {entry.chunks: entry.size})
        chunks = len(expanded[entry.chunks][0])
    found = FileInfo(
        path, kind, mime, ext, entry.id.hex(), entry.size, True, chunks=chunks, last_commit=last
    )
    if entry.schema is None:
        return found
    schema = (await read_schemas(repo, [entry.schema]))[entry.schema]
    if schema.error:
        return replace(found, data_type="binary", note=schema.error)
    columns = [f"{name}: {kind}" for name, kind in schema.columns]
    found = replace(found, format=schema.format, rows=entry.rows, columns=columns)
    if schema.format == "parquet":
        found = replace(found, pages=await _stored_pages(repo, path, entry))
    return found


def _local_pages(path: os.PathLike[str]) -> str:
    with open(path, "rb") as f:
        return _describe_pages(f)


async def _stored_pages(repo: Repository, path: str, entry: FileEntry) -> str:
    """Read from the store, a few page headers' chunks (fetched on demand if not held)."""
    from oxen.trees.tree import file_row
    from oxen.verbs.stored_file import StoredFile, SyncReader

    reader = SyncReader(StoredFile(repo, file_row(path, entry)), asyncio.get_running_loop())
    try:
        return await asyncio.to_thread(_describe_pages, reader)
    except MissingObject:
        return "unknown (this clone does not hold the file's data)"


def _describe_pages(f: Any) -> str:
    from oxen.worktree.parquet_pages import page_cuts

    try:
        return page_cuts(f).describe()
    except MissingObject:
        raise
    except (ValueError, OSError, IndexError, KeyError) as e:  # a damaged file: info answers
        return f"unknown (cannot read its pages: {str(e).splitlines()[0][:120]})"


async def _last_change(repo: Repository, start: bytes, path: str) -> bytes:
    """The newest commit, following first parents, whose version of ``path`` differs from its parent's."""
    cid = start
    commit = await repo.read_commit(cid)
    current = await repo.trees.lookup(commit.tree, path)
    while commit.parents:
        parent = await repo.read_commit(commit.parents[0])
        before = await repo.trees.lookup(parent.tree, path)
        if before != current:
            return cid
        cid, commit = parent.id, parent
    return cid


async def tree_rows(
    repo: Repository, rev: str = "HEAD", files: bool = False, max_depth: int | None = None
) -> list[TreeRow]:
    root = await repo.tree_of(rev)
    rows: list[TreeRow] = []
    # depth first, in order, with a stack of what is left to show (no recursion)
    stack: list[TreeRow | tuple[bytes, str, int]] = [(root, "/", 0)]
    while stack:
        item = stack.pop()
        if isinstance(item, TreeRow):
            rows.append(item)
            continue
        dir_id, name, depth = item
        node = await repo.trees.dir_node(dir_id)
        rows.append(TreeRow(depth, "dir", name, dir_id, node.size, node.count))
        if max_depth is not None and depth >= max_depth:
            continue
        vnodes = await repo.objects.read_nodes(node.vnodes)
        pending: list[TreeRow | tuple[bytes, str, int]] = []
        for vid in node.vnodes:
            vnode = vnodes[vid]
            assert isinstance(vnode, VNode)
            size = sum(e.size for e in vnode.entries)
            pending.append(TreeRow(depth + 1, "vnode", "", vid, size, len(vnode.entries)))
            for e in vnode.entries:
                if isinstance(e, DirEntry):
                    pending.append((e.id, e.name + "/", depth + 2))
                elif files:
                    pending.append(TreeRow(depth + 2, "file", e.name, e.id, e.size, 1))
        stack.extend(reversed(pending))
    return rows


@dataclass
class FileIdInfo:
    """A file id (as ``tree --files`` and ``info`` print it): the chunks that make it."""

    id: bytes
    size: int
    chunks: list[bytes]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id.hex(),
            # one chunk: that chunk's id is the id of any file made of it alone
            "type": "file" if self.chunks != [self.id] else "chunk",
            "size": self.size,
            "chunks": len(self.chunks),
            "chunk_ids": [c.hex() for c in self.chunks[:100]],
        }


async def node(repo: Repository, id_hex: str) -> NodeInfo | FileIdInfo:
    """A node by id, or a file by its id (a file of one chunk is that chunk; a file of
    several is known by the chunk map ``add`` and ``clone`` record)."""
    try:
        oid = from_hex(id_hex.strip().lower())
    except ValueError:
        raise OxenError(f"not an object id (64 hex characters): {id_hex}") from None
    located = await repo.db.locate([oid])
    if not located:
        chunks = (await repo.db.chunk_maps([oid])).get(oid)
        if chunks is None:
            raise MissingObject(f"no node or file {id_hex} in this repository")
        lengths = await repo.db.locate(chunks)
        return FileIdInfo(oid, sum(loc.length for loc in lengths.values()), chunks)
    data = (await repo.objects.read_blobs([oid]))[oid]
    try:
        return NodeInfo(oid, decode_node(data))
    except CorruptObject:
        return FileIdInfo(oid, len(data), [oid])  # a file of one chunk


async def fsck(repo: Repository) -> FsckReport:
    """Re-hash every stored object and decode every node; check that every indexed pack
    exists, that the whole history of every ref and HEAD (commits and trees) is stored and
    intact, and the data of their tips."""
    report = FsckReport()
    listed = {hex_id: key async for hex_id, key in stored_packs(repo.store)}
    damaged: dict[bytes, str] = {}
    for hex_id, key in sorted(listed.items()):
        check = await check_pack(repo.store, hex_id, key)
        report.packs += 1
        report.objects += check.objects
        report.bytes += check.bytes
        report.problems.extend(str(p) for p in check.problems)
        damaged.update(dict.fromkeys(check.corrupt, "is corrupt"))
    indexed = {p.hex(): p for p, _, _ in await repo.db.packs()}
    for hex_id in sorted(indexed.keys() - listed.keys()):
        report.problems.append(f"pack {hex_id} is indexed but missing from the store")
        lost = await repo.db.objects_in_pack(indexed[hex_id])
        damaged.update(dict.fromkeys((oid for oid, *_ in lost), f"its pack {hex_id} is missing"))
    # every commit and tree node of the history; the data (chunk lists and chunks) of the
    # tips only: a clone or fetch brings older versions' data only when asked (--all)
    # (a partial clone: what it does not hold is asked of its remote, below)
    tips = await repo.refs.tips()
    partial = await repo.partial()
    stop = await history_walks.parents_of(repo.objects, partial.shallow)
    absent: dict[bytes, str] = {}
    history = await check_reachable(
        repo.objects, tips, damaged=damaged, follow=HISTORY, absent=absent, stop=stop
    )
    data = await check_reachable(
        repo.objects, tips, damaged=damaged, follow=TIPS_DATA, absent=absent, stop=stop
    )
    report.commits = history.commits
    report.problems.extend(dict.fromkeys(str(p) for p in history.problems + data.problems))
    await _account_absent(repo, partial.is_partial, absent, report)
    return report


async def _account_absent(
    repo: Repository, partial: bool, absent: dict[bytes, str], report: FsckReport
) -> None:
    """Objects not stored here: held by the remote (a partial clone's normal state),
    lost (the remote lacks them too), or, offline, unchecked (an error unless the clone
    is partial)."""
    if not absent:
        return
    if repo.on_demand is not None:
        lacking = await repo.on_demand.lacks(sorted(absent))
        report.absent_held = len(absent) - len(lacking)
        report.problems.extend(
            f"{absent[oid]} {oid.hex()} is referenced but is stored neither here nor on the remote"
            for oid in sorted(lacking)
        )
    elif partial:
        report.absent_unchecked = len(absent)
    else:
        report.problems.extend(
            f"{kind} {oid.hex()} is referenced but is not stored" for oid, kind in absent.items()
        )
