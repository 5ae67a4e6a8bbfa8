"""A folder of a remote revision, listed without a clone: the tree route, page after page.

The first page names the commit the revision is at; every later page is asked of that
commit, so a branch that moves while a large folder is listed never mixes two versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from oxen.errors import RemoteError
from oxen.formats.ids import from_hex
from oxen.worktree.paths import check_repo_path

PAGE = 1000  # entries per request: the most the server answers


class TreeSource(Protocol):
    """What a listing needs from a remote (:class:`~oxen.sync.http.HttpRemote`)."""

    async def tree(
        self, path: str, rev: str | None = None, offset: int = 0, limit: int = PAGE
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Listing:
    path: str  # "" for the top
    commit: bytes
    total: int  # entries in the folder (more than ``entries`` when a limit cut it)
    entries: list[dict[str, Any]]  # the tree route's entries, by name

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "commit": self.commit.hex(),
            "total": self.total,
            "entries": self.entries,
        }


def folder_path(path: str) -> str:
    """A folder's path in a repository as the tree route takes it ("" for the top)."""
    path = path.strip("/")
    if path:
        check_repo_path(path)
    return path


async def list_tree(
    source: TreeSource, path: str = "", rev: str | None = None, limit: int | None = None
) -> Listing:
    """The entries of the folder at ``path`` in ``rev`` (default: main), by name: all of
    them, or the first ``limit``. NotFound for an unknown revision or folder."""
    path = folder_path(path)
    entries: list[dict[str, Any]] = []
    offset: int | None = 0
    commit: bytes | None = None
    total = 0
    while offset is not None and (limit is None or len(entries) < limit):
        want = PAGE if limit is None else min(PAGE, limit - len(entries))
        at = rev if commit is None else commit.hex()
        page = await source.tree(path, at, offset, want)
        commit_here, total, got, after = _check_page(page, offset)
        if commit is not None and commit_here != commit:
            raise RemoteError(f"the server listed {path or 'the top'} at two commits")
        commit = commit_here
        entries += got
        offset = after
    assert commit is not None
    return Listing(path, commit, total, entries)


def _check_page(
    page: dict[str, Any], offset: int
) -> tuple[bytes, int, list[dict[str, Any]], int | None]:
    """(commit, total, entries, next offset) of a page the server answered, checked."""
    try:
        commit = from_hex(page["commit"])
        total, entries, after = page["total"], page["entries"], page["next_offset"]
        if type(total) is not int or not isinstance(entries, list):
            raise ValueError("total or entries of the wrong type")
        for e in entries:
            if not isinstance(e, dict) or not isinstance(e.get("name"), str):
                raise ValueError("an entry without a name")
            if e.get("type") not in ("file", "dir") or type(e.get("size")) is not int:
                raise ValueError(f"entry {e['name']!r} without a type or size")
        if after is not None and (type(after) is not int or after != offset + len(entries)):
            raise ValueError(f"next_offset {after!r} after {len(entries)} entries from {offset}")
        if after is not None and not entries:
            raise ValueError("an empty page that is not the last")
    except (ValueError, TypeError, LookupError) as e:
        raise RemoteError(f"the server answered a malformed folder listing: {e}") from None
    return commit, total, entries, after
