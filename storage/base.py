"""The store interface every backend implements.

Keys are ``/``-separated relative names (``packs/ab/abcd....pack``).  Objects are
immutable once written except through :meth:`Store.compare_and_swap`, which is the
only primitive used for mutable state (refs).  ``get`` returns ``None`` for a missing
key instead of raising, as zarr's stores do.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from oxen.storage.errors import InvalidKey, StoreError

KiB = 1024
MiB = 1024 * KiB

_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9_.=+-]+$")
_KEY_CHARS = re.compile(r"^[A-Za-z0-9_.=+-]*$")


def check_key(key: str) -> str:
    """Reject keys that could escape a prefix or are not portable across backends."""
    if not key or len(key) > 1024 or key.startswith("/") or key.endswith("/"):
        raise InvalidKey(f"invalid store key: {key!r}")
    for segment in key.split("/"):
        if segment in ("", ".", "..") or not _KEY_SEGMENT.match(segment):
            raise InvalidKey(f"invalid store key: {key!r}")
    return key


def check_prefix(prefix: str) -> str:
    """Validate a listing prefix: ``""``, whole directories (``"packs/"``) or a partial name.

    Every directory part must be a valid key, so a prefix can never walk out of a root.
    """
    dirs, _, last = prefix.rpartition("/")
    if dirs:
        try:
            check_key(dirs)
        except InvalidKey:
            raise InvalidKey(f"invalid store prefix: {prefix!r}") from None
    if not _KEY_CHARS.match(last) or prefix.startswith("/"):
        raise InvalidKey(f"invalid store prefix: {prefix!r}")
    return prefix


@dataclass(frozen=True, slots=True)
class ByteRange:
    """``length`` bytes starting at ``start``."""

    start: int
    length: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.length < 0:
            raise ValueError(f"invalid byte range: start={self.start} length={self.length}")

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(slots=True)
class CoalescedRange:
    """One read covering several requested ranges (``members`` index the request list)."""

    start: int
    end: int
    members: list[int]


def coalesce_ranges(
    ranges: Sequence[ByteRange], max_gap: int, max_span: int | None = None
) -> list[CoalescedRange]:
    """Merge ranges whose gap is at most ``max_gap`` into single reads of at most ``max_span``.

    Overlapping and unsorted ranges are fine; each request lands in exactly one read.
    """
    # Runs once per range of every pack read (hundreds of thousands): kept to plain locals.
    starts = [r.start for r in ranges]
    order = sorted(range(len(starts)), key=starts.__getitem__)
    reads: list[CoalescedRange] = []
    last: CoalescedRange | None = None
    last_start = last_end = 0
    for i in order:
        start = starts[i]
        end = start + ranges[i].length
        if last is not None and start <= last_end + max_gap:
            merged_end = end if end > last_end else last_end
            if max_span is None or merged_end - last_start <= max_span:
                last_end = merged_end
                last.members.append(i)
                continue
        if last is not None:
            last.end = last_end
        last = CoalescedRange(start, end, [i])
        reads.append(last)
        last_start, last_end = start, end
    if last is not None:
        last.end = last_end
    return reads


def split_coalesced(
    ranges: Sequence[ByteRange], reads: list[CoalescedRange], blobs: Sequence[bytes]
) -> list[bytes]:
    """Cut the bytes of each coalesced read back into the requested ranges, in request order.

    A requested range that is its whole read (the common case for a lone range) gets the
    read's bytes object itself, not a copy; the others are copied out of it.
    """
    out: list[bytes] = [b""] * len(ranges)
    for read, blob in zip(reads, blobs, strict=True):
        if not isinstance(blob, bytes):
            blob = bytes(blob)
        view: memoryview | None = None
        for i in read.members:
            r = ranges[i]
            if r.start == read.start and r.end == read.end:
                out[i] = blob
                continue
            if view is None:
                view = memoryview(blob)
            out[i] = bytes(view[r.start - read.start : r.end - read.start])
    return out


class Store(ABC):
    """An async key -> bytes store."""

    #: True when ``compare_and_swap`` is atomic against other processes and hosts.
    supports_cas: bool = True
    #: :meth:`get_ranges` merges requested ranges at most this many bytes apart into one
    #: read (reading a gap is cheaper than another seek or request).
    range_gap: int = 256 * KiB
    #: ...as long as the merged read stays within this many bytes.  A single requested
    #: range longer than this is still read whole.
    max_read: int = 16 * MiB
    #: True when :meth:`presign_put` and :meth:`presign_get` hand out URLs a client can
    #: PUT an object to, or GET (ranges of) one from, directly.
    supports_presign: bool = False

    @property
    @abstractmethod
    def url(self) -> str:
        """The URL that reopens this store."""

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The whole object, or None when it does not exist."""

    @abstractmethod
    async def get_range(self, key: str, start: int, length: int) -> bytes | None:
        """``length`` bytes from ``start`` (fewer at the end of the object); None if missing."""

    async def get_ranges(self, key: str, ranges: Sequence[ByteRange]) -> list[bytes] | None:
        """Several ranges of one object: one ``bytes`` per range, in request order.

        Each is short or empty where it runs past the end of the object, as with
        :meth:`get_range`.  None if the object is missing; ``[]`` for no ranges when it
        exists.  Ranges may overlap, repeat and come in any order.

        This is the one place where ranges are merged: ranges at most :attr:`range_gap`
        apart become one read of at most :attr:`max_read` bytes (:func:`coalesce_ranges`),
        :meth:`read_spans` reads those, and :func:`split_coalesced` cuts them back up.
        Backends tune the two attributes and override :meth:`read_spans`, not this.
        """
        check_key(key)
        if not ranges:
            return None if await self.size(key) is None else []
        reads = coalesce_ranges(ranges, self.range_gap, self.max_read)
        blobs = await self.read_spans(key, [ByteRange(r.start, r.end - r.start) for r in reads])
        if blobs is None:
            return None
        return split_coalesced(ranges, reads, blobs)

    async def read_spans(self, key: str, spans: list[ByteRange]) -> list[bytes] | None:
        """Backend hook behind :meth:`get_ranges`: the bytes of each span, in order.

        ``spans`` are already merged, sorted by start, never empty and do not overlap.  Each
        result is short or empty past the end of the object; None if the object is
        missing.  The default reads the spans one after the other with :meth:`get_range`;
        a backend overrides it to read them in one go (one open file) or concurrently.
        Callers use :meth:`get_ranges`.
        """
        out: list[bytes] = []
        for span in spans:
            data = await self.get_range(key, span.start, span.length)
            if data is None:
                return None
            out.append(data)
        return out

    @abstractmethod
    async def put(self, key: str, data: bytes) -> None:
        """Write an object atomically: readers see the old object or the new, never a part."""

    @abstractmethod
    async def put_file(self, key: str, path: Path, *, move: bool = False) -> None:
        """Upload a local file as an object; with ``move`` the file may be consumed."""

    @abstractmethod
    async def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create the object only if no object has the key. True when this call created it."""

    @abstractmethod
    async def compare_and_swap(self, key: str, expected: bytes | None, new: bytes) -> bool:
        """Replace the object only if it currently holds ``expected`` (None: does not exist).

        Returns True when this call made the change.  A caller whose reply was lost may see
        False on retry; it re-reads the key and treats "already holds my value" as success.
        """

    @abstractmethod
    async def exists_many(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` that exist, in as few round trips as the backend allows."""

    @abstractmethod
    def list(self, prefix: str = "") -> AsyncIterator[str]:
        """Every key under ``prefix`` (a plain string prefix), in no particular order.

        Implementations validate the prefix with :func:`check_prefix`.
        """

    @abstractmethod
    async def size(self, key: str) -> int | None:
        """Size in bytes, or None when missing."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove an object; deleting a missing key is not an error."""

    async def copy(self, source: str, dest: str) -> bool:
        """Copy one object to another key; False when ``source`` is missing.  This default
        reads it whole; stores that copy without the bytes leaving them (S3) override it."""
        data = await self.get(source)
        if data is None:
            return False
        await self.put(dest, data)
        return True

    async def presign_put(self, key: str, expires: int) -> str:
        """A URL that lets whoever holds it PUT ``key`` (once or many times) for ``expires``
        seconds, without credentials; only stores with ``supports_presign`` have them."""
        raise StoreError(f"the store {self.url} cannot hand out upload URLs")

    async def presign_get(self, key: str, expires: int) -> str:
        """A URL that lets whoever holds it GET ``key`` (whole or by HTTP Range) for
        ``expires`` seconds, without credentials; only stores with ``supports_presign``."""
        raise StoreError(f"the store {self.url} cannot hand out download URLs")

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default store holds none."""

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
