"""Content ids: xxh3-128, kept as 16 raw bytes in memory and on disk, 32 hex chars for people."""

from __future__ import annotations

import re

import xxhash

ID_LEN = 16
_HEX_ID = re.compile(r"^[0-9a-f]{32}$")


def hash_bytes(data: bytes | bytearray | memoryview) -> bytes:
    return xxhash.xxh3_128_digest(data)


def new_hasher() -> xxhash.xxh3_128:
    return xxhash.xxh3_128()


def to_hex(oid: bytes) -> str:
    return oid.hex()


def from_hex(text: str) -> bytes:
    """Parse a full 32-char id; raises ValueError on anything else."""
    if not _HEX_ID.match(text):
        raise ValueError(f"not an object id: {text!r}")
    return bytes.fromhex(text)


def is_hex_prefix(text: str) -> bool:
    return 4 <= len(text) <= 32 and all(c in "0123456789abcdef" for c in text)


def hash_file(path: str, block: int = 8 << 20) -> bytes:
    """The file id of a file on disk (xxh3-128 of its bytes), streamed."""
    h = xxhash.xxh3_128()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(block)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.digest()
