"""``oxen gc``: remove from a working copy's store the objects nothing here reaches any
more (after deleted branches, an amended history, ``drop-data``, an aborted add).

Reached: every commit of every branch and remote-tracking branch, HEAD, a merge in
progress (its commit and where HEAD was), with their trees, chunk lists, schemas and
chunks, and every staged file.  A partial clone walks only what it holds.  Packs with at
least ``SPARSE`` of their bytes unreached are rewritten without them (those with none
reached are deleted); packs mostly in use keep their few unreached objects until they
are sparse enough to be worth rewriting.

A command changing the repository while gc runs (a commit, a fetch, an add) is not
lost: before each pack is given up, in the same transaction, gc checks that the refs,
HEAD, merge state and staging area are as it found them, and stops otherwise (what it
finished stays finished, nothing reached is ever removed).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from oxen.core.repository import Repository
from oxen.errors import OxenError
from oxen.trees.reach import reached
from oxen.verbs import merge_state

SPARSE = 0.2  # a pack this much unreached (by bytes) is rewritten


@dataclass
class GcReport:
    objects: int  # indexed before
    reached: int  # of them
    removed: int  # objects removed
    bytes_freed: int
    packs_rewritten: int
    packs_deleted: int
    kept_unreached: int  # objects unreached but left in packs mostly in use
    kept_bytes: int
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RepositoryChanged(OxenError):
    """Something changed the refs or the staging area while gc ran."""


async def _roots(repo: Repository) -> tuple[Any, ...]:
    """Everything that makes objects reachable, as a value to compare later."""
    head = await repo.head()
    refs = tuple(sorted((await repo.db.all_refs()).items()))
    merging = (
        await repo.db.get_state(merge_state.MERGE_HEAD),
        await repo.db.get_state(merge_state.ORIG_HEAD),
    )
    staged = tuple(sorted((await repo.db.staged()).items()))
    return head, refs, merging, staged


async def _reached(repo: Repository, roots: tuple[Any, ...]) -> set[bytes]:
    head, refs, merging, staged = roots
    tips = {cid for _, cid in refs}
    tips.update(c for c in (head.commit, *merging) if c)
    rows = [row for _, row in staged]
    return await reached(repo.objects, tips, rows, absent=repo.db.missing)


async def gc(repo: Repository, dry_run: bool = False) -> GcReport:
    on_demand, fetch = repo.on_demand, repo.objects.fetch_missing
    repo.go_offline()  # what a partial clone lacks is not fetched to be walked
    try:
        return await _gc(repo, dry_run)
    finally:
        repo.on_demand, repo.objects.fetch_missing = on_demand, fetch


async def _gc(repo: Repository, dry_run: bool) -> GcReport:
    roots = await _roots(repo)
    reached = await _reached(repo, roots)
    indexed = await repo.db.object_sizes()
    pack_bytes: dict[bytes, int] = defaultdict(int)
    dead_bytes: dict[bytes, int] = defaultdict(int)
    dead_in: dict[bytes, list[bytes]] = defaultdict(list)
    for oid, (pack, length) in indexed.items():
        pack_bytes[pack] += length
        if oid not in reached:
            dead_bytes[pack] += length
            dead_in[pack].append(oid)
    rewrite = [p for p in dead_in if dead_bytes[p] >= SPARSE * max(1, pack_bytes[p])]
    removed = [oid for p in rewrite for oid in dead_in[p]]
    kept = [oid for p in dead_in if p not in rewrite for oid in dead_in[p]]
    deleted = sum(1 for p in rewrite if dead_bytes[p] == pack_bytes[p])
    report = GcReport(
        objects=len(indexed),
        reached=len(indexed) - sum(len(v) for v in dead_in.values()),
        removed=len(removed),
        bytes_freed=sum(dead_bytes[p] for p in rewrite),
        packs_rewritten=len(rewrite) - deleted,
        packs_deleted=deleted,
        kept_unreached=len(kept),
        kept_bytes=sum(dead_bytes[p] for p in dead_in if p not in rewrite),
        dry_run=dry_run,
    )
    if dry_run or not removed:
        return report

    async def unchanged() -> None:
        if await _roots(repo) != roots:
            raise RepositoryChanged(
                "the repository changed while gc ran (a branch moved or files were staged): "
                "it stopped there, nothing reached was removed; run oxen gc again"
            )

    await repo.objects.drop(removed, check=unchanged)
    await repo.db.forget_chunk_maps(removed)
    return report
