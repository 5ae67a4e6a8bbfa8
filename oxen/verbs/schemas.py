"""schemas: the columns and row counts of the tabular files of a revision, from the tree
alone (no file data: a ``--no-data`` clone has them), and how they changed between two."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from oxen.core.repository import Repository
from oxen.db.rows import FileRow
from oxen.errors import CorruptObject, PathError
from oxen.formats.nodes import Schema


@dataclass(frozen=True)
class FileSchema:
    path: str
    format: str
    rows: int | None
    columns: list[tuple[str, str]]
    error: str = ""  # why the file could not be read as its format (it is a binary file)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["columns"] = [{"name": n, "type": t} for n, t in self.columns]
        return out


@dataclass(frozen=True)
class SchemaChange:
    """How a tabular file's structure differs between two versions."""

    added: list[tuple[str, str]] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    retyped: list[tuple[str, str, str]] = field(default_factory=list)  # (name, old, new)
    old_rows: int | None = None
    new_rows: int | None = None

    @property
    def columns_changed(self) -> bool:
        return bool(self.added or self.removed or self.retyped)

    def describe(self) -> str:
        parts = []
        if self.added:
            parts.append("columns added: " + ", ".join(f"{n} ({t})" for n, t in self.added))
        if self.removed:
            parts.append("columns removed: " + ", ".join(n for n, _ in self.removed))
        if self.retyped:
            parts.append(
                "columns retyped: " + ", ".join(f"{n} {a} -> {b}" for n, a, b in self.retyped)
            )
        if self.old_rows != self.new_rows:
            parts.append(f"rows {_count(self.old_rows)} -> {_count(self.new_rows)}")
        elif self.new_rows is not None:
            parts.append(f"rows {self.new_rows:,}")
        return "; ".join(parts)


def _count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


async def read_schemas(repo: Repository, ids: Iterable[bytes]) -> dict[bytes, Schema]:
    nodes = await repo.objects.read_nodes(set(ids))
    for oid, node in nodes.items():
        if not isinstance(node, Schema):
            raise CorruptObject(f"node {oid.hex()} is not a schema")
    return nodes  # type: ignore[return-value]


async def schemas(repo: Repository, path: str = "", rev: str = "HEAD") -> list[FileSchema]:
    """Every tabular file at or below ``path`` (repository-relative) in ``rev``."""
    tree = await repo.tree_of(rev)
    rows = await repo.trees.subtree_files(tree, path)
    if path and not rows:
        raise PathError(f"no file at or below {path} in {rev}")
    tabular = [r for r in rows.values() if r.schema is not None]
    found = await read_schemas(repo, (r.schema for r in tabular))  # type: ignore[misc]
    out = []
    for r in sorted(tabular):
        s = found[r.schema]  # type: ignore[index]
        out.append(FileSchema(r.path, s.format, r.rows, list(s.columns), s.error))
    return out


async def schema_changes(
    repo: Repository, pairs: dict[str, tuple[FileRow | None, FileRow | None]]
) -> dict[str, SchemaChange]:
    """For each path whose old or new version is tabular, how its structure changed."""
    wanted = {r.schema for o, n in pairs.values() for r in (o, n) if r and r.schema}
    if not wanted:
        return {}
    found = await read_schemas(repo, wanted)
    out = {}
    for path, (old, new) in pairs.items():
        a = found.get(old.schema) if old and old.schema else None  # type: ignore[arg-type]
        b = found.get(new.schema) if new and new.schema else None  # type: ignore[arg-type]
        if a is None and b is None:
            continue
        out[path] = compare(a, b, old.rows if old else None, new.rows if new else None)
    return out


def compare(
    a: Schema | None, b: Schema | None, old_rows: int | None, new_rows: int | None
) -> SchemaChange:
    before = dict(a.columns) if a is not None else {}
    after = dict(b.columns) if b is not None else {}
    return SchemaChange(
        added=[(n, t) for n, t in after.items() if n not in before],
        removed=[(n, t) for n, t in before.items() if n not in after],
        retyped=[(n, before[n], t) for n, t in after.items() if n in before and before[n] != t],
        old_rows=old_rows,
        new_rows=new_rows,
    )
