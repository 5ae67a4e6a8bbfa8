"""Refs: one behaviour for a working copy's refs (SQLite) and a served repository's (a store),
and the names, HEAD and remote-tracking refs of a working copy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from oxen.core.refs import BranchRefs, Refs, StoreRefs, remote_ref, split_ancestry
from oxen.db.repo_db import RepoDB
from oxen.errors import RefError
from oxen.storage.local import LocalStore

A, B, C = b"\xaa" * 32, b"\xbb" * 32, b"\xcc" * 32


@pytest.fixture(params=["database", "store"])
async def refs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BranchRefs]:
    if request.param == "store":
        yield StoreRefs(LocalStore(tmp_path / "store"))
        return
    db = await RepoDB.open(tmp_path)
    try:
        yield Refs(db)
    finally:
        await db.close()


async def test_branches_move_only_by_compare_and_swap(refs: BranchRefs) -> None:
    assert await refs.get("main") is None
    assert await refs.set_if_equals("main", None, A)
    assert not await refs.set_if_equals("main", None, B)  # exists already
    assert not await refs.set_if_equals("main", B, C)  # not what it holds
    assert await refs.set_if_equals("main", A, B)
    assert await refs.set_if_equals("feature/x", None, C)
    assert await refs.branches() == {"main": B, "feature/x": C}
    assert not await refs.remove_if_equals("main", A)
    assert await refs.remove_if_equals("main", B)
    assert await refs.branches() == {"feature/x": C}


async def test_a_lost_reply_to_our_own_swap_is_a_success(tmp_path: Path) -> None:
    refs = StoreRefs(LocalStore(tmp_path))
    assert await refs.set_if_equals("main", None, A)
    assert await refs.set_if_equals("main", None, A)  # a retry after the write landed
    assert not await refs.set_if_equals("main", None, B)


@pytest.mark.parametrize("name", ["", "-x", "a..b", "a b", "HEAD", "x.lock", "a//b", "a~1"])
async def test_bad_branch_names_are_refused(refs: BranchRefs, name: str) -> None:
    with pytest.raises(RefError, match="invalid branch name"):
        await refs.set_if_equals(name, None, A)


async def test_head_and_remote_tracking_refs(tmp_path: Path) -> None:
    db = await RepoDB.open(tmp_path)
    try:
        refs = Refs(db)
        assert await refs.head() == ("main", None)  # a new repository, before its first commit
        await refs.set_if_equals("main", None, A)
        assert await refs.head() == ("main", A)
        await refs.set_head(None, B)
        assert await refs.head() == (None, B)
        await refs.set_remotes("origin", {"main": C, "dev": A})
        assert await refs.remote("origin", "main") == C
        assert await refs.remote_branches("origin") == {"dev": A, "main": C}
        assert await refs.branches() == {"main": A}  # tracking refs are not branches
        assert await refs.lookup("main") == A
        assert await refs.lookup(remote_ref("origin", "main")) == C
        assert await refs.tips() == {A, B, C}
    finally:
        await db.close()


def test_ancestry_suffixes() -> None:
    assert split_ancestry("main~2") == ("main", 2)
    assert split_ancestry("HEAD^^") == ("HEAD", 2)
    assert split_ancestry("abc~") == ("abc", 1)
    assert remote_ref("origin", "main") == "refs/remotes/origin/main"
