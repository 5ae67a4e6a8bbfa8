import msgpack
import pytest

from oxen.errors import CorruptObject
from oxen.formats.nodes import (
    ChunkList,
    CommitNode,
    DirEntry,
    DirNode,
    FileEntry,
    VNode,
    bucket_count,
    decode_checked,
    decode_node,
    encode_node,
    encode_with_id,
    vnode_rows,
)

ID = bytes(range(32))


@pytest.mark.parametrize(
    "node",
    [
        VNode(
            (
                DirEntry("a", ID, 10, 2),
                FileEntry("b.txt", ID, 5, None, 0o644),
                FileEntry("c", ID, 9, ID, 0o755),
            )
        ),
        DirNode((ID, ID), 100, 7, 3),
        CommitNode(ID, (ID,), "Ada", "ada@example.com", 1700000000, -300, "msg"),
        ChunkList((ID, ID), (65536, 12)),
    ],
)
def test_round_trip_and_stable_ids(node) -> None:
    data = encode_node(node)
    assert decode_node(data) == node
    assert encode_with_id(node) == encode_with_id(decode_node(data))


def test_same_tree_same_id_everywhere() -> None:
    # Fixed bytes: a change of encoding would change every id on every machine.
    oid, _ = encode_with_id(VNode((FileEntry("a", ID, 1),)))
    assert oid.hex() == "ea864ebafb1ef34c4b7219e0677bd1588e65b5332f3ea58dba6801ad1d0ebf3f"


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "/etc", "x\x00y", "a\\b"])
def test_unsafe_names_are_refused(name: str) -> None:
    data = msgpack.packb([3, [[0, name, ID, 1, None, 0o644]]], use_bin_type=True)
    with pytest.raises(CorruptObject):
        decode_node(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        msgpack.packb({"a": 1}),
        msgpack.packb([99]),
        msgpack.packb([3, [[0, "a", b"short", 1, None, 0]]]),
        msgpack.packb([3, [[0, "b", ID, 1, None, 0], [0, "a", ID, 1, None, 0]]]),
        msgpack.packb([3, [{}]]),  # an entry that is a map: was a KeyError (a 500 on push)
        msgpack.packb([1, ID, [], "a", "e", 0, True, "m"]),  # a timezone that is a boolean
    ],
)
def test_malformed_nodes_raise_corrupt_object(data: bytes) -> None:
    with pytest.raises(CorruptObject):
        decode_node(data)


def test_decode_checked_verifies_the_id() -> None:
    oid, data = encode_with_id(DirNode((), 0, 0, 0))
    assert decode_checked(oid, data) == DirNode((), 0, 0, 0)
    with pytest.raises(CorruptObject):
        decode_checked(ID, data)


def test_bucket_count_is_a_power_of_two() -> None:
    assert bucket_count(1, 10_000) == 1
    assert bucket_count(10_000, 10_000) == 1
    assert bucket_count(10_001, 10_000) == 2
    assert bucket_count(1_000_000, 10_000) == 128


def test_vnode_rows_finds_names_without_building_entries() -> None:
    entries = tuple(FileEntry(f"f{i:03d}", bytes([i]) * 32, i) for i in range(0, 200, 2))
    data = encode_node(VNode(entries))
    rows = vnode_rows(data, ["f000", "f100", "f101", "zzz"])
    assert rows.keys() == {"f000", "f100"}
    assert rows["f100"] == [0, "f100", bytes([100]) * 32, 100, None, 0o644]
    changed = encode_node(
        VNode((*entries[:50], FileEntry("f100", b"\x07" * 32, 100), *entries[51:]))
    )
    assert vnode_rows(changed, ["f100"]) != vnode_rows(data, ["f100"])
    assert vnode_rows(changed, ["f098"]) == vnode_rows(data, ["f098"])
    for bad in (b"\xc1", encode_node(DirNode((), 0, 0, 0)), msgpack.packb([3, [[0, 5]]])):
        with pytest.raises(CorruptObject):
            vnode_rows(bad, ["f000"])
