"""``status``: what is staged, modified, removed and untracked, re-hashing nothing it need not.

Deliberately synchronous and light on imports (no asyncio, dataclasses, typing or
pydantic): on an unchanged tree of 20k files the whole command, process start included,
has ~0.15 s, and one lstat per file is most of it. So the walk compares each file's stat
with the cached one as it goes, building no per-file objects for clean files; the
``oxen status`` command splits the lstat calls of a large tree over two processes; and
the index to compare with comes from a snapshot while it is valid (``status_index``).
A file is re-hashed only when its stat differs from the stat cache, or when the cache
entry is "racy" (the file changed in the same timestamp tick it was hashed in).
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Callable
from stat import S_ISREG

from oxen.db.schema import connect_sync
from oxen.formats.refnames import branch_of
from oxen.worktree.ignore import Ignore
from oxen.worktree.listings import Listings
from oxen.worktree.paths import OXEN_DIR, fs_clock, is_under, iter_file_names
from oxen.worktree.scope import PARTIAL_KEY, WHOLE, Partial
from oxen.worktree.status_index import load_index, save_stats

PARALLEL_MIN = 5000  # files; below this a second process costs more than it saves

LISTS = (
    "staged_added",
    "staged_modified",
    "staged_removed",
    "modified",
    "removed",
    "untracked",
    "conflicts",
)


class Status:
    """Paths by state, each list sorted. ``current`` maps every tracked file present in
    the working tree to its current (content id, size)."""

    def __init__(self, branch: str | None, head: str | None, merging: bool = False) -> None:
        self.branch = branch
        self.head = head
        self.merging = merging
        self.staged_added: list[str] = []
        self.staged_modified: list[str] = []
        self.staged_removed: list[str] = []
        self.modified: list[str] = []
        self.removed: list[str] = []
        self.untracked: list[str] = []
        self.conflicts: list[str] = []
        self.current: dict[str, tuple[bytes, int]] = {}
        self.partial = WHOLE  # what a partial clone holds

    @property
    def clean(self) -> bool:
        return not (
            self.staged_added
            or self.staged_modified
            or self.staged_removed
            or self.modified
            or self.removed
            or self.conflicts
        )

    def as_dict(self) -> dict:
        out: dict = {"branch": self.branch, "head": self.head, "merging": self.merging}
        out.update({name: getattr(self, name) for name in LISTS})
        if self.partial.is_partial:
            out["partial"] = {
                "paths": self.partial.paths,
                "shallow": sorted(c.hex() for c in self.partial.shallow),
            }
        return out


def compute_status(root, prefix: str = "", parallel: bool = False, current: bool = True) -> Status:
    """Status of the files at or below ``prefix`` ('' for the whole tree).

    ``parallel``: lstat large trees in two processes (fork). Only for a process with no
    other threads, i.e. the ``oxen status`` command itself. ``current``: fill
    ``Status.current`` for every tracked file (else only for those re-hashed).
    """
    root = os.fspath(root)
    oxen_dir = os.path.join(root, OXEN_DIR)
    conn = connect_sync(oxen_dir)
    try:
        head_state = conn.execute("SELECT value FROM state WHERE key = 'HEAD'").fetchone()
        merge = conn.execute("SELECT value FROM state WHERE key = 'MERGE_HEAD'").fetchone()
        branch, head = _describe_head(conn, head_state[0] if head_state else None)
        status = Status(branch=branch, head=head, merging=merge is not None)
        status.conflicts = [r[0] for r in conn.execute("SELECT path FROM conflicts ORDER BY path")]
        clock = fs_clock(oxen_dir)
        index = load_index(conn, oxen_dir)
        rows = index.rows
        if prefix:
            rows = {p: r for p, r in rows.items() if is_under(p, prefix)}
        partial_state = conn.execute(
            "SELECT value FROM state WHERE key = ?", (PARTIAL_KEY,)
        ).fetchone()
        if partial_state is not None:  # a partial clone: paths not held are not "deleted"
            status.partial = Partial.decode(partial_state[0])
            rows = {p: r for p, r in rows.items() if status.partial.holds(p)}
        status.staged_added = [p for p in index.added if is_under(p, prefix)]
        status.staged_modified = [p for p in index.modified if is_under(p, prefix)]
        status.staged_removed = [p for p in index.removed if is_under(p, prefix)]
        listings = Listings(oxen_dir, clock, prefix)
        ignore = Ignore.load(root)
        names = list(iter_file_names(root, prefix, listings, ignore))
        listings.save()
        ignored = None
        if ignore is not None:
            ignored = ignore.file
            # tracked files stay tracked inside ignored directories the walk skipped
            names += [(p, os.path.join(root, p)) for p in ignore.under_pruned(rows)]
        found = _walk(names, rows, current, ignored, parallel and hasattr(os, "fork"))
        status.untracked = found.untracked
        status.modified = found.modified
        status.current = found.current
        if found.seen < len(rows):  # some tracked files are not in the working tree
            present = {name for name, _ in names}.difference(found.gone)
            status.removed = [p for p in rows if p not in present]

        refreshed: list[tuple] = []
        file_id_of = _file_hasher(oxen_dir) if found.changed else None
        for path, size, mtime_ns, ctime_ns, ino in found.changed:
            try:
                assert file_id_of is not None
                oid = file_id_of(os.path.join(root, path))
            except FileNotFoundError:
                status.removed.append(path)
                continue
            refreshed.append((path, size, mtime_ns, ctime_ns, ino, oid, int(mtime_ns >= clock)))
            status.current[path] = (oid, size)
            if oid != rows[path][1]:
                status.modified.append(path)
        if refreshed:
            save_stats(conn, oxen_dir, index, refreshed)
        for name in LISTS:
            getattr(status, name).sort()
        return status
    finally:
        conn.close()


class _Found:
    """What one pass over (part of) the working tree found. ``changed``: tracked files
    whose stat differs from the cache, with that stat, to be hashed; ``gone``: listed
    names that vanished or stopped being regular files before their lstat."""

    def __init__(self) -> None:
        self.untracked: list[str] = []
        self.modified: list[str] = []
        self.changed: list[tuple] = []
        self.current: dict[str, tuple[bytes, int]] = {}
        self.gone: list[str] = []
        self.seen = 0

    def compare(
        self,
        names: list[tuple[str, str]],
        rows: dict[str, tuple],
        current: bool,
        ignored: Callable[[str], bool] | None = None,
    ) -> None:
        """The hot loop: for a clean file, one lstat, one dict lookup, one tuple compare.

        A file whose lstat equals its cached one is the regular file that was hashed, so
        the file type is checked only for the others."""
        lstat, is_reg = os.lstat, S_ISREG
        untracked, modified, changed, gone = self.untracked, self.modified, self.changed, self.gone
        keep = self.current if current else None
        get = rows.get
        seen = 0
        for name, path in names:
            try:
                st = lstat(path)
            except FileNotFoundError:
                gone.append(name)
                continue
            row = get(name)
            # row[3:7] is the cached (size, mtime, ctime, inode); row[7] its id; row[8] racy
            if (
                row is not None
                and (
                    st.st_size,
                    st.st_mtime_ns,
                    st.st_ctime_ns,
                    st.st_ino,
                )
                == row[3:7]
                and not row[8]
            ):
                seen += 1
                if keep is not None:
                    keep[name] = (row[7], st.st_size)
                if row[7] != row[1]:
                    modified.append(name)
            elif not is_reg(st.st_mode):
                gone.append(name)
            elif row is None:
                if ignored is None or not ignored(name):
                    untracked.append(name)
            else:
                seen += 1
                changed.append((name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
        self.seen += seen

    def merge(self, other: _Found) -> None:
        self.untracked += other.untracked
        self.modified += other.modified
        self.changed += other.changed
        self.current.update(other.current)
        self.gone += other.gone
        self.seen += other.seen


def _walk(
    names: list[tuple[str, str]],
    rows: dict[str, tuple],
    current: bool,
    ignored: Callable[[str], bool] | None,
    parallel: bool,
) -> _Found:
    found = _Found()
    if not parallel or len(names) < PARALLEL_MIN:
        found.compare(names, rows, current, ignored)
        return found
    half = len(names) // 2
    child = _forked(lambda: _compare_part(names[half:], rows, current, ignored))
    found.compare(names[:half], rows, current, ignored)
    other = child()
    if other is None:  # the helper process failed: do its half here
        found.compare(names[half:], rows, current, ignored)
    else:
        found.merge(other)
    return found


def _compare_part(
    names: list[tuple[str, str]],
    rows: dict[str, tuple],
    current: bool,
    ignored: Callable[[str], bool] | None,
) -> bytes:
    part = _Found()
    part.compare(names, rows, current, ignored)
    return marshal.dumps(
        (part.untracked, part.modified, part.changed, part.current, part.gone, part.seen)
    )


def _forked(work: Callable[[], bytes]) -> Callable[[], _Found | None]:
    """Run ``work`` in a forked child; returns a function that waits for its result.

    Forking is cheap here (the process is small and has one thread) and the lstat
    system calls are most of status's time: two processes do them on two cores. The
    result comes back through a pipe, marshalled (trusted: it is our own child).
    """
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # no process to spare: the caller does the work itself
        os.close(read_fd)
        os.close(write_fd)
        return lambda: None
    if pid == 0:  # child: never return into the caller's code
        code = 1
        try:
            os.close(read_fd)
            data = work()
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view) :]
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)

    def wait() -> _Found | None:
        chunks = []
        with open(read_fd, "rb") as pipe:
            while chunk := pipe.read(1 << 20):
                chunks.append(chunk)
        _, code = os.waitpid(pid, 0)
        if code != 0:
            return None
        found = _Found()
        (
            found.untracked,
            found.modified,
            found.changed,
            found.current,
            found.gone,
            found.seen,
        ) = marshal.loads(b"".join(chunks))
        return found

    return wait


def _file_hasher(oxen_dir: str) -> Callable[[str], bytes]:
    """What gives a file's id: the repository's own chunker (loaded only when a file needs
    hashing: the chunker's libraries cost a clean status more than it takes)."""
    from pathlib import Path

    from oxen.config import load_repo_config
    from oxen.worktree.chunking import Chunker

    return Chunker(load_repo_config(Path(oxen_dir)).chunking).file_id_of


def _describe_head(conn, value: bytes | None) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    text = value.decode()
    if text.startswith("ref: "):
        ref = text[5:]
        row = conn.execute("SELECT commit_id FROM refs WHERE name = ?", (ref,)).fetchone()
        return branch_of(ref), row[0].hex() if row else None
    return None, text
