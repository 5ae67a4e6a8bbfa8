"""Refs: one behaviour for a working copy's refs (SQLite) and a served repository's (a store),
and the names, HEAD and remote-tracking refs of a working copy."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from oxen.core.refs import BranchRefs, Refs, StoreRefs, remote_ref, split_ancestry
from oxen.db.repo_db import RepoDB
from oxen.errors import RefConflict, RefError
from oxen.storage import Store
from oxen.storage.local import LocalStore
from oxen.storage.nfs import NfsStore
from tests.storage.conftest import (  # noqa: F401 - fixtures
    CREDENTIALS,
    S3_TEST_OPTIONS,
    aws_env,
    make_bucket,
    moto_endpoint,
)

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


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3), "nfs"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty store of each backend a server can keep its repositories on."""
    if request.param == "local":
        store: Store = LocalStore(tmp_path / "local")
    elif request.param == "nfs":
        store = NfsStore(tmp_path / "nfs", lock_wait=30.0)
    else:
        from oxen.storage.s3 import S3Store

        endpoint = request.getfixturevalue("moto_endpoint")
        bucket = request.getfixturevalue("make_bucket")(f"refs-{uuid.uuid4().hex[:12]}")
        store = S3Store(bucket, "r", endpoint_url=endpoint, **CREDENTIALS, **S3_TEST_OPTIONS)
    try:
        yield store
    finally:
        await store.close()


async def test_a_deleted_branch_reads_as_absent_and_can_be_created_again(any_store: Store) -> None:
    """A delete is a compare-and-swap to a tombstone: gone for every reader, refused when
    the branch moved, and the name is taken again by a swap from the tombstone."""
    refs = StoreRefs(any_store)
    assert await refs.set_if_equals("main", None, A)
    assert await refs.set_if_equals("dev", None, B)
    assert not await refs.remove_if_equals("main", B)  # it holds A
    assert await refs.remove_if_equals("main", A)
    assert await refs.get("main") is None
    assert await refs.branches() == {"dev": B}
    assert not await refs.remove_if_equals("main", A)  # gone already
    assert not await refs.set_if_equals("main", A, C)  # a push that saw A comes too late
    assert await refs.get("main") is None
    assert await refs.set_if_equals("main", None, C)  # created again
    assert not await refs.set_if_equals("main", None, B)
    assert await refs.branches() == {"dev": B, "main": C}
    assert await any_store.get("refs/heads/main") == C.hex().encode()


async def test_racing_creations_of_a_deleted_branch_have_one_winner(any_store: Store) -> None:
    refs = StoreRefs(any_store)
    assert await refs.set_if_equals("main", None, A)
    assert await refs.remove_if_equals("main", A)
    won = await asyncio.gather(*(refs.set_if_equals("main", None, c) for c in (A, B, C)))
    assert sum(won) == 1
    assert await refs.get("main") == (A, B, C)[won.index(True)]


async def test_a_deleted_branch_still_holds_its_name_as_a_folder(any_store: Store) -> None:
    """Its tombstone stays (a few bytes) until garbage collection, and a filesystem store
    cannot hold ``main/x`` beside ``main``: a clear conflict, on every backend alike."""
    refs = StoreRefs(any_store)
    assert await refs.set_if_equals("main", None, A)
    assert await refs.set_if_equals("nest/x", None, B)
    assert await refs.remove_if_equals("main", A)
    assert await refs.remove_if_equals("nest/x", B)
    for name in ("main/x", "nest"):
        with pytest.raises(RefConflict, match="deleted branch"):
            await refs.set_if_equals(name, None, C)
    assert await refs.branches() == {}


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


async def test_a_remote_s_tracking_refs_are_dropped_or_renamed_together(tmp_path: Path) -> None:
    db = await RepoDB.open(tmp_path)
    try:
        refs = Refs(db)
        await refs.set_remotes("origin", {"main": A, "feature/x": B})
        await refs.set_remotes("origin2", {"main": C})  # a name origin is a prefix of
        await refs.set_remotes("up", {"stale": C})  # left by a remote removed long ago
        assert await refs.rename_remote("origin", "up") == 2
        assert await refs.remote_branches("origin") == {}
        assert await refs.remote_branches("up") == {"main": A, "feature/x": B}
        assert await refs.lookup("up/feature/x") == B
        assert await refs.drop_remote("up") == 2
        assert await refs.remote_branches("up") == {}
        assert await refs.remote_branches("origin2") == {"main": C}
        assert await refs.drop_remote("nobody") == 0
    finally:
        await db.close()


def test_ancestry_suffixes() -> None:
    assert split_ancestry("main~2") == ("main", 2)
    assert split_ancestry("HEAD^^") == ("HEAD", 2)
    assert split_ancestry("abc~") == ("abc", 1)
    assert remote_ref("origin", "main") == "refs/remotes/origin/main"
