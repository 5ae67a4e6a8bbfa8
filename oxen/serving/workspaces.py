"""Workspaces: changes to a branch staged on the server, committed by the server, for
clients that hold no clone (``oxen workspace``, ``oxen upload``, the Python RemoteRepo).

A workspace is one small JSON object in the repository's store (``workspaces/<id>.json``):
its branch, the commit it started from (``base``), who made it, when it was last changed,
and its staged changes (a file entry, or a removal, per path).  It is changed only by
compare-and-swap, so every server on the bucket can continue any workspace and two
requests on one never lose each other's changes.  A name is a second object,
``workspaces/names/<name>`` holding the id, written only if absent: two workspaces never
share a name.  The chunks and nodes of staged files
come first, in packs, through the same upload as a push; a staged entry is refused
unless every object it names is stored and its id is the id of its chunks.

Commit: the changes are applied to the branch's tree as it is now.  If the branch moved
since ``base`` and its new commits changed none of the staged paths (to something else),
the commit goes on top of the new tip; otherwise :class:`~oxen.errors.MergeConflict`
names the paths and nothing changes.  After a commit the workspace is empty and starts
from the new commit.  A workspace unchanged for ``idle`` seconds is removed the next time
the repository's workspaces are listed or one is created.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from oxen.db.rows import FileRow
from oxen.errors import (
    CorruptObject,
    InvalidInput,
    MergeConflict,
    NotFound,
    PathError,
    RefConflict,
)
from oxen.formats.ids import ID_LEN, file_id
from oxen.formats.nodes import (
    EXEC_MODE,
    FILE_MODE,
    CommitNode,
    DirEntry,
    FileEntry,
    Schema,
    encode_with_id,
)
from oxen.formats.refnames import check_branch_name
from oxen.objects import chunklists
from oxen.serving.file_reads import FileAt, after_refresh, find_file
from oxen.serving.row_edits import EditResult, RowEdits, edit_rows
from oxen.serving.served_repo import ServedRepo, check_repo_name
from oxen.trees.merge import same_file
from oxen.trees.tree import file_row
from oxen.worktree.paths import check_repo_path

PREFIX = "workspaces/"
NAMES = f"{PREFIX}names/"  # workspaces/names/<name>: the id of the workspace that has it
IDLE_SECONDS = 14 * 24 * 3600  # a workspace unchanged this long is removed
MAX_STAGED = 100_000  # paths one workspace may hold
MAX_PER_REQUEST = 10_000  # entries or paths one request may stage or remove
COMMIT_ATTEMPTS = 8  # a branch moving under a commit is merged onto again this often
UPDATE_ATTEMPTS = 20  # compare-and-swap retries of one workspace change
FILE_MODES = (FILE_MODE, EXEC_MODE)


@dataclass
class Workspace:
    id: str
    branch: str
    base: bytes | None  # the commit it starts from (None: the branch does not exist yet)
    owner: str  # the email of the token that made it
    created: int
    touched: int
    name: str | None = None
    changes: dict[str, FileRow | None] = field(default_factory=dict)  # None: removed

    def encode(self) -> bytes:
        record = {
            "id": self.id,
            "name": self.name,
            "branch": self.branch,
            "base": self.base.hex() if self.base else None,
            "owner": self.owner,
            "created": self.created,
            "touched": self.touched,
            "changes": {p: _row_out(r) for p, r in sorted(self.changes.items())},
        }
        return json.dumps(record, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Workspace:
        r = json.loads(data)
        return cls(
            r["id"],
            r["branch"],
            bytes.fromhex(r["base"]) if r["base"] else None,
            r["owner"],
            int(r["created"]),
            int(r["touched"]),
            r.get("name"),
            {p: _row_in(p, v) for p, v in r["changes"].items()},
        )

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "branch": self.branch,
            "base": self.base.hex() if self.base else None,
            "owner": self.owner,
            "created": self.created,
            "touched": self.touched,
            "changes": len(self.changes),
        }


def _row_out(row: FileRow | None) -> dict[str, Any] | None:
    if row is None or row.id is None:
        return None
    return {
        "id": row.id.hex(),
        "size": row.size,
        "chunks": row.chunks.hex() if row.chunks else None,
        "mode": row.mode,
        "schema": row.schema.hex() if row.schema else None,
        "rows": row.rows,
    }


def _row_in(path: str, v: dict[str, Any] | None) -> FileRow | None:
    if v is None:
        return None
    return FileRow(
        path,
        bytes.fromhex(v["id"]),
        int(v["size"]),
        bytes.fromhex(v["chunks"]) if v.get("chunks") else None,
        int(v["mode"]),
        bytes.fromhex(v["schema"]) if v.get("schema") else None,
        v.get("rows"),
    )


def _name_ok(name: str) -> bool:
    try:
        check_repo_name(name, "workspace name")
    except InvalidInput:
        return False
    return True


def parse_entry(raw: object) -> FileRow:
    """A file entry from a request body: {path, id, size, chunks?, mode?, schema?, rows?}
    (ids in hex).  Only its form is checked here; :meth:`Workspaces.stage` checks it
    against the store."""
    if not isinstance(raw, dict):
        raise InvalidInput("each file must be an object")
    path = raw.get("path")
    if not isinstance(path, str):
        raise InvalidInput("each file needs a path")
    check_repo_path(path)

    def hex_id(key: str, required: bool) -> bytes | None:
        value = raw.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or len(value) != 2 * ID_LEN:
            raise InvalidInput(f"{path}: {key} must be a {2 * ID_LEN}-digit hex id")
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise InvalidInput(f"{path}: {key} is not hex") from None

    size, mode, rows = raw.get("size"), raw.get("mode", FILE_MODES[0]), raw.get("rows")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(f"{path}: size must be a whole number")
    if mode not in FILE_MODES:
        raise InvalidInput(f"{path}: mode must be one of {', '.join(oct(m) for m in FILE_MODES)}")
    if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool) or rows < 0):
        raise InvalidInput(f"{path}: rows must be a whole number")
    schema = hex_id("schema", False)
    return FileRow(path, hex_id("id", True), size, hex_id("chunks", False), mode, schema, rows)


class Workspaces:
    """The workspaces of one served repository."""

    def __init__(
        self,
        repo: ServedRepo,
        idle: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repo = repo
        self.store = repo.store
        self.idle = idle
        self.clock = clock

    def _now(self) -> int:
        return int(self.clock())

    @staticmethod
    def _key(wid: str) -> str:
        return f"{PREFIX}{wid}.json"

    # -- listing ----------------------------------------------------------------------
    @staticmethod
    def _name_key(name: str) -> str:
        return f"{NAMES}{name}"

    async def list(self) -> list[Workspace]:
        """Every workspace, oldest first; those idle too long are removed on the way."""
        out: list[Workspace] = []
        now = self._now()
        async for key in self.store.list(PREFIX):
            if key.startswith(NAMES) or not key.endswith(".json"):
                continue
            data = await self.store.get(key)
            if data is None:
                continue
            ws = Workspace.decode(data)
            if now - ws.touched > self.idle:
                await self._remove(ws)
                continue
            out.append(ws)
        return sorted(out, key=lambda w: (w.created, w.id))

    async def _live(self, wid: str) -> tuple[Workspace, bytes] | None:
        data = await self.store.get(self._key(wid))
        if data is None:
            return None
        ws = Workspace.decode(data)
        if self._now() - ws.touched > self.idle:
            await self._remove(ws)
            return None
        return ws, data

    async def _find(self, ref: str) -> tuple[Workspace, bytes]:
        """A workspace by id or name, and its stored bytes (for the compare-and-swap)."""
        if len(ref) == 32 and all(c in "0123456789abcdef" for c in ref):
            found = await self._live(ref)
            if found is not None:
                return found
        owner = await self.store.get(self._name_key(ref)) if _name_ok(ref) else None
        if owner is not None:
            found = await self._live(owner.decode())
            if found is not None and found[0].name == ref:
                return found
        raise NotFound(f"no workspace {ref!r} in {self.repo.info.namespace}/{self.repo.info.name}")

    async def get(self, ref: str) -> Workspace:
        return (await self._find(ref))[0]

    # -- lifecycle --------------------------------------------------------------------
    async def create(self, branch: str, owner: str, name: str | None = None) -> Workspace:
        """A workspace on ``branch`` as it is now.  A name is claimed with a write that
        succeeds only once (``workspaces/names/<name>``), so two creates racing for one
        name cannot both have it; the claim of a workspace deleted or expired is taken over."""
        check_branch_name(branch)
        if name is not None:
            check_repo_name(name, "workspace name")
        base = await self.repo.branch_refs.get(branch)
        if base is None and await self.repo.refs():
            raise NotFound(f"no branch {branch}: a workspace starts from an existing branch")
        now = self._now()
        ws = Workspace(secrets.token_hex(16), branch, base, owner, now, now, name)
        if not await self.store.put_if_absent(self._key(ws.id), ws.encode()):
            raise RefConflict("workspace id taken: try again")
        if name is not None:  # claimed once the workspace exists, so a claim names a live one
            try:
                await self._claim(name, ws.id)
            except BaseException:
                await self.store.delete(self._key(ws.id))
                raise
        return ws

    async def _claim(self, name: str, wid: str) -> None:
        key = self._name_key(name)
        for _ in range(UPDATE_ATTEMPTS):
            if await self.store.put_if_absent(key, wid.encode()):
                return
            held = await self.store.get(key)
            if held is None:
                continue
            if await self._live(held.decode()) is not None:
                raise RefConflict(f"a workspace named {name!r} exists: delete it or pick another")
            if await self.store.compare_and_swap(key, held, wid.encode()):
                return  # the name of a workspace that is gone
        raise RefConflict(f"the name {name!r} is being claimed: try again")

    async def _remove(self, ws: Workspace) -> None:
        await self.store.delete(self._key(ws.id))
        if ws.name is not None:
            key = self._name_key(ws.name)
            held = await self.store.get(key)
            if held == ws.id.encode():
                await self.store.delete(key)

    async def delete(self, ref: str) -> Workspace:
        ws, _ = await self._find(ref)
        await self._remove(ws)
        return ws

    async def _update(
        self, ref: str, change: Callable[[Workspace], Awaitable[Workspace]]
    ) -> Workspace:
        """Apply ``change`` to the workspace as stored now, by compare-and-swap (again
        from the new state when another request changed it meanwhile)."""
        for _ in range(UPDATE_ATTEMPTS):
            ws, data = await self._find(ref)
            new = await change(ws)
            new = replace(new, touched=self._now())
            if await self.store.compare_and_swap(self._key(ws.id), data, new.encode()):
                return new
        raise RefConflict(f"workspace {ref} is changing too fast: try again")

    # -- staging ----------------------------------------------------------------------
    async def stage(self, ref: str, rows: list[FileRow]) -> Workspace:
        """Stage files whose objects are stored (uploaded first, in packs)."""
        if len(rows) > MAX_PER_REQUEST:
            raise InvalidInput(f"at most {MAX_PER_REQUEST} files per request")
        await self._check_stored(rows)

        async def change(ws: Workspace) -> Workspace:
            changes = {**ws.changes, **{r.path: r for r in rows}}
            await self._check_shape(ws, changes)
            return replace(ws, changes=changes)

        return await self._update(ref, change)

    async def remove(self, ref: str, paths: list[str]) -> Workspace:
        """Stage the removal of files (a folder: every file under it) of the branch."""
        if len(paths) > MAX_PER_REQUEST:
            raise InvalidInput(f"at most {MAX_PER_REQUEST} paths per request")
        for p in paths:
            check_repo_path(p)

        async def change(ws: Workspace) -> Workspace:
            tree = await self._tree(ws.base)
            changes = dict(ws.changes)
            for path in paths:
                entry = await self.repo.trees.lookup(tree, path) if tree else None
                if isinstance(entry, DirEntry):
                    below = await self.repo.trees.subtree_files(tree, path)  # type: ignore[arg-type]
                    changes.update({p: None for p in below})
                    changes.update({p: None for p in changes if p.startswith(path + "/")})
                elif entry is not None:
                    changes[path] = None
                elif changes.get(path) is not None:
                    del changes[path]  # added here only: unstaged
                else:
                    raise NotFound(f"no file {path} in {ws.branch} or the workspace")
            await self._check_shape(ws, changes)
            return replace(ws, changes=changes)

        return await self._update(ref, change)

    async def unstage(self, ref: str, paths: list[str]) -> Workspace:
        """Drop staged changes (of files, or of everything under folders)."""

        async def change(ws: Workspace) -> Workspace:
            kept = {
                p: r
                for p, r in ws.changes.items()
                if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in paths)
            }
            return replace(ws, changes=kept)

        return await self._update(ref, change)

    async def _tree(self, commit: bytes | None) -> bytes | None:
        """The tree of a commit, which another server on the bucket may have made: its
        pack is indexed first if this server's cache does not know it yet (with it, the
        commit's new nodes)."""
        if commit is None:
            return None
        node = await after_refresh(self.repo, lambda: self.repo.objects.read_node(commit))
        if not isinstance(node, CommitNode):
            raise InvalidInput(f"{commit.hex()} is not a commit")
        return node.tree

    async def _check_shape(self, ws: Workspace, changes: dict[str, FileRow | None]) -> None:
        """The changes make a tree of the base (no file where a folder is)."""
        if len(changes) > MAX_STAGED:
            raise InvalidInput(f"a workspace holds at most {MAX_STAGED} changed paths")
        try:
            await self.repo.trees.apply(await self._tree(ws.base), changes)
        except PathError as e:
            raise InvalidInput(str(e)) from None

    async def _check_stored(self, rows: list[FileRow]) -> None:
        """Every object each entry names is stored, and its id is its chunks' id."""
        db = self.repo.db
        lists = {r.chunks: r.size for r in rows if r.chunks is not None}
        single = {r.id for r in rows if r.chunks is None and r.id is not None}
        schemas = {r.schema for r in rows if r.schema is not None}
        absent = await db.missing([*lists, *single, *schemas])
        if absent:
            if await self.repo.refresh_after_miss(writer=True):  # through another server
                absent = await db.missing(absent)
            if absent:
                raise InvalidInput(
                    f"{len(absent)} object(s) the staged files name are not stored "
                    f"(e.g. {next(iter(absent)).hex()}): upload their packs first"
                )
        try:
            expanded = await chunklists.expand(self.repo.objects, lists)
        except CorruptObject as e:
            raise InvalidInput(f"a chunk list does not match its file: {e}") from None
        located = await db.locate(single)
        for r in rows:
            assert r.id is not None
            if r.chunks is not None:
                ids, lengths = expanded[r.chunks]
                if file_id(ids) != r.id or sum(lengths) != r.size:
                    raise InvalidInput(f"{r.path}: id or size does not match its chunks")
                missing = await db.missing(ids)
                if missing:
                    raise InvalidInput(f"{r.path}: {len(missing)} of its chunks are not stored")
            elif located[r.id].length != r.size:
                raise InvalidInput(f"{r.path}: size does not match its chunk")
            if r.schema is not None:
                node = await self.repo.objects.read_node(r.schema)
                if not isinstance(node, Schema):
                    raise InvalidInput(f"{r.path}: {r.schema.hex()} is not a schema")

    # -- reading ----------------------------------------------------------------------
    async def status(self, ref: str) -> dict[str, Any]:
        """The staged changes as added / modified / removed against the base, and how far
        the branch has moved since."""
        ws = await self.get(ref)
        tree = await self._tree(ws.base)
        added, modified, removed, unchanged = [], [], [], []
        for path, row in sorted(ws.changes.items()):
            before = await self.repo.trees.lookup(tree, path) if tree else None
            old = file_row(path, before) if isinstance(before, FileEntry) else None
            if row is None:
                removed.append(path)
            elif old is None:
                added.append(path)
            elif same_file(old, row):
                unchanged.append(path)
            else:
                modified.append(path)
        tip = await self.repo.branch_refs.get(ws.branch)
        return {
            **ws.summary(),
            "tip": tip.hex() if tip else None,
            "branch_moved": tip != ws.base,
            "added": added,
            "modified": modified,
            "removed": removed,
            "unchanged": unchanged,
        }

    async def listing(self, ref: str, path: str) -> dict[str, Any]:
        """A folder as the workspace's commit would have it: the base's entries with the
        staged changes laid over them (names, kinds, sizes; staged ones marked)."""
        ws = await self.get(ref)
        prefix = ""
        if path:
            check_repo_path(path)
            prefix = path + "/"
        tree = await self._tree(ws.base)
        entries: dict[str, dict[str, Any]] = {}
        files_in: dict[str, int] = {}  # files in each folder listed, staged ones too
        if tree is not None:
            here = await self.repo.trees.lookup(tree, path) if path else None
            if path and not isinstance(here, DirEntry):
                here = None
            dir_id = here.id if isinstance(here, DirEntry) else (tree if not path else None)
            if dir_id is not None:
                for name, e in (await self.repo.trees.entries(dir_id)).items():
                    kind = "dir" if isinstance(e, DirEntry) else "file"
                    entries[name] = {"name": name, "type": kind, "size": e.size}
                    if isinstance(e, DirEntry):
                        files_in[name] = e.count
        removed_in: dict[str, int] = {}
        for p, row in ws.changes.items():
            if not p.startswith(prefix):
                continue
            name, _, rest = p[len(prefix) :].partition("/")
            if rest:
                if row is not None:
                    files_in[name] = files_in.get(name, 0) + 1
                    entries.setdefault(
                        name, {"name": name, "type": "dir", "size": None, "staged": True}
                    )
                else:
                    removed_in[name] = removed_in.get(name, 0) + 1
                continue
            if row is None:
                entries.pop(name, None)
            else:
                entries[name] = {"name": name, "type": "file", "size": row.size, "staged": True}
        for name, n in removed_in.items():  # a folder all of whose files go
            if n >= files_in.get(name, 0):
                entries.pop(name, None)
        if path and not entries and tree is not None:
            raise NotFound(f"no folder {path} in workspace {ref}")
        return {"workspace": ws.id, "path": path, "entries": sorted(entries.values(), key=_by_name)}

    async def file_at(self, ref: str, path: str) -> FileAt:
        """The workspace's version of a file: the one staged, else the base's."""
        check_repo_path(path)
        ws = await self.get(ref)
        if path in ws.changes:
            row = ws.changes[path]
            if row is None or row.id is None:
                raise NotFound(f"{path} is removed in workspace {ref}")
            name = path.rsplit("/", 1)[-1]
            entry = FileEntry(name, row.id, row.size, row.chunks, row.mode, row.schema, row.rows)
            return FileAt(path, ws.base or bytes(ID_LEN), entry)
        if ws.base is None:
            raise NotFound(f"no file {path} in workspace {ref}")
        return await find_file(self.repo, ws.base.hex(), path)

    async def edit_rows(self, ref: str, path: str, edits: RowEdits) -> EditResult:
        """Append, update or delete rows of a tabular file; its next version is staged."""
        file = await self.file_at(ref, path)
        row, result = await edit_rows(self.repo, file, f"workspace {ref}", edits)
        await self.stage(ref, [row])
        return result

    # -- committing -------------------------------------------------------------------
    async def commit(self, ref: str, message: str, author: tuple[str, str]) -> bytes:
        """Commit the staged changes onto the branch as it is now (see the module's doc)."""
        if not message.strip():
            raise InvalidInput("empty commit message")
        ws = await self.get(ref)
        if not ws.changes:
            raise InvalidInput("nothing to commit: the workspace has no changes")
        for attempt in range(COMMIT_ATTEMPTS):
            tip = await self.repo.branch_refs.get(ws.branch)
            if tip != ws.base:
                await self._refuse_overlaps(ws, tip)
            onto = await self._tree(tip)
            tree, nodes = await after_refresh(
                self.repo, lambda onto=onto: self.repo.trees.apply(onto, ws.changes)
            )
            now = int(self.clock())
            parents = (tip,) if tip is not None else ()
            node = CommitNode(tree, parents, author[0], author[1], now, 0, message)
            commit_id, data = encode_with_id(node)
            await self.repo.objects.write_nodes([*nodes, (commit_id, data)])
            try:
                await self.repo.update_ref(ws.branch, tip, commit_id)
            except RefConflict:  # the branch moved while we built it: onto its new tip
                await asyncio.sleep(random.uniform(0, 0.05 * 2**attempt))
                continue
            await self._committed(ws, commit_id)
            return commit_id
        raise RefConflict(f"branch {ws.branch} is moving too fast: try the commit again")

    async def _refuse_overlaps(self, ws: Workspace, tip: bytes | None) -> None:
        """The branch moved since the workspace began: refuse if its new commits changed a
        staged path to something other than what is staged."""
        base, now = await self._tree(ws.base), await self._tree(tip)
        theirs = await after_refresh(self.repo, lambda: self.repo.trees.diff(base, now))
        overlap = [
            p for p, row in ws.changes.items() if p in theirs and not same_file(theirs[p].new, row)
        ]
        if overlap:
            overlap.sort()
            shown = ", ".join(overlap[:5]) + (
                f" and {len(overlap) - 5} more" if len(overlap) > 5 else ""
            )
            raise MergeConflict(
                f"{ws.branch} changed since the workspace began, at paths it stages: {shown}; "
                "nothing was committed and the workspace is kept",
                overlap,
            )

    async def _committed(self, ws: Workspace, commit_id: bytes) -> None:
        """Empty the workspace and start it from its commit (unless it was deleted)."""

        async def change(current: Workspace) -> Workspace:
            left = {p: r for p, r in current.changes.items() if ws.changes.get(p, r) != r}
            left.update({p: r for p, r in current.changes.items() if p not in ws.changes})
            return replace(current, base=commit_id, changes=left)

        try:
            await self._update(ws.id, change)
        except NotFound:
            pass


def _by_name(entry: dict[str, Any]) -> str:
    return str(entry["name"])
