""".oxenignore: untracked matches are neither reported nor added; tracked files stay
tracked; ignored directories are not walked; naming an ignored path needs --force."""

from __future__ import annotations

from pathlib import Path

import pytest

from oxen.errors import InvalidInput, PathError
from oxen.repo import AsyncRepo
from oxen.worktree.ignore import Ignore
from oxen.worktree.paths import iter_file_names
from oxen.worktree.status import compute_status
from tests.conftest import write

RULES = """
# scratch output
*.log
!keep.log
cache/
"""


def _tree(root: Path) -> None:
    write(root, ".oxenignore", RULES)
    write(root, "data/a.csv", "a")
    write(root, "data/run.log", "noise")
    write(root, "data/keep.log", "kept")
    write(root, "cache/big.bin", "x" * 100)
    write(root, "cache/deep/more.bin", "y")


async def test_add_dot_leaves_out_ignored_files(repo: AsyncRepo, workdir: Path) -> None:
    _tree(workdir)
    await repo.add(["."])
    st = compute_status(workdir)
    assert st.staged_added == [".oxenignore", "data/a.csv", "data/keep.log"]
    assert st.untracked == []


async def test_ignored_directories_are_not_walked(tmp_path: Path) -> None:
    _tree(tmp_path)
    ignore = Ignore.load(tmp_path)
    assert ignore is not None
    names = {rel for rel, _ in iter_file_names(tmp_path, "", ignore=ignore)}
    assert not any(n.startswith("cache/") for n in names)
    assert ignore.pruned == {"cache/"}


async def test_tracked_files_stay_tracked(repo: AsyncRepo, workdir: Path) -> None:
    """Files committed before a rule matched them: changes are seen and added, and a
    skipped directory does not make its tracked files look deleted."""
    write(workdir, "cache/model.bin", "v1")
    write(workdir, "train.log", "v1")
    await repo.add(["."])
    await repo.commit("before the rules")
    write(workdir, ".oxenignore", RULES)
    write(workdir, "cache/model.bin", "v2")
    write(workdir, "train.log", "v2")
    write(workdir, "cache/untracked.bin", "new")
    st = compute_status(workdir)
    assert st.modified == ["cache/model.bin", "train.log"]
    assert st.removed == [] and st.untracked == [".oxenignore"]
    await repo.add(["."])
    st = compute_status(workdir)
    assert st.staged_modified == ["cache/model.bin", "train.log"]
    assert st.staged_removed == [] and st.untracked == []
    (workdir / "cache" / "model.bin").unlink()
    assert compute_status(workdir).removed == ["cache/model.bin"]


async def test_naming_an_ignored_path_needs_force(repo: AsyncRepo, workdir: Path) -> None:
    _tree(workdir)
    with pytest.raises(PathError, match="ignored by .oxenignore"):
        await repo.add(["data/run.log"])
    with pytest.raises(PathError, match="ignored by .oxenignore"):
        await repo.add(["cache"])
    await repo.add(["data/run.log", "cache"], force=True)
    st = compute_status(workdir)
    assert st.staged_added == ["cache/big.bin", "cache/deep/more.bin", "data/run.log"]


async def test_an_unreadable_ignore_file_is_one_clear_error(repo: AsyncRepo, workdir: Path) -> None:
    write(workdir, ".oxenignore", b"\xff\xfe not text")
    with pytest.raises(InvalidInput, match=".oxenignore"):
        compute_status(workdir)


def test_cli_add_ignored_file(oxen, workdir: Path) -> None:
    oxen("init", check=True)
    write(workdir, ".oxenignore", "*.log\n")
    write(workdir, "x.log", "noise")
    proc = oxen("add", "x.log")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "error: path is ignored by .oxenignore: x.log (use --force to add it)"
    ]
    assert oxen("add", "-f", "x.log").returncode == 0
    assert "x.log" in oxen("status", "--json", check=True).stdout
