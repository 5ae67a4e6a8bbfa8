"""Opening stores by URL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from oxen.storage import StoreError, open_store
from oxen.storage.local import LocalStore
from oxen.storage.nfs import NfsStore


def test_local_urls(tmp_path: Path) -> None:
    for url in (str(tmp_path / "a"), f"file://{tmp_path}/a", tmp_path / "a"):
        store = open_store(url)
        assert type(store) is LocalStore
        assert store.root == tmp_path / "a"
    assert open_store(f"file://{tmp_path}/b?fsync=0").fsync is False
    assert open_store(open_store(str(tmp_path / "c")).url).root == tmp_path / "c"


def test_nfs_urls(tmp_path: Path) -> None:
    store = open_store(f"nfs://{tmp_path}/n", lock_stale_after=5)
    assert type(store) is NfsStore and store.lock_stale_after == 5
    assert type(open_store(f"file://{tmp_path}/m?nfs=true")) is NfsStore


def test_bad_urls(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported store URL scheme 'gs'"):
        open_store("gs://bucket/x")
    with pytest.raises(StoreError, match="unknown store option 'colour'"):
        open_store(f"file://{tmp_path}/a?colour=red")
    with pytest.raises(StoreError, match="bad value"):
        open_store(f"nfs://{tmp_path}/a?lock_wait=soon")


def test_s3_urls() -> None:
    pytest.importorskip("aiobotocore")
    from oxen.storage.s3 import S3Store

    store = open_store(
        "s3://bucket/some/prefix?endpoint_url=http://127.0.0.1:9000&max_concurrency=4"
        "&single_writer=1&part_size=8388608",
        read_timeout=5,
    )
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.endpoint_url) == (
        "bucket",
        "some/prefix",
        "http://127.0.0.1:9000",
    )
    assert (store.max_concurrency, store.single_writer, store.part_size) == (4, True, 8 << 20)
    assert store.read_timeout == 5 and store.addressing_style == "path"
    assert store.url == "s3://bucket/some/prefix?endpoint_url=http://127.0.0.1:9000"
    assert open_store("s3://bucket").prefix == ""
    with pytest.raises(StoreError, match="unknown S3 store option 'colour'"):
        open_store("s3://bucket/x?colour=red")
    with pytest.raises(StoreError, match="must be a int"):
        open_store("s3://bucket/x?max_concurrency=many")
    with pytest.raises(StoreError, match="needs a bucket"):
        open_store("s3:///x")


def test_endpoint_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("aiobotocore")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://generic:1")
    assert open_store("s3://b/p").endpoint_url == "http://generic:1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-specific:2")
    assert open_store("s3://b/p").endpoint_url == "http://s3-specific:2"
    assert open_store("s3://b/p?endpoint_url=http://explicit:3").endpoint_url == "http://explicit:3"


def test_local_stores_do_not_import_the_network_stack(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from oxen.storage import open_store
        open_store({str(tmp_path / "l")!r}); open_store("nfs://{tmp_path}/n")
        heavy = [m for m in ("aiobotocore", "botocore", "aiohttp") if m in sys.modules]
        assert not heavy, heavy
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)
