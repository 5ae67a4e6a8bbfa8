"""Looking inside a repository: ``info`` on a path, the merkle ``tree``, one ``node``, ``fsck``."""

from __future__ import annotations

import mimetypes
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from oxen import chunklists
from oxen.errors import CorruptObject, MissingObject, OxenError, PathError
from oxen.ids import from_hex, hash_bytes, hash_file
from oxen.nodes import (
    CommitNode,
    DirEntry,
    DirNode,
    FileEntry,
    Node,
    VNode,
    decode_node,
)
from oxen.packs import FOOTER_LEN, decode_footer, decode_trailer
from oxen.reachability import walk
from oxen.storage import ByteRange

if TYPE_CHECKING:
    from oxen.repo import AsyncRepo

VERIFY_WINDOW = 16 * 1024 * 1024

_TABULAR = {".csv", ".tsv", ".parquet", ".arrow", ".feather", ".jsonl", ".ndjson", ".orc", ".avro"}
_EXTRA_MIME = {
    ".parquet": "application/vnd.apache.parquet",
    ".arrow": "application/vnd.apache.arrow.file",
    ".jsonl": "application/jsonl",
    ".ndjson": "application/x-ndjson",
}


def data_type(path: str) -> tuple[str, str, str]:
    """(data type, mime type, extension) guessed from the name, as Oxen labels them."""
    ext = os.path.splitext(path)[1].lower()
    mime = _EXTRA_MIME.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"
    if ext in _TABULAR:
        kind = "tabular"
    else:
        kind = {"image": "image", "video": "video", "audio": "audio", "text": "text"}.get(
            mime.split("/")[0], "binary"
        )
        if mime in ("application/json", "application/xml", "application/x-yaml"):
            kind = "text"
    return kind, mime, ext.lstrip(".")


@dataclass(frozen=True)
class TreeRow:
    depth: int
    kind: str  # "dir" | "vnode" | "file"
    name: str
    id: bytes
    size: int
    count: int


@dataclass
class FsckReport:
    packs: int = 0
    objects: int = 0
    bytes: int = 0
    commits: int = 0
    problems: list[str] = field(default_factory=list)


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
    return {
        "type": "chunks",
        "chunks": [[c.hex(), n] for c, n in zip(node.ids, node.lengths, strict=True)],
    }


class InspectOps:
    """Inspection verbs of :class:`oxen.repo.AsyncRepo`."""

    async def info(self: AsyncRepo, user_path: str, rev: str = "HEAD") -> dict[str, Any]:
        path = self.repo_path(user_path)
        if not path:
            raise PathError("info needs a path inside the repository")
        _, head = await self.head()
        cid = await self.resolve(rev) if head is not None or rev != "HEAD" else None
        tree = (await self.read_commit(cid)).tree if cid else None
        entry = await self.trees.lookup(tree, path) if tree else None
        kind, mime, ext = data_type(path)
        out: dict[str, Any] = {"path": path, "data_type": kind, "mime_type": mime, "extension": ext}
        if entry is None:
            local = self.root / path
            if not local.is_file():
                raise PathError(f"no such file in {rev} or the working tree: {user_path}")
            out.update(
                id=hash_file(str(local)).hex(),
                size=local.stat().st_size,
                tracked=False,
                last_commit=None,
            )
            return out
        out.update(id=entry.id.hex(), size=entry.size, tracked=True)
        if isinstance(entry, DirEntry):
            out.update(
                data_type="dir", mime_type="inode/directory", extension="", files=entry.count
            )
        elif entry.chunks is not None:
            expanded = await chunklists.expand(self.objects, [entry.chunks])
            out["chunks"] = len(expanded[entry.chunks][0])
        else:
            out["chunks"] = 1
        out["last_commit"] = (await self._last_change(cid, path)).hex() if cid else None  # type: ignore[arg-type]
        return out

    async def _last_change(self: AsyncRepo, start: bytes, path: str) -> bytes:
        """The newest commit, following first parents, whose version of ``path`` differs from its parent's."""
        cid = start
        commit = await self.read_commit(cid)
        current = await self.trees.lookup(commit.tree, path)
        while commit.parents:
            parent = await self.read_commit(commit.parents[0])
            before = await self.trees.lookup(parent.tree, path)
            if before != current:
                return cid
            cid, commit = parent.id, parent
        return cid

    async def tree_rows(
        self: AsyncRepo, rev: str = "HEAD", files: bool = False, max_depth: int | None = None
    ) -> list[TreeRow]:
        root = (await self.read_commit(await self.resolve(rev))).tree
        rows: list[TreeRow] = []

        async def visit(dir_id: bytes, name: str, depth: int) -> None:
            node = await self.trees.dir_node(dir_id)
            rows.append(TreeRow(depth, "dir", name, dir_id, node.size, node.count))
            if max_depth is not None and depth >= max_depth:
                return
            vnodes = await self.objects.read_nodes(node.vnodes)
            for vid in node.vnodes:
                vnode = vnodes[vid]
                assert isinstance(vnode, VNode)
                rows.append(
                    TreeRow(
                        depth + 1,
                        "vnode",
                        "",
                        vid,
                        sum(e.size for e in vnode.entries),
                        len(vnode.entries),
                    )
                )
                for e in vnode.entries:
                    if isinstance(e, DirEntry):
                        await visit(e.id, e.name + "/", depth + 2)
                    elif files:
                        rows.append(TreeRow(depth + 2, "file", e.name, e.id, e.size, 1))

        await visit(root, "/", 0)
        return rows

    async def node(self: AsyncRepo, id_hex: str) -> dict[str, Any]:
        try:
            oid = from_hex(id_hex.strip().lower())
        except ValueError:
            raise OxenError(f"not a node id (32 hex characters): {id_hex}") from None
        if not await self.db.locate([oid]):
            raise MissingObject(f"no node {id_hex} in this repository")
        data = (await self.objects.read_blobs([oid]))[oid]
        try:
            node = decode_node(data)
        except CorruptObject:
            raise OxenError(f"{id_hex} is a data chunk, not a node") from None
        return {"id": oid.hex(), **node_as_dict(node)}

    async def fsck(self: AsyncRepo) -> FsckReport:
        """Re-hash every stored object; check that every index row and reachable object exists."""
        report = FsckReport()
        listed = {}
        async for key in self.store.list("packs/"):
            name = key.rsplit("/", 1)[-1]
            if name.endswith(".pack"):
                listed[name[:-5]] = key
        for hex_id, key in sorted(listed.items()):
            report.packs += 1
            await self._verify_pack(hex_id, key, report)
        indexed = {p.hex() for p, _, _ in await self.db.packs()}
        for hex_id in sorted(indexed - listed.keys()):
            report.problems.append(f"pack {hex_id} is indexed but missing from the store")
        tips = set((await self.db.list_refs()).values())
        _, head = await self.head()
        if head:
            tips.add(head)
        try:
            reached = await walk(self.objects, tips)
        except (MissingObject, CorruptObject) as e:
            report.problems.append(f"history is broken: {e}")
            return report
        report.commits = len(reached.commits)
        located = await self.db.locate(reached.chunks)
        for cid in sorted(reached.chunks - located.keys()):
            report.problems.append(f"chunk {cid.hex()} is referenced but not stored")
        return report

    async def _verify_pack(self: AsyncRepo, hex_id: str, key: str, report: FsckReport) -> None:
        size = await self.store.size(key)
        try:
            if size is None or size < FOOTER_LEN:
                raise CorruptObject("too short")
            tail = await self.store.get_range(key, size - FOOTER_LEN, FOOTER_LEN)
            trailer_len = decode_footer(tail or b"")
            data_size = size - FOOTER_LEN - trailer_len
            if data_size < 0:
                raise CorruptObject("trailer length is wrong")
            trailer = await self.store.get_range(key, data_size, trailer_len) or b""
            if hash_bytes(trailer).hex() != hex_id:
                raise CorruptObject("index does not match the pack's name")
            entries = decode_trailer(trailer, data_size)
        except CorruptObject as e:
            report.problems.append(f"pack {hex_id} is corrupt: {e}")
            return
        window: list = []
        start = 0
        for i, e in enumerate(sorted(entries, key=lambda e: e.offset)):
            if not window:
                start = e.offset
            window.append(e)
            last = i == len(entries) - 1
            if last or e.offset + e.length - start >= VERIFY_WINDOW:
                end = max(x.offset + x.length for x in window)
                data = await self.store.get_ranges(key, [ByteRange(start, end - start)])
                blob_area = memoryview(data[0]) if data else memoryview(b"")
                for x in window:
                    blob = blob_area[x.offset - start : x.offset - start + x.length]
                    report.objects += 1
                    report.bytes += len(blob)
                    if len(blob) != x.length or hash_bytes(blob) != x.id:
                        report.problems.append(
                            f"object {x.id.hex()} in pack {hex_id} is corrupt (its bytes do not match its id)"
                        )
                window = []
