"""What the web pages show of a served repository, as plain values (no HTTP, no HTML):
repositories by namespace, branches, pages of history, pages of a folder at any revision
with when each entry last changed, one file (an image, a table, the start of a text),
what a commit changed, and two revisions compared.

Everything is read as the JSON routes read it (:mod:`.tree_reads`, :mod:`.table_reads`,
:mod:`.file_reads`) and bounded per request:

- a folder page reads its folder's VNodes once (a folder of 100,000 files: 16 of them)
  and shows at most ``tree_reads.MAX_LIMIT`` entries;
- "last change" walks first parents back from the page's commit, at most
  ``LAST_CHANGE_COMMITS`` commits and ``LAST_CHANGE_SECONDS``, and where the folder's
  id is the same in a commit and its parent it reads nothing more; entries still
  unresolved then are shown without one;
- a text file shows its first ``TEXT_BYTES``; a table's page is read as the rows route
  reads it (of a parquet file, its footer and the row groups of the page);
- the changes of a commit (or of two revisions) are a diff of their trees, descending
  only where ids differ; the last few diffs are kept (``DIFF_CACHE``, ``DIFF_PATHS``
  paths in all), since paging through a commit of many files diffs the same two trees
  again.
"""

from __future__ import annotations

import codecs
import mimetypes
import time
from collections import OrderedDict
from collections.abc import Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from oxen.core.repository import CommitInfo
from oxen.errors import CorruptObject, InvalidInput
from oxen.formats.nodes import CommitNode, DirEntry, DirNode, Schema, bucket_of, vnode_rows
from oxen.serving import table_reads, tree_reads
from oxen.serving.file_reads import (
    FileAt,
    after_refresh,
    commit_of,
    find_file,
    plan_read,
    resolve_rev,
)
from oxen.serving.registry import RepoRegistry
from oxen.serving.served_repo import ServedRepo, check_repo_name
from oxen.trees.history import ancestors, newest_first
from oxen.trees.tree import Change
from oxen.verbs.schemas import SchemaChange, compare

DEFAULT_BRANCH = "main"
HISTORY_LIMIT = 50
MAX_HISTORY_LIMIT = 200
CHANGES_LIMIT = 200
MAX_CHANGES_LIMIT = 1000
LAST_CHANGE_COMMITS = 1000
LAST_CHANGE_SECONDS = 0.25
LAST_CHANGE_KEPT = 100_000  # answers kept: (commit, folder, name) -> commit
TEXT_BYTES = 64 * 1024
# Commits listed by a comparison (those of head that base lacks), and walked to find them.
AHEAD_LIMIT = 100
AHEAD_WALK = 2000
DIFF_CACHE = 8  # tree diffs kept, by the pair of tree ids
DIFF_PATHS = 400_000  # changed paths those diffs may hold together (a larger one is not kept)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".svg", ".ico", ".avif")


def check_page(offset: int, limit: int, most: int) -> None:
    if offset < 0:
        raise InvalidInput(f"offset must be 0 or more, not {offset}")
    if not 1 <= limit <= most:
        raise InvalidInput(f"limit must be 1 to {most}, not {limit}")


# -- repositories and branches ----------------------------------------------------------


async def repositories(
    registry: RepoRegistry, namespaces: Iterable[str] | None
) -> dict[str, list[str]]:
    """Repository names by namespace: of every namespace (None), else of those named
    (each listed, even without a repository; names no namespace may have are left out)."""
    out: dict[str, list[str]] = {}
    if namespaces is None:
        pairs = await registry.names()
    else:
        pairs = []
        for namespace in sorted(set(namespaces)):
            try:
                check_repo_name(namespace, "namespace")
            except InvalidInput:
                continue
            out[namespace] = []
            pairs += await registry.names(namespace)
    for namespace, name in pairs:
        out.setdefault(namespace, []).append(name)
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class Branch:
    name: str
    tip: CommitInfo


async def branches(repo: ServedRepo) -> list[Branch]:
    """Every branch with its tip, the default branch (main) first, then by name."""
    refs = await repo.refs()
    nodes = await after_refresh(repo, lambda: repo.objects.read_nodes(set(refs.values())))
    out = [
        Branch(name, CommitInfo.of(cid, node))
        for name, cid in refs.items()
        if isinstance(node := nodes.get(cid), CommitNode)
    ]
    return sorted(out, key=lambda b: (b.name != DEFAULT_BRANCH, b.name))


# -- history ------------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    commit: bytes  # the commit the revision named
    commits: list[CommitInfo]  # newest first
    offset: int
    next_offset: int | None


async def history(
    repo: ServedRepo, rev: str, offset: int = 0, limit: int = HISTORY_LIMIT
) -> History:
    """Commits ``offset`` to ``offset + limit`` of ``rev``'s history, newest first."""
    check_page(offset, limit, MAX_HISTORY_LIMIT)
    commit = await resolve_rev(repo, rev)
    await commit_of(repo, commit)

    async def walk() -> list[CommitInfo]:
        out: list[CommitInfo] = []
        seen = 0
        async with aclosing(newest_first(repo.objects, commit)) as commits:
            async for cid, node in commits:
                if seen >= offset:
                    out.append(CommitInfo.of(cid, node))
                    if len(out) > limit:  # one more: whether another page follows
                        break
                seen += 1
        return out

    found = await after_refresh(repo, walk)
    more = len(found) > limit
    return History(commit, found[:limit], offset, offset + limit if more else None)


# -- folders --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderEntry:
    name: str
    path: str  # in the repository
    type: str  # file or dir
    size: int  # of the file, or of every file below the folder
    id: str
    count: int | None = None  # files below a folder
    format: str | None = None  # of a file that parsed as a table
    rows: int | None = None
    last: CommitInfo | None = None  # the commit it last changed in (None: not found)


@dataclass(frozen=True)
class Folder:
    path: str
    commit: bytes
    entries: list[FolderEntry]
    total: int
    offset: int
    next_offset: int | None


async def folder(
    repo: ServedRepo,
    rev: str,
    path: str = "",
    offset: int = 0,
    limit: int = tree_reads.DEFAULT_LIMIT,
) -> Folder:
    """A page of the folder at ``path`` in ``rev``, by name, with each entry's last change."""
    listing = await tree_reads.list_folder(repo, rev, path, offset, limit)
    commit = bytes.fromhex(listing["commit"])
    names = [e["name"] for e in listing["entries"]]
    last = await last_changes(repo, commit, path, names)
    entries = [
        FolderEntry(
            name=e["name"],
            path=f"{path}/{e['name']}" if path else e["name"],
            type=e["type"],
            size=e["size"],
            id=e["id"],
            count=e.get("count"),
            format=e.get("format"),
            rows=e.get("rows"),
            last=last.get(e["name"]),
        )
        for e in listing["entries"]
    ]
    return Folder(path, commit, entries, listing["total"], offset, listing["next_offset"])


async def last_changes(
    repo: ServedRepo,
    commit: bytes,
    folder: str,
    names: Iterable[str],
    max_commits: int = LAST_CHANGE_COMMITS,
    seconds: float = LAST_CHANGE_SECONDS,
) -> dict[str, CommitInfo]:
    """For each of ``names`` (entries of the folder at ``folder`` in ``commit``), the
    newest commit along first parents whose entry differs from its parent's (or that has
    no parent): the change a merge brought is the merge's. Names not resolved within
    ``max_commits`` commits or ``seconds`` are left out.

    A step where the folder's id is its parent's reads nothing more; one where it is not
    reads only the VNodes of the names' buckets that differ, and compares their encoded
    rows (:func:`~oxen.formats.nodes.vnode_rows`). Answers are kept (commits never
    change), so a page seen once costs lookups only."""
    out: dict[str, CommitInfo] = {}
    pending: set[str] = set()
    for name in names:
        known = _last_seen.get((commit, folder, name))
        if known is not None:
            out[name] = known
        else:
            pending.add(name)
    if not pending:
        return out
    deadline = time.monotonic() + seconds
    rows: dict[bytes, dict[str, list]] = {}  # VNode id -> encoded rows of pending names
    cid, node = commit, await commit_of(repo, commit)
    here = await _folder_id(repo, node.tree, folder)
    for _ in range(max_commits):
        parent = node.parents[0] if node.parents else None
        pnode = await _parent(repo, parent) if parent is not None else None
        there = await _folder_id(repo, pnode.tree, folder) if pnode is not None else None
        if there != here:
            changed = await _changed(repo, here, there, pending, rows)
            info = CommitInfo.of(cid, node)
            for name in changed:
                out[name] = info
                _remember((commit, folder, name), info)
            pending -= changed
        if not pending or pnode is None or parent is None or time.monotonic() > deadline:
            break
        cid, node, here = parent, pnode, there
    return out


_last_seen: OrderedDict[tuple[bytes, str, str], CommitInfo] = OrderedDict()


def _remember(key: tuple[bytes, str, str], info: CommitInfo) -> None:
    _last_seen[key] = info
    _last_seen.move_to_end(key)
    while len(_last_seen) > LAST_CHANGE_KEPT:
        _last_seen.popitem(last=False)


async def _parent(repo: ServedRepo, cid: bytes) -> CommitNode:
    """A commit a commit names as its parent (read once, not looked up first as a
    revision from a request is)."""
    node = await after_refresh(repo, lambda: repo.objects.read_node(cid))
    if not isinstance(node, CommitNode):
        raise CorruptObject(f"{cid.hex()} is not a commit")
    return node


async def _folder_id(repo: ServedRepo, tree: bytes, folder: str) -> bytes | None:
    if not folder:
        return tree
    entry = await after_refresh(repo, lambda: repo.trees.lookup(tree, folder))
    return entry.id if isinstance(entry, DirEntry) else None


async def _changed(
    repo: ServedRepo,
    here: bytes | None,
    there: bytes | None,
    names: set[str],
    rows: dict[bytes, dict[str, list]],
) -> set[str]:
    """Those of ``names`` whose entry differs between two versions of a folder (None: the
    folder is absent): only the VNodes that differ for them are read, in one batch."""
    if here is None or there is None:
        return set(names)
    a = await after_refresh(repo, lambda: repo.trees.dir_node(here))
    b = await after_refresh(repo, lambda: repo.trees.dir_node(there))

    def vnode_of(node: DirNode, name: str) -> bytes | None:
        return node.vnodes[bucket_of(name, len(node.vnodes))] if node.vnodes else None

    pairs = {n: (vnode_of(a, n), vnode_of(b, n)) for n in names}
    differing = {n: pair for n, pair in pairs.items() if pair[0] != pair[1]}
    wanted = {v for pair in differing.values() for v in pair if v is not None and v not in rows}
    if wanted:
        blobs = await after_refresh(repo, lambda: repo.objects.read_blobs(wanted))
        rows.update((vid, vnode_rows(data, names)) for vid, data in blobs.items())

    def row(vid: bytes | None, name: str) -> list | None:
        return None if vid is None else rows[vid].get(name)

    return {n for n, (x, y) in differing.items() if row(x, n) != row(y, n)}


# -- one file --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileView:
    file: FileAt
    kind: str  # image, table, text or binary
    mime: str
    last: CommitInfo | None
    schema: dict[str, Any] | None = None  # table_reads.table_schema's answer, for a table
    text: str | None = None  # the start of a text file
    truncated: bool = False  # the text is only its first TEXT_BYTES

    @property
    def name(self) -> str:
        return self.file.path.rsplit("/", 1)[-1]


async def file_view(repo: ServedRepo, rev: str, path: str) -> FileView:
    """The file at ``path`` in ``rev``: what kind of file it is and what to show of it."""
    file = await find_file(repo, rev, path)
    folder_path, _, name = path.rpartition("/")
    last = (await last_changes(repo, file.commit, folder_path, [name])).get(name)
    mime = mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"
    schema = None
    if file.entry.schema is not None:
        schema = await table_reads.table_schema(repo, file.commit.hex(), path)
        if not schema.get("error"):
            return FileView(file, "table", mime, last, schema)
    if name.lower().endswith(IMAGE_SUFFIXES):
        return FileView(file, "image", mime, last, schema)
    text, truncated = await text_head(repo, file)
    kind = "binary" if text is None else "text"
    return FileView(file, kind, mime, last, schema, text, truncated)


async def text_head(
    repo: ServedRepo, file: FileAt, limit: int = TEXT_BYTES
) -> tuple[str | None, bool]:
    """The first ``limit`` bytes of a file as text, and whether there is more; None when
    they are not text (a NUL byte, or more than 1% of them not UTF-8)."""
    n = min(file.size, limit)
    if n == 0:
        return "", False
    plan = await plan_read(repo, file, 0, n)
    async with aclosing(plan.pieces()) as pieces:
        data = b"".join([piece async for piece in pieces])
    more = file.size > n
    return decode_text(data, final=not more), more


def decode_text(data: bytes, final: bool = True) -> str | None:
    """``data`` as UTF-8 text (a sequence cut at the end is dropped unless ``final``),
    or None when it does not look like text."""
    if b"\x00" in data[:8192]:
        return None
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=final)
    if text.count("\ufffd") > len(text) // 100:
        return None
    return text


async def table_page(
    repo: ServedRepo,
    view: FileView,
    offset: int = 0,
    limit: int = table_reads.DEFAULT_LIMIT,
    where: str | None = None,
) -> dict[str, Any]:
    """A page of a table's rows, as the rows route answers it, of the version the view
    shows (its commit, even if its branch moved since)."""
    page = await table_reads.read_page_of(
        repo, view.file, view.file.commit.hex(), offset, limit, None, where
    )
    return page.body


# -- changes: a commit's, or between two revisions ---------------------------------------------


@dataclass(frozen=True)
class ChangedPath:
    path: str
    change: str  # added, modified or removed
    old_size: int | None
    new_size: int | None
    old_id: str | None
    new_id: str | None
    format: str | None = None  # of a version that parsed as a table (the new one first)
    structure: SchemaChange | None = None  # of a table: columns and rows, old vs new
    row_diff: bool = False  # both versions are tables whose rows can be diffed
    keys: tuple[str, ...] = ()  # what a row diff matches rows by (see default_keys)


@dataclass(frozen=True)
class Changes:
    total: int
    added: int
    modified: int
    removed: int
    entries: list[ChangedPath]
    offset: int
    next_offset: int | None


@dataclass(frozen=True)
class _Diff:
    paths: list[tuple[str, Change]]  # by path
    added: int
    modified: int
    removed: int


_diffs: OrderedDict[tuple[bytes | None, bytes], _Diff] = OrderedDict()


async def _tree_diff(repo: ServedRepo, old: bytes | None, new: bytes) -> _Diff:
    """Every path that differs from tree ``old`` (None: empty) to ``new``; tree ids name
    their content, so a diff is kept by the pair whatever repository asked."""
    key = (old, new)
    if (kept := _diffs.get(key)) is not None:
        _diffs.move_to_end(key)
        return kept
    changes = await after_refresh(repo, lambda: repo.trees.diff(old, new))
    paths = sorted(changes.items())
    added = sum(1 for _, c in paths if c.old is None)
    removed = sum(1 for _, c in paths if c.new is None)
    diff = _Diff(paths, added, len(paths) - added - removed, removed)
    _diffs[key] = diff
    while len(_diffs) > DIFF_CACHE or sum(len(d.paths) for d in _diffs.values()) > DIFF_PATHS:
        _diffs.popitem(last=False)
    return diff


def default_keys(old: Schema | None, new: Schema | None) -> tuple[str, ...]:
    """The columns a row diff matches rows by unless asked otherwise: ``id`` when both
    versions have it; else none (whole rows are compared)."""
    if old is None or new is None:
        return ()
    both = {n for n, _ in old.columns} & {n for n, _ in new.columns}
    return ("id",) if "id" in both else ()


async def changes_between(
    repo: ServedRepo,
    old_tree: bytes | None,
    new_tree: bytes,
    offset: int = 0,
    limit: int = CHANGES_LIMIT,
) -> Changes:
    """A page of the paths that differ between two trees, by path, with their sizes and,
    for tables, how their columns and row counts changed (their Schema nodes read in one
    batch)."""
    check_page(offset, limit, MAX_CHANGES_LIMIT)
    diff = await _tree_diff(repo, old_tree, new_tree)
    page = diff.paths[offset : offset + limit]
    wanted = {r.schema for _, c in page for r in c if r is not None and r.schema is not None}
    nodes = await after_refresh(repo, lambda: repo.objects.read_nodes(wanted)) if wanted else {}
    schemas = {oid: n for oid, n in nodes.items() if isinstance(n, Schema)}
    entries = [_changed_path(path, change, schemas) for path, change in page]
    stop = offset + len(page)
    return Changes(
        len(diff.paths),
        diff.added,
        diff.modified,
        diff.removed,
        entries,
        offset,
        stop if page and stop < len(diff.paths) else None,
    )


def _changed_path(path: str, change: Change, schemas: dict[bytes, Schema]) -> ChangedPath:
    old, new = change

    def table(row: Any) -> Schema | None:
        schema = schemas.get(row.schema) if row is not None and row.schema is not None else None
        return schema if schema is not None and not schema.error else None

    a, b = table(old), table(new)
    kind = "added" if old is None else "removed" if new is None else "modified"
    structure = None
    if a is not None or b is not None:
        structure = compare(a, b, old.rows if a else None, new.rows if b else None)
    diffable = (
        a is not None and b is not None and a.format == b.format
        and a.format in table_reads.DIFF_FORMATS
    )  # fmt: skip
    return ChangedPath(
        path,
        kind,
        old.size if old else None,
        new.size if new else None,
        old.id.hex() if old else None,
        new.id.hex() if new else None,
        (b or a).format if (a or b) else None,
        structure,
        diffable,
        default_keys(a, b) if diffable else (),
    )


@dataclass(frozen=True)
class CommitView:
    commit: CommitInfo
    parents: list[CommitInfo]
    changes: Changes  # against its first parent (everything, for a first commit)


async def commit_view(
    repo: ServedRepo, rev: str, offset: int = 0, limit: int = CHANGES_LIMIT
) -> CommitView:
    """The commit ``rev`` names, its parents, and a page of what it changed."""
    cid = await resolve_rev(repo, rev)
    node = await commit_of(repo, cid)
    parents = [CommitInfo.of(p, await commit_of(repo, p)) for p in node.parents]
    old_tree = parents[0].tree if parents else None
    changes = await changes_between(repo, old_tree, node.tree, offset, limit)
    return CommitView(CommitInfo.of(cid, node), parents, changes)


@dataclass(frozen=True)
class Comparison:
    base: CommitInfo
    head: CommitInfo
    merge_base: CommitInfo | None  # None: no common commit within the walk
    commits: list[CommitInfo]  # of head, not of base, newest first (at most AHEAD_LIMIT)
    more_commits: bool
    changes: Changes  # base's tree against head's


async def compare_revisions(
    repo: ServedRepo, base: str, head: str, offset: int = 0, limit: int = CHANGES_LIMIT
) -> Comparison:
    """``head`` against ``base``: the commits head has that base has not, and a page of
    the paths that differ between their trees."""
    base_id, head_id = await resolve_rev(repo, base), await resolve_rev(repo, head)
    base_node, head_node = await commit_of(repo, base_id), await commit_of(repo, head_id)
    of_base = set(await after_refresh(repo, lambda: ancestors(repo.objects, [base_id])))

    async def walk() -> tuple[list[CommitInfo], CommitInfo | None, bool]:
        commits: list[CommitInfo] = []
        more = False
        async with aclosing(newest_first(repo.objects, head_id)) as walked:
            steps = 0
            async for cid, node in walked:
                if cid in of_base:
                    return commits, CommitInfo.of(cid, node), more
                if len(commits) < AHEAD_LIMIT:
                    commits.append(CommitInfo.of(cid, node))
                else:
                    more = True
                steps += 1
                if steps >= AHEAD_WALK:
                    break
        return commits, None, True if steps >= AHEAD_WALK else more

    commits, merge_base, more = await after_refresh(repo, walk)
    changes = await changes_between(repo, base_node.tree, head_node.tree, offset, limit)
    return Comparison(
        CommitInfo.of(base_id, base_node),
        CommitInfo.of(head_id, head_node),
        merge_base,
        commits,
        more,
        changes,
    )


async def row_diff(
    repo: ServedRepo,
    path: str,
    base: str,
    head: str,
    keys: list[str],
    offset: int = 0,
    limit: int = table_reads.DEFAULT_LIMIT,
) -> dict[str, Any]:
    """The row diff of a table from ``base`` to ``head``, as the diff route answers it."""
    return await table_reads.diff_versions(repo, path, base, head, keys, None, offset, limit)
