import errno
import fcntl
import os
import random
from pathlib import Path

import msgpack
import pytest

from oxen.errors import CorruptObject
from oxen.formats.ids import hash_bytes
from oxen.formats.packs import FOOTER_LEN, PACK_VERSION, Kind, decode_footer, decode_trailer
from oxen.objects import object_store, pack_writer
from oxen.objects.pack_writer import PackWriter
from oxen.repo import AsyncRepo


def test_pack_round_trip(tmp_path) -> None:
    writer = PackWriter(tmp_path)
    blobs = [b"alpha", b"beta" * 1000, b""]
    for b in blobs:
        writer.add(hash_bytes(b), Kind.CHUNK, b)
    sealed = writer.finish()
    pack_id, path, entries = sealed.id, sealed.path, sealed.entries
    raw = path.read_bytes()
    assert len(raw) == sealed.size
    trailer_len = decode_footer(raw[-FOOTER_LEN:])
    data_size = len(raw) - FOOTER_LEN - trailer_len
    trailer = raw[data_size : len(raw) - FOOTER_LEN]
    assert hash_bytes(trailer) == pack_id
    decoded = decode_trailer(trailer, data_size)
    assert decoded == entries
    for e, b in zip(decoded, blobs, strict=True):
        assert raw[e.offset : e.offset + e.length] == b


def test_bad_footer_and_trailer_are_rejected() -> None:
    with pytest.raises(CorruptObject):
        decode_footer(b"\0" * FOOTER_LEN)
    with pytest.raises(CorruptObject):
        decode_trailer(b"\xc1garbage")
    with pytest.raises(CorruptObject):
        decode_trailer(b"\x92\x02\x91\x94\xc4\x20" + b"a" * 32 + b"\x00\x00\x10", data_size=4)


def _read_back(sealed) -> list[bytes]:
    raw = sealed.path.read_bytes()
    assert len(raw) == sealed.size
    return [raw[e.offset : e.offset + e.length] for e in sealed.entries]


@pytest.mark.parametrize("direct", [False, True])
def test_pack_larger_than_the_staging_buffer(tmp_path, direct) -> None:
    rng = random.Random(1)
    blobs = [rng.randbytes(rng.randrange(1, 200_000)) for _ in range(120)]
    blobs.append(rng.randbytes(pack_writer.STAGE_SIZE + 12_345))  # one blob spanning two stages
    writer = PackWriter(tmp_path, direct=direct)
    writer.add_many([(hash_bytes(b), Kind.CHUNK, memoryview(b)) for b in blobs])
    sealed = writer.finish()
    assert _read_back(sealed) == blobs


def test_direct_writes_fall_back_when_the_filesystem_refuses(tmp_path, monkeypatch) -> None:
    real_write = os.write
    refused = []

    def write(fd, data):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(len(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    blobs = [os.urandom(pack_writer.STAGE_SIZE // 3) for _ in range(5)]
    writer = PackWriter(tmp_path, direct=True)
    writer.add_many([(hash_bytes(b), Kind.CHUNK, b) for b in blobs])
    sealed = writer.finish()
    assert _read_back(sealed) == blobs


def test_abort_removes_the_file(tmp_path) -> None:
    writer = PackWriter(tmp_path, direct=True)
    writer.add(hash_bytes(b"x"), Kind.CHUNK, b"x" * 10_000_000)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "row",
    [
        [b"\x01" * 32, 0, "0", 1],  # an offset as a string
        [b"\x01" * 32, 0, 0.0, 1],  # a float
        [b"\x01" * 32, 0, True, 1],  # a bool
        [b"\x01" * 32, 7, 0, 1],  # an unknown kind
        [list(b"\x01" * 32), 0, 0, 1],  # an id as a list of ints
        [b"\x01" * 32, 0, 0],  # too short
    ],
)
def test_trailer_entries_are_checked_strictly(row: list) -> None:
    trailer = msgpack.packb([PACK_VERSION, [row]], use_bin_type=True)
    with pytest.raises(CorruptObject):
        decode_trailer(trailer, 100)


async def test_no_pack_lists_more_than_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(object_store, "MAX_PACK_ENTRIES", 7)
    repo = await AsyncRepo.init(tmp_path / "w")
    try:
        for i in range(30):
            (tmp_path / "w" / f"f{i}.txt").write_text(f"file {i}")
        await repo.add([str(tmp_path / "w")])
        await repo.commit("thirty files")
        counts = [blobs for _, _, blobs in await repo.db.packs()]
        assert max(counts) <= 7 and sum(counts) >= 30
        assert not (await repo.fsck()).problems
    finally:
        await repo.close()


async def test_check_pack_names_each_bad_blob_and_reads_in_windows(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored pack checked in place: a node that hashes right but does not decode, a
    blob whose bytes changed, each named once; the rest are intact, read a window at a time."""
    from oxen.formats.packs import pack_key
    from oxen.objects import pack_check
    from oxen.storage import open_store

    monkeypatch.setattr(pack_check, "WINDOW", 50_000)
    rng = random.Random(5)
    chunks = [rng.randbytes(20_000) for _ in range(10)]
    garbage = b"\xc1 not msgpack"
    writer = PackWriter(tmp_path / "tmp")
    writer.add_many([(hash_bytes(c), Kind.CHUNK, c) for c in chunks])
    writer.add(hash_bytes(garbage), Kind.NODE, garbage)
    sealed = writer.finish()
    raw = bytearray(sealed.path.read_bytes())
    raw[3 * 20_000 + 7] ^= 1  # inside the fourth chunk
    store = open_store(tmp_path / "store")
    key = pack_key(sealed.id)
    await store.put(key, bytes(raw))
    reads: list[int] = []
    get_range = store.get_range

    async def counted(k: str, start: int, length: int) -> bytes | None:
        reads.append(length)
        return await get_range(k, start, length)

    monkeypatch.setattr(store, "get_range", counted)
    check = await pack_check.check_pack(store, sealed.id.hex(), key)
    assert check.objects == 11 and check.bytes == 200_000 + len(garbage)
    assert check.corrupt == {hash_bytes(chunks[3]), hash_bytes(garbage)}
    changed, undecodable = check.problems
    assert str(changed) == (
        f"object {hash_bytes(chunks[3]).hex()} in pack {sealed.id.hex()}"
        " is corrupt (its bytes do not match its id)"
    )
    assert undecodable.subject == f"object {hash_bytes(garbage).hex()} in pack {sealed.id.hex()}"
    assert undecodable.what.startswith("is corrupt (not a valid node: ")
    assert len(check.intact) == 9
    assert max(reads) < 100_000  # windows, not the whole pack at once
