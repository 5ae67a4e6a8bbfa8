"""Generated inputs: raw bytes, and near-valid ones (the msgpack arrays of real nodes,
trailers and packs with a few fields mutated) that get past a decoder's first check."""

from __future__ import annotations

import copy
import struct
from typing import Any

import msgpack
from hypothesis import strategies as st

from oxen.formats.ids import ID_LEN, hash_bytes
from oxen.formats.nodes import EXEC_MODE, FILE_MODE, NodeType
from oxen.formats.packs import FOOTER, MAGIC, PACK_VERSION, Kind

# -- leaves ------------------------------------------------------------------------------

# Ids from a small pool (one draw each; a decoder cares about their type and length only).
ID_POOL = [hash_bytes(bytes([i])) for i in range(16)]
IDS = st.sampled_from(ID_POOL)
INDEX = st.integers(0, 2**16)


def pick(draw: st.DrawFn, items: list[Any]) -> Any:
    """One of ``items`` (a cached strategy: building one per draw costs more than the draw)."""
    return items[draw(INDEX) % len(items)]


BAD_IDS = [
    b"",
    b"\x00" * 16,
    b"\x01" * (ID_LEN - 1),
    b"\x02" * (ID_LEN + 1),
    b"\x03" * (2 * ID_LEN),
    "x" * ID_LEN,  # an id as a str: the wrong msgpack type
    bytes(ID_LEN).hex(),
]
SIZES = st.integers(min_value=0, max_value=2**40)
LENGTHS = st.integers(min_value=0, max_value=2**20)
HUGE_INTS = [-1, -(2**63), 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1]
SAFE_NAMES = st.sampled_from(
    [
        "a",
        "b",
        "B",
        "b.txt",
        ".hidden",
        "...",
        ".oxe",
        "oxen",
        ".oxenignore",
        "a b",
        " ",
        "-",
        "~",
        "\u00e9",
        "e\u0301",
        "\u4e2d\u6587",
        "\u2028",
        "\U0001f600",
        "\x7f",
        "\x01",
        "x" * 255,
        "\u00e9" * 127,  # 254 bytes of UTF-8
    ]
)
UNSAFE_NAME_LIST = [
    "",
    ".",
    "..",
    ".oxen",
    ".OXEN",
    ".Oxen",
    "a/b",
    "/",
    "/etc/passwd",
    "../x",
    "a\\b",
    "\\",
    "a\x00b",
    "\x00",
    "x" * 256,
    "\u00e9" * 128,  # 256 bytes of UTF-8
]
UNSAFE_NAMES = st.sampled_from(UNSAFE_NAME_LIST)
TEXTS = st.sampled_from(["", "Ada", "ada@example.com", "a message\nwith lines", "\u00e9\x00"])


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


# Values of every msgpack type, none of them what a field wants (two draws: a kind, then
# one of that kind, so that no kind is starved by the bias towards a list's first items).
WEIRD = st.one_of(
    st.sampled_from([{}, {"a": 1}, {"0": [0]}, [], [0], [[]], ["a", "b"], nested(40), nested(400)]),
    st.sampled_from([-1, 0, 1, 2, 3, 4, 5, 6, 0o600, 0o644, 0o755, 2**16, *HUGE_INTS]),
    st.sampled_from([None, True, False, 0.0, 1.5, float("nan"), float("inf")]),
    st.sampled_from(["", "0", "a", *UNSAFE_NAME_LIST]),
    st.sampled_from([b"\xff", *BAD_IDS]),
)


def pack(value: Any, bin_type: bool = True) -> bytes:
    """msgpack as the project writes it (``bin_type=False`` writes bytes as str)."""
    return msgpack.packb(value, use_bin_type=bin_type)


# -- valid node bodies, as the msgpack arrays encode_node writes --------------------------


@st.composite
def vnode_bodies(draw: st.DrawFn) -> list:
    names = sorted(draw(st.sets(SAFE_NAMES, max_size=6)))
    rows = []
    for name in names:
        if draw(st.booleans()):
            chunks = draw(st.one_of(st.none(), IDS))
            mode = draw(st.sampled_from([FILE_MODE, EXEC_MODE]))
            rows.append([0, name, draw(IDS), draw(SIZES), chunks, mode])
        else:
            rows.append([1, name, draw(IDS), draw(SIZES), draw(SIZES)])
    return [int(NodeType.VNODE), rows]


@st.composite
def dir_bodies(draw: st.DrawFn) -> list:
    vnodes = draw(st.lists(IDS, min_size=1, max_size=4))
    return [int(NodeType.DIR), vnodes, draw(SIZES), draw(SIZES), draw(SIZES)]


@st.composite
def commit_bodies(draw: st.DrawFn) -> list:
    return [
        int(NodeType.COMMIT),
        draw(IDS),
        draw(st.lists(IDS, max_size=3)),
        draw(TEXTS),
        draw(TEXTS),
        draw(st.integers(0, 2**40)),
        draw(st.integers(-720, 840)),
        draw(TEXTS),
    ]


@st.composite
def chunk_list_bodies(draw: st.DrawFn) -> list:
    ids = draw(st.lists(IDS, max_size=4))
    lengths = [draw(LENGTHS) for _ in ids]
    return [int(NodeType.CHUNKS), b"".join(ids), lengths]


@st.composite
def chunk_index_bodies(draw: st.DrawFn) -> list:
    ids = draw(st.lists(IDS, max_size=4))
    n = len(ids)
    sizes = [draw(SIZES) for _ in range(n)]
    counts = [draw(LENGTHS) for _ in range(n)]
    return [int(NodeType.CHUNK_INDEX), b"".join(ids), sizes, counts]


NODE_BODIES = st.one_of(
    vnode_bodies(), dir_bodies(), commit_bodies(), chunk_list_bodies(), chunk_index_bodies()
)


@st.composite
def trailer_bodies(draw: st.DrawFn) -> list:
    rows = []
    offset = 0
    for oid in draw(st.lists(IDS, max_size=5, unique=True)):
        length = draw(st.integers(0, 100))
        rows.append([oid, pick(draw, [int(Kind.CHUNK), int(Kind.NODE)]), offset, length])
        offset += length
    return [PACK_VERSION, rows]


# -- mutations ---------------------------------------------------------------------------


def _lists(value: Any) -> list[list]:
    """Every list inside ``value``, itself included."""
    if not isinstance(value, list):
        return []
    out = [value]
    for item in value:
        out += _lists(item)
    return out


@st.composite
def mutate(draw: st.DrawFn, value: Any) -> Any:
    """``value`` (a list) with one thing wrong in one of its lists: an element replaced by a
    value of another type or range, dropped, doubled or moved, the list reordered or grown,
    bytes cut or grown, a number negated or made huge."""
    value = copy.deepcopy(value)
    if not isinstance(value, list):
        return draw(WEIRD) if draw(st.booleans()) else [value]
    target = pick(draw, _lists(value))
    if not target:
        target.append(draw(WEIRD))
        return value
    i = pick(draw, range(len(target)))
    item = target[i]
    actions = ["replace", "replace", "drop", "double", "append", "swap", "reverse"]
    if isinstance(item, bytes):
        actions += ["cut", "grow"]
    if type(item) is int:
        actions += ["negate", "huge"]
    action = pick(draw, actions)
    if action == "replace":
        target[i] = draw(WEIRD)
    elif action == "drop":
        del target[i]
    elif action == "double":
        target.insert(i, copy.deepcopy(item))
    elif action == "append":
        target.append(draw(WEIRD))
    elif action == "swap":
        j = pick(draw, range(len(target)))
        target[i], target[j] = target[j], item
    elif action == "reverse":
        target.reverse()
    elif action == "cut":
        target[i] = item[: pick(draw, range(len(item) + 1))]
    elif action == "grow":
        target[i] = item + draw(st.binary(min_size=1, max_size=ID_LEN))
    elif action == "negate":
        target[i] = -item - 1 if item < 2**63 else -1
    else:
        target[i] = pick(draw, HUGE_INTS)
    return value


@st.composite
def near_valid(draw: st.DrawFn, bodies: st.SearchStrategy[Any], most: int = 3) -> Any:
    """A valid body with up to ``most`` mutations (none, a quarter of the time)."""
    value = draw(bodies)
    for _ in range(draw(st.integers(0, most))):
        value = draw(mutate(value))
    return value


@st.composite
def encodings(draw: st.DrawFn, bodies: st.SearchStrategy[Any]) -> bytes:
    """Bytes: a near-valid body packed as the project packs it (or with bytes as str),
    then perhaps cut, grown or with a byte flipped."""
    body = draw(near_valid(bodies))
    data = pack(body, bin_type=pick(draw, [True] * 7 + [False]))
    return draw(byte_mutations(data))


@st.composite
def byte_mutations(draw: st.DrawFn, data: bytes) -> bytes:
    action = draw(st.sampled_from(["keep", "keep", "keep", "cut", "flip", "insert", "append"]))
    if action == "keep" or not data:
        return data
    i = pick(draw, range(len(data)))
    if action == "cut":
        return data[:i]
    if action == "flip":
        return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
    if action == "insert":
        return data[:i] + draw(st.binary(min_size=1, max_size=4)) + data[i:]
    return data + draw(st.binary(min_size=1, max_size=8))


# Raw bytes, with msgpack-looking starts, and very deep nesting (built by hand: msgpack
# refuses to pack it).
RAW = st.one_of(
    st.binary(max_size=300),
    st.tuples(
        st.sampled_from([b"\x92", b"\x93", b"\x95", b"\x96", b"\x98", b"\xdc\xff\xff"]),
        st.binary(max_size=100),
    ).map(b"".join),
    st.integers(1, 5000).map(lambda d: b"\x92\x03\x91" + b"\x91" * d + b"\xc0"),
    st.integers(1, 5000).map(lambda d: b"\x81\xa1a" * d + b"\xc0"),
)


# -- packs -------------------------------------------------------------------------------


def pack_file(blobs: list[tuple[bytes, int, bytes]]) -> bytes:
    """A well-formed pack of (id, kind, bytes), in order."""
    rows, data, offset = [], b"", 0
    for oid, kind, blob in blobs:
        rows.append([oid, kind, offset, len(blob)])
        data += blob
        offset += len(blob)
    return seal(data, pack([PACK_VERSION, rows]))


def seal(data: bytes, trailer: bytes, trailer_len: int | None = None) -> bytes:
    length = len(trailer) if trailer_len is None else trailer_len
    return data + trailer + FOOTER.pack(length) + MAGIC


@st.composite
def blobs(draw: st.DrawFn, node_ids: st.SearchStrategy[bytes] = IDS) -> tuple[bytes, int, bytes]:
    """A blob that matches its id: a chunk, a (near-)valid node, or raw bytes as a node."""
    kind = draw(st.sampled_from([Kind.CHUNK, Kind.NODE, Kind.NODE]))
    if kind == Kind.CHUNK:
        data = draw(st.binary(max_size=64))
    else:
        data = draw(st.one_of(encodings(NODE_BODIES), st.binary(max_size=40)))
    return hash_bytes(data), int(kind), data


@st.composite
def pack_files(draw: st.DrawFn, blob_strategy: st.SearchStrategy[Any] | None = None) -> bytes:
    """A pack of near-valid blobs, then perhaps one thing wrong with its layout: a blob
    whose bytes are not its id's, a mutated trailer, a wrong trailer length, a cut."""
    blob_strategy = blobs() if blob_strategy is None else blob_strategy
    items = draw(st.lists(blob_strategy, max_size=3, unique_by=lambda b: b[0]))
    if items and draw(st.integers(0, 5)) == 0:  # one blob's bytes replaced
        i = pick(draw, range(len(items)))
        oid, kind, _ = items[i]
        items[i] = (oid, kind, draw(st.binary(max_size=16)))
    rows, data, offset = [], b"", 0
    for oid, kind, blob in items:
        rows.append([oid, kind, offset, len(blob)])
        data += blob
        offset += len(blob)
    body: Any = [PACK_VERSION, rows]
    if draw(st.integers(0, 3)) == 0:
        body = draw(mutate(body))
    trailer = pack(body)
    trailer_len = len(trailer)
    if draw(st.integers(0, 9)) == 0:
        trailer_len = draw(st.integers(0, 2**32 - 1)) if draw(st.booleans()) else trailer_len + 1
    return draw(byte_mutations(seal(data, trailer, trailer_len)))


def footer(length: int) -> bytes:
    return struct.pack("<I", length) + MAGIC
