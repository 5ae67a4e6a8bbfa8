"""Direct uploads: a client PUTs a pack straight to the object store through a presigned
URL, and the server verifies it before anything refers to it.

1. The server hands out URLs for staging keys ``incoming/<epoch>-<random>.pack`` under the
   repository's prefix (:func:`hand_out`). Nothing reads ``incoming/``: a staged object is
   not a pack of the repository.
2. Once the client has PUT its pack, it names the key (:func:`receive_staged`). The server
   copies it inside the store to ``received/...`` (a key no URL was given for, so the
   client can no longer change the bytes under the server), deletes the staging object,
   downloads the copy to a temp file (bounded: at most ``MAX_PACK_BYTES``), verifies it
   exactly as an uploaded pack, then copies it inside the store to its pack key. Only
   then is the upload answered as received; a branch moves only by ``update_ref``, which
   checks that everything it reaches is stored, as after any upload.
3. A staged object a client abandoned (it never asked for the check) is deleted by
   ``oxen-server gc`` once its key's time is older than ``STALE_SECONDS``
   (:func:`sweep_staging`), as is a ``received/`` copy a crashed server left.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from pathlib import Path

from oxen.errors import InvalidInput, NotFound
from oxen.objects.temp_files import temp_path
from oxen.serving.served_repo import MAX_PACK_BYTES, ServedRepo
from oxen.storage import Store

STAGING = "incoming/"
RECEIVED = "received/"
URL_SECONDS = 900  # how long a handed-out URL may be used
MAX_URLS = 64  # per request
STALE_SECONDS = 24 * 3600.0  # staged objects older than this are removed by gc
READ_WINDOW = 8 * 1024 * 1024

_STAGED = re.compile(r"^incoming/(\d{1,12})-([0-9a-f]{32})\.pack$")


def staging_key(now: float | None = None) -> str:
    stamp = int(time.time() if now is None else now)
    return f"{STAGING}{stamp}-{secrets.token_hex(16)}.pack"


def check_staging_key(key: object) -> str:
    """A key a client names back: only one of the shape this module hands out."""
    if not isinstance(key, str) or not _STAGED.match(key):
        raise InvalidInput(f"not an upload key: {key!r}"[:200])
    return key


async def hand_out(store: Store, count: int) -> list[dict[str, str]]:
    """``count`` fresh staging keys, each with a URL to PUT a pack to."""
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_URLS:
        raise InvalidInput(f"count must be an integer from 1 to {MAX_URLS}")
    keys = [staging_key() for _ in range(count)]
    urls = await asyncio.gather(*(store.presign_put(k, URL_SECONDS) for k in keys))
    return [{"key": k, "url": u} for k, u in zip(keys, urls, strict=True)]


async def download(store: Store, key: str, path: Path, limit: int) -> int:
    """The object at ``key`` into a new file at ``path``, ``READ_WINDOW`` at a time;
    refused (InvalidInput) when larger than ``limit``."""
    size = await store.size(key)
    if size is None:
        raise NotFound(f"nothing was uploaded to {key}")
    if size > limit:
        raise InvalidInput(f"an upload of {size} bytes; a pack may hold at most {limit}")
    f = await asyncio.to_thread(open, path, "wb")
    try:
        for start in range(0, size, READ_WINDOW):
            piece = await store.get_range(key, start, min(READ_WINDOW, size - start))
            if piece is None:
                raise NotFound(f"the upload {key} vanished while it was read")
            await asyncio.to_thread(f.write, piece)
    finally:
        f.close()
    return size


async def receive_staged(repo: ServedRepo, key: str) -> tuple[int, int]:
    """Verify and keep the pack a client PUT to ``key``: (objects, bytes)."""
    key = check_staging_key(key)
    held = RECEIVED + key[len(STAGING) :]
    if not await repo.store.copy(key, held):
        raise NotFound(f"nothing was uploaded to {key}")
    await repo.store.delete(key)
    path = temp_path(repo.tmp_dir, "direct", ".pack")
    try:
        size = await download(repo.store, held, path, MAX_PACK_BYTES)
        objects = await repo.receive_stored_pack(path, held)
        if objects is None:
            raise NotFound(f"the upload {key} vanished while it was verified")
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        await repo.store.delete(held)
    return objects, size


async def sweep_staging(store: Store, older_than: float, now: float | None = None) -> int:
    """Delete staged and received objects whose key's time is more than ``older_than``
    seconds ago; returns how many."""
    cutoff = (time.time() if now is None else now) - older_than
    stale: list[str] = []
    for prefix in (STAGING, RECEIVED):
        async for key in store.list(prefix):
            match = _STAGED.match(STAGING + key[len(prefix) :])
            if match is None or int(match.group(1)) < cutoff:
                stale.append(key)
    for key in stale:
        await store.delete(key)
    return len(stale)
