"""``oxen-server gc``: delete the packs, and the objects in them, that no branch and no
workspace of a repository reaches, while servers keep serving it.

The rule that keeps a running push safe (a push told "the server has X" never ends with
its branch pointing at X gone):

1. **Mark.** Index every pack from the packs' own trailers (a scratch index, not a
   server's cache), walk all that branches and workspaces reach.  A pack with at least
   ``SPARSE`` of its bytes unreached is marked; the reached objects in marked packs that
   no other pack holds are first copied into new packs, then ``gc/marks.json`` names the
   marked packs (:mod:`oxen.serving.gc_marks`).
2. **Grace.** Every server reads the marks within a few seconds (when it rechecks
   ``repo.json``) and stops using the marked packs: it forgets them from its index, and
   forgets which nodes and commits it knew complete.  From then on a push it verifies
   succeeds only if everything the new commits reach is held by unmarked packs: a push
   that was told "has X" with X only in a marked pack is refused as incomplete (the
   client asks again and sends X), never accepted.
3. **Sweep**, once ``grace`` has passed since marking: index and walk again (branches and
   workspaces moved meanwhile); every reached object that only marked packs hold is
   copied out first (a push verified by a server before it read the marks, and landed
   since, is rescued here), then the marked packs are deleted, and the marks replaced by
   a record of the sweep: a server that had no request for the repository during the
   grace period, so never read the marks, reads that at its next recheck and forgets
   the deleted packs before it answers (it would otherwise tell a push "has X" and
   accept it with X gone).

So ``grace`` must exceed the servers' recheck interval (5 s) plus the longest time a
push takes from its server's check to its ref update: the default, 10 minutes, is far
above both.  An interrupted gc leaves its marks; the next run sweeps them.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from oxen.core.refs import StoreRefs
from oxen.db.repo_db import RepoDB
from oxen.db.rows import FileRow
from oxen.errors import CorruptObject
from oxen.formats.packs import pack_key
from oxen.objects.object_store import ObjectStore
from oxen.objects.pack_index import PackIndex, read_pack_index, stored_packs
from oxen.serving.gc_marks import MARKS, GcMarks
from oxen.serving.served_repo import MAX_PACK_BYTES
from oxen.serving.workspaces import NAMES, Workspace
from oxen.serving.workspaces import PREFIX as WORKSPACES
from oxen.storage import Store
from oxen.trees.reach import reached

SPARSE = 0.2  # a pack this much unreached (by bytes) is collected, its reached part copied
GRACE_SECONDS = 600.0
INDEX_CONCURRENCY = 16  # pack trailers read at once
COPY_PACK_BYTES = 64 * 1024 * 1024  # objects copied out, per new pack


@dataclass
class GcReport:
    repository: str
    state: str  # "nothing to collect", "dry run", "swept"
    packs: int  # stored, before
    objects: int
    bytes: int
    reached: int  # objects reached
    marked_packs: int
    freed_bytes: int  # bytes of the marked packs not copied out
    copied: int  # reached objects copied out of marked packs
    deleted_packs: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Indexed:
    packs: dict[str, PackIndex]  # hex id -> its trailer
    db: RepoDB
    objects: ObjectStore


async def _index(store: Store, scratch: Path, last: frozenset[str]) -> _Indexed:
    """Every stored pack's trailer, in a scratch index (packs named in ``last`` indexed
    after the others, so an object both hold is read from an unmarked one)."""
    await asyncio.to_thread((scratch / "tmp").mkdir, parents=True, exist_ok=True)
    listed = [(h, k) async for h, k in stored_packs(store)]
    limit = asyncio.Semaphore(INDEX_CONCURRENCY)

    async def one(key: str) -> PackIndex | None:
        async with limit:
            try:
                return await read_pack_index(store, key)
            except CorruptObject:
                return None  # not a whole pack: nothing ever indexed it

    found = await asyncio.gather(*(one(k) for _, k in listed))
    packs = {h: index for (h, _), index in zip(listed, found, strict=True) if index is not None}
    db = await RepoDB.open(scratch)
    for h in sorted(packs, key=lambda h: h in last):
        await db.add_pack(bytes.fromhex(h), packs[h].size, packs[h].entries)
    return _Indexed(packs, db, ObjectStore(store, db, scratch / "tmp", MAX_PACK_BYTES))


async def _roots(store: Store) -> tuple[set[bytes], list[FileRow]]:
    """Every branch tip and workspace (its base and its staged files)."""
    tips = set((await StoreRefs(store).branches()).values())
    rows: list[FileRow] = []
    async for key in store.list(WORKSPACES):
        if key.startswith(NAMES) or not key.endswith(".json"):
            continue
        data = await store.get(key)
        if data is None:
            continue
        ws = Workspace.decode(data)
        if ws.base is not None:
            tips.add(ws.base)
        rows.extend(r for r in ws.changes.values() if r is not None)
    return tips, rows


async def _reached(indexed: _Indexed, store: Store) -> set[bytes]:
    tips, rows = await _roots(store)
    return await reached(indexed.objects, tips, rows)


async def _copy_out(indexed: _Indexed, ids: list[bytes]) -> set[str]:
    """Store ``ids`` again, in new packs; returns their hex ids."""
    locations = await indexed.db.locate(ids)
    made: set[str] = set()
    batch: list[bytes] = []
    size = 0
    for n, oid in enumerate(ids):
        batch.append(oid)
        size += locations[oid].length
        if size >= COPY_PACK_BYTES or n == len(ids) - 1:
            path = indexed.objects.tmp_dir / f"copy-{secrets.token_hex(8)}.pack"
            await indexed.objects.write_pack_of(batch, path, locations)
            pack = await indexed.objects.add_verified_pack(path, MAX_PACK_BYTES)
            made.add(pack.id.hex())
            batch, size = [], 0
    return made


def _only_in(indexed: _Indexed, packs: set[str], wanted: set[bytes]) -> list[bytes]:
    """Those of ``wanted`` held by ``packs`` and by no other pack, each once."""
    elsewhere = {
        e.id for h, index in indexed.packs.items() if h not in packs for e in index.entries
    }
    out: dict[bytes, None] = {}
    for h in sorted(packs):
        index = indexed.packs.get(h)
        for e in index.entries if index else ():
            if e.id in wanted and e.id not in elsewhere:
                out[e.id] = None
    return list(out)


def _sparse(indexed: _Indexed, reach: set[bytes]) -> set[str]:
    out: set[str] = set()
    for h, index in indexed.packs.items():
        total = sum(e.length for e in index.entries)
        dead = sum(e.length for e in index.entries if e.id not in reach)
        if dead and dead >= SPARSE * total:
            out.add(h)
    return out


async def collect(
    store: Store,
    repository: str,
    scratch: Path,
    grace: float = GRACE_SECONDS,
    dry_run: bool = False,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    marked: Callable[[GcMarks], Awaitable[None]] | None = None,
) -> GcReport:
    """Collect one repository (``store`` is its prefix): mark, wait out ``grace``, sweep;
    with marks already there (another gc, or one interrupted) only the sweep.
    ``marked(marks)`` runs once marks are published (tests act on it)."""
    raw = await store.get(MARKS)
    marks = GcMarks.decode(raw) if raw is not None else None
    if marks is not None and not marks.pending:
        marks = None  # the record of an earlier sweep: mark afresh
    indexed = await _index(store, scratch / "mark", marks.packs if marks else frozenset())
    try:
        reach = await _reached(indexed, store)
        packs = set(marks.packs) if marks else _sparse(indexed, reach)
        copy = _only_in(indexed, packs, reach)
        report = await _report(indexed, repository, reach, packs, copy)
        if dry_run or not packs:
            report.state = "dry run" if dry_run else "nothing to collect"
            return report
        if marks is None:
            await _copy_out(indexed, copy)
            fresh = GcMarks(secrets.token_hex(8), now(), frozenset(packs))
            if await store.compare_and_swap(MARKS, raw, fresh.encode()):
                marks, raw = fresh, fresh.encode()
            else:  # another gc marked first: sweep its marks
                raw = await store.get(MARKS)
                marks = GcMarks.decode(raw) if raw is not None else None
                if marks is None or not marks.pending:
                    return report
    finally:
        await indexed.db.close()
    if marked is not None:
        await marked(marks)
    wait = marks.marked + grace - now()
    if wait > 0:
        await sleep(wait)
    assert raw is not None  # the marks as stored: the sweep replaces exactly those
    return await _sweep(store, scratch / "sweep", marks, raw, report, now)


async def _report(
    indexed: _Indexed, repository: str, reach: set[bytes], packs: set[str], copy: list[bytes]
) -> GcReport:
    located = await indexed.db.locate(copy)
    copied_bytes = sum(loc.length for loc in located.values())
    marked_bytes = sum(indexed.packs[h].size for h in packs if h in indexed.packs)
    return GcReport(
        repository=repository,
        state="swept",
        packs=len(indexed.packs),
        objects=await indexed.db.count_objects(),
        bytes=sum(index.size for index in indexed.packs.values()),
        reached=len(reach),
        marked_packs=len(packs),
        freed_bytes=max(0, marked_bytes - copied_bytes),
        copied=len(copy),
        deleted_packs=0,
    )


async def _sweep(
    store: Store,
    scratch: Path,
    marks: GcMarks,
    raw: bytes,
    report: GcReport,
    now: Callable[[], float],
) -> GcReport:
    indexed = await _index(store, scratch, marks.packs)
    try:
        reach = await _reached(indexed, store)
        rescue = _only_in(indexed, set(marks.packs), reach)
        made = await _copy_out(indexed, rescue) if rescue else set()
        doomed = sorted((marks.packs & indexed.packs.keys()) - made)
        await asyncio.gather(*(store.delete(pack_key(bytes.fromhex(h))) for h in doomed))
        # not deleted: replaced (unless another gc sweeping them did first), so servers
        # that never read the marks learn that packs are gone
        await store.compare_and_swap(MARKS, raw, marks.done(now()).encode())
    finally:
        await indexed.db.close()
    report.copied += len(rescue)  # reached since the mark
    report.deleted_packs = len(doomed)
    report.state = "swept"
    return report
