"""Branches: list, create, delete; and the log of commits reachable from a revision."""

from __future__ import annotations

from oxen.core.refs import check_branch_name
from oxen.core.repository import CommitInfo, Repository
from oxen.errors import RefConflict, RefError
from oxen.trees.history import is_ancestor, newest_first


async def branches(repo: Repository) -> dict[str, bytes]:
    return await repo.refs.branches()


async def create_branch(repo: Repository, name: str, start: str | None = None) -> bytes:
    check_branch_name(name)
    cid = await repo.resolve(start or "HEAD")
    if not await repo.refs.set_if_equals(name, None, cid):
        raise RefError(f"a branch named {name!r} already exists")
    return cid


async def remote_branches(repo: Repository) -> dict[str, bytes]:
    """Remote-tracking branches as ``remote/branch`` -> commit, every configured remote."""
    out: dict[str, bytes] = {}
    for remote in sorted(repo.config.remotes):
        for branch, cid in (await repo.refs.remote_branches(remote)).items():
            out[f"{remote}/{branch}"] = cid
    return out


async def is_merged(repo: Repository, name: str, cid: bytes) -> bool:
    """Whether deleting branch ``name`` (at ``cid``) loses no commit: HEAD or a remote's
    branch of that name holds it (git's rule for ``branch -d``)."""
    holders = [(await repo.head()).commit]
    holders += [await repo.refs.remote(r, name) for r in sorted(repo.config.remotes)]
    for tip in holders:
        if tip is not None and await is_ancestor(repo.objects, cid, tip):
            return True
    return False


async def delete_branch(repo: Repository, name: str, force: bool = False) -> None:
    """Delete a local branch; unless ``force``, only one whose commits are held elsewhere."""
    check_branch_name(name)
    if name == (await repo.head()).branch:
        raise RefError(f"cannot delete the branch you are on: {name}")
    cid = await repo.refs.get(name)
    if cid is None:
        raise RefError(f"no such branch: {name}")
    if not force and not await is_merged(repo, name, cid):
        raise RefError(
            f"the branch {name} is not fully merged (HEAD and the remotes lack its commit "
            f"{cid.hex()[:10]}): merge or push it, or delete it anyway with -D"
        )
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
    shallow = (await repo.partial()).shallow  # a --depth clone's log ends where it does
    async for cid, node in newest_first(repo.objects, start, shallow):
        if limit is not None and len(out) >= limit:
            break
        out.append(CommitInfo.of(cid, node))
    return out
