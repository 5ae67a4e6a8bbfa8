"""What the sync algorithms need from a remote, independent of how it is reached."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from oxen.errors import OxenError

# Sent by the client on every request and by the server on every answer; each refuses
# the other's when it differs, in one line (2: ids are 32-byte BLAKE3).
PROTOCOL_HEADER = "Oxen-Protocol"
PROTOCOL_VERSION = 2
# Sent by the client on the first read of a remote's branches of a clone, fetch or pull,
# naming that operation (one of OPERATIONS): the server counts them in its metrics.
OPERATION_HEADER = "Oxen-Operation"
OPERATIONS = ("clone", "fetch", "pull")

MISSING_BATCH = 20_000  # ids per "which of these do you lack" request (and objects per pack)
PACK_TARGET = 16 * 1024 * 1024  # bytes per pack sent or fetched


def pack_groups(ids: list[bytes], size_of: Callable[[bytes], int]) -> list[list[bytes]]:
    """``ids`` in order, cut into the groups that travel as one pack each: about
    PACK_TARGET bytes, at most MISSING_BATCH objects."""
    groups: list[list[bytes]] = [[]]
    size = 0
    for oid in ids:
        if size >= PACK_TARGET or len(groups[-1]) >= MISSING_BATCH:
            groups.append([])
            size = 0
        groups[-1].append(oid)
        size += size_of(oid)
    return groups if ids else []


@dataclass(frozen=True)
class RemoteURL:
    scheme: str
    host: str  # host[:port]
    namespace: str
    name: str

    @classmethod
    def parse(cls, url: str) -> RemoteURL:
        parsed = urlparse(url)
        parts = [p for p in parsed.path.split("/") if p]
        if parsed.scheme not in ("http", "https") or not parsed.netloc or len(parts) != 2:
            raise OxenError(
                f"not a remote repository URL (want http[s]://HOST[:PORT]/NAMESPACE/NAME): {url}"
            )
        return cls(parsed.scheme, parsed.netloc, parts[0], parts[1])

    @property
    def api(self) -> str:
        return f"{self.scheme}://{self.host}/api/repos/{self.namespace}/{self.name}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class FileLayout:
    """A file of a commit as the server describes it: enough to check its bytes (each
    chunk hashed as it arrives, the file id made of those hashes)."""

    commit: bytes
    id: bytes
    size: int
    lengths: list[int]  # of its chunks, in order


@dataclass(frozen=True)
class FileBody:
    """The answer to a read of one file: what the server says it is, then its bytes."""

    id: bytes
    size: int
    commit: bytes | None
    pieces: AsyncIterator[bytes]


@dataclass(frozen=True)
class FileHead:
    """A file of a commit as a HEAD request describes it: enough to read it in ranges,
    each from ``commit`` (never from a branch that moved meanwhile)."""

    id: bytes
    size: int
    commit: bytes
    modified: float | None = None  # the commit's time (Last-Modified), epoch seconds


class Remote(Protocol):
    bytes_sent: int
    bytes_received: int

    async def refs(self) -> dict[str, bytes]: ...

    async def missing(self, ids: list[bytes]) -> set[bytes]: ...

    async def upload_pack(self, path: Path) -> None: ...

    async def fetch_pack(self, ids: list[bytes], dest: Path) -> None: ...

    async def update_ref(self, branch: str, old: bytes | None, new: bytes) -> None: ...

    async def delete_ref(self, branch: str, old: bytes) -> None: ...

    async def close(self) -> None: ...
