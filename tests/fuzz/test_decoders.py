"""Every decoder of bytes from elsewhere either returns a valid object or raises the error it
declares (CorruptObject, InvalidInput), never another; what it accepts encodes back to
bytes it accepts again, with the same id."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from oxen.cli.history_commands import commit_date
from oxen.errors import CorruptObject, InvalidInput
from oxen.formats.ids import ID_LEN, hash_bytes
from oxen.formats.nodes import (
    EXEC_MODE,
    FILE_MODE,
    ChunkIndex,
    ChunkList,
    CommitNode,
    DirEntry,
    DirNode,
    FileEntry,
    Node,
    VNode,
    check_name,
    decode_checked,
    decode_node,
    encode_node,
    node_id,
)
from oxen.formats.packs import (
    FOOTER_LEN,
    MAX_PACK_ENTRIES,
    Kind,
    PackEntry,
    decode_footer,
    decode_trailer,
    encode_trailer,
    trailer_span,
)
from oxen.objects.pack_index import verify_pack_file
from oxen.server.routes import MAX_IDS, decode_ids, encode_ids
from tests.fuzz.conftest import fuzz_settings, tried
from tests.fuzz.strategies import (
    IDS,
    NODE_BODIES,
    RAW,
    byte_mutations,
    encodings,
    footer,
    pack,
    pack_file,
    pack_files,
    trailer_bodies,
)

# -- nodes -------------------------------------------------------------------------------


def count(n: object) -> bool:
    return type(n) is int and n >= 0


def is_id(value: object) -> bool:
    return type(value) is bytes and len(value) == ID_LEN


def check_node(node: Node) -> None:
    """The invariants docs/architecture.md and nodes.py promise of a decoded node."""
    if isinstance(node, VNode):
        names = [e.name for e in node.entries]
        assert names == sorted(set(names))
        for e in node.entries:
            assert check_name(e.name) == e.name and is_id(e.id) and count(e.size)
            if isinstance(e, FileEntry):
                assert e.chunks is None or is_id(e.chunks)
                assert e.mode in (FILE_MODE, EXEC_MODE)
            else:
                assert isinstance(e, DirEntry) and count(e.count)
    elif isinstance(node, DirNode):
        assert all(is_id(v) for v in node.vnodes)
        assert count(node.size) and count(node.count) and count(node.entries)
    elif isinstance(node, CommitNode):
        assert is_id(node.tree) and all(is_id(p) for p in node.parents)
        assert all(type(t) is str for t in (node.author, node.email, node.message))
        assert count(node.timestamp) and type(node.tz_offset) is int
        assert commit_date(node.timestamp, node.tz_offset)  # `oxen log` can show it
    elif isinstance(node, ChunkList):
        assert len(node.ids) == len(node.lengths)
        assert all(is_id(i) for i in node.ids) and all(count(n) for n in node.lengths)
    else:
        assert isinstance(node, ChunkIndex)
        assert len(node.lists) == len(node.sizes) == len(node.counts)
        assert all(is_id(i) for i in node.lists)
        assert all(count(n) for n in (*node.sizes, *node.counts))


def check_round_trip(node: Node) -> None:
    """A decoded node encodes to bytes that decode to it again under their own id, and
    that encoding is the one it keeps."""
    again = encode_node(node)
    assert decode_checked(node_id(again), again) == node
    assert encode_node(decode_node(again)) == again


NODE_INPUTS = st.one_of(encodings(NODE_BODIES), encodings(NODE_BODIES), RAW)


@fuzz_settings(1200)
@given(NODE_INPUTS)
@example(pack([3, [{"a": 1}]]))  # an entry that is a map, not an array
@example(pack([3, {"a": 1}]))
@example(pack([1, bytes(32), [], "a", "e", 0, True, "m"]))  # a timezone that is a boolean
def test_decode_node(data: bytes) -> None:
    tried("decode_node")
    try:
        node = decode_node(data)
    except CorruptObject:
        return
    check_node(node)
    check_round_trip(node)


@fuzz_settings(300)
@given(NODE_BODIES)
def test_a_node_as_written_keeps_its_id(body: list) -> None:
    """The bytes encode_node writes are the bytes a valid node decodes from: the same tree
    has the same ids everywhere."""
    tried("decode_node (valid)")
    data = pack(body)
    node = decode_node(data)
    check_node(node)
    assert encode_node(node) == data


@fuzz_settings(600)
@given(NODE_INPUTS, st.sampled_from(["its id", "another id", "a short id"]), IDS)
def test_decode_checked(data: bytes, which: str, other: bytes) -> None:
    tried("decode_checked")
    oid = {"its id": hash_bytes(data), "another id": other, "a short id": hash_bytes(data)[:20]}
    try:
        node = decode_checked(oid[which], data)
    except CorruptObject:
        return
    assert oid[which] == hash_bytes(data)
    check_node(node)
    check_round_trip(node)


# -- pack trailers and footers -------------------------------------------------------------

TRAILER_INPUTS = st.one_of(encodings(trailer_bodies()), encodings(trailer_bodies()), RAW)


def check_entries(entries: list[PackEntry], data_size: int | None, limit: int | None) -> None:
    for e in entries:
        assert isinstance(e, PackEntry) and is_id(e.id) and type(e.kind) is Kind
        assert count(e.offset) and count(e.length)
        assert data_size is None or e.offset + e.length <= data_size
    assert limit is None or len(entries) <= max(limit, 4)


@fuzz_settings(800)
@given(
    TRAILER_INPUTS,
    st.one_of(st.none(), st.integers(0, 600)),
    st.sampled_from([MAX_PACK_ENTRIES, None, 4, 5]),
)
def test_decode_trailer(trailer: bytes, data_size: int | None, limit: int | None) -> None:
    tried("decode_trailer")
    try:
        entries = decode_trailer(trailer, data_size, limit)
    except CorruptObject:
        return
    check_entries(entries, data_size, limit)
    again = encode_trailer(entries)
    assert decode_trailer(again, data_size, limit) == entries
    assert encode_trailer(decode_trailer(again, data_size, limit)) == again


@fuzz_settings(300)
@given(trailer_bodies())
def test_a_trailer_as_written_keeps_its_bytes(body: list) -> None:
    tried("decode_trailer (valid)")
    data = pack(body)
    entries = decode_trailer(data, sum(r[3] for r in body[1]))
    assert encode_trailer(entries) == data


@fuzz_settings(600)
@given(
    st.one_of(
        st.binary(max_size=2 * FOOTER_LEN),
        st.integers(0, 2**32 - 1).map(footer),
        st.integers(0, 2**32 - 1).map(footer).flatmap(byte_mutations),
    ),
    st.integers(0, 2**34),
)
def test_decode_footer_and_trailer_span(tail: bytes, size: int) -> None:
    tried("decode_footer")
    try:
        length = decode_footer(tail)
    except CorruptObject:
        pass
    else:
        assert 0 <= length < 2**32 and footer(length) == tail
    try:
        data_size, trailer_len = trailer_span(size, tail)
    except CorruptObject:
        return
    assert data_size >= 0 and data_size + trailer_len + FOOTER_LEN == size


# -- whole packs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("packs")


@fuzz_settings(500)
@given(
    st.one_of(pack_files(), pack_files(), st.binary(max_size=200)),
    st.sampled_from(["ample", "exact", "one short"]),
)
@example(pack_file([(hash_bytes(b := pack([3, [{"a": 1}]])), int(Kind.NODE), b)]), "ample")
def test_verify_pack_file(pack_dir: Path, data: bytes, limit: str) -> None:
    tried("verify_pack_file")
    path = pack_dir / "received.pack"
    path.write_bytes(data)
    max_size = {"ample": 1 << 28, "exact": len(data), "one short": len(data) - 1}[limit]
    nodes: dict[bytes, Node] = {}
    chunks: dict[bytes, bytes] = {}
    try:
        sealed = verify_pack_file(
            path, max_size, on_chunks=chunks.update, on_node=nodes.__setitem__
        )
    except InvalidInput:
        return
    # accepted: the layout, the name and every blob are as docs/architecture.md says
    assert sealed.size == len(data) <= max_size
    data_size, trailer_len = trailer_span(len(data), data[-FOOTER_LEN:])
    trailer = data[data_size : data_size + trailer_len]
    assert sealed.id == hash_bytes(trailer)
    assert sealed.entries == decode_trailer(trailer, data_size) and sealed.entries
    assert len({e.id for e in sealed.entries}) == len(sealed.entries) <= MAX_PACK_ENTRIES
    offset = 0
    for e in sorted(sealed.entries, key=lambda e: e.offset):
        assert e.offset == offset
        blob = data[e.offset : e.offset + e.length]
        assert hash_bytes(blob) == e.id
        if e.kind == Kind.NODE:
            assert nodes[e.id] == decode_node(blob)
            check_node(nodes[e.id])
        else:
            assert chunks[e.id] == blob
        offset += e.length
    assert offset == data_size
    assert set(nodes) | set(chunks) == {e.id for e in sealed.entries}


# -- id lists in request bodies --------------------------------------------------------------

ID_LISTS = st.one_of(
    st.lists(IDS, max_size=6).map(b"".join),  # as the protocol says: one bin
    st.lists(IDS, max_size=3),  # an array of bins
)


@fuzz_settings(800)
@given(st.one_of(ID_LISTS.map(pack), encodings(ID_LISTS), encodings(ID_LISTS), RAW))
@example(msgpack.packb(bytes(ID_LEN) * (MAX_IDS + 1)))
def test_decode_ids(body: bytes) -> None:
    tried("decode_ids")
    try:
        ids = decode_ids(body)
    except InvalidInput:
        return
    assert all(is_id(i) for i in ids) and len(ids) <= MAX_IDS
    again = encode_ids(ids)
    assert decode_ids(again) == ids and encode_ids(decode_ids(again)) == again
