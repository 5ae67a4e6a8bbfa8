"""status, for the async verbs and the Python API: :mod:`oxen.worktree.status` (synchronous,
so that the ``oxen status`` command need not load asyncio) run in a worker thread."""

from __future__ import annotations

import asyncio

from oxen.core.repository import Repository
from oxen.worktree.status import Status, compute_status


async def status(repo: Repository, path: str = "") -> Status:
    """What is staged, modified, removed and untracked (below ``path``, if given)."""
    prefix = repo.repo_path(path) if path else ""
    return await asyncio.to_thread(compute_status, repo.root, prefix)
