"""What a supervisor, a load balancer and a monitoring system read from a server: the
liveness and readiness probes, the metrics and the access log, in this process (the server's own process is
tests/sync/test_server_process.py)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import json
import shutil
import time
from pathlib import Path

import aiohttp
import pytest
import yarl
from prometheus_client.parser import text_string_to_metric_families

from oxen.server import health
from oxen.server.app import create_app
from oxen.server.auth import TokenGrant, TokenStore
from oxen.server.state import REGISTRY, STORE, Settings
from oxen.serving.served_repo import PACKS_IN_FLIGHT
from oxen.storage import StoreUnavailable
from oxen.storage.local import LocalStore
from oxen.sync.protocol import OPERATION_HEADER
from tests.sync.conftest import auth, serving
from tests.sync.test_server_input import expect_error


class CountingStore(LocalStore):
    """Counts every read."""

    reads = 0

    async def get(self, key: str) -> bytes | None:
        self.reads += 1
        return await super().get(key)


class FailingStore(LocalStore):
    """Refuses every read, as S3 does once the bucket is gone; or never answers."""

    hang = False

    async def get(self, key: str) -> bytes | None:
        if self.hang:
            await asyncio.sleep(3600)
        raise StoreUnavailable("S3 bucket 'gone' does not exist at\nhttp://127.0.0.1:9")


def app_on(tmp_path: Path, store: LocalStore, **settings: object):
    return create_app(Settings(str(store.root), tmp_path / "data", **settings), store)  # type: ignore[arg-type]


async def test_healthz_answers_without_a_token_and_touches_nothing(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "bucket")
    async with serving(app_on(tmp_path, store)) as base, aiohttp.ClientSession() as s:
        reads = store.reads
        for route in ("/healthz", "/api/health"):  # the old route stays
            r = await s.get(base + route)
            assert r.status == 200 and await r.json() == {"ok": True}
        assert store.reads == reads


async def test_readyz_reads_the_store(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "bucket")
    async with serving(app_on(tmp_path, store)) as base, aiohttp.ClientSession() as s:
        reads = store.reads
        r = await s.get(base + "/readyz")
        assert r.status == 200 and await r.json() == {"ok": True}
        assert store.reads == reads + 1
        shutil.rmtree(store.root)  # the disk the store was on is gone
        err = await expect_error(await s.get(base + "/readyz"), 503)
        assert err["error"] == f"not ready: the store's directory {store.root} is missing"


async def test_readyz_says_why_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FailingStore(tmp_path / "bucket")
    async with serving(app_on(tmp_path, store)) as base, aiohttp.ClientSession() as s:
        err = await expect_error(await s.get(base + "/readyz"), 503)
        assert err["error"] == ("not ready: S3 bucket 'gone' does not exist at http://127.0.0.1:9")
        monkeypatch.setattr(health, "READY_TIMEOUT", 0.2)
        store.hang = True  # a store that does not answer: the probe does, in time
        err = await expect_error(await s.get(base + "/readyz"), 503)
        assert err["error"] == f"not ready: the store ({store.url}) did not answer within 0.2 s"


# -- metrics ----------------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(s: aiohttp.ClientSession, base: str) -> dict:
    r = await s.get(base + "/metrics")  # no token: the route is open (see docs/operations.md)
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(await r.text())


def grant(**fields: object) -> TokenGrant:
    return TokenGrant(email="ada@example.com", name="Ada", **fields)  # type: ignore[arg-type]


REFS = "/api/repos/{namespace}/{name}/refs"


async def test_metrics_count_requests_by_route_pattern_and_refusals_by_reason(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "bucket")
    tokens = TokenStore(store)
    writer = await tokens.issue(grant())
    elsewhere = await tokens.issue(grant(namespaces=["other"]))
    past = int(time.time()) - 3600
    expired = await tokens.issue(grant(created=past - 60, expires=past))
    async with serving(app_on(tmp_path, store)) as base, aiohttp.ClientSession() as s:
        body = json.dumps({"namespace": "ns", "name": "r"}).encode()
        r = await s.post(base + "/api/repos", data=body, headers=auth(writer))
        assert r.status == 201
        for operation in ("clone", None, "nonsense"):
            named = {OPERATION_HEADER: operation} if operation else {}
            r = await s.get(base + "/api/repos/ns/r/refs", headers={**auth(writer), **named})
            assert r.status == 200
        assert (await s.get(base + "/api/repos/ns/r/refs")).status == 401
        assert (await s.get(base + "/api/repos/ns", headers=auth("oxn_unknown"))).status == 401
        assert (await s.get(base + "/api/repos/ns", headers=auth(expired))).status == 401
        assert (await s.get(base + "/api/repos/ns", headers=auth(elsewhere))).status == 403
        assert (await s.get(base + "/no/such/route")).status == 404
        found = await scrape(s, base)

    assert value(found, "oxen_http_requests_total", route=REFS, method="GET", status="200") == 3
    assert value(found, "oxen_http_requests_total", route=REFS, method="GET", status="401") == 1
    assert value(found, "oxen_http_request_duration_seconds_count", route=REFS, method="GET") == 4
    assert value(found, "oxen_http_requests_total", route="unmatched", method="GET", status="404")
    # label values are route patterns, never the paths clients sent
    labels = {v for (_, ls) in found for _, v in ls}
    assert not [v for v in labels if "/ns/" in v or "/no/" in v]
    assert value(found, "oxen_http_request_bytes_total", route="/api/repos") == len(body)
    assert value(found, "oxen_http_response_bytes_total", route=REFS) > 0
    assert value(found, "oxen_fetches_total", operation="clone") == 1
    assert value(found, "oxen_fetches_total", operation="nonsense") == 0
    for reason in ("missing", "invalid", "expired", "forbidden"):
        assert value(found, "oxen_auth_failures_total", reason=reason) == 1, reason
    # the store's calls, by operation: the grants read, repo.json created, refs listed
    assert value(found, "oxen_store_request_duration_seconds_count", operation="get") >= 3
    assert value(found, "oxen_store_request_duration_seconds_count", operation="put_if_absent")
    assert value(found, "oxen_store_request_duration_seconds_count", operation="list") >= 3
    assert value(found, "oxen_http_requests_in_flight") == 1  # the scrape itself
    assert value(found, "oxen_pack_slots") == PACKS_IN_FLIGHT


async def test_the_pack_gauges_show_the_slots_held_and_awaited(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "bucket")
    app = app_on(tmp_path, store)
    async with serving(app) as base, aiohttp.ClientSession() as s:
        slots = app[REGISTRY].pack_slots
        found = await scrape(s, base)
        assert value(found, "oxen_packs_in_flight", kind="receive") == 0
        async with contextlib.AsyncExitStack() as held:
            for _ in range(slots.limit - 1):
                await held.enter_async_context(slots.hold("receive"))
            await held.enter_async_context(slots.hold("fetch"))
            waiter = asyncio.create_task(held.enter_async_context(slots.hold("receive")))
            while not slots.waiting:
                await asyncio.sleep(0)
            found = await scrape(s, base)
            waiter.cancel()
        assert value(found, "oxen_packs_in_flight", kind="receive") == slots.limit - 1
        assert value(found, "oxen_packs_in_flight", kind="fetch") == 1
        assert value(found, "oxen_packs_waiting") == 1


async def test_each_application_counts_its_own_requests(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "bucket")
    one, two = app_on(tmp_path, store), app_on(tmp_path, store)
    async with (
        serving(one) as a,
        serving(two) as b,
        aiohttp.ClientSession() as s,
    ):
        for _ in range(3):
            assert (await s.get(a + "/healthz")).status == 200
        there = await scrape(s, b)
        here = await scrape(s, a)
    healthz = {"route": "/healthz", "method": "GET", "status": "200"}
    assert value(here, "oxen_http_requests_total", **healthz) == 3
    assert value(there, "oxen_http_requests_total", **healthz) == 0


async def test_without_metrics_there_is_no_metrics_route(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "bucket")
    app = app_on(tmp_path, store, metrics=False)
    async with serving(app) as base, aiohttp.ClientSession() as s:
        r = await s.get(base + "/metrics", allow_redirects=False)
        # no such route: the path is left to the web pages, which send a browser without
        # a session to sign in, never to any metrics
        assert r.status == 303 and r.headers["Location"].startswith("/-/signin")
        assert app[STORE] is store  # its calls are not timed either


# -- the access log ------------------------------------------------------------------------


async def test_the_access_log_has_a_json_line_per_request(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "bucket")
    token = await TokenStore(store).issue(grant())
    log = io.StringIO()
    app = create_app(Settings(str(store.root), tmp_path / "data"), store, access_log=log)
    async with serving(app) as base, aiohttp.ClientSession() as s:
        body = json.dumps({"namespace": "ns", "name": "r"}).encode()
        assert (await s.post(base + "/api/repos", data=body, headers=auth(token))).status == 201
        r = await s.get(base + "/api/repos/ns/r/refs", headers=auth(token))
        answer = await r.read()
        assert (await s.get(base + "/api/repos/ns/r/refs")).status == 401
        assert (await s.get(base + "/healthz")).status == 200
        odd = yarl.URL(base + '/-/x%22%5C%C3%A9%0A"/y/z/w', encoded=True)  # a quote, \, é, newline
        assert (await s.get(odd)).status == 404
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [(e["method"], e["route"], e["status"]) for e in lines] == [
        ("POST", "/api/repos", 201),
        ("GET", REFS, 200),
        ("GET", REFS, 401),
        ("GET", "/healthz", 200),
        ("GET", "unmatched", 404),
    ]
    create, refs, refused, health_, unmatched = lines
    assert unmatched["path"] == '/-/x"\\\u00e9\n"/y/z/w'
    assert log.getvalue().isascii()
    assert set(refs) == {
        "time", "method", "route", "path", "status", "bytes_in", "bytes_out",
        "duration_ms", "user", "repository", "remote",
    }  # fmt: skip
    assert create["bytes_in"] == len(body) and create["repository"] is None
    assert refs["path"] == "/api/repos/ns/r/refs" and refs["repository"] == "ns/r"
    assert refs["user"] == "ada@example.com" and refs["remote"] == "127.0.0.1"
    assert refs["bytes_in"] == 0 and refs["bytes_out"] == len(answer)
    assert isinstance(refs["duration_ms"], float) and refs["duration_ms"] >= 0
    arrived = datetime.datetime.strptime(refs["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(arrived.replace(tzinfo=datetime.UTC).timestamp() - time.time()) < 60
    assert refused["user"] is None and health_["repository"] is None
    assert token not in log.getvalue() and "Bearer" not in log.getvalue()
