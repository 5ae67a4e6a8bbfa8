"""A view of a store under a key prefix (``repos/ns/name/``), so each repository's objects
live apart in one bucket while the code above sees plain keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from oxen.storage.base import ByteRange, Store, check_key, check_prefix


class PrefixedStore(Store):
    """Every key of ``inner`` that starts with ``prefix/``, without that prefix.

    Range merging is the inner store's (``range_gap``, ``max_read`` and ``get_ranges`` are
    delegated).  Closing a prefixed store leaves the shared inner store open.
    """

    def __init__(self, inner: Store, prefix: str) -> None:
        check_key(prefix.rstrip("/"))
        self.inner = inner
        self.prefix = prefix.rstrip("/") + "/"

    @property  # type: ignore[override]
    def supports_cas(self) -> bool:
        return self.inner.supports_cas

    @property  # type: ignore[override]
    def supports_presign(self) -> bool:
        return self.inner.supports_presign

    @property  # type: ignore[override]
    def range_gap(self) -> int:
        return self.inner.range_gap

    @property  # type: ignore[override]
    def max_read(self) -> int:
        return self.inner.max_read

    @property
    def url(self) -> str:
        """The inner store's URL with the prefix appended to its path (query kept).

        It reopens as the inner store's type rooted at the prefix, which holds the same
        objects under the same keys.
        """
        parts = urlsplit(self.inner.url)
        path = parts.path.rstrip("/") + "/" + self.prefix.rstrip("/")
        return urlunsplit(parts._replace(path=path))

    def __repr__(self) -> str:
        return f"PrefixedStore({self.inner!r}, {self.prefix!r})"

    def _k(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def get(self, key: str) -> bytes | None:
        return await self.inner.get(self._k(key))

    async def get_range(self, key: str, start: int, length: int) -> bytes | None:
        return await self.inner.get_range(self._k(key), start, length)

    async def get_ranges(self, key: str, ranges: Sequence[ByteRange]) -> list[bytes] | None:
        return await self.inner.get_ranges(self._k(key), ranges)

    async def read_spans(self, key: str, spans: list[ByteRange]) -> list[bytes] | None:
        return await self.inner.read_spans(self._k(key), spans)

    async def put(self, key: str, data: bytes) -> None:
        await self.inner.put(self._k(key), data)

    async def put_file(self, key: str, path: Path, *, move: bool = False) -> None:
        await self.inner.put_file(self._k(key), path, move=move)

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        return await self.inner.put_if_absent(self._k(key), data)

    async def compare_and_swap(self, key: str, expected: bytes | None, new: bytes) -> bool:
        return await self.inner.compare_and_swap(self._k(key), expected, new)

    async def exists_many(self, keys: Iterable[str]) -> set[str]:
        found = await self.inner.exists_many([self._k(k) for k in keys])
        return {k[len(self.prefix) :] for k in found}

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        check_prefix(prefix)
        async for key in self.inner.list(self.prefix + prefix):
            yield key[len(self.prefix) :]

    async def size(self, key: str) -> int | None:
        return await self.inner.size(self._k(key))

    async def delete(self, key: str) -> None:
        await self.inner.delete(self._k(key))

    async def copy(self, source: str, dest: str) -> bool:
        return await self.inner.copy(self._k(source), self._k(dest))

    async def presign_put(self, key: str, expires: int) -> str:
        return await self.inner.presign_put(self._k(key), expires)

    async def presign_get(self, key: str, expires: int) -> str:
        return await self.inner.presign_get(self._k(key), expires)

    async def close(self) -> None:
        """The inner store is shared; its owner closes it."""
