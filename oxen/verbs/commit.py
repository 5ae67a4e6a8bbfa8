"""commit: the staging area applied to HEAD's tree, as a new commit on the current branch.

Write order: the new tree's nodes and the commit node go into a pack first; then one
transaction moves the branch (compare-and-swap), updates HEAD's file table and clears
the staging area, so a crash leaves the old commit or the new one, never a part.
"""

from __future__ import annotations

import asyncio
import time

from oxen.config import load_user_config
from oxen.core.repository import Repository
from oxen.errors import NothingToCommit, OxenError
from oxen.faults import crash_point
from oxen.formats.nodes import CommitNode, encode_with_id
from oxen.verbs import merge_state
from oxen.worktree.materialize import remove_files


def new_commit(
    tree: bytes, parents: tuple[bytes, ...], message: str, author: tuple[str, str] | None = None
) -> CommitNode:
    """A commit made now, by ``author`` (name, email) or the user's configured identity."""
    if author is None:
        user = load_user_config()
        if not user.name or not user.email:
            raise OxenError("who are you? set your identity: oxen config --name NAME --email EMAIL")
        author = (user.name, user.email)
    now = time.time()
    tz = -(time.altzone if time.localtime(now).tm_isdst > 0 else time.timezone) // 60
    return CommitNode(tree, parents, author[0], author[1], int(now), tz, message)


async def commit(repo: Repository, message: str, allow_empty: bool = False) -> bytes:
    if not message.strip():
        raise OxenError("empty commit message")
    user = load_user_config()
    if not user.name or not user.email:
        raise OxenError("who are you? set your identity: oxen config --name NAME --email EMAIL")
    conflicts = await repo.db.conflicts()
    if conflicts:
        raise OxenError(
            f"unresolved merge conflicts ({len(conflicts)}), e.g. {next(iter(conflicts))}: fix them, oxen add, then commit"
        )
    staged = await repo.db.staged()
    merging = await merge_state.merge_head(repo)
    if not staged and merging is None and not allow_empty:
        raise NothingToCommit("nothing to commit (use oxen add to stage changes)")
    branch, parent = await repo.head()
    parent_tree = (await repo.read_commit(parent)).tree if parent else None
    changes = {p: (r if r.id is not None else None) for p, r in staged.items()}
    tree, nodes = await repo.trees.apply(parent_tree, changes)
    parents = tuple(p for p in (parent, merging) if p)
    commit_id, data = encode_with_id(new_commit(tree, parents, message, (user.name, user.email)))
    await repo.objects.write_nodes([*nodes, (commit_id, data)])
    crash_point("commit-objects")
    companions = await merge_state.companions(repo)
    partial = await repo.partial()  # clone's merge commits paths it does not hold)
    async with repo.db.transaction():
        await repo.move_head(branch, parent, commit_id)
        await repo.db.update_head_files(  # what the working tree holds (a partial
            [r for r in staged.values() if r.id is not None and partial.holds(r.path)],
            [p for p, r in staged.items() if r.id is None],
        )
        await repo.db.clear_staged()
        await merge_state.clear(repo)
        crash_point("commit-transaction")
    if companions:
        await asyncio.to_thread(remove_files, repo.root, companions)
    return commit_id
