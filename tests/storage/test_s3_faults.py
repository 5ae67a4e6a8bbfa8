"""S3 store behaviour under failures, through a fault-injecting proxy in front of moto."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from oxen.storage import ConditionalWriteUnsupported, StoreUnavailable
from oxen.storage.retry import RetryPolicy

aiohttp = pytest.importorskip("aiohttp")
pytest.importorskip("aiobotocore")
from aiohttp import web  # noqa: E402

from oxen.storage.s3 import S3Store  # noqa: E402

MiB = 1024 * 1024
S3_PART = 5 * MiB  # moto enforces S3's minimum part size
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.001, throttle_delay=0.002, max_delay=0.01)
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "expect"}


@dataclass
class Seen:
    """One request as the proxy saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]

    @property
    def kind(self) -> str:
        """A rough S3 operation name, enough to aim faults."""
        q = self.query
        if self.method == "PUT" and "partNumber" in q:
            return "UploadPart"
        if self.method == "POST" and "uploads" in q:
            return "CreateMultipartUpload"
        if self.method == "POST" and "uploadId" in q:
            return "CompleteMultipartUpload"
        if self.method == "DELETE" and "uploadId" in q:
            return "AbortMultipartUpload"
        if self.method == "GET" and q.get("list-type") == "2":
            return "ListObjectsV2"
        return {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject"}.get(
            self.method, self.method
        )

    @property
    def conditional(self) -> bool:
        return any(h.lower() in ("if-match", "if-none-match") for h in self.headers)


#: A fault: ("error", status, code) | ("drop",) | ("lose_reply",) | ("cut_body",) | ("hang",)
#: or None to forward the request.
Rule = Callable[[Seen], tuple[Any, ...] | None]


@dataclass
class FaultProxy:
    """An HTTP proxy that forwards to moto unless ``rule`` picks a fault for a request."""

    upstream: str
    rule: Rule = lambda seen: None  # noqa: E731
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def kinds(self) -> list[str]:
        return [s.kind for s in self.seen]

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1024 * MiB)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._stopping.set()
        await self._runner.cleanup()
        await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen = Seen(request.method, request.path, dict(request.query), dict(request.headers))
        self.seen.append(seen)
        fault = self.rule(seen)
        if fault is None:
            return await self._forward(request, body)
        if fault[0] == "error":
            _, status, code = fault
            xml = f"<Error><Code>{code}</Code><Message>injected</Message></Error>"
            return web.Response(status=status, text=xml, content_type="application/xml")
        if fault[0] == "drop":
            return self._drop(request)
        if fault[0] == "lose_reply":  # the request takes effect, its reply never arrives
            await self._forward(request, body)
            return self._drop(request)
        if fault[0] == "cut_body":
            return await self._forward(request, body, cut=True)
        if fault[0] == "hang":  # until the proxy stops; the client times out first
            await self._stopping.wait()
            return self._drop(request)
        raise AssertionError(fault)

    def _drop(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.abort()
        return web.Response(status=599)  # never reaches the client

    async def _forward(
        self, request: web.Request, body: bytes, *, cut: bool = False
    ) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=io.BytesIO(body),
            allow_redirects=False,
        ) as up:
            payload = await up.read()
            out_headers = {k: v for k, v in up.headers.items() if k.lower() not in _HOP_HEADERS}
        resp = web.StreamResponse(status=up.status, headers=out_headers)
        length = int(up.headers.get("Content-Length", len(payload)))
        resp.content_length = length
        await resp.prepare(request)
        if request.method != "HEAD":
            if cut:
                await resp.write(payload[: len(payload) // 2])
                assert request.transport is not None
                request.transport.abort()
                return resp
            await resp.write(payload)
        await resp.write_eof()
        return resp


@pytest.fixture
async def proxy(moto_endpoint: str) -> AsyncIterator[FaultProxy]:
    p = FaultProxy(moto_endpoint)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
def bucket(make_bucket: Callable[[str], str], request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test, so in-progress uploads can be counted."""
    return make_bucket(f"faults-{os.urandom(6).hex()}")


def direct_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


OPTIONS: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _options(s3_options: dict[str, Any]) -> None:
    OPTIONS.clear()
    OPTIONS.update(s3_options, part_size=S3_PART, multipart_threshold=S3_PART + 1, retry=FAST_RETRY)


def open_s3(endpoint: str, bucket: str, **options: Any) -> S3Store:
    return S3Store(bucket, "p", endpoint_url=endpoint, **{**OPTIONS, **options})


def fail_first(n: int, kind: str, fault: tuple[Any, ...]) -> Rule:
    """Fault the first ``n`` requests of one kind."""
    count = 0

    def rule(seen: Seen) -> tuple[Any, ...] | None:
        nonlocal count
        if seen.kind == kind and count < n:
            count += 1
            return fault
        return None

    return rule


def all_of(*rules: Rule) -> Rule:
    def rule(seen: Seen) -> tuple[Any, ...] | None:
        for r in rules:
            fault = r(seen)
            if fault is not None:
                return fault
        return None

    return rule


# -- transient failures --------------------------------------------------------------------
@pytest.mark.parametrize(
    "fault",
    [
        ("error", 503, "SlowDown"),
        ("error", 500, "InternalError"),
        ("error", 503, "ServiceUnavailable"),
        ("drop",),
    ],
    ids=["slowdown", "500", "503", "drop"],
)
async def test_transient_failures_are_retried(proxy: FaultProxy, bucket: str, fault: tuple) -> None:
    async with open_s3(proxy.url, bucket) as store:
        proxy.rule = all_of(
            *(
                fail_first(2, kind, fault)
                for kind in ("PutObject", "GetObject", "HeadObject", "ListObjectsV2")
            )
        )
        await store.put("a", b"payload")
        assert await store.get("a") == b"payload"
        assert await store.get_range("a", 3, 3) == b"loa"
        assert await store.size("a") == 7
        assert [k async for k in store.list()] == ["a"]
        assert await store.exists_many(["a", "b"]) == {"a"}
        assert await store.put_if_absent("a", b"other") is False
        assert await store.compare_and_swap("a", b"payload", b"new") is True
        assert await store.get("a") == b"new"
    assert proxy.kinds().count("PutObject") >= 4  # two failed, then the writes


async def test_body_cut_mid_stream_is_retried(proxy: FaultProxy, bucket: str) -> None:
    data = os.urandom(3 * MiB)
    async with open_s3(proxy.url, bucket) as store:
        await store.put("big", data)
        proxy.rule = fail_first(2, "GetObject", ("cut_body",))
        assert await store.get("big") == data
    assert proxy.kinds().count("GetObject") == 3


async def test_read_timeouts_are_retried(proxy: FaultProxy, bucket: str) -> None:
    async with open_s3(proxy.url, bucket, read_timeout=0.2) as store:
        await store.put("a", b"x")
        proxy.rule = fail_first(1, "GetObject", ("hang",))
        assert await store.get("a") == b"x"
    assert proxy.kinds().count("GetObject") == 2


async def test_persistent_failure_gives_up(proxy: FaultProxy, bucket: str) -> None:
    async with open_s3(proxy.url, bucket) as store:
        await store.put("a", b"x")
        proxy.rule = lambda seen: ("error", 503, "SlowDown") if seen.kind == "GetObject" else None
        with pytest.raises(StoreUnavailable, match="SlowDown") as info:
            await store.get("a")
        assert "\n" not in str(info.value)
    assert proxy.kinds().count("GetObject") == FAST_RETRY.attempts


# -- multipart uploads ---------------------------------------------------------------------
def uploads_in_progress(endpoint: str, bucket: str) -> list[dict[str, Any]]:
    return direct_client(endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", [])


@pytest.mark.parametrize("via", ["put", "put_file", "put_if_absent"])
async def test_failed_multipart_leaves_nothing(
    proxy: FaultProxy, bucket: str, moto_endpoint: str, tmp_path: Any, via: str
) -> None:
    data = os.urandom(4 * S3_PART + 10)  # five parts
    proxy.rule = lambda seen: (
        ("error", 500, "InternalError")
        if seen.kind == "UploadPart" and int(seen.query["partNumber"]) > 2
        else None
    )
    async with open_s3(proxy.url, bucket, max_part_concurrency=2) as store:
        with pytest.raises(StoreUnavailable, match="uploading part"):
            if via == "put":
                await store.put("big", data)
            elif via == "put_file":
                src = tmp_path / "src"
                src.write_bytes(data)
                await store.put_file("big", src)
            else:
                await store.put_if_absent("big", data)
        assert await store.get("big") is None
        assert [k async for k in store.list()] == []
    assert "AbortMultipartUpload" in proxy.kinds()
    assert uploads_in_progress(moto_endpoint, bucket) == []


async def test_failed_completion_leaves_nothing(
    proxy: FaultProxy, bucket: str, moto_endpoint: str
) -> None:
    proxy.rule = lambda seen: (
        ("error", 500, "InternalError") if seen.kind == "CompleteMultipartUpload" else None
    )
    async with open_s3(proxy.url, bucket) as store:
        with pytest.raises(StoreUnavailable):
            await store.put("big", os.urandom(2 * S3_PART))
        assert await store.get("big") is None
    assert uploads_in_progress(moto_endpoint, bucket) == []


async def test_multipart_survives_transient_part_failures(
    proxy: FaultProxy, bucket: str, moto_endpoint: str
) -> None:
    data = os.urandom(3 * S3_PART)
    proxy.rule = all_of(
        fail_first(2, "UploadPart", ("error", 503, "SlowDown")),
        fail_first(1, "CompleteMultipartUpload", ("lose_reply",)),
    )
    async with open_s3(proxy.url, bucket) as store:
        await store.put("big", data)
        assert await store.get("big") == data
        assert await store.put_if_absent("big", data) is False
        proxy.rule = fail_first(1, "CompleteMultipartUpload", ("lose_reply",))
        assert await store.put_if_absent("big2", data) is True  # completed; reply lost
    assert uploads_in_progress(moto_endpoint, bucket) == []


# -- conditional writes --------------------------------------------------------------------
async def test_lost_reply_of_a_conditional_write(proxy: FaultProxy, bucket: str) -> None:
    """The write landed but its reply was lost: the retry's 412 must not read as a loss."""
    async with open_s3(proxy.url, bucket) as store:
        proxy.rule = fail_first(1, "PutObject", ("lose_reply",))
        assert await store.put_if_absent("obj", b"mine") is True
        proxy.rule = fail_first(1, "PutObject", ("lose_reply",))
        assert await store.compare_and_swap("obj", b"mine", b"next") is True
        assert await store.get("obj") == b"next"
        # a genuine conflict stays a conflict
        assert await store.compare_and_swap("obj", b"mine", b"other") is False


def reject_conditionals(seen: Seen) -> tuple[Any, ...] | None:
    return ("error", 501, "NotImplemented") if seen.conditional else None


async def test_conditional_writes_unsupported(proxy: FaultProxy, bucket: str) -> None:
    proxy.rule = reject_conditionals
    async with open_s3(proxy.url, bucket) as store:
        assert store.supports_cas
        with pytest.raises(ConditionalWriteUnsupported, match="single_writer"):
            await store.compare_and_swap("refs/main", None, b"a")
        assert not store.supports_cas
        with pytest.raises(ConditionalWriteUnsupported):
            await store.put_if_absent("obj", b"x")
        assert await store.get("refs/main") is None  # nothing was written
        await store.put("plain", b"unconditional writes still work")


async def test_single_writer_fallback(proxy: FaultProxy, bucket: str) -> None:
    proxy.rule = reject_conditionals
    async with open_s3(proxy.url, bucket, single_writer=True) as store:
        assert await store.compare_and_swap("refs/main", None, b"a") is True
        assert not store.supports_cas
        assert await store.compare_and_swap("refs/main", b"a", b"b") is True
        assert await store.compare_and_swap("refs/main", b"a", b"c") is False
        assert await store.put_if_absent("obj", b"x") is True
        assert await store.put_if_absent("obj", b"y") is False
        assert await store.get("obj") == b"x"


# -- unusable stores -----------------------------------------------------------------------
async def test_wrong_credentials(proxy: FaultProxy, bucket: str) -> None:
    proxy.rule = lambda seen: (
        ("error", 403, "InvalidAccessKeyId")
        if "Credential=WRONG/" in seen.headers.get("Authorization", "")
        else None
    )
    started = time.monotonic()
    store = open_s3(proxy.url, bucket, access_key_id="WRONG")
    with pytest.raises(StoreUnavailable) as info:
        await store.get("a")
    message = str(info.value)
    assert bucket in message and "access key" in message and "\n" not in message
    assert time.monotonic() - started < 5
    await store.close()


async def test_signature_mismatch(proxy: FaultProxy, bucket: str) -> None:
    proxy.rule = lambda seen: ("error", 403, "SignatureDoesNotMatch")
    with pytest.raises(StoreUnavailable, match="secret key"):
        await open_s3(proxy.url, bucket).put("a", b"x")


async def test_missing_bucket(moto_endpoint: str) -> None:
    store = open_s3(moto_endpoint, "no-such-bucket")
    with pytest.raises(StoreUnavailable, match="'no-such-bucket' does not exist") as info:
        await store.exists_many(["a"])
    assert "\n" not in str(info.value)
    await store.close()


async def test_unreachable_endpoint() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    store = open_s3(endpoint, "some-bucket")
    with pytest.raises(StoreUnavailable, match="unreachable") as info:
        await store.get("a")
    assert endpoint in str(info.value) and "some-bucket" in str(info.value)
    assert time.monotonic() - started < 5
    await store.close()


async def test_no_credentials(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = S3Store("oxen-test", endpoint_url=moto_endpoint, retry=FAST_RETRY)
    with pytest.raises(StoreUnavailable, match="credentials"):
        await store.get("a")
    await store.close()


# -- request shapes ------------------------------------------------------------------------
async def test_exists_many_lists_dense_keys_and_heads_sparse_ones(
    proxy: FaultProxy, bucket: str
) -> None:
    async with open_s3(proxy.url, bucket, list_page_size=1000) as store:
        keys = [f"chunks/{i:05d}" for i in range(200)]
        await asyncio.gather(*(store.put(k, b"") for k in keys[::2]))
        proxy.seen.clear()
        assert await store.exists_many(keys) == set(keys[::2])
        assert "HeadObject" not in proxy.kinds()
        assert proxy.kinds().count("ListObjectsV2") <= store.max_concurrency

    # Wanted keys far apart in the listing: a page answers for too few, so HEADs take over.
    async with open_s3(proxy.url, bucket, list_page_size=10) as store:
        proxy.seen.clear()
        wanted = keys[::20] + [k + "x" for k in keys[::20]]
        assert await store.exists_many(wanted) == set(keys[::20])
        assert proxy.kinds().count("ListObjectsV2") <= store.max_concurrency
        assert proxy.kinds().count("HeadObject") >= len(wanted) - 4


async def test_get_ranges_merges_nearby_ranges(proxy: FaultProxy, bucket: str) -> None:
    from oxen.storage import ByteRange

    data = os.urandom(1 * MiB)
    async with open_s3(proxy.url, bucket, max_gap=64 * 1024) as store:
        await store.put("pack", data)
        proxy.seen.clear()
        ranges = [ByteRange(i * 10_000, 100) for i in range(20)] + [ByteRange(900_000, 10)]
        got = await store.get_ranges("pack", ranges)
        assert got == [data[r.start : r.end] for r in ranges]
        assert proxy.kinds().count("GetObject") == 2


async def test_get_ranges_reads_at_most_max_read(proxy: FaultProxy, bucket: str) -> None:
    from oxen.storage import ByteRange

    data = os.urandom(1 * MiB)
    async with open_s3(proxy.url, bucket, range_gap=64 * 1024, max_read=256 * 1024) as store:
        await store.put("pack", data)
        proxy.seen.clear()
        chunks = [ByteRange(offset, 64 * 1024) for offset in range(0, len(data), 64 * 1024)]
        got = await store.get_ranges("pack", chunks)
        assert got == [data[r.start : r.end] for r in chunks]
        spans = sorted(
            tuple(int(n) for n in s.headers["Range"].removeprefix("bytes=").split("-"))
            for s in proxy.seen
            if s.kind == "GetObject"
        )
        assert spans == [(i * 256 * 1024, (i + 1) * 256 * 1024 - 1) for i in range(4)]
