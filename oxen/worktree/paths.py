"""The working tree on disk: finding the repository, safe paths, scanning, the racy clock.

Synchronous on purpose: these run in worker threads (or directly in ``status``, which
must not import asyncio to stay fast).
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections import namedtuple
from collections.abc import Iterable, Iterator

from oxen.errors import NotARepository, PathError
from oxen.formats.limits import MAX_DEPTH
from oxen.worktree.ignore import Ignore
from oxen.worktree.listings import Listings

TYPE_CHECKING = False  # not typing's: importing typing costs ~10 ms on every `status`
if TYPE_CHECKING:
    from pathlib import Path

OXEN_DIR = ".oxen"


def is_oxen_name(name: str) -> bool:
    """Whether a path component names a repository's own folder (in any case): such a
    name is never tracked, never written, wherever it stands."""
    return len(name) == 5 and name.lower() == OXEN_DIR


TEMP_MARK = ".oxen-"  # in the temporary name of a file being written: .<name>.oxen-<token>.tmp
_HEX = frozenset("0123456789abcdef")


def temp_name(name: str, token: str) -> str:
    """The temporary name a file ``name`` is written under (beside it) by the command whose
    token is ``token`` (``<pid>-<12 hex digits>``, see :mod:`oxen.worktree.pending`)."""
    return f".{name}{TEMP_MARK}{token}.tmp"


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of those temporary names: scans of the working tree skip
    them, so one a killed command left is never taken for a user's file."""
    if name[:1] != "." or not name.endswith(".tmp") or TEMP_MARK not in name:
        return False
    pid, _, rand = name[:-4].rpartition(TEMP_MARK)[2].partition("-")
    return pid.isdigit() and len(rand) == 12 and _HEX.issuperset(rand)


class FileStat(namedtuple("FileStat", "size mtime_ns ctime_ns ino mode")):
    """size, mtime_ns, ctime_ns, ino, mode (ints). A plain namedtuple: typing costs
    ~10 ms to import, paid by every ``oxen status``."""

    __slots__ = ()

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)

    @property
    def executable(self) -> bool:
        return bool(self.mode & 0o111)


class Written(namedtuple("Written", "path stat id")):
    """A file just written into the working tree with a known id: (path, FileStat, id),
    what the stat cache remembers so that ``status`` need not hash it."""

    __slots__ = ()


def find_root(start: str | Path | None = None) -> Path:
    """The repository containing ``start`` (default: the current directory)."""
    from pathlib import Path

    return Path(find_root_dir(start))


def find_root_dir(start: str | Path | None = None) -> str:
    """``find_root`` as a string, without pathlib (5 ms to import, paid by ``status``)."""
    here = os.path.abspath(start or os.getcwd())
    candidate = here
    while True:
        if os.path.isfile(os.path.join(candidate, OXEN_DIR, "oxen.db")):
            return candidate
        parent = os.path.dirname(candidate)
        if parent == candidate:
            raise NotARepository(f"not an oxen repository (or any parent): {here}")
        candidate = parent


def to_repo_path(root: str | Path, user_path: str, cwd: str | Path | None = None) -> str:
    """A user's path (relative to ``cwd``) as a repository path: POSIX, relative, '' for the root."""
    absolute = os.path.abspath(os.path.join(cwd or os.getcwd(), user_path))
    rel = os.path.relpath(absolute, root)
    if rel == ".":
        return ""
    if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
        raise PathError(f"path is outside the repository: {user_path}")
    rel = rel.replace(os.sep, "/")
    if any(is_oxen_name(part) for part in rel.split("/")):
        raise PathError(f"path is inside an {OXEN_DIR} directory: {user_path}")
    return rel


def is_under(path: str, prefix: str) -> bool:
    return not prefix or path == prefix or path.startswith(prefix + "/")


def scan(root: Path, prefix: str = "", ignore: Ignore | None = None) -> dict[str, FileStat]:
    """Every regular file at or below ``prefix``; symlinks, the .oxen dir and directories
    ``ignore`` rules out are skipped."""
    return {
        rel: FileStat(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)
        for rel, st in iter_files(root, prefix, ignore=ignore)
    }


def stat_files(root: str | Path, paths: Iterable[str]) -> dict[str, FileStat]:
    """The stat of each of ``paths`` that is a regular file."""
    return {
        rel: FileStat.of(st) for rel, st in lstat_each((p, os.path.join(root, p)) for p in paths)
    }


def iter_files(
    root: str | Path,
    prefix: str = "",
    listings: Listings | None = None,
    ignore: Ignore | None = None,
) -> Iterator[tuple[str, os.stat_result]]:
    """(repository path, lstat) of every regular file at or below ``prefix``."""
    return lstat_each(iter_file_names(root, prefix, listings, ignore))


def iter_file_names(
    root: str | Path,
    prefix: str = "",
    listings: Listings | None = None,
    ignore: Ignore | None = None,
) -> Iterator[tuple[str, str]]:
    """(repository path, filesystem path) of every regular file at or below ``prefix``.

    Depth-first and iterative; no system call per file (DirEntry knows the type), so
    the caller decides where the lstat calls run: this is the hot loop of ``status``.
    With ``listings``, unchanged directories are not read again (see oxen.listings); with
    ``ignore``, ignored directories are skipped (and remembered in ``ignore.pruned``).
    """
    start = os.path.join(root, prefix) if prefix else os.fspath(root)
    try:
        st = os.lstat(start)
    except FileNotFoundError:
        return
    if stat_mod.S_ISREG(st.st_mode):
        yield prefix, start
        return
    if not stat_mod.S_ISDIR(st.st_mode):
        return
    stack = [(start, prefix + "/" if prefix else "")]
    while stack:
        path, rel = stack.pop()
        cached = listings.get(path, rel) if listings is not None else None
        if cached is not None:
            files, dirs = cached
        else:
            files, dirs = _read_dir(path, rel)
            if listings is not None:
                listings.put(rel, files, dirs)
        for name in dirs:
            if ignore is None or not ignore.prune(f"{rel}{name}/"):
                stack.append((f"{path}/{name}", f"{rel}{name}/"))
        for name in files:
            yield rel + name, f"{path}/{name}"


def _read_dir(path: str, rel: str) -> tuple[list[str], list[str]]:
    """The names of the regular files and of the subdirectories in ``path``, without any
    named .oxen (in any case) nor the temporary files of checkouts and pulls."""
    files: list[str] = []
    dirs: list[str] = []
    try:
        entries = os.scandir(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return files, dirs
    with entries:
        for entry in entries:
            try:
                name = entry.name
                if len(name) == 5 and is_oxen_name(name):
                    continue
                if name[0] == "." and is_temp_name(name):
                    continue  # a file being written, or what a killed command left
                if entry.is_dir(follow_symlinks=False):
                    dirs.append(name)
                elif entry.is_file(follow_symlinks=False):
                    files.append(name)
            except FileNotFoundError:
                continue
    return files, dirs


def lstat_each(names: Iterable[tuple[str, str]]) -> Iterator[tuple[str, os.stat_result]]:
    """(repository path, lstat) for each name that is still a regular file."""
    lstat, is_reg = os.lstat, stat_mod.S_ISREG
    for rel, path in names:
        try:
            st = lstat(path)
        except FileNotFoundError:
            continue
        if is_reg(st.st_mode):
            yield rel, st


def fs_clock(oxen_dir: str | Path) -> int:
    """The filesystem's notion of "now" (ns), read from a file we just wrote.

    A cached stat is trusted only for files whose mtime is strictly older than this, as
    git does with its index: a file changed in the same timestamp tick as it was hashed
    is "racy" and gets re-hashed.
    """
    marker = os.path.join(oxen_dir, "clock")
    with open(marker, "wb") as f:
        f.write(b"\n")
    return os.stat(marker).st_mtime_ns


def check_repo_path(rel: str) -> list[str]:
    """The parts of a repository path, refusing anything that could name a place outside
    the working tree or inside .oxen (paths from the network are untrusted)."""
    if not rel or rel.startswith("/") or "\\" in rel or "\x00" in rel:
        raise PathError(f"unsafe path: {rel!r}")
    parts = rel.split("/")
    if any(p in ("", ".", "..") or is_oxen_name(p) for p in parts):
        raise PathError(f"unsafe path: {rel!r}")
    if len(parts) > MAX_DEPTH:
        raise PathError(f"path is deeper than {MAX_DEPTH} directories: {rel[:200]}...")
    return parts


def safe_target(root: Path, rel: str) -> Path:
    """The on-disk path for a repository path, refusing anything that could escape ``root``."""
    parts = check_repo_path(rel)
    current = root
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise PathError(f"refusing to write through a symlink: {rel}")
    return root.joinpath(*parts)
