"""Content ids: BLAKE3, and file ids made from chunk ids."""

from blake3 import blake3

from oxen.formats.ids import (
    EMPTY_ID,
    HEX_LEN,
    ID_LEN,
    FileIdBuilder,
    file_id,
    from_hex,
    hash_bytes,
    is_hex_prefix,
    split_ids,
)


def test_ids_are_blake3_of_the_bytes() -> None:
    assert ID_LEN == 32 and HEX_LEN == 64
    assert hash_bytes(b"abc") == blake3(b"abc").digest()
    assert EMPTY_ID == blake3(b"").digest()


def test_a_file_of_one_chunk_is_named_by_that_chunk() -> None:
    cid = hash_bytes(b"only chunk")
    assert file_id([cid]) == cid
    assert file_id([]) == EMPTY_ID


def test_a_file_of_several_chunks_cannot_be_named_by_any_content() -> None:
    """The chunk-ids id is in BLAKE3's key-derivation mode: a file whose bytes are the
    concatenated ids (or anything else) hashes to something else."""
    ids = [hash_bytes(b"a"), hash_bytes(b"b")]
    fid = file_id(ids)
    assert fid not in ids
    assert fid != hash_bytes(b"".join(ids))
    assert fid != file_id(list(reversed(ids)))
    assert len(fid) == ID_LEN


def test_builder_streams_the_same_id() -> None:
    ids = [hash_bytes(bytes([i])) for i in range(100)]
    builder = FileIdBuilder()
    builder.update(ids[:40])
    builder.update(iter(ids[40:]))
    assert builder.digest() == file_id(ids)


def test_hex_parsing_is_strict() -> None:
    oid = hash_bytes(b"x")
    assert from_hex(oid.hex()) == oid
    for bad in (oid.hex()[:32], oid.hex().upper(), oid.hex() + "0", "z" * 64):
        try:
            from_hex(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")
    assert is_hex_prefix(oid.hex()) and is_hex_prefix(oid.hex()[:7])
    assert not is_hex_prefix(oid.hex() + "a")


def test_split_ids_rejects_a_partial_id() -> None:
    ids = [hash_bytes(b"1"), hash_bytes(b"2")]
    assert split_ids(b"".join(ids)) == ids
    try:
        split_ids(b"".join(ids)[:-1])
    except ValueError:
        return
    raise AssertionError("a partial id was accepted")
