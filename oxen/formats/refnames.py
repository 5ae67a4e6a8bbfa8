"""Ref names and the HEAD value, as the refs table and the store keep them.

The one place that spells ``refs/heads/<branch>`` and ``refs/remotes/<remote>/<branch>``.
No imports beyond ``re``: ``oxen status`` reads HEAD through this too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from oxen.errors import RefError

HEADS = "refs/heads/"
REMOTES = "refs/remotes/"
_BAD_NAME = re.compile(r"(^[-/.])|(\.\.)|([\x00-\x20~^:?*\[\\])|(/$)|(\.lock$)|(//)|(@\{)")


def check_branch_name(name: str) -> str:
    if not name or len(name) > 200 or _BAD_NAME.search(name) or name == "HEAD":
        raise RefError(f"invalid branch name: {name!r}")
    return name


def branch_ref(name: str) -> str:
    return HEADS + check_branch_name(name)


def nesting_conflict(name: str, existing: Iterable[str]) -> str | None:
    """A branch ``name`` cannot stand beside, as in git: one that would be a folder of it
    (``main`` for ``main/x``) or that it would be a folder of (``nest/x`` for ``nest``)."""
    for other in existing:
        if other.startswith(name + "/") or name.startswith(other + "/"):
            return other
    return None


def remote_ref(remote: str, branch: str) -> str:
    return f"{REMOTES}{remote}/{branch}"


def branch_of(ref: str) -> str:
    """``refs/heads/main`` -> ``main``."""
    return ref.removeprefix(HEADS)


def head_value(branch: str | None, commit: bytes | None) -> bytes:
    """What the HEAD state row holds: a symbolic ref, or a commit id when detached."""
    if branch is not None:
        return f"ref: {HEADS}{branch}".encode()
    assert commit is not None
    return commit.hex().encode()


def parse_head(value: bytes | None) -> tuple[str | None, bytes | None]:
    """(branch name, detached commit) from the HEAD state row."""
    if value is None:
        return "main", None
    text = value.decode()
    if text.startswith("ref: "):
        return text[5:].removeprefix(HEADS), None
    return None, bytes.fromhex(text)


def split_ancestry(rev: str) -> tuple[str, int]:
    """``main~2`` -> ("main", 2); ``HEAD^`` -> ("HEAD", 1)."""
    steps = 0
    while True:
        m = re.search(r"(~(\d*)|\^)$", rev)
        if not m:
            return rev, steps
        if m.group(0) == "^":
            steps += 1
        else:
            steps += int(m.group(2) or 1)
        rev = rev[: m.start()]
