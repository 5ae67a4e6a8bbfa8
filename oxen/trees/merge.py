"""Three-way merges of trees alone: which paths one side changed that the other did not,
and where both changed a path differently.  No file data is read, so a server (a
workspace's commit) and a client (a push onto a branch that moved) can merge without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from oxen.db.rows import FileRow
from oxen.trees.tree import Change, Trees


def same_file(a: FileRow | None, b: FileRow | None) -> bool:
    """Whether two versions of a path are one file (content and mode), or both absent."""
    if a is None or b is None:
        return a is b
    return (a.id, a.mode) == (b.id, b.mode)


@dataclass
class TreeMerge:
    """``take``: their changes that ours lacks; ``conflicts``: paths both sides changed to
    different files (sorted); ``ours``: our changes since the base, by path."""

    take: dict[str, Change] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    ours: dict[str, Change] = field(default_factory=dict)


async def three_way(
    trees: Trees, base: bytes | None, ours: bytes | None, theirs: bytes | None
) -> TreeMerge:
    """Merge the tree ``theirs`` into ``ours``, both descended from ``base`` (tree ids)."""
    d_ours = await trees.diff(base, ours)
    d_theirs = await trees.diff(base, theirs)
    return merge_changes(d_ours, d_theirs)


def merge_changes(d_ours: dict[str, Change], d_theirs: dict[str, Change]) -> TreeMerge:
    """The merge of two sets of changes to one base; a path is a conflict only when both
    sides changed it and ended at different files (both deleting it is no conflict)."""
    result = TreeMerge(ours=d_ours)
    for path, change in sorted(d_theirs.items()):
        if path not in d_ours:
            result.take[path] = change
        elif not same_file(d_ours[path].new, change.new):
            result.conflicts.append(path)
    # A file on one side where the other made a folder (or the reverse) meets only when
    # the tree is built: Trees.apply refuses it there (PathError).
    return result


async def merged_tree(trees: Trees, ours: bytes | None, merge: TreeMerge) -> tuple[bytes, list]:
    """``ours`` with their changes applied: the new root id and the nodes it needs."""
    changes = {p: c.new for p, c in merge.take.items()}
    return await trees.apply(ours, changes)
