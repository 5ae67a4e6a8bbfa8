"""Refs: branches, remote-tracking branches and HEAD, moved only by compare-and-swap.

Ref names are spelled in :mod:`oxen.formats.refnames` and nowhere else.  :class:`Refs` keeps a working copy's refs in its SQLite database; :class:`StoreRefs` keeps a
served repository's branches as objects in its store (one small object per branch, moved
by the store's conditional write).  Both offer :class:`BranchRefs`, which is all the
sync protocol needs.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, NamedTuple, Protocol

from oxen.errors import RefConflict
from oxen.formats.refnames import (
    HEADS,
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

    async def set_remotes(self, remote: str, branches: dict[str, bytes]) -> None:
        async with self.db.transaction():
            for branch, commit in branches.items():
                await self.set_remote(remote, branch, commit)

    # -- any ref, and HEAD ---------------------------------------------------------------
    async def lookup(self, name: str) -> bytes | None:
        """A branch, then a full ref name (``refs/remotes/origin/main``)."""
        return await self.db.get_ref(HEADS + name) or await self.db.get_ref(name)

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


class StoreRefs:
    """A served repository's branches: ``refs/heads/<branch>`` objects holding the commit
    id in hex, moved by the store's compare-and-swap (so any number of servers agree)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, branch: str) -> bytes | None:
        raw = await self.store.get(branch_ref(branch))
        return bytes.fromhex(raw.decode()) if raw is not None else None

    async def branches(self) -> dict[str, bytes]:
        keys = [k async for k in self.store.list(HEADS)]
        values = await asyncio.gather(*(self.store.get(k) for k in keys))
        return {
            k.removeprefix(HEADS): bytes.fromhex(v.decode())
            for k, v in zip(keys, values, strict=True)
            if v is not None
        }

    async def set_if_equals(self, branch: str, old: bytes | None, new: bytes) -> bool:
        key = branch_ref(branch)
        if old is None:
            _refuse_nesting(branch, await self.branches())
        expected = old.hex().encode() if old is not None else None
        if await self.store.compare_and_swap(key, expected, new.hex().encode()):
            return True
        # a conditional write whose reply was lost looks like a conflict on retry
        return await self.store.get(key) == new.hex().encode()

    async def remove_if_equals(self, branch: str, old: bytes) -> bool:
        key = branch_ref(branch)
        if await self.store.get(key) != old.hex().encode():
            return False
        await self.store.delete(key)
        return True


def _refuse_nesting(branch: str, existing: dict[str, bytes]) -> None:
    other = nesting_conflict(branch, existing)
    if other is not None:
        raise RefConflict(
            f"cannot create branch {branch!r}: branch {other!r} exists "
            "(a branch cannot be a folder of another)"
        )
