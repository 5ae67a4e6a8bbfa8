"""diff: which paths were added, modified or removed between two revisions, or between a
revision (default HEAD) and the working tree."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from oxen.core.repository import Repository
from oxen.db.rows import FileRow
from oxen.formats.nodes import Schema
from oxen.verbs.schemas import SchemaChange, compare, read_schemas, schema_changes
from oxen.verbs.status import status as working_status
from oxen.worktree.tabular import format_of, sniff

ChangeKind = Literal["added", "modified", "removed"]


@dataclass(frozen=True)
class DiffEntry:
    path: str
    change: ChangeKind
    old_size: int | None
    new_size: int | None
    schema: SchemaChange | None = None  # a tabular file's columns and rows, old vs new


# path -> (old size, new size, old id, new id); None: absent on that side
_Sides = dict[str, tuple[int | None, int | None, bytes | None, bytes | None]]


async def diff(repo: Repository, a: str | None = None, b: str | None = None) -> list[DiffEntry]:
    """``a`` vs ``b``; with one revision, the working tree vs it; with none, vs HEAD."""
    if a is not None and b is not None:
        changes = await repo.trees.diff(await repo.tree_of(a), await repo.tree_of(b))
        structure = await schema_changes(repo, {p: (o, n) for p, (o, n) in changes.items()})
        return _entries(
            {
                p: (
                    o.size if o else None,
                    n.size if n else None,
                    o.id if o else None,
                    n.id if n else None,
                )
                for p, (o, n) in changes.items()
            },
            structure,
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
    return _entries(out, await _working_schema_changes(repo, base, out))


async def _working_schema_changes(
    repo: Repository, base: dict[str, FileRow], changed: _Sides
) -> dict[str, SchemaChange]:
    """Tabular files changed in the working tree: their committed schema against the one
    read from the file now."""
    paths = [p for p, (_, _, _, nid) in changed.items() if format_of(p)]
    if not paths:
        return {}

    def read_now() -> dict[str, tuple[Schema, int | None]]:
        return {
            p: sniff(str(repo.root / p), format_of(p))  # type: ignore[arg-type]
            for p in paths
            if changed[p][3] is not None
        }

    now = await asyncio.to_thread(read_now)
    committed = [r.schema for p in paths if (r := base.get(p)) and r.schema]
    known = await read_schemas(repo, committed)
    out = {}
    for p in paths:
        before = base.get(p)
        prev = known.get(before.schema) if before and before.schema else None
        schema, rows = now.get(p, (None, None))
        if prev is None and schema is None:
            continue
        out[p] = compare(prev, schema, before.rows if before else None, rows)
    return out


def _entries(changes: _Sides, structure: dict[str, SchemaChange]) -> list[DiffEntry]:
    out = []
    for path in sorted(changes):
        old_size, new_size, oid, nid = changes[path]
        kind: ChangeKind = "added" if oid is None else "removed" if nid is None else "modified"
        out.append(DiffEntry(path, kind, old_size, new_size, structure.get(path)))
    return out
