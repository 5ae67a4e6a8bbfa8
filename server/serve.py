"""Running the application as ``oxen-server start`` does.

* The listening sockets are bound first (a port in use is one line, before anything else
  is printed), then the store is checked (the readiness check: a missing bucket or an
  unreachable endpoint is one line, not a server answering 503s), and only then is the
  banner printed and are connections accepted.
* SIGTERM (or SIGINT) shuts down gracefully: the listening sockets are closed at once
  (new connections are refused), the requests running go on to their end, their bodies
  still read and their answers still sent, for up to ``shutdown_timeout`` seconds; a
  request arriving meanwhile on a connection opened before is answered 503. What still
  runs at the deadline is cancelled; the process then exits 0. A second signal ends the
  wait at once.

aiohttp's own graceful shutdown (``run_app``'s ``shutdown_timeout``) waits for running
handlers too, but first closes every connection for reading: an upload whose body is
still arriving would stall there until it timed out. Here the connections stay open
until the requests on them are done.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from collections.abc import Callable

from aiohttp import web

from oxen.errors import OxenError
from oxen.server.health import store_problem
from oxen.server.observe import OBSERVER
from oxen.server.state import STORE

log = logging.getLogger("oxen.server")

# Seconds the store may take to answer the check before serving (S3 retries a failing
# request a few times first).
START_CHECK_SECONDS = 15.0
# Seconds given, once the requests are done (or the deadline passed), to answers still
# being written after their handler returned, before connections are closed.
FINAL_GRACE = 1.0


class ServeError(OxenError):
    """The server cannot start: one line says why."""


def listen(host: str, port: int, backlog: int = 128) -> list[socket.socket]:
    """Sockets listening on ``port`` at every address ``host`` resolves to."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise ServeError(f"cannot listen on {host}: {e.strerror}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError as e:
        for sock in sockets:
            sock.close()
        if e.errno == errno.EADDRINUSE:
            message = (
                f"port {port} is in use (another oxen-server?): stop what listens there,"
                " or start on another --port"
            )
        elif e.errno == errno.EACCES:
            message = f"no permission to listen on port {port}: ports below 1024 need privileges"
        elif e.errno == errno.EADDRNOTAVAIL:
            message = f"{host} is not an address of this machine: give --host"
        else:
            message = f"cannot listen on {host}:{port}: {e.strerror}"
        raise ServeError(message) from None
    return sockets


async def serve(
    app: web.Application,
    sockets: list[socket.socket],
    shutdown_timeout: float,
    ready: Callable[[], None],
) -> None:
    """Serve ``app`` on ``sockets`` until SIGTERM or SIGINT, then shut down gracefully.
    ``ready`` is called once connections are accepted (it prints the banner)."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=FINAL_GRACE)
    await runner.setup()  # the application's start: its store is opened
    try:
        problem = await store_problem(app[STORE], wait=START_CHECK_SECONDS)
        if problem is not None:
            raise ServeError(f"the store is not ready: {problem}")
        sites = [web.SockSite(runner, sock) for sock in sockets]
        for site in sites:
            await site.start()
        stop, hurry = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()

        def signalled() -> None:
            (hurry if stop.is_set() else stop).set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, signalled)
        try:
            ready()
            await stop.wait()
            await drain(app, sites, shutdown_timeout, hurry)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
    finally:
        await runner.cleanup()  # what still runs is cancelled; the store is closed


async def drain(
    app: web.Application, sites: list[web.BaseSite], seconds: float, hurry: asyncio.Event
) -> None:
    """Refuse new connections, then wait for the requests in flight (at most ``seconds``,
    or until ``hurry`` is set)."""
    observer = app[OBSERVER]
    for site in sites:
        await site.stop()  # the listening sockets are closed: new connections are refused
    # requests whose head had arrived start their handlers before the door shuts
    for _ in range(3):
        await asyncio.sleep(0)
    observer.draining = True
    log.info(
        "shutting down: no new connections; waiting up to %g s for %d request(s) in flight",
        seconds,
        observer.in_flight,
    )
    idle = asyncio.ensure_future(observer.idle())
    hurried = asyncio.ensure_future(hurry.wait())
    try:
        await asyncio.wait([idle, hurried], timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        idle.cancel()
        hurried.cancel()
    if observer.in_flight:
        log.warning("shutting down: %d request(s) still running are cancelled", observer.in_flight)
    else:
        log.info("shutting down: every request has ended")
