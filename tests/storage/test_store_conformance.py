"""The conformance suite (:class:`oxen.storage.testing.StoreTests`) on every backend,
and on :class:`PrefixedStore`, the view the server gives each repository of one store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from oxen.storage import InvalidKey, Store, open_store
from oxen.storage.local import LocalStore
from oxen.storage.nfs import NfsStore
from oxen.storage.prefixed import PrefixedStore
from oxen.storage.testing import StoreTests, collect

try:
    from oxen.storage.s3 import S3Store
except ImportError:  # no aiobotocore: the S3 classes skip (moto_endpoint needs it)
    S3Store = None  # type: ignore[assignment,misc]

CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}


class TestLocalStore(StoreTests):
    store_cls = LocalStore

    @pytest.fixture
    def store_kwargs(self, tmp_path: Path) -> dict[str, Any]:
        return {"root": tmp_path / "local"}


class TestNfsStore(StoreTests):
    store_cls = NfsStore

    @pytest.fixture
    def store_kwargs(self, tmp_path: Path) -> dict[str, Any]:
        return {"root": tmp_path / "nfs", "lock_wait": 30.0}


def s3_kwargs(endpoint: str, bucket: str, options: dict[str, Any]) -> dict[str, Any]:
    """A fresh prefix of the session's bucket per store."""
    return {
        "bucket": bucket,
        "prefix": f"t/{uuid.uuid4().hex}",
        "endpoint_url": endpoint,
        **options,
    }


@pytest.mark.s3
class TestS3Store(StoreTests):
    store_cls = S3Store
    reopen_options = CREDENTIALS

    @pytest.fixture
    def store_kwargs(
        self, moto_endpoint: str, s3_bucket: str, s3_options: dict[str, Any]
    ) -> dict[str, Any]:
        return s3_kwargs(moto_endpoint, s3_bucket, s3_options)


# -- PrefixedStore -------------------------------------------------------------------------
PREFIX = "repos/ns/name"
#: Objects of other repositories (and around them) in the inner store: no test may see them.
NEIGHBOURS = {
    "repos/ns/name2/k": b"a sibling whose name extends ours",
    "repos/ns/nam/k": b"a sibling whose name is a prefix of ours",
    "repos/ns/k": b"the namespace above",
    "repos/ns/name.json": b"next to our directory",
    "top": b"the root of the inner store",
}


class PrefixedStoreTests(StoreTests):
    """PrefixedStore over an ``inner`` store that already holds other repositories."""

    store_cls = PrefixedStore

    @pytest.fixture
    def inner(self) -> Store:
        raise NotImplementedError

    @pytest.fixture
    async def store_kwargs(self, inner: Store) -> dict[str, Any]:
        await asyncio.gather(*(inner.put(key, value) for key, value in NEIGHBOURS.items()))
        return {"inner": inner, "prefix": PREFIX}

    async def test_neighbours_stay_apart(self, store: Store, inner: Store) -> None:
        await store.put("k", b"mine")
        assert await inner.get(f"{PREFIX}/k") == b"mine"
        assert await collect(store) == ["k"]
        assert await collect(store, "k") == ["k"]
        assert await store.exists_many(["k", "name2/k", "nam/k"]) == {"k"}
        await store.delete("k")
        assert await collect(store) == []
        for key, value in NEIGHBOURS.items():
            assert await inner.get(key) == value
        assert await collect(inner) == sorted(NEIGHBOURS)
        with pytest.raises(InvalidKey):
            await store.get("../name2/k")
        with pytest.raises(InvalidKey):
            PrefixedStore(inner, "../up")

    async def test_delegates_to_the_inner_store(self, store: Store, inner: Store) -> None:
        assert (store.range_gap, store.max_read) == (inner.range_gap, inner.max_read)
        assert store.supports_cas == inner.supports_cas
        inner_url, url = urlsplit(inner.url), urlsplit(store.url)
        assert url._replace(path="") == inner_url._replace(path="")  # scheme, host, query
        assert url.path == inner_url.path.rstrip("/") + "/" + PREFIX
        await store.close()  # leaves the shared inner store open
        await inner.put("after", b"close")
        assert await inner.get("after") == b"close"


class TestPrefixedLocalStore(PrefixedStoreTests):
    reopen_cls = LocalStore

    @pytest.fixture
    def inner(self, tmp_path: Path) -> Store:
        return LocalStore(tmp_path / "bucket")

    async def test_reopened_url_adds_no_keys(self, store: Store, inner: Store) -> None:
        """The URL reopens as a LocalStore at the prefix, with its own ``#tmp``/``#locks``."""
        async with open_store(store.url) as again:
            assert await again.compare_and_swap("refs/main", None, b"1") is True
        assert await collect(store) == ["refs/main"]
        assert await collect(inner) == sorted([*NEIGHBOURS, f"{PREFIX}/refs/main"])


@pytest.mark.s3
class TestPrefixedS3Store(PrefixedStoreTests):
    reopen_cls = S3Store
    reopen_options = CREDENTIALS

    @pytest.fixture
    async def inner(
        self, moto_endpoint: str, s3_bucket: str, s3_options: dict[str, Any]
    ) -> AsyncIterator[Store]:
        inner = S3Store(**s3_kwargs(moto_endpoint, s3_bucket, s3_options))
        try:
            yield inner
        finally:
            await inner.close()
