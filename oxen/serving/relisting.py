"""How often a served repository lists its packs again because a request needed an
object its cache does not know.

Another server on the same store may have stored that object since this cache last
listed the packs, so a miss lists them again.  But that lists every pack of the
repository (on S3 a request per 1,000 packs), and a client asking for ids nobody holds
could make every request do it.  So the listings made for misses start at least
``interval`` seconds apart: a miss waits for the next listing that starts after it
(sleeping until the interval has passed), and all the misses waiting share that one.

Some misses are known to be worth a listing now (the repository's caller decides, see
:meth:`ServedRepo.refresh_after_miss`): those need only a listing that starts after
them, without waiting out the interval; they too share one listing among them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

# Seconds between two listings of one repository's packs made for misses.
RELIST_SECONDS = 5.0

Relist = Callable[[], Awaitable[int]]  # lists and indexes new packs; returns how many


class RelistLimit:
    def __init__(
        self,
        interval: float = RELIST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.sleep = sleep
        self._lock = asyncio.Lock()
        self._started = 0  # listings begun
        self._done = 0  # the last listing that ended well (numbered as begun)
        self._last_start: float | None = None
        self._found = 0  # packs found by every listing so far

    async def listing(self, relist: Relist) -> int:
        """List now, whenever the last listing was (opening a repository)."""
        async with self._lock:
            return await self._run(relist)

    async def after_miss(self, relist: Relist, wait: bool = True) -> int:
        """Make sure a listing starts after this call and ends; returns the packs found
        since this call (0: retrying cannot help).  ``wait=False``: without waiting for
        ``interval`` seconds to have passed since the last listing began."""
        wanted = self._started + 1
        found_before = self._found
        async with self._lock:
            if self._done < wanted:
                if wait and self._last_start is not None:
                    wait = self._last_start + self.interval - self.clock()
                    if wait > 0:
                        await self.sleep(wait)
                await self._run(relist)
        return self._found - found_before

    async def _run(self, relist: Relist) -> int:
        self._started += 1
        number = self._started
        self._last_start = self.clock()
        found = await relist()
        self._done = number
        self._found += found
        return found
