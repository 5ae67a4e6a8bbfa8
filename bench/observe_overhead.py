"""`python -m bench.observe_overhead`: what the metrics and the access log cost a small request.

The server's application in this process, on a local store, serves a small authenticated
request (`GET /api/repos/ns/r/refs`: the grant from its cache, the branches listed from
the store) and the smallest one (`GET /healthz`) to a client on a keep-alive connection,
one request at a time, in three setups:

- **bare**: no observing middleware at all (the application as it was before it);
- **metrics**: the middleware with the metrics, the store's calls timed, no access log;
- **metrics + log**: the same and a JSON line per request appended to a file.

Rounds alternate between the setups; each prints the median time of a request (client
and server in one event loop, so the figures are round trips on loopback, and their
differences the cost of what differs). Then the middleware alone: the median time of
one call to it around a handler that returns at once, with a mocked request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from oxen.server.app import create_app
from oxen.server.auth import TokenGrant, TokenStore
from oxen.server.observe import OBSERVER, observe_middleware
from oxen.server.state import Settings
from oxen.storage.local import LocalStore
from oxen.sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION

SETUPS = ("bare", "metrics", "metrics + log")


def app_for(setup: str, root: Path, store: LocalStore, log: Path) -> web.Application:
    settings = Settings(str(store.root), root / f"data-{setup}", metrics=setup != "bare")
    stream = open(log, "a", buffering=1) if setup == "metrics + log" else None  # noqa: SIM115
    app = create_app(settings, store, access_log=stream)
    if setup == "bare":
        app.middlewares.remove(observe_middleware)
    return app


async def round_trips(base: str, path: str, headers: dict[str, str], n: int) -> list[float]:
    out = []
    async with aiohttp.ClientSession(headers=headers) as s:
        for _ in range(n):
            started = time.perf_counter()
            async with s.get(base + path) as r:
                await r.read()
                assert r.status == 200, r.status
            out.append(time.perf_counter() - started)
    return out


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def end_to_end(rounds: int, per_round: int) -> dict[tuple[str, str], float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = LocalStore(root / "bucket", fsync=False)
        token = await TokenStore(store).issue(TokenGrant(email="b@example.com", name="B"))
        headers = {"Authorization": f"Bearer {token}", PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
        served = {}
        for setup in SETUPS:
            served[setup] = await serve(app_for(setup, root, store, root / "access.jsonl"))
        body = json.dumps({"namespace": "ns", "name": "r"}).encode()
        async with aiohttp.ClientSession(headers=headers) as s:
            assert (await s.post(served["bare"][1] + "/api/repos", data=body)).status == 201
        times: dict[tuple[str, str], list[float]] = {}
        paths = ("/api/repos/ns/r/refs", "/healthz")
        for path in paths:  # warm up: caches, first connections
            for setup in SETUPS:
                await round_trips(served[setup][1], path, headers, 50)
        for _ in range(rounds):
            for path in paths:
                for setup in SETUPS:
                    got = await round_trips(served[setup][1], path, headers, per_round)
                    times.setdefault((setup, path), []).extend(got)
        for runner, _ in served.values():
            await runner.cleanup()
        lines = len((root / "access.jsonl").read_text().splitlines())
        print(f"(access log: {lines} lines written)")
    return {key: statistics.median(values) for key, values in times.items()}


async def middleware_alone(n: int) -> dict[str, float]:
    """The median time of one call of the middleware around an empty handler."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = LocalStore(root / "bucket", fsync=False)
        for setup in SETUPS[1:]:
            app = app_for(setup, root, store, root / "access.jsonl")
            answer = web.json_response({"ok": True})
            runner, _ = await serve(app)  # routes resolved, startup run

            async def handler(
                request: web.Request, answer: web.StreamResponse = answer
            ) -> web.StreamResponse:
                return answer

            request = make_mocked_request("GET", "/healthz", app=app)
            match = await app.router.resolve(request)
            match.add_app(app)
            request._match_info = match  # type: ignore[attr-defined]
            times = []
            for _ in range(n):
                started = time.perf_counter()
                await observe_middleware(request, handler)
                times.append(time.perf_counter() - started)
            assert app[OBSERVER].in_flight == 0
            out[setup] = statistics.median(times)
            await runner.cleanup()
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.observe_overhead", description=__doc__)
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--requests", type=int, default=30, help="per setup and round")
    args = p.parse_args()
    medians = asyncio.run(end_to_end(args.rounds, args.requests))
    n = args.rounds * args.requests
    print(f"median round trip of {n} requests each, one at a time, keep-alive:")
    for path in ("/api/repos/ns/r/refs", "/healthz"):
        bare = medians[("bare", path)]
        cells = [f"{setup} {medians[(setup, path)] * 1e6:7.1f} us" for setup in SETUPS]
        extra = [
            f"{(medians[(s, path)] - bare) * 1e6:+.1f} us ({(medians[(s, path)] / bare - 1):+.1%})"
            for s in SETUPS[1:]
        ]
        print(f"  {path:22} " + ", ".join(cells) + "   vs bare: " + ", ".join(extra))
    alone = asyncio.run(middleware_alone(20_000))
    print("the middleware alone, median of 20,000 calls around an empty handler:")
    for setup, seconds in alone.items():
        print(f"  {setup:14} {seconds * 1e6:6.1f} us")


if __name__ == "__main__":
    main()
