"""Reading fetched objects straight from the object store (the server's ``objects/locate``
answer: presigned pack URLs and where each object lies in them), into a pack of our own
that is then verified as any fetched pack is (:mod:`oxen.serving.direct_downloads`)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import msgpack

from oxen.errors import RemoteError
from oxen.formats.ids import ID_LEN
from oxen.formats.packs import Kind
from oxen.objects.pack_writer import PackWriter

RANGE_GAP = 1024 * 1024  # ranges closer than this are read in one request
MAX_RANGE = 16 * 1024 * 1024


class StoreReadFailed(RemoteError):
    """The store refused or could not be reached: fetch through the server instead."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True, slots=True)
class Placed:
    id: bytes
    kind: Kind
    offset: int
    length: int


def parse_locations(raw: bytes, asked: list[bytes]) -> list[tuple[str, list[Placed]]]:
    """The locate answer, checked to be well formed and to cover exactly ``asked``."""
    try:
        answer = msgpack.unpackb(raw, raw=False)
        packs: list[tuple[str, list[Placed]]] = []
        for url, entries in answer["packs"]:
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise ValueError("a pack URL that is not http(s)")
            placed = [Placed(i, Kind(k), o, n) for i, k, o, n in entries]
            for p in placed:
                if not isinstance(p.id, bytes) or len(p.id) != ID_LEN:
                    raise ValueError("an id out of shape")
                if not all(isinstance(v, int) and v >= 0 for v in (p.offset, p.length)):
                    raise ValueError("a range out of shape")
            packs.append((url, placed))
    except (ValueError, TypeError, LookupError, msgpack.ExtraData) as e:
        raise RemoteError(f"the server answered a malformed list of object places: {e}") from None
    named = {p.id for _, placed in packs for p in placed}
    if named != set(asked):
        raise RemoteError("the server's object places do not match the objects asked for")
    return packs


def ranges(placed: list[Placed]) -> list[tuple[int, int, list[Placed]]]:
    """``placed`` (one pack's) grouped into reads: (start, end, objects), each read
    spanning objects less than RANGE_GAP apart and at most about MAX_RANGE bytes."""
    out: list[tuple[int, int, list[Placed]]] = []
    for p in sorted(placed, key=lambda p: p.offset):
        end = p.offset + p.length
        if out and p.offset - out[-1][1] <= RANGE_GAP and end - out[-1][0] <= MAX_RANGE:
            start, last, group = out[-1]
            out[-1] = (start, max(last, end), [*group, p])
        else:
            out.append((p.offset, end, [p]))
    return out


async def read_into_pack(
    session: aiohttp.ClientSession, packs: list[tuple[str, list[Placed]]], dest: Path
) -> int:
    """Read every placed object from its pack URL and write them, in the order asked,
    into a new pack at ``dest``; returns the bytes read from the store."""
    blobs: dict[bytes, tuple[Kind, bytes]] = {}

    async def one(url: str, start: int, end: int, group: list[Placed]) -> int:
        data = await _get_range(session, url, start, end)
        for p in group:
            piece = data[p.offset - start : p.offset - start + p.length]
            blobs[p.id] = (p.kind, piece)
        return len(data)

    reads = [(url, *r) for url, placed in packs for r in ranges(placed)]
    read = sum(await asyncio.gather(*(one(*r) for r in reads)))
    order = [p.id for _, placed in packs for p in placed]
    writer = PackWriter(dest.parent)
    try:
        await asyncio.to_thread(writer.add_many, [(i, *blobs[i]) for i in order])
        sealed = await asyncio.to_thread(writer.finish)
    except BaseException:
        writer.abort()
        raise
    await asyncio.to_thread(os.replace, sealed.path, dest)
    return read


async def _get_range(session: aiohttp.ClientSession, url: str, start: int, end: int) -> bytes:
    where = url.split("?")[0]
    headers = {"Range": f"bytes={start}-{end - 1}"} if end > start else {}
    try:
        async with session.get(url, headers=headers) as response:
            if response.status not in (200, 206):
                text = (await response.text())[:200]
                raise StoreReadFailed(f"the store answered {response.status} for {where}: {text}")
            data = await response.read()
    except aiohttp.ClientError as e:
        raise StoreReadFailed(f"cannot read {where} from the store: {e}", True) from None
    if response.status == 200:  # the whole object: the store ignored the range
        data = data[start:end]
    if len(data) != end - start:
        raise StoreReadFailed(f"the store sent {len(data)} bytes of {where}, not {end - start}")
    return data
