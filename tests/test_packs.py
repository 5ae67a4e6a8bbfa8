import pytest

from oxen.errors import CorruptObject
from oxen.ids import hash_bytes
from oxen.packs import FOOTER_LEN, Kind, PackWriter, decode_footer, decode_trailer


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
        decode_trailer(b"\x92\x01\x91\x94\xc4\x10" + b"a" * 16 + b"\x00\x00\x10", data_size=4)
