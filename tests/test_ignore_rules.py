"""The .oxenignore matcher against git itself: the same rules over the same tree of
files must ignore the same files (git's `status --ignored`, parent directories
included: nothing inside an ignored directory can be re-included)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import pytest

from oxen.worktree.ignore import Ignore

PATTERNS = [
    "*.log",
    "!keep.log",
    "cache/",
    "/top.txt",
    "a/**/b",
    "**/x",
    "d/**",
    "[abc].txt",
    "x[!0-9]y",
    "doc/*.md",
    "build",
    "!build/keep",
    "*.tmp/",
    "sub/dir/",
    "**/deep/*.bin",
    "n?me",
    "/lead/",
    "a*b",
]
FILES = [
    "x.log", "keep.log", "sub/keep.log", "sub/run.log", "cache/f", "a/cache/f", "top.txt",
    "sub/top.txt", "a/b", "a/x/y/b", "x", "q/x/r", "d/e", "d/g/f2", "a.txt", "d.txt", "x1y",
    "xay", "doc/a.md", "doc/sub/a.md", "build/keep", "build/other", "sub/build/z", "t.tmp/f",
    "sub/dir/f", "z/deep/k.bin", "deep/k.bin", "name", "nme", "lead/f", "z/lead/f", "ab",
    "axxb", "w/xb", "m/x/y",
]  # fmt: skip


def _git_ignored(tmp: Path, rules: tuple[str, ...]) -> set[str]:
    (tmp / ".gitignore").write_text("\n".join(rules) + "\n")
    out = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "-uall"],
        cwd=tmp,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listed = [line[3:] for line in out.splitlines() if line.startswith("!! ")]
    return {
        f for f in FILES if any(f == p or (p.endswith("/") and f.startswith(p)) for p in listed)
    }


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git as the reference")
def test_the_same_files_as_git(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    for f in FILES:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text(f)
    combos = [(p,) for p in PATTERNS] + list(itertools.combinations(PATTERNS, 2))
    combos += [("*.log", "!keep.log", "build", "!build/keep", "cache/", "d/**", "!d/e")]
    mismatches = []
    for rules in combos:
        ours = Ignore(rules)
        expected = _git_ignored(tmp_path, rules)
        got = {f for f in FILES if ours.file(f)}
        if got != expected:
            mismatches.append((rules, sorted(got - expected), sorted(expected - got)))
    assert mismatches == []
