"""The server's metrics, in the Prometheus text format at ``GET /metrics``.

Each application has a registry of its own (not prometheus_client's global one), so
several applications in one process (the tests) never add to one another's counts.
Label values are bounded: a route is its pattern (``/api/repos/{namespace}/{name}/packs``),
never the path a client sent; a method outside the usual ones is ``other``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from oxen.serving.served_repo import PackSlots
from oxen.storage import ByteRange, Store

T = TypeVar("T")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
UNMATCHED = "unmatched"  # no route: 404 and 405 of the router
# A pack upload may take minutes; a refs read milliseconds.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
STORE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
STORE_OPERATIONS = (
    "copy",
    "get",
    "get_range",
    "get_ranges",
    "read_spans",
    "put",
    "put_file",
    "put_if_absent",
    "compare_and_swap",
    "exists_many",
    "list",
    "size",
    "delete",
)
AUTH_FAILURES = ("missing", "invalid", "expired", "forbidden")

# The classic text format, which every Prometheus reads (the names here need no escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

routes = web.RouteTableDef()


class Metrics:
    """Every metric the server keeps, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "oxen_http_requests",
            "HTTP requests answered, by route pattern, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "oxen_http_request_duration_seconds",
            "Time from a request's arrival to its handler's end (a streamed answer: its"
            " last byte handed to the connection), by route pattern and method",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.bytes_in = Counter(
            "oxen_http_request_bytes",
            "Bytes of request bodies received, by route pattern",
            ["route"],
            registry=r,
        )
        self.bytes_out = Counter(
            "oxen_http_response_bytes",
            "Bytes of response bodies sent, by route pattern",
            ["route"],
            registry=r,
        )
        self.in_flight = Gauge(
            "oxen_http_requests_in_flight", "Requests being handled right now", registry=r
        )
        self.pushes = Counter(
            "oxen_pushes",
            "Branches moved by a push: successful PUT /api/repos/{namespace}/{name}/refs/heads/{branch}",
            registry=r,
        )
        self.fetches = Counter(
            "oxen_fetches",
            "Clones, fetches and pulls begun, as the client names them (the Oxen-Operation"
            " header of its first successful read of a repository's branches)",
            ["operation"],
            registry=r,
        )
        self.auth_failures = Counter(
            "oxen_auth_failures",
            "Requests refused for their token: 401 missing, invalid or expired; 403 forbidden",
            ["reason"],
            registry=r,
        )
        self.store_duration = Histogram(
            "oxen_store_request_duration_seconds",
            "Time of each call to the object store, by operation (a listing: the time spent"
            " waiting for its keys, summed)",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "oxen_store_errors",
            "Calls to the object store that raised, by operation",
            ["operation"],
            registry=r,
        )
        self.packs = Gauge(
            "oxen_packs_in_flight",
            "Packs being verified and stored (receive) or built for a fetch (fetch) right now",
            ["kind"],
            registry=r,
        )
        self.packs_waiting = Gauge(
            "oxen_packs_waiting", "Requests waiting for one of the pack slots", registry=r
        )
        self.pack_slots = Gauge(
            "oxen_pack_slots",
            "Packs that may be verified, stored or built at once (PACKS_IN_FLIGHT)",
            registry=r,
        )
        for reason in AUTH_FAILURES:  # every series exists from the start, at 0
            self.auth_failures.labels(reason)
        for operation in STORE_OPERATIONS:
            self.store_duration.labels(operation)
            self.store_errors.labels(operation)

    def watch_packs(self, slots: PackSlots) -> None:
        """The pack gauges read ``slots`` when scraped."""
        for kind in ("receive", "fetch"):
            self.packs.labels(kind).set_function(lambda kind=kind: slots.held[kind])
        self.packs_waiting.set_function(lambda: slots.waiting)
        self.pack_slots.set(slots.limit)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


METRICS = web.AppKey("metrics", Metrics)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


class MeasuredStore(Store):
    """The store the server uses, each call timed into ``oxen_store_request_duration_seconds``
    (and counted in ``oxen_store_errors`` when it raises). Everything else is the inner
    store's."""

    def __init__(self, inner: Store, metrics: Metrics) -> None:
        self.inner = inner
        self._observe = {op: metrics.store_duration.labels(op).observe for op in STORE_OPERATIONS}
        self._errors = {op: metrics.store_errors.labels(op).inc for op in STORE_OPERATIONS}

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
        return self.inner.url

    def __repr__(self) -> str:
        return f"MeasuredStore({self.inner!r})"

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        except Exception:
            self._errors[operation]()
            raise
        finally:
            self._observe[operation](time.perf_counter() - started)

    async def get(self, key: str) -> bytes | None:
        return await self._timed("get", self.inner.get(key))

    async def get_range(self, key: str, start: int, length: int) -> bytes | None:
        return await self._timed("get_range", self.inner.get_range(key, start, length))

    async def get_ranges(self, key: str, ranges: Sequence[ByteRange]) -> list[bytes] | None:
        return await self._timed("get_ranges", self.inner.get_ranges(key, ranges))

    async def read_spans(self, key: str, spans: list[ByteRange]) -> list[bytes] | None:
        return await self._timed("read_spans", self.inner.read_spans(key, spans))

    async def put(self, key: str, data: bytes) -> None:
        await self._timed("put", self.inner.put(key, data))

    async def put_file(self, key: str, path: Path, *, move: bool = False) -> None:
        await self._timed("put_file", self.inner.put_file(key, path, move=move))

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        return await self._timed("put_if_absent", self.inner.put_if_absent(key, data))

    async def compare_and_swap(self, key: str, expected: bytes | None, new: bytes) -> bool:
        return await self._timed(
            "compare_and_swap", self.inner.compare_and_swap(key, expected, new)
        )

    async def exists_many(self, keys: Iterable[str]) -> set[str]:
        return await self._timed("exists_many", self.inner.exists_many(keys))

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        keys = self.inner.list(prefix).__aiter__()
        waited = 0.0
        try:
            while True:
                started = time.perf_counter()
                try:
                    key = await keys.__anext__()
                except StopAsyncIteration:
                    break
                except Exception:
                    self._errors["list"]()
                    raise
                finally:
                    waited += time.perf_counter() - started
                yield key
        finally:
            self._observe["list"](waited)
            close = getattr(keys, "aclose", None)
            if close is not None:
                await close()

    async def size(self, key: str) -> int | None:
        return await self._timed("size", self.inner.size(key))

    async def delete(self, key: str) -> None:
        await self._timed("delete", self.inner.delete(key))

    async def copy(self, source: str, dest: str) -> bool:
        return await self._timed("copy", self.inner.copy(source, dest))

    async def presign_put(self, key: str, expires: int) -> str:
        return await self.inner.presign_put(key, expires)  # signed locally: nothing to time

    async def presign_get(self, key: str, expires: int) -> str:
        return await self.inner.presign_get(key, expires)

    async def close(self) -> None:
        await self.inner.close()
