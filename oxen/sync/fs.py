"""``oxen://`` paths for fsspec, and through it for pyarrow, DuckDB and other readers: any
revision of a remote repository read without a clone, and files written to a branch.

    oxen://HOST[:PORT]/NAMESPACE/REPO[@REV]/path/in/repo

``REV`` is a branch (``/`` in its name written ``%2F``) or a full commit id; ``main``
when absent. Storage options: ``scheme`` (``http``, the default, or ``https``; not
``protocol``, which fsspec's own functions take as the filesystem's name), ``token``
(else the CLI's: ``OXEN_AUTH_TOKEN`` for the hosts ``OXEN_AUTH_HOST`` names, or
``oxen config --auth``), ``block_size`` of reads and writes, and ``message``, the
default commit message of writes.

Reads: ``ls`` and ``info`` ask the tree route (a folder) or a HEAD of the file route (a
file); an open file names the commit its revision was at when it was opened and reads
every range of that commit, so a branch moving meanwhile never mixes two versions. Each
read the buffer misses is one ``Range`` request, answered by the server from the chunks
those bytes are in: a parquet reader that wants a footer and one row group gets about
those bytes. Writes: a file opened ``wb`` is written to a local temporary file; closing
it uploads what the server lacks through a workspace and commits there (``put`` of many
files is one commit; ``rm`` is one commit). Writes go to a branch, never a commit id.

It is an fsspec ``AsyncFileSystem``: the blocking methods run the client's coroutines on
fsspec's event-loop thread, so they may be called from any thread (DuckDB's, pyarrow's).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime
import re
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from fsspec.asyn import AsyncFileSystem, FSTimeoutError, sync
from fsspec.caching import BaseCache, register_cache
from fsspec.spec import AbstractBufferedFile
from fsspec.utils import stringify_path

from oxen.errors import IsAFolder, NotFound, PathError, RefError, RemoteError
from oxen.formats.refnames import check_branch_name
from oxen.sync import workspace
from oxen.sync.http import HttpRemote
from oxen.sync.listing import list_tree
from oxen.sync.protocol import FileHead, RemoteURL
from oxen.worktree.paths import check_repo_path

PROTOCOL = "oxen"
DEFAULT_REV = "main"
BLOCK_SIZE = 1024 * 1024  # bytes a read asks for at least (the rest stays buffered)
SCHEMES = ("http", "https")
_COMMIT_ID = re.compile(r"[0-9a-fA-F]{64}")
_GLOB = re.compile(r"[*?\[]")  # a path with these is a pattern (as fsspec's glob takes it)
_FORM = "oxen://HOST[:PORT]/NAMESPACE/REPO[@REV]/PATH"
# (local file, path in the repository) of each file a put() is gathering into one commit
_GATHERING: contextvars.ContextVar[list[tuple[OxenPath, Path]] | None] = contextvars.ContextVar(
    "oxen_fs_put", default=None
)


@dataclass(frozen=True)
class OxenPath:
    """A path of the filesystem: a repository, a revision and a path in it."""

    host: str  # host[:port]
    namespace: str
    name: str
    rev: str | None  # as written; None: main
    path: str  # in the repository, "" for the top

    @property
    def revision(self) -> str:
        return self.rev or DEFAULT_REV

    @property
    def root(self) -> str:
        """The repository and revision, as fsspec names them (no protocol)."""
        at = "" if self.rev is None else "@" + quote(self.rev, safe="")
        return f"{self.host}/{self.namespace}/{self.name}{at}"

    @property
    def full(self) -> str:
        return f"{self.root}/{self.path}" if self.path else self.root

    def child(self, name: str) -> str:
        return f"{self.full}/{name}"

    @property
    def url(self) -> str:
        return f"{PROTOCOL}://{self.full}"

    @property
    def repo(self) -> tuple[str, str, str]:
        return self.host, self.namespace, self.name


def parse(path: str) -> OxenPath:
    """An ``oxen://`` URL, or one without its protocol, as a path; ValueError (one line)
    when it is not one."""
    text = OxenFileSystem._strip_protocol(path)
    parts = text.split("/")
    if len(parts) < 3 or not all(parts[:3]) or "://" in text:
        raise ValueError(f"not an oxen path (want {_FORM}): {str(path)[:200]}")
    host, namespace, named = parts[:3]
    name, at, rev = named.partition("@")
    if not name or (at and not rev):
        raise ValueError(f"not an oxen path (want {_FORM}): {str(path)[:200]}")
    inner = "/".join(parts[3:])
    if inner:
        try:
            check_repo_path(inner)
        except PathError as e:
            raise ValueError(f"{e} in {str(path)[:200]}") from None
    return OxenPath(host, namespace, name, unquote(rev) if at else None, inner)


def branch_of(where: OxenPath) -> str:
    """The branch a write goes to; ValueError for a commit id or a bad branch name."""
    rev = where.revision
    if _COMMIT_ID.fullmatch(rev):
        raise ValueError(
            f"cannot write to {where.url}: {rev[:12]}... is a commit id, and writes go to "
            "a branch (oxen://HOST/NAMESPACE/REPO@BRANCH/PATH)"
        )
    try:
        return check_branch_name(rev)
    except RefError as e:
        raise ValueError(f"cannot write to {where.url}: {e}") from None


@contextlib.contextmanager
def os_errors() -> Iterator[None]:
    """The client's errors as the OSErrors file APIs raise: a missing path is
    FileNotFoundError, a refused token PermissionError; others stay OxenErrors."""
    try:
        yield
    except NotFound as e:
        raise FileNotFoundError(str(e)) from None
    except IsAFolder as e:
        raise IsADirectoryError(str(e)) from None
    except RemoteError as e:
        if e.status in (401, 403):
            raise PermissionError(str(e)) from None
        raise


class OxenFileSystem(AsyncFileSystem):
    """Repositories of oxen servers as an fsspec filesystem (see the module's doc)."""

    protocol = PROTOCOL
    root_marker = ""

    def __init__(
        self,
        token: str | None = None,
        scheme: str = "http",
        block_size: int | None = None,
        message: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be http or https, not {scheme!r}")
        self.token = token
        self.scheme = scheme
        self.blocksize = block_size or BLOCK_SIZE
        self.message = message
        self._remotes: dict[tuple[str, str, str], HttpRemote] = {}

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = stringify_path(path)
        if path.startswith(f"{PROTOCOL}://"):
            path = path[len(PROTOCOL) + 3 :]
        return path.rstrip("/")

    @property
    def bytes_received(self) -> int:
        """Bytes of answers received so far (file bytes, listings), every repository."""
        return sum(r.bytes_received for r in self._remotes.values())

    async def _remote(self, where: OxenPath) -> HttpRemote:
        """The client of ``where``'s repository: one per repository, made on the loop
        that runs it (its connection pool belongs to that loop)."""
        remote = self._remotes.get(where.repo)
        if remote is None:
            url = RemoteURL(self.scheme, where.host, where.namespace, where.name)
            remote = self._remotes[where.repo] = HttpRemote(url, self.token)
            if not self.asynchronous:
                weakref.finalize(self, _close, self.loop, remote)
        return remote

    # -- reading -------------------------------------------------------------------------
    async def _head(self, where: OxenPath) -> FileHead:
        """The file's id, size and commit (its revision resolved once); IsADirectoryError
        for a folder."""
        if not where.path:
            raise IsADirectoryError(f"{where.url} is the top folder of its repository")
        remote = await self._remote(where)
        with os_errors():
            try:
                return await remote.file_head(where.path, where.revision)
            except RemoteError as e:
                if e.status != 400:
                    raise
            # refused: a folder, or a bad revision; a HEAD's answer has no body to say
            # which, the tree route's does
            await remote.tree(where.path, where.revision, 0, 1)
        raise IsADirectoryError(f"{where.url} is a folder")

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        where = parse(path)
        if where.path:
            try:
                head = await self._head(where)
            except IsADirectoryError:
                return {"name": where.full, "type": "directory", "size": 0}
            return _file_info(where, head)
        remote = await self._remote(where)
        with os_errors():  # the top: the repository and revision exist
            page = await remote.tree("", where.revision, 0, 1)
        return {"name": where.full, "type": "directory", "size": 0, "commit": page["commit"]}

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        where = parse(path)
        remote = await self._remote(where)
        with os_errors():
            try:
                listing = await list_tree(remote, where.path, where.revision)
            except RemoteError as e:
                if e.status != 400 or not where.path:
                    raise
                info = await self._info(path)  # a file is listed as itself
                return [info] if detail else [info["name"]]
        found = [_entry_info(where, e) for e in listing.entries]
        return found if detail else [e["name"] for e in found]

    async def _cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        where = parse(path)
        head = await self._head(where)
        lo, hi, _ = slice(start, end).indices(head.size)
        return await self._read_range(where, head, lo, hi)

    async def _read_range(self, where: OxenPath, head: FileHead, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` of the file as of ``head``'s commit."""
        remote = await self._remote(where)
        with os_errors():
            return await remote.read_range(where.path, head.commit.hex(), start, max(start, end))

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> AbstractBufferedFile:
        where = parse(path)
        if mode == "rb":
            head = sync(self.loop, self._head, where)
            return OxenReadFile(
                self,
                where,
                head,
                block_size or self.blocksize,
                kwargs.get("cache_type", SequentialReadAhead.name),
                cache_options,
            )
        if mode == "wb":
            if not autocommit:
                raise ValueError("oxen:// files are committed when closed (autocommit)")
            branch_of(where)
            if not where.path:
                raise IsADirectoryError(f"{where.url} is the top folder of its repository")
            message = kwargs.get("message") or self.message or f"Write {where.path}"
            return OxenWriteFile(self, where, message, block_size or self.blocksize)
        raise ValueError(f"oxen:// files open as 'rb' or 'wb', not {mode!r}")

    def modified(self, path: str) -> datetime.datetime:
        """The time of the commit a file is read from (DuckDB asks, to validate what it
        caches): it changes whenever the revision moves, and so whenever the file may."""
        info = self.info(path)
        if "mtime" not in info:
            raise IsADirectoryError(f"{parse(path).url} is a folder: it has no time")
        return datetime.datetime.fromtimestamp(info["mtime"], datetime.UTC)

    # -- writing -------------------------------------------------------------------------
    async def _commit(
        self,
        where: OxenPath,
        files: list[tuple[Path, str]],
        removals: list[str],
        message: str,
        recursive: bool = True,
    ) -> str:
        """One commit on ``where``'s branch, made on the server: the new commit (hex)."""
        branch = branch_of(where)
        remote = await self._remote(where)
        with os_errors():
            return await workspace.change_branch(
                remote, branch, message, files, removals, recursive=recursive
            )

    async def _put_file(
        self, lpath: str, rpath: str, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        where = parse(rpath)
        branch_of(where)
        if not where.path:
            raise IsADirectoryError(f"{where.url} is the top folder of its repository")
        local = Path(lpath)
        if not await asyncio.to_thread(local.is_file):
            raise FileNotFoundError(f"no such local file: {lpath}")
        gathering = _GATHERING.get()
        if gathering is not None:  # put() of several files: one commit once all are named
            gathering.append((where, local))
            return
        message = kwargs.get("message") or self.message or f"Write {where.path}"
        await self._commit(where, [(local, where.path)], [], message)

    async def _put(self, lpath: Any, rpath: Any, recursive: bool = False, **kwargs: Any) -> None:
        """Local files to the repository in one commit per repository and branch."""
        gathered: list[tuple[OxenPath, Path]] = []
        token = _GATHERING.set(gathered)
        try:
            await super()._put(lpath, rpath, recursive=recursive, **kwargs)
        finally:
            _GATHERING.reset(token)
        by_branch: dict[tuple[tuple[str, str, str], str], list[tuple[OxenPath, Path]]] = {}
        for where, local in gathered:
            by_branch.setdefault((where.repo, where.revision), []).append((where, local))
        for group in by_branch.values():
            first = group[0][0]
            message = kwargs.get("message") or self.message or _put_message(group)
            await self._commit(first, [(local, w.path) for w, local in group], [], message)

    async def _pipe_file(
        self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        where = parse(path)
        branch_of(where)
        if not where.path:
            raise IsADirectoryError(f"{where.url} is the top folder of its repository")
        if mode == "create" and await self._exists(path):
            raise FileExistsError(f"{where.url} exists")
        message = kwargs.get("message") or self.message or f"Write {where.path}"
        with tempfile.TemporaryDirectory(prefix="oxen-write-") as scratch:
            local = Path(scratch) / where.path.rsplit("/", 1)[-1]
            await asyncio.to_thread(local.write_bytes, value)
            await self._commit(where, [(local, where.path)], [], message)

    async def _rm(
        self,
        path: Any,
        recursive: bool = False,
        maxdepth: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Files (and with ``recursive`` folders) removed in one commit per repository and
        branch; a path nothing is at is FileNotFoundError, and nothing is removed."""
        named: list[str] = []
        for p in path if isinstance(path, list) else [path]:
            named += await self._expand_path(p) if _GLOB.search(p) else [p]
        by_branch: dict[tuple[tuple[str, str, str], str], list[OxenPath]] = {}
        for p in named:
            where = parse(p)
            if not where.path:
                raise ValueError(f"cannot remove {where.url}: it is the whole repository")
            branch_of(where)
            by_branch.setdefault((where.repo, where.revision), []).append(where)
        for group in by_branch.values():
            paths = sorted({w.path for w in group})
            shown = paths[0] + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")
            message = kwargs.get("message") or self.message or f"Remove {shown}"
            await self._commit(group[0], [], paths, message, recursive=recursive)

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        await self._rm(path, recursive=False, **kwargs)


def _file_info(where: OxenPath, head: FileHead) -> dict[str, Any]:
    info = {
        "name": where.full,
        "type": "file",
        "size": head.size,
        "id": head.id.hex(),
        "commit": head.commit.hex(),
    }
    if head.modified is not None:
        info["mtime"] = head.modified  # the time of the commit read, not of the file's change
    return info


def _put_message(group: list[tuple[OxenPath, Path]]) -> str:
    paths = sorted(w.path for w, _ in group)
    return f"Write {paths[0]}" + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")


def _entry_info(where: OxenPath, e: dict[str, Any]) -> dict[str, Any]:
    """An entry of the tree route as fsspec describes one (folders have size 0, as in
    fsspec's other filesystems; ``count`` says how many files are below)."""
    if e["type"] == "dir":
        return {"name": where.child(e["name"]), "type": "directory", "size": 0, **_extra(e)}
    return {"name": where.child(e["name"]), "type": "file", "size": e["size"], **_extra(e)}


def _extra(e: dict[str, Any]) -> dict[str, Any]:
    return {k: e[k] for k in ("id", "count", "format", "rows") if k in e}


def _close(loop: Any, remote: HttpRemote) -> None:
    """Close a client's connections when its filesystem goes (or the process ends)."""
    if loop is not None and loop.is_running():
        try:
            sync(loop, remote.close, timeout=1)
            return
        except (TimeoutError, FSTimeoutError, NotImplementedError, RuntimeError):
            pass
    connector = getattr(remote.session, "_connector", None)
    if connector is not None:
        connector._close()  # the loop is gone: drop the sockets without it


class SequentialReadAhead(BaseCache):
    """The bytes of the last request kept. A read they do not hold asks for what it
    wants, and at least a block more when it goes on where the last read ended (or
    starts the file): lines of a csv cost one request a block, while a reader that
    seeks to the ranges it knows (a parquet footer, one column's chunks) gets those
    bytes alone, where fsspec's "readahead" adds a block to each."""

    name = "oxen-readahead"

    def __init__(self, blocksize: int, fetcher: Any, size: int) -> None:
        super().__init__(blocksize, fetcher, size)
        self.cache = b""
        self.start = 0
        self.last_end = 0  # where the last read asked for ended

    def _fetch(self, start: int | None, end: int | None) -> bytes:
        start = 0 if start is None else start
        end = self.size if end is None else min(end, self.size)
        if start >= end:
            return b""
        sequential = start in (0, self.last_end)
        self.last_end = end
        held_end = self.start + len(self.cache)
        if self.start <= start and end <= held_end:
            self.hit_count += 1
            return self.cache[start - self.start : end - self.start]
        self.miss_count += 1
        head = b""
        if self.start <= start < held_end:  # the start is held: ask for the rest
            head = self.cache[start - self.start :]
            start, sequential = held_end, True
        fetch_end = min(self.size, max(end, start + self.blocksize)) if sequential else end
        self.total_requested_bytes += fetch_end - start
        self.cache = self.fetcher(start, fetch_end)
        self.start = start
        return head + self.cache[: end - start]


register_cache(SequentialReadAhead)


class OxenReadFile(AbstractBufferedFile):
    """A file of one commit: every read the buffer misses is one ranged request of that
    commit, whatever its branch does meanwhile."""

    def __init__(
        self,
        fs: OxenFileSystem,
        where: OxenPath,
        head: FileHead,
        block_size: int,
        cache_type: str,
        cache_options: dict[str, Any] | None,
    ) -> None:
        self.where = where
        self.head = head
        super().__init__(
            fs,
            where.full,
            mode="rb",
            block_size=block_size,
            cache_type=cache_type,
            cache_options=cache_options,
            size=head.size,
        )
        self.details = _file_info(where, head)

    @property
    def commit(self) -> str:
        """The commit every byte of this file is read from."""
        return self.head.commit.hex()

    def _fetch_range(self, start: int, end: int) -> bytes:
        return sync(self.fs.loop, self.fs._read_range, self.where, self.head, start, end)


class OxenWriteFile(AbstractBufferedFile):
    """A file written to a local temporary file, uploaded and committed on ``close()``; a
    ``with`` block left by an exception commits nothing."""

    def __init__(self, fs: OxenFileSystem, where: OxenPath, message: str, block_size: int) -> None:
        super().__init__(fs, where.full, mode="wb", block_size=block_size)
        self.where = where
        self.message = message
        self.commit_id: str | None = None  # once closed
        self._scratch = tempfile.TemporaryDirectory(prefix="oxen-write-")
        # named as its destination: the name decides whether it is described as a table
        self._local = Path(self._scratch.name) / where.path.rsplit("/", 1)[-1]
        self._out = self._local.open("wb")

    def _upload_chunk(self, final: bool = False) -> bool:
        self._out.write(self.buffer.getbuffer())
        if final:
            self._out.close()
            try:
                self.commit_id = sync(
                    self.fs.loop,
                    self.fs._commit,
                    self.where,
                    [(self._local, self.where.path)],
                    [],
                    self.message,
                )
            finally:
                self._scratch.cleanup()
        return True

    def discard(self) -> None:
        self._out.close()
        self._scratch.cleanup()

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.close()
        elif not self.closed:
            self.discard()
            self.closed = True
