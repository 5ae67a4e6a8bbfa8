"""Reading, diffing and incrementally rebuilding merkle trees.

A tree change touches only the directories on the changed paths, and inside each of
them only the VNodes whose buckets hold a changed name (unless the directory grows or
shrinks past a bucket-count boundary, when it is re-bucketed once).  Untouched subtrees
keep their ids, so unchanged data is never re-read or re-written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import NamedTuple

from oxen.db.rows import FileRow
from oxen.errors import CorruptObject, PathError
from oxen.formats.limits import MAX_DEPTH
from oxen.formats.nodes import (
    DirEntry,
    DirNode,
    Entry,
    FileEntry,
    Node,
    VNode,
    bucket_count,
    bucket_of,
    encode_with_id,
)
from oxen.objects.object_store import ObjectStore

EMPTY_DIR = DirNode((), 0, 0, 0)


# Whether a walk enters a folder ('a/b/'): a partial clone's scope
Within = Callable[[str], bool]


class Change(NamedTuple):
    """How one path differs between two trees (None: absent on that side)."""

    old: FileRow | None
    new: FileRow | None


def file_row(path: str, e: FileEntry) -> FileRow:
    return FileRow(path, e.id, e.size, e.chunks, e.mode, e.schema, e.rows)


class Trees:
    def __init__(self, objects: ObjectStore, vnode_size: int) -> None:
        self.objects = objects
        self.vnode_size = vnode_size

    async def dir_node(self, oid: bytes) -> DirNode:
        node = await self.objects.read_node(oid)
        if not isinstance(node, DirNode):
            raise CorruptObject(f"node {oid.hex()} is not a directory")
        return node

    async def _vnodes(self, ids: list[bytes]) -> dict[bytes, VNode]:
        nodes = await self.objects.read_nodes(ids)
        for oid, n in nodes.items():
            if not isinstance(n, VNode):
                raise CorruptObject(f"node {oid.hex()} is not a vnode")
        return nodes  # type: ignore[return-value]

    async def entries(self, dir_id: bytes) -> dict[str, Entry]:
        node = await self.dir_node(dir_id)
        return {e.name: e for vnode in await self.buckets(node) for e in vnode.entries}

    async def buckets(self, node: DirNode) -> list[VNode]:
        """A directory's VNodes in bucket order, read in one batch, each checked to hold
        only the names that hash to it (each one's entries are sorted by name)."""
        vnodes = await self._vnodes(list(node.vnodes))
        for i, vid in enumerate(node.vnodes):
            check_bucket(vnodes[vid], i, len(node.vnodes))
        return [vnodes[vid] for vid in node.vnodes]

    # -- reading -----------------------------------------------------------------------
    async def flatten(
        self, tree_id: bytes, prefix: str = "", within: Within | None = None
    ) -> dict[str, FileRow]:
        """Every file of a tree, path -> row, reading each level's nodes in one batch;
        ``within``: only below the folders it accepts (a partial clone's scope)."""
        out: dict[str, FileRow] = {}
        level = [(prefix, tree_id)]
        while level:
            check_depth(level[0][0])
            dirs = await self.objects.read_nodes({d for _, d in level})
            pairs = []
            for pfx, did in level:
                node = dirs[did]
                if not isinstance(node, DirNode):
                    raise CorruptObject(f"node {did.hex()} is not a directory")
                n = len(node.vnodes)
                pairs.extend((pfx, i, vid, n) for i, vid in enumerate(node.vnodes))
            vnodes = await self._vnodes(list({v for _, _, v, _ in pairs}))
            level = []
            for pfx, i, vid, buckets in pairs:
                check_bucket(vnodes[vid], i, buckets)
                for e in vnodes[vid].entries:
                    if isinstance(e, DirEntry):
                        if within is None or within(f"{pfx}{e.name}/"):
                            level.append((f"{pfx}{e.name}/", e.id))
                    else:
                        out[pfx + e.name] = file_row(pfx + e.name, e)
        return out

    async def lookup(self, tree_id: bytes, path: str) -> Entry | None:
        """The entry at ``path`` ("" is not an entry), reading one VNode per level."""
        dir_id = tree_id
        parts = path.split("/")
        for i, name in enumerate(parts):
            node = await self.dir_node(dir_id)
            if not node.vnodes:
                return None
            vid = node.vnodes[bucket_of(name, len(node.vnodes))]
            vnode = (await self._vnodes([vid]))[vid]
            entry = next((e for e in vnode.entries if e.name == name), None)
            if entry is None or i == len(parts) - 1:
                return entry
            if not isinstance(entry, DirEntry):
                return None
            dir_id = entry.id
        return None

    async def subtree_files(self, tree_id: bytes, path: str) -> dict[str, FileRow]:
        """Files at or below ``path`` in a tree."""
        if not path:
            return await self.flatten(tree_id)
        entry = await self.lookup(tree_id, path)
        if entry is None:
            return {}
        if isinstance(entry, FileEntry):
            return {path: file_row(path, entry)}
        return await self.flatten(entry.id, path + "/")

    # -- diffing -----------------------------------------------------------------------
    async def diff(
        self, a: bytes | None, b: bytes | None, prefix: str = "", within: Within | None = None
    ) -> dict[str, Change]:
        """path -> (old, new) for every file that differs, descending only where ids differ
        (a worklist, not recursion: depth costs no stack); ``within``: only into the
        folders it accepts (files directly in a folder entered are all compared)."""
        out: dict[str, Change] = {}
        work: list[tuple[bytes | None, bytes | None, str]] = [(a, b, prefix)]
        while work:
            a, b, prefix = work.pop()
            if a == b or (within is not None and prefix and not within(prefix)):
                continue
            check_depth(prefix)
            if a is None or b is None:
                side = await self.flatten(a or b, prefix, within)  # type: ignore[arg-type]
                for path, row in side.items():
                    out[path] = Change(row, None) if b is None else Change(None, row)
                continue
            await self._diff_dirs(a, b, prefix, out, work)
        return out

    async def _diff_dirs(
        self,
        a: bytes,
        b: bytes,
        prefix: str,
        out: dict[str, Change],
        work: list[tuple[bytes | None, bytes | None, str]],
    ) -> None:
        """Compare two directories: files into ``out``, differing subdirectories onto
        ``work``."""
        na, nb = await self.dir_node(a), await self.dir_node(b)
        if len(na.vnodes) == len(nb.vnodes):
            pairs = [(x, y) for x, y in zip(na.vnodes, nb.vnodes, strict=True) if x != y]
        else:
            pairs = [(None, None)]
        vnodes = await self._vnodes(
            [v for pair in pairs for v in pair if v is not None]
            + (list(na.vnodes) + list(nb.vnodes) if pairs == [(None, None)] else [])
        )
        for node in (na, nb):
            for i, vid in enumerate(node.vnodes):
                if vid in vnodes:
                    check_bucket(vnodes[vid], i, len(node.vnodes))
        for va, vb in pairs:
            if va is None and vb is None:
                ea = {e.name: e for v in na.vnodes for e in vnodes[v].entries}
                eb = {e.name: e for v in nb.vnodes for e in vnodes[v].entries}
            else:
                ea = {e.name: e for e in vnodes[va].entries}  # type: ignore[index]
                eb = {e.name: e for e in vnodes[vb].entries}  # type: ignore[index]
            for name in ea.keys() | eb.keys():
                x, y = ea.get(name), eb.get(name)
                if x == y:
                    continue
                path = prefix + name
                if isinstance(x, DirEntry) and isinstance(y, DirEntry):
                    work.append((x.id, y.id, path + "/"))
                    continue
                if isinstance(x, DirEntry):
                    work.append((x.id, None, path + "/"))
                    x = None
                if isinstance(y, DirEntry):
                    work.append((None, y.id, path + "/"))
                    y = None
                old = file_row(path, x) if x is not None else None
                new = file_row(path, y) if y is not None else None
                if old != new and (old or new):
                    out[path] = Change(old, new)

    # -- building ----------------------------------------------------------------------
    async def apply(
        self, tree_id: bytes | None, changes: dict[str, FileRow | None]
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """A new tree: ``tree_id`` with each path set to a file (row) or removed (None).

        Returns the new root id and the encoded nodes that were created for it.
        """
        new_nodes: list[tuple[bytes, bytes]] = []
        result = await self._rebuild(tree_id, changes, new_nodes, "")
        if result is None:
            oid, data = encode_with_id(EMPTY_DIR)
            new_nodes.append((oid, data))
            return oid, new_nodes
        return result[0], new_nodes

    async def _rebuild(
        self,
        dir_id: bytes | None,
        changes: dict[str, FileRow | None],
        new_nodes: list[tuple[bytes, bytes]],
        where: str,
    ) -> tuple[bytes, int, int] | None:
        check_depth(where)
        here: dict[str, FileRow | None] = {}
        below: dict[str, dict[str, FileRow | None]] = defaultdict(dict)
        for rel, row in changes.items():
            name, _, rest = rel.partition("/")
            if rest:
                below[name][rest] = row
            else:
                here[name] = row
        old = await self.dir_node(dir_id) if dir_id is not None else EMPTY_DIR
        buckets = len(old.vnodes)
        touched = set(here) | set(below)
        if buckets:
            wanted = sorted({bucket_of(n, buckets) for n in touched})
            loaded = await self._vnodes([old.vnodes[i] for i in wanted])
            current = {i: {e.name: e for e in loaded[old.vnodes[i]].entries} for i in wanted}
        else:
            current = {}

        def existing(name: str) -> Entry | None:
            return current[bucket_of(name, buckets)].get(name) if buckets else None

        updates: dict[str, Entry | None] = {}
        for name, sub in below.items():
            prev = existing(name)
            sub_dir = prev.id if isinstance(prev, DirEntry) else None
            if isinstance(prev, FileEntry) and here.get(name, prev) is not None:
                raise PathError(f"{where}{name} is a file and cannot hold {where}{name}/...")
            res = await self._rebuild(sub_dir, sub, new_nodes, f"{where}{name}/")
            updates[name] = DirEntry(name, *res) if res is not None else None
        for name, row in here.items():
            new_file = (
                FileEntry(name, row.id, row.size, row.chunks, row.mode, row.schema, row.rows)
                if row is not None and row.id is not None
                else None
            )
            if name in below:
                if updates[name] is not None:  # the directory of that name stays
                    if new_file is not None:
                        raise PathError(f"{where}{name} cannot be both a file and a directory")
                    continue
                updates[name] = new_file
                continue
            if isinstance(existing(name), DirEntry):
                if new_file is not None:
                    raise PathError(f"{where}{name} is a directory and cannot become a file")
                continue
            updates[name] = new_file

        size, count, n_entries = old.size, old.count, old.entries
        for name, new in updates.items():
            prev = existing(name)
            if prev is not None:
                size -= prev.size
                count -= prev.count if isinstance(prev, DirEntry) else 1
                n_entries -= 1
            if new is not None:
                size += new.size
                count += new.count if isinstance(new, DirEntry) else 1
                n_entries += 1
        if n_entries == 0:
            return None
        new_buckets = bucket_count(n_entries, self.vnode_size)
        if new_buckets != buckets:
            everything = await self.entries(dir_id) if dir_id is not None else {}
            for name, new in updates.items():
                if new is None:
                    everything.pop(name, None)
                else:
                    everything[name] = new
            groups: dict[int, dict[str, Entry]] = {i: {} for i in range(new_buckets)}
            for name, e in everything.items():
                groups[bucket_of(name, new_buckets)][name] = e
            vnode_ids = [
                self._emit(VNode(_sorted(groups[i])), new_nodes) for i in range(new_buckets)
            ]
        else:
            for name, new in updates.items():
                group = current[bucket_of(name, buckets)]
                if new is None:
                    group.pop(name, None)
                else:
                    group[name] = new
            vnode_ids = list(old.vnodes)
            for i, group in current.items():
                vnode_ids[i] = self._emit(VNode(_sorted(group)), new_nodes)
        node = DirNode(tuple(vnode_ids), size, count, n_entries)
        return self._emit(node, new_nodes), size, count

    @staticmethod
    def _emit(node: Node, new_nodes: list[tuple[bytes, bytes]]) -> bytes:
        oid, data = encode_with_id(node)
        new_nodes.append((oid, data))
        return oid


def check_depth(prefix: str) -> None:
    """Refuse to go below ``prefix`` (``a/b/``) when that would pass MAX_DEPTH directories."""
    if prefix.count("/") >= MAX_DEPTH:
        raise CorruptObject(f"tree is deeper than {MAX_DEPTH} directories at {prefix[:200]}...")


def check_bucket(vnode: VNode, index: int, buckets: int) -> None:
    """Every entry of the ``index``-th VNode of a directory of ``buckets`` hashes there: a
    name in the wrong bucket (or in two) would be seen by some readers and not others."""
    if buckets > 1:
        for e in vnode.entries:
            if bucket_of(e.name, buckets) != index:
                raise CorruptObject(f"entry {e.name!r} is in the wrong vnode of its directory")


def _sorted(group: dict[str, Entry]) -> tuple[Entry, ...]:
    return tuple(group[n] for n in sorted(group))
