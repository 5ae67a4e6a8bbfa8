"""The state a merge in progress leaves between commands (in the database's state table):
the commit being merged, where HEAD was, and the ``<path>.theirs`` companions written."""

from __future__ import annotations

from collections.abc import Sequence

from oxen.core.repository import Repository
from oxen.db.rows import ConflictRow

MERGE_HEAD = "MERGE_HEAD"
ORIG_HEAD = "ORIG_HEAD"
COMPANIONS = "MERGE_COMPANIONS"
_KEYS = (MERGE_HEAD, ORIG_HEAD, "MERGE_MSG", COMPANIONS)


async def merge_head(repo: Repository) -> bytes | None:
    """The commit being merged, while a merge is in progress."""
    return await repo.db.get_state(MERGE_HEAD)


async def companions(repo: Repository) -> list[str]:
    """The ``<path>.theirs`` files this merge wrote (removed when it ends)."""
    raw = await repo.db.get_state(COMPANIONS)
    return [p for p in raw.decode().split("\n") if p] if raw else []


async def begin(
    repo: Repository, theirs: bytes, ours: bytes, conflicts: Sequence[ConflictRow] = ()
) -> None:
    """Record a merge in progress (inside the caller's transaction)."""
    await repo.db.set_state(MERGE_HEAD, theirs)
    await repo.db.set_state(ORIG_HEAD, ours)
    if conflicts:
        await repo.db.set_conflicts(conflicts)
        names = [c.theirs_path for c in conflicts if c.theirs_path]
        await repo.db.set_state(COMPANIONS, "\n".join(names).encode())


async def clear(repo: Repository) -> None:
    """Forget the merge (inside the caller's transaction)."""
    for key in _KEYS:
        await repo.db.set_state(key, None)
    await repo.db.set_conflicts([])
