"""``AsyncRepo``: a repository assembled from its parts (config, database, object store).

This is the real implementation of every verb; :mod:`oxen.api` wraps it for sync callers
and ``cli/`` prints what it returns.  Write order for every mutation: immutable objects
(packs of chunks and nodes) first, then one SQLite transaction that makes them visible.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from dataclasses import dataclass
from pathlib import Path

from oxen.config import RepoConfig, load_toml_model, load_user_config, save_toml_model
from oxen.db import FileRow, RepoDB, StatRow
from oxen.errors import (
    DirtyWorkingTree,
    NothingToCommit,
    OxenError,
    PathError,
    RefConflict,
    RefError,
    RepositoryExists,
)
from oxen.faults import crash_point
from oxen.ids import hash_file, is_hex_prefix
from oxen.ignore import Ignore
from oxen.inspect import InspectOps
from oxen.materialize import Materializer, remove_files
from oxen.merge import MergeOps
from oxen.nodes import EXEC_MODE, FILE_MODE, CommitNode, encode_with_id
from oxen.objects import ObjectStore
from oxen.progress import ProgressFactory, null_progress
from oxen.refs import HEADS, branch_ref, check_branch_name, head_value, parse_head, split_ancestry
from oxen.status import Status, compute_status
from oxen.storage import Store, open_store
from oxen.tree import Trees
from oxen.worktree import (
    OXEN_DIR,
    FileStat,
    find_root,
    fs_clock,
    is_under,
    scan,
    stat_files,
    to_repo_path,
)

CONFIG_NAME = "config.toml"


@dataclass(frozen=True)
class CommitInfo:
    id: bytes
    tree: bytes
    parents: tuple[bytes, ...]
    author: str
    email: str
    timestamp: int
    tz_offset: int
    message: str


@dataclass(frozen=True)
class AddResult:
    staged: int
    removed: int
    bytes_hashed: int
    bytes_stored: int


@dataclass(frozen=True)
class DiffEntry:
    path: str
    change: str  # "added" | "modified" | "removed"
    old_size: int | None
    new_size: int | None


def file_mode(st: FileStat) -> int:
    return EXEC_MODE if st.executable else FILE_MODE


class AsyncRepo(MergeOps, InspectOps):
    def __init__(self, root: Path, config: RepoConfig, db: RepoDB, store: Store) -> None:
        self.root = root
        self.oxen_dir = root / OXEN_DIR
        self.config = config
        self.db = db
        self.store = store
        self.objects = ObjectStore(store, db, self.oxen_dir / "tmp", config.storage.pack_size)
        self.trees = Trees(self.objects, config.core.vnode_size)

    # -- opening -------------------------------------------------------------------------
    @classmethod
    async def init(cls, path: str | Path = ".", storage_url: str | None = None) -> AsyncRepo:
        config = RepoConfig()
        if storage_url:
            config.storage.url = storage_url
        root = await asyncio.to_thread(_create_layout, Path(path), config)
        repo = await cls._assemble(root, config)
        async with repo.db.transaction():
            await repo.db.set_state("HEAD", head_value("main", None))
        return repo

    @classmethod
    async def open(cls, path: str | Path | None = None) -> AsyncRepo:
        root = find_root(path)
        config = load_toml_model(root / OXEN_DIR / CONFIG_NAME, RepoConfig)
        return await cls._assemble(root, config)

    @classmethod
    async def _assemble(cls, root: Path, config: RepoConfig) -> AsyncRepo:
        url = config.storage.url
        if "://" not in url and not url.startswith("/"):
            url = str(root / OXEN_DIR / url)
        options = (
            {"fsync": config.storage.fsync} if "://" not in url or url.startswith("file:") else {}
        )
        store = open_store(url, **options)
        db = await RepoDB.open(root / OXEN_DIR)
        return cls(root, config, db, store)

    async def close(self) -> None:
        await self.db.close()
        await self.store.close()

    async def __aenter__(self) -> AsyncRepo:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def repo_path(self, user_path: str, cwd: str | Path | None = None) -> str:
        return to_repo_path(self.root, user_path, cwd)

    # -- refs and commits ----------------------------------------------------------------
    async def head(self) -> tuple[str | None, bytes | None]:
        """(current branch or None when detached, commit id or None before the first commit)."""
        branch, detached = parse_head(await self.db.get_state("HEAD"))
        if branch is None:
            return None, detached
        return branch, await self.db.get_ref(HEADS + branch)

    async def read_commit(self, cid: bytes) -> CommitInfo:
        node = await self.objects.read_node(cid)
        if not isinstance(node, CommitNode):
            raise RefError(f"{cid.hex()} is not a commit")
        return CommitInfo(
            cid,
            node.tree,
            node.parents,
            node.author,
            node.email,
            node.timestamp,
            node.tz_offset,
            node.message,
        )

    async def resolve(self, rev: str) -> bytes:
        """A commit id from a branch name, HEAD, a (prefix of a) commit id, with ~N / ^ suffixes."""
        base, steps = split_ancestry(rev.strip())
        cid = await self._resolve_base(base, rev)
        for _ in range(steps):
            commit = await self.read_commit(cid)
            if not commit.parents:
                raise RefError(f"unknown revision: {rev} (history is shorter)")
            cid = commit.parents[0]
        return cid

    async def _resolve_base(self, base: str, rev: str) -> bytes:
        if base == "HEAD":
            _, cid = await self.head()
            if cid is None:
                raise RefError("HEAD has no commits yet")
            return cid
        if base and not base.startswith("-"):
            cid = await self.db.get_ref(HEADS + base)
            if cid is not None:
                return cid
            cid = await self.db.get_ref(base)
            if cid is not None:
                return cid
        if is_hex_prefix(base):
            matches = [c for c in await self._all_commits() if c.hex().startswith(base)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise RefError(f"ambiguous commit id prefix: {base}")
        raise RefError(f"unknown revision: {rev}")

    async def _all_commits(self) -> set[bytes]:
        tips = set((await self.db.list_refs()).values())
        _, head = await self.head()
        if head:
            tips.add(head)
        seen: set[bytes] = set()
        todo = list(tips)
        while todo:
            cid = todo.pop()
            if cid in seen:
                continue
            seen.add(cid)
            todo.extend((await self.read_commit(cid)).parents)
        return seen

    async def log(self, rev: str | None = None, limit: int | None = None) -> list[CommitInfo]:
        """Commits reachable from ``rev`` (default HEAD), newest first."""
        if rev is None:
            _, start = await self.head()
            if start is None:
                return []
        else:
            start = await self.resolve(rev)
        out: list[CommitInfo] = []
        first = await self.read_commit(start)
        heap = [(-first.timestamp, 0, first)]
        seen = {start}
        counter = 1
        while heap and (limit is None or len(out) < limit):
            _, _, commit = heapq.heappop(heap)
            out.append(commit)
            for parent in commit.parents:
                if parent not in seen:
                    seen.add(parent)
                    pc = await self.read_commit(parent)
                    heapq.heappush(heap, (-pc.timestamp, counter, pc))
                    counter += 1
        return out

    async def branches(self) -> dict[str, bytes]:
        return {
            name.removeprefix(HEADS): cid for name, cid in (await self.db.list_refs(HEADS)).items()
        }

    async def create_branch(self, name: str, start: str | None = None) -> bytes:
        ref = branch_ref(name)
        cid = await self.resolve(start or "HEAD")
        if not await self.db.set_ref_if_equals(ref, None, cid):
            raise RefError(f"a branch named {name!r} already exists")
        return cid

    async def delete_branch(self, name: str) -> None:
        check_branch_name(name)
        current, _ = await self.head()
        if name == current:
            raise RefError(f"cannot delete the branch you are on: {name}")
        cid = await self.db.get_ref(HEADS + name)
        if cid is None:
            raise RefError(f"no such branch: {name}")
        if not await self.db.remove_ref_if_equals(HEADS + name, cid):
            raise RefConflict(f"branch {name} moved while deleting it; try again")

    # -- status and staging --------------------------------------------------------------
    async def status(self, path: str = "") -> Status:
        prefix = self.repo_path(path) if path else ""
        return await asyncio.to_thread(compute_status, self.root, prefix)

    async def add(
        self, paths: list[str], progress: ProgressFactory = null_progress, force: bool = False
    ) -> AddResult:
        """Stage ``paths``; ``force`` adds paths that .oxenignore rules out."""
        targets = [self.repo_path(p) for p in paths]
        conflicts = await self.db.conflicts()
        companions = await self.merge_companions()
        ignore = None if force else await asyncio.to_thread(Ignore.load, self.root)
        clock, on_disk = await asyncio.to_thread(self._scan_targets, targets, ignore)
        for path in companions:
            on_disk.pop(path, None)
        staged_all = await self.db.staged()
        tracked: dict[str, FileRow] = {}
        for t in targets:
            tracked.update(await self.db.head_files_under(t))
        if ignore is not None:
            on_disk = await self._leave_out_ignored(
                ignore, paths, targets, on_disk, tracked, staged_all
            )
        known = _paths_and_parents([*on_disk, *tracked, *staged_all])
        for user_path, t in zip(paths, targets, strict=True):
            if t and t not in known:
                raise PathError(f"pathspec '{user_path}' did not match any files")
        head = tracked  # every file on disk here is under a target, so its HEAD row is in tracked
        stats = await self.db.stat_rows(list(on_disk))

        to_ingest: list[tuple[str, FileStat]] = []
        unstage: list[str] = []
        for path, st in on_disk.items():
            cached = stats.get(path)
            mode = file_mode(st)
            if (
                cached is not None
                and not cached.racy
                and (cached.size, cached.mtime_ns, cached.ctime_ns, cached.ino)
                == (st.size, st.mtime_ns, st.ctime_ns, st.ino)
            ):
                h, s = head.get(path), staged_all.get(path)
                if s is not None and s.id == cached.id and s.mode == mode:
                    continue
                if h is not None and h.id == cached.id and h.mode == mode:
                    if s is not None:
                        unstage.append(path)
                    continue
            to_ingest.append((path, st))

        # imported here: the chunker (pyfastcdc) costs every other command 10 ms to load
        from oxen.chunking import Chunker
        from oxen.ingest import Ingestor

        total = sum(st.size for _, st in to_ingest)
        bar = progress("hashing", total, "B")
        try:
            ingestor = Ingestor(self.objects, Chunker(self.config.chunking), bar)
            ingested = await ingestor.run(self.root, to_ingest)
        finally:
            bar.close()

        stage: list[FileRow] = []
        stat_rows: list[StatRow] = []
        for ing in ingested:
            mode = file_mode(ing.stat)
            row = FileRow(ing.path, ing.id, ing.size, ing.chunks, mode)
            h = head.get(ing.path)
            if h is not None and h.id == ing.id and h.mode == mode:
                if ing.path in staged_all:
                    unstage.append(ing.path)
            else:
                stage.append(row)
            st = ing.stat
            stat_rows.append(
                StatRow(
                    ing.path,
                    st.size,
                    st.mtime_ns,
                    st.ctime_ns,
                    st.ino,
                    ing.id,
                    int(st.mtime_ns >= clock),
                )
            )
        removals = [FileRow(p, None, 0, None, 0) for p in tracked if p not in on_disk]
        vanished_adds = [
            p
            for p, s in staged_all.items()
            if s.id is not None
            and p not in head
            and p not in on_disk
            and any(is_under(p, t) for t in targets)
        ]
        async with self.db.transaction():
            await self.db.add_chunk_maps(ingestor.chunk_maps)
            await self.db.stage(stage + removals)
            await self.db.unstage(unstage + vanished_adds)
            await self.db.put_stats(stat_rows)
            await self.db.delete_stats([r.path for r in removals] + vanished_adds)
            resolved = [p for p in conflicts if p in on_disk or p in tracked]
            await self.db.resolve_conflicts(resolved)
            crash_point("add-transaction")
        return AddResult(len(stage), len(removals), total, ingestor.sink.bytes_written)

    def _scan_targets(
        self, targets: list[str], ignore: Ignore | None
    ) -> tuple[int, dict[str, FileStat]]:
        clock = fs_clock(self.oxen_dir)
        found: dict[str, FileStat] = {}
        for t in targets:
            found.update(scan(self.root, t, ignore))
        return clock, found

    async def _leave_out_ignored(
        self,
        ignore: Ignore,
        paths: list[str],
        targets: list[str],
        on_disk: dict[str, FileStat],
        tracked: dict[str, FileRow],
        staged: dict[str, FileRow],
    ) -> dict[str, FileStat]:
        """``on_disk`` without the untracked files .oxenignore rules out, plus the tracked
        files in ignored directories the scan skipped; naming an ignored path is an error."""
        known = _paths_and_parents([*tracked, *staged])
        for user_path, t in zip(paths, targets, strict=True):
            if t and t not in known and (ignore.file(t) or ignore.file(t + "/")):
                raise PathError(
                    f"path is ignored by .oxenignore: {user_path} (use --force to add it)"
                )
        kept = {
            p: st for p, st in on_disk.items() if p in tracked or p in staged or not ignore.file(p)
        }
        skipped = [p for p in ignore.under_pruned([*tracked, *staged]) if p not in kept]
        if skipped:
            kept.update(await asyncio.to_thread(stat_files, self.root, skipped))
        return kept

    async def rm(
        self, paths: list[str], recursive: bool = False, staged_only: bool = False
    ) -> list[str]:
        """Stop tracking paths (and delete them from the working tree unless ``staged_only``)."""
        staged_all = await self.db.staged()
        chosen: dict[str, FileRow] = {}
        for user_path in paths:
            t = self.repo_path(user_path)
            found = dict(await self.db.head_files_under(t))
            found.update(
                {p: r for p, r in staged_all.items() if r.id is not None and is_under(p, t)}
            )
            if not found:
                raise PathError(f"pathspec '{user_path}' did not match any tracked files")
            if any(p != t for p in found) and not recursive:
                raise PathError(f"not removing '{user_path}' recursively without -r")
            chosen.update(found)
        if not staged_only:
            status = await asyncio.to_thread(compute_status, self.root, "")
            dirty = sorted(set(status.modified) & chosen.keys())
            if dirty:
                raise DirtyWorkingTree(
                    f"{dirty[0]} has local modifications; commit them, or use --staged to keep the file"
                )
        head = await self.db.head_files(list(chosen))
        async with self.db.transaction():
            await self.db.stage([FileRow(p, None, 0, None, 0) for p in chosen if p in head])
            await self.db.unstage([p for p in chosen if p not in head])
            await self.db.delete_stats(list(chosen))
            await self.db.resolve_conflicts(list(chosen))
        if not staged_only:
            await asyncio.to_thread(remove_files, self.root, sorted(chosen))
        return sorted(chosen)

    async def restore(
        self,
        paths: list[str],
        staged: bool = False,
        source: str | None = None,
        progress: ProgressFactory = null_progress,
    ) -> list[str]:
        targets = [self.repo_path(p) for p in paths]
        if staged:
            rows: dict[str, FileRow] = {}
            if source is not None:
                tree = (await self.read_commit(await self.resolve(source))).tree
                for t in targets:
                    rows.update(await self.trees.subtree_files(tree, t))
            staged_all = await self.db.staged()
            hits = [p for p in staged_all if any(is_under(p, t) for t in targets)]
            head = await self.db.head_files(list(rows)) if rows else {}
            async with self.db.transaction():
                await self.db.unstage(hits)
                await self.db.stage([r for p, r in rows.items() if head.get(p) != r])
            return sorted(set(hits) | set(rows))
        # working tree: from the source commit, else from the staging area / HEAD
        wanted: dict[str, FileRow] = {}
        if source is not None:
            tree = (await self.read_commit(await self.resolve(source))).tree
            for t in targets:
                wanted.update(await self.trees.subtree_files(tree, t))
        else:
            staged_all = await self.db.staged()
            for t in targets:
                wanted.update(await self.db.head_files_under(t))
            for p, r in staged_all.items():
                if any(is_under(p, t) for t in targets):
                    if r.id is None:
                        wanted.pop(p, None)
                    else:
                        wanted[p] = r
        if not wanted:
            raise PathError(f"pathspec '{paths[0]}' did not match any file known to oxen")
        await self._write_rows(list(wanted.values()), progress)
        return sorted(wanted)

    async def _write_rows(self, rows: list[FileRow], progress: ProgressFactory) -> None:
        bar = progress("writing", sum(r.size for r in rows), "B")
        try:
            written = await Materializer(self.root, self.objects, self.db, bar).write(rows)
        finally:
            bar.close()
        await self.remember_stats(written)

    async def remember_stats(self, written: list[tuple[str, FileStat, bytes]]) -> None:
        """Cache the stat of files just written with known ids, so status need not hash them."""
        clock = await asyncio.to_thread(fs_clock, self.oxen_dir)
        async with self.db.transaction():
            await self.db.put_stats(
                StatRow(
                    p, st.size, st.mtime_ns, st.ctime_ns, st.ino, oid, int(st.mtime_ns >= clock)
                )
                for p, st, oid in written
            )

    # -- commit --------------------------------------------------------------------------
    async def commit(self, message: str, allow_empty: bool = False) -> bytes:
        if not message.strip():
            raise OxenError("empty commit message")
        user = load_user_config()
        if not user.name or not user.email:
            raise OxenError("who are you? set your identity: oxen config --name NAME --email EMAIL")
        conflicts = await self.db.conflicts()
        if conflicts:
            raise OxenError(
                f"unresolved merge conflicts ({len(conflicts)}), e.g. {next(iter(conflicts))}: fix them, oxen add, then commit"
            )
        staged = await self.db.staged()
        merge_head = await self.db.get_state("MERGE_HEAD")
        if not staged and merge_head is None and not allow_empty:
            raise NothingToCommit("nothing to commit (use oxen add to stage changes)")
        branch, parent = await self.head()
        parent_tree = (await self.read_commit(parent)).tree if parent else None
        changes = {p: (r if r.id is not None else None) for p, r in staged.items()}
        tree, nodes = await self.trees.apply(parent_tree, changes)
        parents = tuple(p for p in (parent, merge_head) if p)
        now = time.time()
        tz = -(time.altzone if time.localtime(now).tm_isdst > 0 else time.timezone) // 60
        commit_id, data = encode_with_id(
            CommitNode(tree, parents, user.name, user.email, int(now), tz, message)
        )
        await self.objects.write_nodes([*nodes, (commit_id, data)])
        crash_point("commit-objects")
        companions = await self.merge_companions()
        async with self.db.transaction():
            await self.move_head(branch, parent, commit_id)
            await self.db.update_head_files(
                [r for r in staged.values() if r.id is not None],
                [p for p, r in staged.items() if r.id is None],
            )
            await self.db.clear_staged()
            await self._clear_merge_state()
            crash_point("commit-transaction")
        if companions:
            await asyncio.to_thread(remove_files, self.root, companions)
        return commit_id

    async def move_head(self, branch: str | None, old: bytes | None, new: bytes) -> None:
        if branch is None:
            await self.db.set_state("HEAD", head_value(None, new))
            return
        if not await self.db.set_ref_if_equals(HEADS + branch, old, new):
            raise RefConflict(
                f"branch {branch} moved while committing; nothing was changed, try again"
            )

    async def _clear_merge_state(self) -> None:
        for key in ("MERGE_HEAD", "ORIG_HEAD", "MERGE_MSG", "MERGE_COMPANIONS"):
            await self.db.set_state(key, None)
        await self.db.set_conflicts([])

    # -- checkout ------------------------------------------------------------------------
    async def checkout(
        self, target: str, create: bool = False, progress: ProgressFactory = null_progress
    ) -> tuple[str | None, bytes | None]:
        """Switch to a branch (or a detached commit); with ``create``, make a new branch here."""
        if await self.db.get_state("MERGE_HEAD") is not None:
            raise OxenError("a merge is in progress: commit it or run oxen merge --abort first")
        branch, current = await self.head()
        if create:
            ref = branch_ref(target)
            if current is None:
                if await self.db.get_ref(ref) is not None:
                    raise RefError(f"a branch named {target!r} already exists")
            elif not await self.db.set_ref_if_equals(ref, None, current):
                raise RefError(f"a branch named {target!r} already exists")
            await self.db.set_state("HEAD", head_value(target, None))
            return target, current
        if await self.db.get_ref(HEADS + target) is not None:
            new_branch: str | None = target
            new_commit = await self.db.get_ref(HEADS + target)
        else:
            try:
                new_commit = await self.resolve(target)
            except RefError:
                raise RefError(f"no branch or commit named {target!r}") from None
            new_branch = None
        assert new_commit is not None
        if new_commit != current:
            await self.switch_tree(current, new_commit, progress)
        await self.db.set_state("HEAD", head_value(new_branch, new_commit))
        return new_branch, new_commit

    async def switch_tree(
        self, current: bytes | None, target: bytes, progress: ProgressFactory, force: bool = False
    ) -> dict[str, tuple[FileRow | None, FileRow | None]]:
        """Make the working tree and HEAD's file table match ``target``'s tree."""
        old_tree = (await self.read_commit(current)).tree if current else None
        new_tree = (await self.read_commit(target)).tree
        changes = await self.trees.diff(old_tree, new_tree)
        if not force:
            await self.refuse_overwrites(changes)
        writes = [new for _, new in changes.values() if new is not None]
        deletes = [p for p, (_, new) in changes.items() if new is None]
        await asyncio.to_thread(remove_files, self.root, deletes)
        await self._write_rows(writes, progress)
        async with self.db.transaction():
            await self.db.update_head_files(writes, deletes)
            await self.db.delete_stats(deletes)
            staged = await self.db.staged(list(changes))
            await self.db.unstage(list(staged))
        return changes

    async def refuse_overwrites(
        self, changes: dict[str, tuple[FileRow | None, FileRow | None]]
    ) -> None:
        status = await asyncio.to_thread(compute_status, self.root, "")
        touched = set(changes)
        blocked = sorted(
            touched
            & (
                set(status.modified)
                | set(status.staged_added)
                | set(status.staged_modified)
                | set(status.staged_removed)
            )
        )
        # an untracked file where the target has a file is in the way unless it is that file
        in_the_way = sorted(set(status.untracked) & touched)
        if in_the_way:
            ids = await asyncio.to_thread(
                lambda: [hash_file(str(self.root / p)) for p in in_the_way]
            )
            for p, oid in zip(in_the_way, ids, strict=True):
                new = changes[p][1]
                if new is None or oid != new.id:
                    blocked.append(p)
        if blocked:
            shown = ", ".join(blocked[:5]) + (
                f" and {len(blocked) - 5} more" if len(blocked) > 5 else ""
            )
            raise DirtyWorkingTree(
                f"uncommitted changes would be overwritten: {shown}; commit them or restore first"
            )

    # -- diff ----------------------------------------------------------------------------
    async def diff(self, a: str | None = None, b: str | None = None) -> list[DiffEntry]:
        """``a`` vs ``b``; with one revision, the working tree vs it; with none, vs HEAD."""
        if a is not None and b is not None:
            ta = (await self.read_commit(await self.resolve(a))).tree
            tb = (await self.read_commit(await self.resolve(b))).tree
            changes = await self.trees.diff(ta, tb)
            return _diff_entries(
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
        if a is not None:
            base = await self.trees.flatten((await self.read_commit(await self.resolve(a))).tree)
        else:
            base = await self.db.head_files()
        work = await self._working_files()
        out: dict[str, tuple[int | None, int | None, bytes | None, bytes | None]] = {}
        for p in base.keys() | work.keys():
            o, n = base.get(p), work.get(p)
            oid, nid = (o.id if o else None), (n[0] if n else None)
            if oid != nid:
                out[p] = (o.size if o else None, n[1] if n else None, oid, nid)
        return _diff_entries(out)

    async def _working_files(self) -> dict[str, tuple[bytes, int]]:
        """path -> (id, size) of every tracked or staged file as it is in the working tree."""
        status = await asyncio.to_thread(compute_status, self.root, "")
        return status.current


def _paths_and_parents(paths: list[str]) -> set[str]:
    """Each path and every directory above it ("a/b/c" -> a/b/c, a/b, a)."""
    out: set[str] = set()
    for p in paths:
        while p and p not in out:
            out.add(p)
            p = p.rpartition("/")[0]
    return out


def _create_layout(path: Path, config: RepoConfig) -> Path:
    root = path.absolute()
    oxen_dir = root / OXEN_DIR
    if (oxen_dir / "oxen.db").exists():
        raise RepositoryExists(f"already an oxen repository: {root}")
    if root.exists() and not root.is_dir():
        raise PathError(f"not a directory: {root}")
    oxen_dir.mkdir(parents=True, exist_ok=True)
    save_toml_model(oxen_dir / CONFIG_NAME, config)
    return root


def _diff_entries(
    changes: dict[str, tuple[int | None, int | None, bytes | None, bytes | None]],
) -> list[DiffEntry]:
    out = []
    for path in sorted(changes):
        old_size, new_size, oid, nid = changes[path]
        kind = "added" if oid is None else "removed" if nid is None else "modified"
        out.append(DiffEntry(path, kind, old_size, new_size))
    return out
