"""Probes for a supervisor or a load balancer, outside ``/api/repos`` and without a token:

* ``GET /healthz``: the process is alive and its event loop answers. It touches nothing.
* ``GET /readyz``: the store answers too (:func:`store_problem`), so requests can be
  served; 503 with the reason in one line when it does not.

``oxen-server start`` runs the same check before it serves (``start`` refuses a store
it cannot reach instead of answering 503s).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from oxen.server.state import STORE
from oxen.storage import Store
from oxen.storage.registry import filesystem_root

# Seconds the readiness check waits for the store: a probe must answer quickly even when
# the store does not (S3 retries a failing request for longer than that).
READY_TIMEOUT = 5.0
# Read, never written: a read of a key that is absent proves the store answers.
PROBE_KEY = "server/readiness-probe"

routes = web.RouteTableDef()


async def store_problem(store: Store, wait: float | None = None) -> str | None:
    """Why ``store`` cannot serve requests now, in one line, or None when it can: a store
    on a filesystem still has its directory, and a read of one key is answered (a missing
    key is an answer) within ``wait`` seconds (default ``READY_TIMEOUT``)."""
    timeout = READY_TIMEOUT if wait is None else wait
    root = filesystem_root(store.url)
    try:
        async with asyncio.timeout(timeout):
            if root is not None and not await asyncio.to_thread(root.is_dir):
                return f"the store's directory {root} is missing"
            await store.get(PROBE_KEY)
    except TimeoutError:
        return f"the store ({store.url}) did not answer within {timeout:g} s"
    except Exception as e:  # whatever the backend raises, the probe says it in a line
        return " ".join(str(e).split()) or type(e).__name__
    return None


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    problem = await store_problem(request.app[STORE])
    if problem is not None:
        return web.json_response({"error": f"not ready: {problem}", "status": 503}, status=503)
    return web.json_response({"ok": True})
