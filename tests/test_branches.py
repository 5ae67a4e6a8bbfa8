"""Branches as git users expect them: -d refuses to lose commits, remote-tracking branches
listed and usable as revisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from oxen.errors import RefError
from oxen.repo import AsyncRepo
from oxen.verbs import branches
from tests.conftest import write


async def _topic_ahead_of_main(repo: AsyncRepo, workdir: Path) -> bytes:
    """``main`` at a base commit, ``topic`` one commit ahead of it; HEAD back on main."""
    write(workdir, "a", "1")
    await repo.add(["a"])
    await repo.commit("base")
    await repo.checkout("topic", create=True)
    write(workdir, "a", "2")
    await repo.add(["a"])
    topic = await repo.commit("only on topic")
    await repo.checkout("main")
    return topic


async def test_delete_refuses_a_branch_only_it_holds(repo: AsyncRepo, workdir: Path) -> None:
    topic = await _topic_ahead_of_main(repo, workdir)
    with pytest.raises(RefError, match="not fully merged.*-D"):
        await repo.delete_branch("topic")
    assert await repo.refs.get("topic") == topic
    # pushed (a remote's branch of that name holds it): -d is enough
    repo.config.remotes["origin"] = "http://127.0.0.1:9/ns/r"
    await repo.refs.set_remote("origin", "topic", topic)
    await repo.delete_branch("topic")
    assert await repo.refs.get("topic") is None


async def test_force_deletes_an_unmerged_branch(repo: AsyncRepo, workdir: Path) -> None:
    await _topic_ahead_of_main(repo, workdir)
    await repo.delete_branch("topic", force=True)
    assert await repo.refs.get("topic") is None


async def test_a_merged_branch_deletes_with_d(repo: AsyncRepo, workdir: Path) -> None:
    write(workdir, "a", "1")
    await repo.add(["a"])
    await repo.commit("base")
    await repo.create_branch("done")
    await repo.delete_branch("done")
    assert await repo.refs.get("done") is None


async def test_remote_tracking_branches_are_revisions(repo: AsyncRepo, workdir: Path) -> None:
    write(workdir, "a", "1")
    await repo.add(["a"])
    cid = await repo.commit("base")
    repo.config.remotes["origin"] = "http://127.0.0.1:9/ns/r"
    await repo.refs.set_remote("origin", "relabel", cid)
    assert await branches.remote_branches(repo) == {"origin/relabel": cid}
    for rev in ("origin/relabel", "remotes/origin/relabel", "refs/remotes/origin/relabel"):
        assert await repo.resolve(rev) == cid
    assert [c.id for c in await repo.log("origin/relabel")] == [cid]


def test_branch_command_line(oxen, workdir: Path) -> None:
    oxen("init", check=True)
    listed = oxen("branch", check=True)
    assert "no branches yet" in listed.stdout
    write(workdir, "a", "1")
    oxen("add", "a", check=True)
    oxen("commit", "-m", "base", check=True)
    oxen("checkout", "-b", "topic", check=True)
    write(workdir, "a", "2")
    oxen("add", "a", check=True)
    oxen("commit", "-m", "topic", check=True)
    oxen("checkout", "main", check=True)
    refused = oxen("branch", "-d", "topic")
    assert refused.returncode == 1 and "-D" in refused.stderr
    assert oxen("branch", "-D", "topic", check=True).stdout.strip() == "Deleted branch topic"
    assert "no remote-tracking branches" in oxen("branch", "-r", check=True).stdout


def test_checkout_of_the_current_branch_and_log_of_an_empty_repo(oxen, workdir: Path) -> None:
    oxen("init", check=True)
    empty = oxen("log", check=True)
    assert empty.stdout == "" and "no commits yet" in empty.stderr
    write(workdir, "a", "1")
    oxen("add", "a", check=True)
    oxen("commit", "-m", "base", check=True)
    assert oxen("checkout", "main", check=True).stdout.strip() == "Already on 'main'"
