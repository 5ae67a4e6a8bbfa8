"""diff: which paths were added, modified or removed between two revisions, or between a
revision (default HEAD) and the working tree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from oxen.core.repository import Repository
from oxen.verbs.status import status as working_status

ChangeKind = Literal["added", "modified", "removed"]


@dataclass(frozen=True)
class DiffEntry:
    path: str
    change: ChangeKind
    old_size: int | None
    new_size: int | None


# path -> (old size, new size, old id, new id); None: absent on that side
_Sides = dict[str, tuple[int | None, int | None, bytes | None, bytes | None]]


async def diff(repo: Repository, a: str | None = None, b: str | None = None) -> list[DiffEntry]:
    """``a`` vs ``b``; with one revision, the working tree vs it; with none, vs HEAD."""
    if a is not None and b is not None:
        changes = await repo.trees.diff(await repo.tree_of(a), await repo.tree_of(b))
        return _entries(
            {
                p: (
                    o.size if o else None,
                    n.size if n else None,
                    o.id if o else None,
                    n.id if n else None,
                )
                for p, (o, n) in changes.items()
            }
        )
    base = await repo.trees.flatten(await repo.tree_of(a)) if a is not None else None
    if base is None:
        base = await repo.db.head_files()
    work = (await working_status(repo)).current  # path -> (id, size) as in the working tree
    out: _Sides = {}
    for p in base.keys() | work.keys():
        o, n = base.get(p), work.get(p)
        oid, nid = (o.id if o else None), (n[0] if n else None)
        if oid != nid:
            out[p] = (o.size if o else None, n[1] if n else None, oid, nid)
    return _entries(out)


def _entries(changes: _Sides) -> list[DiffEntry]:
    out = []
    for path in sorted(changes):
        old_size, new_size, oid, nid = changes[path]
        kind: ChangeKind = "added" if oid is None else "removed" if nid is None else "modified"
        out.append(DiffEntry(path, kind, old_size, new_size))
    return out
