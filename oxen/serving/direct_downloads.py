"""Direct downloads: a client reads the objects it fetches straight from the object store,
by presigned URLs for the packs that hold them, so their bytes do not pass through the
server.

The server answers a fetch request with, for each pack holding some of the objects, a
presigned GET URL and the (id, kind, offset, length) of each object in it. The client
reads those ranges, writes them into a pack of its own and verifies it exactly as a pack
the server sent (every blob against its id, every node decoded): the store is trusted no
more than the server is. A URL names a whole pack and lives ``URL_SECONDS``; a pack that
``oxen-server gc`` has marked is not named (the server forgot it when it read the marks),
and one swept after its URL was handed out answers 404, so the client falls back to a
fetch through the server.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import msgpack

from oxen.db.rows import Location
from oxen.formats.packs import pack_key
from oxen.serving.served_repo import ServedRepo

URL_SECONDS = 300  # well below gc's default grace, so a URL never outlives its pack


async def hand_out_reads(repo: ServedRepo, ids: list[bytes]) -> bytes:
    """msgpack ``{"expires": s, "packs": [[url, [[id, kind, offset, length], ...]], ...]}``
    covering every one of ``ids``."""
    locations = await repo.locate_for_reading(ids)
    by_pack: dict[bytes, list[tuple[bytes, Location]]] = defaultdict(list)
    for oid, loc in locations.items():
        by_pack[loc.pack].append((oid, loc))
    packs = sorted(by_pack)
    urls = await asyncio.gather(*(repo.store.presign_get(pack_key(p), URL_SECONDS) for p in packs))
    answer = {
        "expires": URL_SECONDS,
        "packs": [
            [url, [[oid, loc.kind, loc.offset, loc.length] for oid, loc in by_pack[p]]]
            for p, url in zip(packs, urls, strict=True)
        ],
    }
    return msgpack.packb(answer, use_bin_type=True)
