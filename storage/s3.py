"""An S3 (or S3-compatible: MinIO, Ceph, R2, moto) store on aiobotocore.

``s3://bucket/prefix``: every key is stored as ``prefix/key``.  Credentials and region
come from botocore's standard chain (environment, profile, instance role) unless given;
the endpoint from ``endpoint_url``, else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``.

* At most ``max_concurrency`` requests are in flight per store (a semaphore held for the
  request and its body); the connection pool has the same size.
* Objects above ``multipart_threshold`` (100 MiB, where AWS advises multipart; full
  64 MiB packs go up in one PUT, which moto and MinIO also take faster) are uploaded in
  ``part_size`` parts, several at a time; on any failure the upload is aborted, so no
  partial object is ever visible.
  (Aborts can themselves fail when the service is down: a bucket lifecycle rule
  ``AbortIncompleteMultipartUpload`` cleans up what is left.)
* ``get_ranges`` merges ranges up to ``range_gap`` (1 MiB; ``max_gap`` is its old name)
  apart into ranged GETs of at most ``max_read`` bytes (default ``max(part_size,
  range_gap)``), sent concurrently (see :meth:`Store.get_ranges`).
* Every operation, body included, is retried with jittered backoff on 5xx, throttling,
  dropped connections and timeouts (see :mod:`oxen.storage.retry` for why not botocore's).
* ``put_if_absent`` is ``PutObject`` with ``If-None-Match: *``; ``compare_and_swap`` reads
  value and ETag, compares bytes and writes with ``If-Match: <etag>`` (or
  ``If-None-Match: *``).  A conditional write whose first reply was lost and whose retry
  then conflicts is re-checked: if the object holds exactly our bytes, it was ours.
* Services without conditional writes answer 501 NotImplemented.  The store then sets
  ``supports_cas = False`` and raises :class:`ConditionalWriteUnsupported`: moving refs
  without it would silently lose updates.  With ``single_writer=True`` (for deployments
  where exactly one process writes the store) it falls back to read-compare-write.
  Services that silently *ignore* the headers cannot be detected this way.
* Wrong credentials, a missing bucket and an unreachable endpoint raise
  :class:`StoreUnavailable` with one line naming the bucket and endpoint; the bucket is
  checked with one small listing when the store first connects.

A store's connections belong to one event loop; used from another loop it reconnects.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlparse

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from oxen.storage.base import (
    ByteRange,
    Store,
    check_key,
    check_prefix,
)
from oxen.storage.errors import (
    ConditionalWriteUnsupported,
    InvalidKey,
    StoreError,
    StoreUnavailable,
)
from oxen.storage.retry import Retry, RetryPolicy, retry_call

log = logging.getLogger(__name__)
T = TypeVar("T")

MiB = 1024 * 1024
_MAX_PARTS = 10_000

_THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "TooManyRequestsException",
        "BandwidthLimitExceeded",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "ConditionalRequestConflict",
    }
)
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId": "the access key id is not known",
    "SignatureDoesNotMatch": "the secret key does not match the access key id",
    "InvalidToken": "the session token is invalid",
    "ExpiredToken": "the session token has expired",
    "TokenRefreshRequired": "the session token has expired",
    "AccessDenied": "access denied, check the credentials and the bucket policy",
    "AllAccessDisabled": "all access to the bucket is disabled",
    "403": "access denied, check the credentials and the bucket policy",
}
_NETWORK_ERRORS = (
    BotoConnectionError,
    HTTPClientError,
    ResponseStreamingError,
    IncompleteReadError,
    aiohttp.ClientError,
    ConnectionError,
    TimeoutError,
)

#: Options accepted in the URL query (``s3://bucket/prefix?max_concurrency=32``).
_URL_OPTIONS: dict[str, type] = {
    "endpoint_url": str,
    "region": str,
    "profile": str,
    "addressing_style": str,
    "max_concurrency": int,
    "multipart_threshold": int,
    "part_size": int,
    "max_part_concurrency": int,
    "list_page_size": int,
    "list_threshold": int,
    "range_gap": int,
    "max_gap": int,  # the old name of range_gap
    "max_read": int,
    "connect_timeout": float,
    "read_timeout": float,
    "single_writer": bool,
    "check_bucket": bool,
}


class _NoConditionalWrites(Exception):
    """The service rejected If-Match/If-None-Match (501 NotImplemented)."""


@dataclass(slots=True)
class _Conn:
    loop: asyncio.AbstractEventLoop
    client: Any
    stack: AsyncExitStack
    sem: asyncio.Semaphore


class S3Store(Store):
    """Objects in one S3 bucket under an optional prefix."""

    supports_presign = True
    #: A request costs far more than reading a gap: merge ranges up to 1 MiB apart.  The
    #: largest merged read (``max_read``) defaults to ``max(part_size, range_gap)``.
    range_gap = 1 * MiB

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        addressing_style: str | None = None,
        max_concurrency: int = 16,
        multipart_threshold: int = 100 * MiB,
        part_size: int = 16 * MiB,
        max_part_concurrency: int = 4,
        list_page_size: int = 1000,
        list_threshold: int = 64,
        range_gap: int | None = None,
        max_read: int | None = None,
        max_gap: int | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        single_writer: bool = False,
        check_bucket: bool = True,
    ) -> None:
        if not bucket:
            raise StoreError("an S3 store URL needs a bucket: s3://bucket/prefix")
        prefix = prefix.strip("/")
        if prefix:
            try:
                check_key(prefix)
            except InvalidKey:
                raise InvalidKey(
                    f"invalid S3 store prefix {prefix!r} for bucket {bucket!r}"
                ) from None
        if max_concurrency < 1 or max_part_concurrency < 1 or part_size < 1:
            raise ValueError("max_concurrency, max_part_concurrency and part_size must be >= 1")
        if max_gap is not None:
            if range_gap is not None and range_gap != max_gap:
                raise ValueError("max_gap is the old name of range_gap: give one of them")
            range_gap = max_gap
        if (range_gap is not None and range_gap < 0) or (max_read is not None and max_read < 1):
            raise ValueError("range_gap must be >= 0 and max_read >= 1")
        self.bucket = bucket
        self.prefix = prefix
        self._prefix = f"{prefix}/" if prefix else ""
        self._explicit_endpoint = endpoint_url
        self.endpoint_url = (
            endpoint_url
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or None
        )
        self.region = region
        self.profile = profile
        self._credentials = {
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "aws_session_token": session_token,
        }
        # Custom endpoints (MinIO, moto, Ceph) rarely have wildcard DNS for buckets.
        self.addressing_style = addressing_style or ("path" if self.endpoint_url else "auto")
        self.max_concurrency = max_concurrency
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.max_part_concurrency = max_part_concurrency
        self.list_page_size = list_page_size
        self.list_threshold = max(1, list_threshold)
        if range_gap is not None:
            self.range_gap = range_gap
        self.max_read = max_read if max_read is not None else max(part_size, self.range_gap)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retry = retry or RetryPolicy()
        self.single_writer = single_writer
        self.check_bucket = check_bucket
        self._endpoint_name = self.endpoint_url or "AWS S3"
        self._conn_state: _Conn | None = None
        self._opening: asyncio.Task[_Conn] | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> S3Store:
        """``s3://bucket/prefix?option=value``; keyword options override the query."""
        parsed = urlparse(url)
        query: dict[str, Any] = {}
        for name, value in parse_qsl(parsed.query, keep_blank_values=True):
            kind = _URL_OPTIONS.get(name)
            if kind is None:
                raise StoreError(f"unknown S3 store option {name!r} in {url!r}")
            query[name] = _parse_option(name, value, kind)
        query.update(options)
        return cls(parsed.netloc, parsed.path, **query)

    @property
    def url(self) -> str:
        base = f"s3://{self.bucket}/{self.prefix}"
        if self._explicit_endpoint:
            base += f"?endpoint_url={quote(self._explicit_endpoint, safe=':/')}"
        return base

    def __repr__(self) -> str:
        return f"S3Store({self.url!r}, endpoint={self._endpoint_name!r})"

    @property
    def max_gap(self) -> int:
        """The old name of :attr:`range_gap`."""
        return self.range_gap

    # -- connection --------------------------------------------------------------------
    async def _conn(self) -> _Conn:
        loop = asyncio.get_running_loop()
        state = self._conn_state
        if state is not None and state.loop is loop:
            return state
        task = self._opening
        if task is None or task.get_loop() is not loop:
            task = self._opening = loop.create_task(self._open(loop))
        return await asyncio.shield(task)

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Conn:
        stack = AsyncExitStack()
        try:
            session = get_session()
            if self.profile:
                session.set_config_variable("profile", self.profile)
            config = AioConfig(
                response_checksum_validation="when_required",
                request_checksum_calculation="when_required",
                max_pool_connections=self.max_concurrency,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                retries={"total_max_attempts": 1, "mode": "standard"},
                s3={"addressing_style": self.addressing_style},
            )
            client = await stack.enter_async_context(
                session.create_client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    region_name=self.region,
                    config=config,
                    **{k: v for k, v in self._credentials.items() if v is not None},
                )
            )
            self._endpoint_name = client.meta.endpoint_url or self._endpoint_name
            conn = _Conn(loop, client, stack, asyncio.Semaphore(self.max_concurrency))
            if self.check_bucket:
                await self._request(
                    f"checking bucket {self.bucket!r}",
                    lambda c, _: c.list_objects_v2(
                        Bucket=self.bucket, Prefix=self._prefix, MaxKeys=1
                    ),
                    conn,
                )
        except BaseException as e:
            self._opening = None
            await stack.aclose()
            if isinstance(e, ProfileNotFound):
                raise StoreUnavailable(f"AWS profile {self.profile!r} not found") from e
            raise
        self._conn_state = conn
        return conn

    async def close(self) -> None:
        state, self._conn_state, self._opening = self._conn_state, None, None
        if state is not None and state.loop is asyncio.get_running_loop():
            await state.stack.aclose()

    # -- request plumbing --------------------------------------------------------------
    def _full(self, key: str) -> str:
        return self._prefix + check_key(key)

    async def _request(
        self,
        what: str,
        fn: Callable[[Any, int], Awaitable[T]],
        conn: _Conn | None = None,
    ) -> T:
        """Run ``fn(client, attempt)`` under the semaphore, with retries and error mapping."""
        conn = conn or await self._conn()

        async def attempt(n: int) -> T:
            async with conn.sem:
                return await fn(conn.client, n)

        try:
            return await retry_call(attempt, self.retry, _classify)
        except (BotoCoreError, ClientError, aiohttp.ClientError, OSError) as e:
            raise self._error(e, what) from e

    def _error(self, e: BaseException, what: str) -> StoreError:
        where = f"bucket {self.bucket!r} at {self._endpoint_name}"
        if isinstance(e, ClientError):
            code, status = _code(e), _status(e)
            if code == "NoSuchBucket":
                return StoreUnavailable(
                    f"S3 bucket {self.bucket!r} does not exist at {self._endpoint_name}"
                )
            if code in _CREDENTIAL_CODES or status in (401, 403):
                why = _CREDENTIAL_CODES.get(code, "access denied")
                return StoreUnavailable(f"S3 refused access to {where}: {why} ({code})")
            if _classify(e) is not Retry.NO:
                return StoreUnavailable(
                    f"S3 {where} kept failing while {what} ({code}, HTTP {status}); "
                    f"gave up after {self.retry.attempts} attempts"
                )
            message = e.response.get("Error", {}).get("Message", "")
            return StoreError(f"S3 error while {what} in {where}: {code} (HTTP {status}) {message}")
        if isinstance(e, NoCredentialsError | PartialCredentialsError):
            return StoreUnavailable(
                f"no usable AWS credentials for s3://{self.bucket}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an instance role"
            )
        if isinstance(e, _NETWORK_ERRORS):
            kind = (
                "timed out"
                if isinstance(e, TimeoutError) or "timeout" in type(e).__name__.lower()
                else "is unreachable"
            )
            return StoreUnavailable(
                f"S3 endpoint {self._endpoint_name} {kind} (bucket {self.bucket!r}; "
                f"gave up after {self.retry.attempts} attempts: {type(e).__name__})"
            )
        return StoreError(f"S3 error while {what} in {where}: {e}")

    # -- reads -------------------------------------------------------------------------
    async def get(self, key: str) -> bytes | None:
        full = self._full(key)

        async def op(c: Any, _: int) -> bytes | None:
            try:
                r = await c.get_object(Bucket=self.bucket, Key=full)
            except ClientError as e:
                if _code(e) == "NoSuchKey":
                    return None
                raise
            async with r["Body"] as body:
                return await body.read()

        return await self._request(f"reading {key!r}", op)

    async def get_range(self, key: str, start: int, length: int) -> bytes | None:
        if start < 0 or length < 0:
            raise ValueError(f"invalid byte range: start={start} length={length}")
        full = self._full(key)
        if length == 0:
            return None if await self.size(key) is None else b""

        async def op(c: Any, _: int) -> bytes | None:
            try:
                r = await c.get_object(
                    Bucket=self.bucket, Key=full, Range=f"bytes={start}-{start + length - 1}"
                )
            except ClientError as e:
                if _code(e) == "NoSuchKey":
                    return None
                if _code(e) == "InvalidRange" or _status(e) == 416:
                    return b""  # the range starts at or past the end
                raise
            async with r["Body"] as body:
                return await body.read()

        return await self._request(f"reading {key!r}", op)

    async def read_spans(self, key: str, spans: list[ByteRange]) -> list[bytes] | None:
        """The merged reads of a :meth:`get_ranges` call: one ranged GET each, concurrently."""
        blobs = await _gather_or_cancel([self.get_range(key, s.start, s.length) for s in spans])
        if any(b is None for b in blobs):
            return None
        return blobs  # type: ignore[return-value]

    async def _head(self, full: str, what: str) -> int | None:
        async def op(c: Any, _: int) -> int | None:
            try:
                r = await c.head_object(Bucket=self.bucket, Key=full)
            except ClientError as e:
                if _code(e) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
            return int(r["ContentLength"])

        return await self._request(what, op)

    async def size(self, key: str) -> int | None:
        return await self._head(self._full(key), f"checking {key!r}")

    # -- writes ------------------------------------------------------------------------
    async def _put_object(self, full: str, data: bytes, what: str) -> None:
        await self._request(
            what, lambda c, _: c.put_object(Bucket=self.bucket, Key=full, Body=data)
        )

    async def put(self, key: str, data: bytes) -> None:
        full = self._full(key)
        data = bytes(data) if isinstance(data, memoryview) else data
        if len(data) > self.multipart_threshold:
            await self._upload(full, len(data), _bytes_reader(data), f"writing {key!r}")
        else:
            await self._put_object(full, data, f"writing {key!r}")

    async def put_file(self, key: str, path: Path, *, move: bool = False) -> None:
        """Upload a file; with ``move`` the local file is deleted once the object exists."""
        full = self._full(key)
        path = Path(path)
        size = (await asyncio.to_thread(os.stat, path)).st_size
        what = f"writing {key!r} from {path}"
        if size <= self.multipart_threshold:
            await self._put_object(full, await asyncio.to_thread(path.read_bytes), what)
        else:
            fd = await asyncio.to_thread(os.open, path, os.O_RDONLY)
            try:
                await self._upload(full, size, _file_reader(fd, path), what)
            finally:
                os.close(fd)
        if move:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        full = self._full(key)
        what = f"creating {key!r}"
        data = bytes(data) if isinstance(data, memoryview) else data
        if not self.supports_cas:
            return await self._unsafe_put_if_absent(full, data, what)
        try:
            if len(data) > self.multipart_threshold:
                if await self._head(full, what) is not None:
                    return False  # skip a large upload that is bound to lose
                return await self._multipart(
                    full, len(data), _bytes_reader(data), what, if_none_match=True
                )
            return await self._put_conditional(full, data, what, IfNoneMatch="*")
        except _NoConditionalWrites:
            self._no_conditional_writes()
            return await self._unsafe_put_if_absent(full, data, what)

    async def compare_and_swap(self, key: str, expected: bytes | None, new: bytes) -> bool:
        full = self._full(key)
        what = f"updating {key!r}"
        if not self.supports_cas:
            return await self._unsafe_cas(full, expected, new, what)
        current, etag = await self._get_with_etag(full, what)
        if current != expected:
            return False
        cond = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        try:
            return await self._put_conditional(full, new, what, cas=True, **cond)
        except _NoConditionalWrites:
            self._no_conditional_writes()
            return await self._unsafe_cas(full, expected, new, what)

    async def _get_with_etag(self, full: str, what: str) -> tuple[bytes | None, str | None]:
        async def op(c: Any, _: int) -> tuple[bytes | None, str | None]:
            try:
                r = await c.get_object(Bucket=self.bucket, Key=full)
            except ClientError as e:
                if _code(e) == "NoSuchKey":
                    return None, None
                raise
            async with r["Body"] as body:
                return await body.read(), r["ETag"]

        return await self._request(what, op)

    async def _put_conditional(
        self, full: str, data: bytes, what: str, *, cas: bool = False, **cond: str
    ) -> bool:
        """PutObject with If-Match / If-None-Match: True if written, False on a conflict."""
        retried = False

        async def op(c: Any, attempt: int) -> bool:
            nonlocal retried
            retried = attempt > 0
            try:
                await c.put_object(Bucket=self.bucket, Key=full, Body=data, **cond)
                return True
            except ClientError as e:
                code, status = _code(e), _status(e)
                if status == 501 or code == "NotImplemented":
                    raise _NoConditionalWrites() from e
                if status == 412 or code == "PreconditionFailed":
                    return False
                if cas and (code == "ConditionalRequestConflict" or code == "NoSuchKey"):
                    return False  # a concurrent writer, or the object vanished: not ours
                raise

        if await self._request(what, op):
            return True
        if retried:
            # Our first attempt may have landed and only its reply was lost.
            current, _ = await self._get_with_etag(full, what)
            return current == data
        return False

    def _no_conditional_writes(self) -> None:
        self.supports_cas = False
        log.warning("S3 endpoint %s does not support conditional writes", self._endpoint_name)
        if not self.single_writer:
            raise ConditionalWriteUnsupported(
                f"S3 endpoint {self._endpoint_name} does not support conditional writes "
                f"(If-None-Match / If-Match), so concurrent writers of s3://{self.bucket} could "
                "lose ref updates; open the store with single_writer=1 only if exactly one "
                "process ever writes to it"
            )

    async def _unsafe_put_if_absent(self, full: str, data: bytes, what: str) -> bool:
        """Check-then-write: correct only with a single writer (``single_writer=True``)."""
        if not self.single_writer:
            self._no_conditional_writes()
        if await self._head(full, what) is not None:
            return False
        if len(data) > self.multipart_threshold:
            await self._upload(full, len(data), _bytes_reader(data), what)
        else:
            await self._put_object(full, data, what)
        return True

    async def _unsafe_cas(self, full: str, expected: bytes | None, new: bytes, what: str) -> bool:
        """Read-compare-write: correct only with a single writer (``single_writer=True``)."""
        if not self.single_writer:
            self._no_conditional_writes()
        current, _ = await self._get_with_etag(full, what)
        if current != expected:
            return False
        await self._put_object(full, new, what)
        return True

    # -- multipart ---------------------------------------------------------------------
    async def _upload(
        self, full: str, size: int, read_part: Callable[[int, int], Awaitable[bytes]], what: str
    ) -> None:
        if not await self._multipart(full, size, read_part, what):
            raise StoreError(f"S3 multipart upload for {what} did not complete")

    async def _multipart(
        self,
        full: str,
        size: int,
        read_part: Callable[[int, int], Awaitable[bytes]],
        what: str,
        *,
        if_none_match: bool = False,
    ) -> bool:
        """Upload in parts; the object appears only if every part made it.

        Returns False if ``if_none_match`` and the key already existed at completion.
        """
        part_size = max(self.part_size, -(-size // _MAX_PARTS))
        count = max(1, -(-size // part_size))
        created = await self._request(
            f"starting upload of {what}",
            lambda c, _: c.create_multipart_upload(Bucket=self.bucket, Key=full),
        )
        upload_id: str = created["UploadId"]
        done = False
        try:
            slots = asyncio.Semaphore(self.max_part_concurrency)

            async def upload(number: int) -> str:
                async with slots:
                    start = (number - 1) * part_size
                    body = await read_part(start, min(part_size, size - start))
                    r = await self._request(
                        f"uploading part {number}/{count} of {what}",
                        lambda c, _: c.upload_part(
                            Bucket=self.bucket,
                            Key=full,
                            UploadId=upload_id,
                            PartNumber=number,
                            Body=body,
                        ),
                    )
                    return r["ETag"]

            etags = await _gather_or_cancel([upload(n) for n in range(1, count + 1)])
            done = await self._complete(full, upload_id, etags, what, if_none_match)
            return done
        finally:
            if not done:
                await asyncio.shield(self._abort(full, upload_id))

    async def _complete(
        self, full: str, upload_id: str, etags: list[str], what: str, if_none_match: bool
    ) -> bool:
        parts = [{"PartNumber": i, "ETag": etag} for i, etag in enumerate(etags, 1)]
        cond = {"IfNoneMatch": "*"} if if_none_match else {}
        retried = False

        async def op(c: Any, attempt: int) -> bool:
            nonlocal retried
            retried = attempt > 0
            try:
                await c.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **cond,
                )
                return True
            except ClientError as e:
                code, status = _code(e), _status(e)
                if if_none_match and (status == 501 or code == "NotImplemented"):
                    raise _NoConditionalWrites() from e
                if status == 412 or code == "PreconditionFailed":
                    return False
                if code == "NoSuchUpload" and attempt > 0:
                    return False  # completed by an attempt whose reply was lost? see below
                raise

        if await self._request(f"completing upload of {what}", op):
            return True
        if retried:  # a lost reply: the object is ours if it has our multipart ETag
            return await self._etag(full, what) == _multipart_etag(etags)
        return False

    async def _etag(self, full: str, what: str) -> str | None:
        async def op(c: Any, _: int) -> str | None:
            try:
                return (await c.head_object(Bucket=self.bucket, Key=full))["ETag"]
            except ClientError as e:
                if _code(e) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise

        return await self._request(what, op)

    async def _abort(self, full: str, upload_id: str) -> None:
        async def op(c: Any, _: int) -> None:
            try:
                await c.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
            except ClientError as e:
                if _code(e) != "NoSuchUpload":
                    raise

        try:
            await self._request(f"aborting upload of {full!r}", op)
        except StoreError as e:
            log.warning(
                "could not abort multipart upload %s of %s (%s); a bucket lifecycle rule "
                "AbortIncompleteMultipartUpload removes it later",
                upload_id,
                full,
                e,
            )

    # -- server-side copies and presigned uploads ---------------------------------------
    async def copy(self, source: str, dest: str) -> bool:
        """``CopyObject``: the bytes stay in S3 (up to 5 GiB, far above a pack)."""
        src, full = self._full(source), self._full(dest)

        async def op(c: Any, _: int) -> bool:
            try:
                await c.copy_object(
                    Bucket=self.bucket, Key=full, CopySource={"Bucket": self.bucket, "Key": src}
                )
            except ClientError as e:
                if _code(e) in ("NoSuchKey", "404"):
                    return False
                raise
            return True

        return await self._request(f"copying {source!r} to {dest!r}", op)

    async def presign_put(self, key: str, expires: int) -> str:
        """A SigV4 presigned ``PutObject`` URL, signed locally (no request to S3)."""
        return await self._presign("put_object", key, expires, "an upload")

    async def presign_get(self, key: str, expires: int) -> str:
        """A SigV4 presigned ``GetObject`` URL (a ``Range`` header may be added: it is not
        signed), signed locally."""
        return await self._presign("get_object", key, expires, "a download")

    async def _presign(self, method: str, key: str, expires: int, what: str) -> str:
        full = self._full(key)
        conn = await self._conn()
        try:
            url: str = await conn.client.generate_presigned_url(
                method,
                Params={"Bucket": self.bucket, "Key": full},
                ExpiresIn=expires,
            )
        except (BotoCoreError, ClientError) as e:
            raise self._error(e, f"signing {what} URL for {key!r}") from e
        return url

    # -- metadata ----------------------------------------------------------------------
    async def delete(self, key: str) -> None:
        full = self._full(key)
        await self._request(
            f"deleting {key!r}", lambda c, _: c.delete_object(Bucket=self.bucket, Key=full)
        )

    async def exists_many(self, keys: Iterable[str]) -> set[str]:
        """HEAD each key, or walk listings where many wanted keys sit close together.

        Sorted keys are split into up to ``max_concurrency`` runs.  A run is resolved by
        listing from just before its first unresolved key: one page answers for every
        wanted key up to the page's last name.  When a page answers for fewer than
        ``list_threshold // 4`` keys the neighbourhood is sparse and the rest of the run
        falls back to HEAD requests.
        """
        wanted = sorted({self._full(k) for k in keys})
        if len(wanted) < self.list_threshold:
            found = await self._head_many(wanted)
        else:
            runs = min(self.max_concurrency, max(1, len(wanted) // self.list_threshold))
            step = -(-len(wanted) // runs)
            chunks = [wanted[i : i + step] for i in range(0, len(wanted), step)]
            found = set().union(*await _gather_or_cancel([self._walk(c) for c in chunks]))
        return {k[len(self._prefix) :] for k in found}

    async def _head_many(self, fulls: list[str]) -> set[str]:
        sizes = await _gather_or_cancel([self._head(f, "checking keys") for f in fulls])
        return {f for f, s in zip(fulls, sizes, strict=True) if s is not None}

    async def _walk(self, fulls: list[str]) -> set[str]:
        found: set[str] = set()
        min_hits = max(1, self.list_threshold // 4)
        i = 0
        while i < len(fulls):
            first = fulls[i]
            prefix = os.path.commonprefix([first, fulls[-1]])
            page = await self._request(
                "checking keys",
                lambda c, _, p=prefix, s=first[:-1]: c.list_objects_v2(
                    Bucket=self.bucket, Prefix=p, StartAfter=s, MaxKeys=self.list_page_size
                ),
            )
            names = [o["Key"] for o in page.get("Contents", ())]
            listed = set(names)
            limit = names[-1] if page.get("IsTruncated") and names else None
            start = i
            while i < len(fulls) and (limit is None or fulls[i] <= limit):
                if fulls[i] in listed:
                    found.add(fulls[i])
                i += 1
            if i - start < min_hits and i < len(fulls):
                return found | await self._head_many(fulls[i:])
        return found

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        check_prefix(prefix)
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": self._prefix + prefix,
                "MaxKeys": self.list_page_size,
            }
            if token:
                kwargs["ContinuationToken"] = token
            page = await self._request(
                f"listing {prefix!r}", lambda c, _, kw=kwargs: c.list_objects_v2(**kw)
            )
            for obj in page.get("Contents", ()):
                yield obj["Key"][len(self._prefix) :]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return


# -- helpers ---------------------------------------------------------------------------
def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _classify(e: BaseException) -> Retry:
    if isinstance(e, ClientError):
        code, status = _code(e), _status(e)
        if code in _THROTTLE_CODES or status == 429:
            return Retry.THROTTLED
        if code in _TRANSIENT_CODES or (status >= 500 and status != 501):
            return Retry.TRANSIENT
        return Retry.NO
    if isinstance(e, _NETWORK_ERRORS):
        return Retry.TRANSIENT
    return Retry.NO


def _multipart_etag(etags: list[str]) -> str:
    """The ETag S3 gives a multipart object: md5 of the parts' binary md5s, dash, count."""
    digest = hashlib.md5(b"".join(bytes.fromhex(e.strip('"')) for e in etags))
    return f'"{digest.hexdigest()}-{len(etags)}"'


def _bytes_reader(data: bytes) -> Callable[[int, int], Awaitable[bytes]]:
    view = memoryview(data)

    async def read(start: int, length: int) -> bytes:
        return bytes(view[start : start + length])  # botocore does not take memoryviews

    return read


def _file_reader(fd: int, path: Path) -> Callable[[int, int], Awaitable[bytes]]:
    async def read(start: int, length: int) -> bytes:
        data = await asyncio.to_thread(os.pread, fd, length, start)
        if len(data) != length:
            raise StoreError(f"{path} changed size while it was being uploaded")
        return data

    return read


async def _gather_or_cancel(aws: list[Awaitable[T]]) -> list[T]:
    """Like gather, but the first failure cancels the rest (and waits for them)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _parse_option(name: str, value: str, kind: type) -> Any:
    if kind is bool:
        if value.lower() in ("1", "true", "yes", "on", ""):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise StoreError(f"S3 store option {name} must be a boolean, not {value!r}")
    try:
        return kind(value)
    except ValueError:
        raise StoreError(
            f"S3 store option {name} must be a {kind.__name__}, not {value!r}"
        ) from None
