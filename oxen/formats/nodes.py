"""Merkle nodes and their msgpack encoding (formats only, no I/O).

    Commit -> Dir -> VNode -> (File entry | Dir entry -> Dir -> ...)

Entries are inline in VNodes; a directory's entries are spread over a power-of-two
number of VNodes by hash of the entry name, ~``vnode_size`` entries each, so adding one
file to a huge folder rewrites one VNode.  Every node is encoded as a msgpack array
whose first element is its type, ids as 32 raw bytes; a node's id is the BLAKE3 of
its encoding, so the same tree has the same ids everywhere.  Files of more than one
chunk point at a ChunkList node.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

import msgpack
import xxhash

from oxen.errors import CorruptObject
from oxen.formats.ids import ID_LEN, hash_bytes, split_ids

FILE_MODE = 0o644
EXEC_MODE = 0o755


class NodeType(IntEnum):
    COMMIT = 1
    DIR = 2
    VNODE = 3
    CHUNKS = 4
    CHUNK_INDEX = 5
    SCHEMA = 6


@dataclass(frozen=True, slots=True)
class FileEntry:
    name: str
    id: bytes
    size: int
    chunks: bytes | None = None  # ChunkList node id when the file has several chunks
    mode: int = FILE_MODE
    schema: bytes | None = None  # Schema node id of a tabular file (csv, parquet, ...)
    rows: int | None = None  # its row count (with a schema)

    is_dir = False


@dataclass(frozen=True, slots=True)
class DirEntry:
    name: str
    id: bytes
    size: int  # bytes of every file below
    count: int  # files below

    is_dir = True


Entry = FileEntry | DirEntry


@dataclass(frozen=True, slots=True)
class VNode:
    entries: tuple[Entry, ...]  # sorted by name


@dataclass(frozen=True, slots=True)
class DirNode:
    vnodes: tuple[bytes, ...]  # bucket i holds the entries whose name hashes to i
    size: int  # bytes of every file below
    count: int  # files below
    entries: int  # direct entries (files and subdirectories)


@dataclass(frozen=True, slots=True)
class CommitNode:
    tree: bytes
    parents: tuple[bytes, ...]
    author: str
    email: str
    timestamp: int  # seconds since the epoch
    tz_offset: int  # minutes east of UTC
    message: str


@dataclass(frozen=True, slots=True)
class ChunkList:
    ids: tuple[bytes, ...]
    lengths: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ChunkIndex:
    """A large file's chunk list split into content-defined groups (ChunkList nodes), so a
    change rewrites one group and this index, not a list of every chunk of the file."""

    lists: tuple[bytes, ...]
    sizes: tuple[int, ...]  # bytes covered by each list
    counts: tuple[int, ...]  # chunks in each list


@dataclass(frozen=True, slots=True)
class Schema:
    """A tabular file's columns, stored once by id and named by every file entry that has
    it (so each revision's schema is known without its data).  ``error``: why a file of
    a tabular type could not be read as one (it is then versioned as a binary file)."""

    format: str  # csv, tsv, parquet, arrow, jsonl
    columns: tuple[tuple[str, str], ...]  # (name, type) in order
    error: str = ""


Node = CommitNode | DirNode | VNode | ChunkList | ChunkIndex | Schema


def bucket_of(name: str, buckets: int) -> int:
    return xxhash.xxh3_64_intdigest(name.encode("utf-8", "surrogateescape")) % buckets


def bucket_count(entries: int, vnode_size: int) -> int:
    """The number of VNodes for a directory of ``entries`` entries: a power of two."""
    n = 1
    while entries > n * vnode_size:
        n *= 2
    return n


def encode_node(node: Node) -> bytes:
    if isinstance(node, VNode):
        rows = [
            _file_row(e) if isinstance(e, FileEntry) else [1, e.name, e.id, e.size, e.count]
            for e in node.entries
        ]
        body: list = [NodeType.VNODE, rows]
    elif isinstance(node, DirNode):
        body = [NodeType.DIR, list(node.vnodes), node.size, node.count, node.entries]
    elif isinstance(node, CommitNode):
        body = [
            NodeType.COMMIT,
            node.tree,
            list(node.parents),
            node.author,
            node.email,
            node.timestamp,
            node.tz_offset,
            node.message,
        ]
    elif isinstance(node, ChunkList):
        body = [NodeType.CHUNKS, b"".join(node.ids), list(node.lengths)]
    elif isinstance(node, ChunkIndex):
        body = [NodeType.CHUNK_INDEX, b"".join(node.lists), list(node.sizes), list(node.counts)]
    elif isinstance(node, Schema):
        body = [NodeType.SCHEMA, node.format, [list(c) for c in node.columns], node.error]
    else:  # pragma: no cover - exhaustive
        raise TypeError(type(node))
    return msgpack.packb(body, use_bin_type=True)


def _file_row(e: FileEntry) -> list:
    """A file entry as encoded: six fields, eight with a schema (so a tree of files that
    have none keeps the encoding, and the ids, it had before schemas existed)."""
    row = [0, e.name, e.id, e.size, e.chunks, e.mode]
    return row if e.schema is None else [*row, e.schema, e.rows]


def node_id(data: bytes) -> bytes:
    return hash_bytes(data)


def encode_with_id(node: Node) -> tuple[bytes, bytes]:
    data = encode_node(node)
    return node_id(data), data


def check_name(name: object) -> str:
    """A single path component that cannot escape its directory."""
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or name.lower() == ".oxen"  # the repository's own folder, at no depth, in no case
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or len(name.encode("utf-8", "surrogateescape")) > 255
    ):
        raise CorruptObject(f"node holds an unsafe path name: {name!r}")
    return name


def _id(value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) != ID_LEN:
        raise CorruptObject("node holds a malformed id")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CorruptObject("node holds a malformed number")
    return value


def decode_node(data: bytes) -> Node:
    """Decode and validate a node; anything malformed raises CorruptObject."""
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as e:
        raise CorruptObject(f"undecodable node: {e}") from None
    if not isinstance(body, list) or not body:
        raise CorruptObject("node is not an array")
    try:
        kind = body[0]
        if kind == NodeType.VNODE:
            entries: list[Entry] = []
            for row in body[1]:
                if not isinstance(row, list):
                    raise CorruptObject("vnode entry is not an array")
                if row[0] == 0:
                    chunks = None if row[4] is None else _id(row[4])
                    mode = EXEC_MODE if row[5] == EXEC_MODE else FILE_MODE
                    schema = _id(row[6]) if len(row) > 6 else None
                    n_rows = _int(row[7]) if len(row) > 6 and row[7] is not None else None
                    entries.append(
                        FileEntry(
                            check_name(row[1]),
                            _id(row[2]),
                            _int(row[3]),
                            chunks,
                            mode,
                            schema,
                            n_rows,
                        )  # fmt: skip
                    )
                elif row[0] == 1:
                    entries.append(
                        DirEntry(check_name(row[1]), _id(row[2]), _int(row[3]), _int(row[4]))
                    )
                else:
                    raise CorruptObject("unknown entry type in vnode")
            names = [e.name for e in entries]
            if names != sorted(names) or len(set(names)) != len(names):
                raise CorruptObject("vnode entries are not sorted and unique")
            return VNode(tuple(entries))
        if kind == NodeType.DIR:
            return DirNode(
                tuple(_id(v) for v in body[1]), _int(body[2]), _int(body[3]), _int(body[4])
            )
        if kind == NodeType.COMMIT:
            _, tree, parents, author, email, ts, tz, message = body
            if not all(isinstance(x, str) for x in (author, email, message)):
                raise CorruptObject("commit has malformed text fields")
            if type(tz) is not int:  # a boolean is no timezone
                raise CorruptObject("commit has a malformed timezone")
            return CommitNode(
                _id(tree), tuple(_id(p) for p in parents), author, email, _int(ts), tz, message
            )
        if kind == NodeType.CHUNKS:
            blob, lengths = body[1], body[2]
            if (
                not isinstance(blob, bytes)
                or len(blob) % ID_LEN
                or len(blob) // ID_LEN != len(lengths)
            ):
                raise CorruptObject("malformed chunk list")
            ids = tuple(split_ids(blob))
            return ChunkList(ids, tuple(_int(n) for n in lengths))
        if kind == NodeType.CHUNK_INDEX:
            blob, sizes, counts = body[1], body[2], body[3]
            if (
                not isinstance(blob, bytes)
                or len(blob) % ID_LEN
                or not len(blob) // ID_LEN == len(sizes) == len(counts)
            ):
                raise CorruptObject("malformed chunk index")
            lists = tuple(split_ids(blob))
            return ChunkIndex(lists, tuple(_int(n) for n in sizes), tuple(_int(n) for n in counts))
        if kind == NodeType.SCHEMA:
            fmt, columns, error = body[1], body[2], body[3]
            cols = tuple((c[0], c[1]) for c in columns)
            if (
                not isinstance(fmt, str)
                or not isinstance(error, str)
                or not all(isinstance(x, str) for c in cols for x in c)
            ):
                raise CorruptObject("malformed schema")
            return Schema(fmt, cols, error)
    except CorruptObject:
        raise
    except (LookupError, TypeError, ValueError) as e:
        raise CorruptObject(f"malformed node: {e}") from None
    raise CorruptObject(f"unknown node type {body[0]!r}")


def vnode_rows(data: bytes, names: Iterable[str]) -> dict[str, list]:
    """The encoded rows of ``names`` (those it holds) in a VNode's bytes, found by binary
    search without building its entries: several times cheaper than decode_node for a
    question of which entries differ between two versions (encodings are deterministic,
    so two rows are equal exactly when their entries are). Nothing here becomes a path."""
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
        if body[0] != NodeType.VNODE:
            raise CorruptObject("node is not a vnode")
        rows = body[1]
        out: dict[str, list] = {}
        for name in names:
            i = bisect.bisect_left(rows, name, key=_row_name)
            if i < len(rows) and rows[i][1] == name:
                out[name] = rows[i]
        return out
    except CorruptObject:
        raise
    except Exception as e:  # not msgpack, or not rows of [kind, name, ...]
        raise CorruptObject(f"malformed vnode: {e}") from None


def _row_name(row: list) -> str:
    name = row[1]
    if not isinstance(name, str):
        raise CorruptObject("vnode entry has no name")
    return name


def decode_checked(oid: bytes, data: bytes) -> Node:
    """Decode a node after checking its bytes hash to ``oid``."""
    if node_id(data) != oid:
        raise CorruptObject(f"node {oid.hex()} does not match its id")
    return decode_node(data)
