"""A counting TCP proxy: bytes on the wire, measured the same way for every tool.

W4 puts one in front of each server a tool talks to (oxen-server, moto) and points the
tool at the proxy's port. Each accepted connection gets a connection to the target and
two pump threads, one per direction, that count the payload bytes they forward (TCP
payload: HTTP headers included, TCP/IP headers not). On Linux the pumps move data with
`os.splice` through a pipe (zero-copy, the GIL released in the syscall), so the proxy
costs the runner almost no CPU even at GB/s; elsewhere they fall back to recv/sendall.

It runs as threads of the runner, which is idle (waiting on a subprocess) while a tool
works. Create it first (the listening socket, so the port is known and reserved), start
it after the subprocesses that need its port are spawned, close it when done.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time

CHUNK = 1 << 20
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), not exported before Python 3.10 everywhere
HAVE_SPLICE = hasattr(os, "splice")


class CountingProxy:
    def __init__(self, name: str, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.name = name
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self.listener.getsockname()[1]
        self.up = 0  # client -> target
        self.down = 0  # target -> client
        self.connections = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> CountingProxy:
        self.listener.settimeout(0.2)  # so close() is noticed without a wake-up trick
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"proxy-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed = True
        if self._thread is not None:
            self._thread.join(timeout=2)
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            socks = list(self._open)
            self._open.clear()
        for sock in socks:
            _shutdown(sock)
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- counters ------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.up, self.down

    def settle(self, quiet: float = 0.15, limit: float = 5.0) -> tuple[int, int]:
        """The counters once they have not moved for `quiet` seconds (at most `limit`):
        the last bytes of a response may still be in flight when a client exits."""
        deadline = time.monotonic() + limit
        last = self.counts()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.counts()
            if now == last:
                return now
            last = now
        return last

    # -- internals -----------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=30)
            except OSError:
                with contextlib.suppress(OSError):
                    client.close()
                continue
            for sock in (client, upstream):
                sock.setblocking(True)
                # Forward small writes at once: Nagle + delayed ACK would add 40 ms stalls
                # that neither end asked for.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self._open.update((client, upstream))
            pair = _Pair(self, client, upstream)
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=pair.pump,
                    args=(src, dst, up),
                    name=f"proxy-{self.name}-pump",
                    daemon=True,
                ).start()

    def _count(self, up: bool, n: int) -> None:
        with self._lock:
            if up:
                self.up += n
            else:
                self.down += n

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.difference_update(socks)


class _Pair:
    """One proxied connection: closes both sockets once both directions are done."""

    def __init__(self, proxy: CountingProxy, a: socket.socket, b: socket.socket) -> None:
        self.proxy = proxy
        self.socks = (a, b)
        self.running = 2
        self.lock = threading.Lock()

    def pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        failed = False
        try:
            if HAVE_SPLICE:
                self._splice(src, dst, up)
            else:
                self._copy(src, dst, up)
        except OSError:
            failed = True
        if failed:  # a reset on one side: tear the whole connection down
            for sock in self.socks:
                _shutdown(sock)
        else:  # EOF: pass the half-close on
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
        with self.lock:
            self.running -= 1
            last = self.running == 0
        if last:
            self.proxy._forget(*self.socks)
            for sock in self.socks:
                with contextlib.suppress(OSError):
                    sock.close()

    def _splice(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        r, w = os.pipe()
        try:
            with contextlib.suppress(OSError):
                import fcntl

                fcntl.fcntl(w, F_SETPIPE_SZ, CHUNK)
            sfd, dfd = src.fileno(), dst.fileno()
            while True:
                n = os.splice(sfd, w, CHUNK)
                if n == 0:
                    return
                left = n
                while left:
                    left -= os.splice(r, dfd, left)
                self.proxy._count(up, n)
        finally:
            os.close(r)
            os.close(w)

    def _copy(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while True:
            n = src.recv_into(buf)
            if n == 0:
                return
            dst.sendall(view[:n])
            self.proxy._count(up, n)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
