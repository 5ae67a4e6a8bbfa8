"""Branches: list, create, delete; and the log of commits reachable from a revision."""

from __future__ import annotations

from oxen.core.refs import check_branch_name
from oxen.core.repository import CommitInfo, Repository
from oxen.errors import RefConflict, RefError
from oxen.trees.history import newest_first


async def branches(repo: Repository) -> dict[str, bytes]:
    return await repo.refs.branches()


async def create_branch(repo: Repository, name: str, start: str | None = None) -> bytes:
    check_branch_name(name)
    cid = await repo.resolve(start or "HEAD")
    if not await repo.refs.set_if_equals(name, None, cid):
        raise RefError(f"a branch named {name!r} already exists")
    return cid


async def delete_branch(repo: Repository, name: str) -> None:
    check_branch_name(name)
    if name == (await repo.head()).branch:
        raise RefError(f"cannot delete the branch you are on: {name}")
    cid = await repo.refs.get(name)
    if cid is None:
        raise RefError(f"no such branch: {name}")
    if not await repo.refs.remove_if_equals(name, cid):
        raise RefConflict(f"branch {name} moved while deleting it; try again")


async def log(
    repo: Repository, rev: str | None = None, limit: int | None = None
) -> list[CommitInfo]:
    """Commits reachable from ``rev`` (default HEAD), newest first."""
    start = (await repo.head()).commit if rev is None else await repo.resolve(rev)
    if start is None:
        return []
    out: list[CommitInfo] = []
    async for cid, node in newest_first(repo.objects, start):
        if limit is not None and len(out) >= limit:
            break
        out.append(CommitInfo.of(cid, node))
    return out
