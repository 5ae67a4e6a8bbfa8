"""Refs: branches, remote-tracking branches and HEAD, moved only by compare-and-swap.

Ref names are spelled in :mod:`oxen.formats.refnames` and nowhere else.  :class:`Refs` keeps a working copy's refs in its SQLite database; :class:`StoreRefs` keeps a
served repository's branches as objects in its store (one small object per branch, moved
by the store's conditional write).  Both offer :class:`BranchRefs`, which is all the
sync protocol needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple, Protocol

from oxen.errors import RefConflict
from oxen.formats.refnames import (
    HEADS,
    REMOTES,
    branch_ref,
    check_branch_name,
    head_value,
    nesting_conflict,
    parse_head,
    remote_ref,
    split_ancestry,
)

if TYPE_CHECKING:
    from oxen.db.repo_db import RepoDB
    from oxen.storage import Store

__all__ = [
    "BranchRefs",
    "Head",
    "Refs",
    "StoreRefs",
    "branch_ref",
    "check_branch_name",
    "remote_ref",
    "split_ancestry",
]


class Head(NamedTuple):
    branch: str | None  # None when detached
    commit: bytes | None  # None before the first commit


class BranchRefs(Protocol):
    """Branches by name, moved only by compare-and-swap (``old`` None: must not exist)."""

    async def get(self, branch: str) -> bytes | None: ...

    async def branches(self) -> dict[str, bytes]: ...

    async def set_if_equals(self, branch: str, old: bytes | None, new: bytes) -> bool: ...

    async def remove_if_equals(self, branch: str, old: bytes) -> bool: ...


class Refs:
    """A working copy's refs and HEAD, in its database (writes join the caller's
    transaction, if any)."""

    def __init__(self, db: RepoDB) -> None:
        self.db = db

    # -- branches ------------------------------------------------------------------------
    async def get(self, branch: str) -> bytes | None:
        return await self.db.get_ref(HEADS + branch)

    async def branches(self) -> dict[str, bytes]:
        return {n.removeprefix(HEADS): c for n, c in (await self.db.list_refs(HEADS)).items()}

    async def set_if_equals(self, branch: str, old: bytes | None, new: bytes) -> bool:
        ref = branch_ref(branch)
        if old is None:
            _refuse_nesting(branch, await self.branches())
        return await self.db.set_ref_if_equals(ref, old, new)

    async def remove_if_equals(self, branch: str, old: bytes) -> bool:
        return await self.db.remove_ref_if_equals(branch_ref(branch), old)

    # -- remote-tracking branches: what a remote said its branches were ---------------------
    async def remote(self, remote: str, branch: str) -> bytes | None:
        return await self.db.get_ref(remote_ref(remote, branch))

    async def remote_branches(self, remote: str) -> dict[str, bytes]:
        prefix = remote_ref(remote, "")
        return {n.removeprefix(prefix): c for n, c in (await self.db.list_refs(prefix)).items()}

    async def set_remote(self, remote: str, branch: str, commit: bytes) -> None:
        await self.db.force_ref(remote_ref(remote, branch), commit)

    async def forget_remote(self, remote: str, branch: str) -> None:
        """Drop a remote-tracking branch (the remote deleted it)."""
        ref = remote_ref(remote, branch)
        if (cid := await self.db.get_ref(ref)) is not None:
            await self.db.remove_ref_if_equals(ref, cid)

    async def drop_remote(self, remote: str) -> int:
        """Drop every remote-tracking branch of ``remote`` (it is removed); returns how many."""
        async with self.db.transaction():
            tracked = await self.remote_branches(remote)
            for branch, cid in tracked.items():
                await self.db.remove_ref_if_equals(remote_ref(remote, branch), cid)
        return len(tracked)

    async def rename_remote(self, old: str, new: str) -> int:
        """Move ``old``'s remote-tracking branches under ``new`` (in one transaction);
        returns how many."""
        async with self.db.transaction():
            await self.drop_remote(new)  # orphans: ``new`` names no remote yet
            tracked = await self.remote_branches(old)
            for branch, cid in tracked.items():
                await self.db.force_ref(remote_ref(new, branch), cid)
                await self.db.remove_ref_if_equals(remote_ref(old, branch), cid)
        return len(tracked)

    async def set_remotes(self, remote: str, branches: dict[str, bytes]) -> None:
        async with self.db.transaction():
            for branch, commit in branches.items():
                await self.set_remote(remote, branch, commit)

    # -- any ref, and HEAD ---------------------------------------------------------------
    async def lookup(self, name: str) -> bytes | None:
        """A branch, then a remote-tracking branch (``origin/main``, ``remotes/origin/main``),
        then a full ref name (``refs/remotes/origin/main``)."""
        for ref in (HEADS + name, REMOTES + name.removeprefix("remotes/"), name):
            if (cid := await self.db.get_ref(ref)) is not None:
                return cid
        return None

    async def head(self) -> Head:
        branch, detached = parse_head(await self.db.get_state("HEAD"))
        if branch is None:
            return Head(None, detached)
        return Head(branch, await self.get(branch))

    async def set_head(self, branch: str | None, commit: bytes | None = None) -> None:
        """Point HEAD at a branch, or (``branch`` None) detach it at ``commit``."""
        await self.db.set_state("HEAD", head_value(branch, commit))

    async def tips(self) -> set[bytes]:
        """Every commit a ref or HEAD points at."""
        tips = set((await self.db.list_refs()).values())
        head = await self.head()
        if head.commit is not None:
            tips.add(head.commit)
        return tips


#: What the object of a deleted branch holds in a store (never a commit id's hex).
TOMBSTONE = b"deleted"


class StoreRefs:
    """A served repository's branches: ``refs/heads/<branch>`` objects holding the commit
    id in hex, moved by the store's compare-and-swap (so any number of servers agree).

    A delete swaps the commit for :data:`TOMBSTONE` rather than removing the object: a
    check-then-delete could remove a commit a racing push had just swapped in and been
    answered for, and not every store can delete conditionally.  A tombstone reads as no
    branch; creating the branch again swaps it out.  Until garbage collection removes it
    (it is a few bytes), it keeps its name from being a folder of a new branch, or the
    reverse, as a live branch does: a filesystem store cannot hold both.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, branch: str) -> bytes | None:
        return _commit(await self.store.get(branch_ref(branch)))

    async def _named(self) -> dict[str, bytes]:
        """Every branch object, deleted ones (tombstones) included: name -> raw value."""
        keys = [k async for k in self.store.list(HEADS)]
        values = await asyncio.gather(*(self.store.get(k) for k in keys))
        return {
            k.removeprefix(HEADS): v for k, v in zip(keys, values, strict=True) if v is not None
        }

    async def branches(self) -> dict[str, bytes]:
        named = await self._named()
        return {name: c for name, raw in named.items() if (c := _commit(raw)) is not None}

    async def set_if_equals(self, branch: str, old: bytes | None, new: bytes) -> bool:
        key = branch_ref(branch)
        value = new.hex().encode()
        if old is None:
            named = await self._named()
            _refuse_nesting(branch, {n for n, raw in named.items() if raw != TOMBSTONE})
            _refuse_nesting(branch, {n for n, raw in named.items() if raw == TOMBSTONE}, "deleted ")
            expected = await self.store.get(key)
            if expected not in (None, TOMBSTONE):
                return expected == value
        else:
            expected = old.hex().encode()
        if await self.store.compare_and_swap(key, expected, value):
            return True
        # a conditional write whose reply was lost looks like a conflict on retry
        return await self.store.get(key) == value

    async def remove_if_equals(self, branch: str, old: bytes) -> bool:
        return await self.store.compare_and_swap(branch_ref(branch), old.hex().encode(), TOMBSTONE)


def _commit(raw: bytes | None) -> bytes | None:
    """The commit a branch object holds; None for no object or a tombstone."""
    return None if raw is None or raw == TOMBSTONE else bytes.fromhex(raw.decode())


def _refuse_nesting(branch: str, existing: Iterable[str], kind: str = "") -> None:
    other = nesting_conflict(branch, existing)
    if other is not None:
        held = "still holds its name until garbage collection" if kind else "exists"
        raise RefConflict(
            f"cannot create branch {branch!r}: {kind}branch {other!r} {held} "
            "(a branch cannot be a folder of another)"
        )
