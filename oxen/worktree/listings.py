"""Directory listings remembered between ``status`` runs (git's "untracked cache").

A directory's mtime changes whenever an entry is created, removed or renamed in it, so a
listing read earlier is still exact while the directory's mtime, ctime and inode are
unchanged (the ctime catches an mtime put back by hand or by an archiver): an unchanged
tree is then walked with one lstat per directory and no directory reads. A listing is
kept only if those times are strictly older than the filesystem clock read before it was
listed, so a change in the same timestamp tick is never missed.
The file (``.oxen/status-dirs``, marshal) is a cache: unreadable means empty.
"""

from __future__ import annotations

import marshal
import os

CACHE_NAME = "status-dirs"
FORMAT = 3  # 3: listings leave out .oxen at every depth


class Listings:
    """The listings of one walk of the tree, or of the part below ``prefix``."""

    def __init__(self, oxen_dir: str, clock: int, prefix: str = "") -> None:
        self.path = os.path.join(oxen_dir, CACHE_NAME)
        self.clock = clock
        self.scope = prefix + "/" if prefix else ""  # the directories this walk visits
        self.old = _load(self.path)
        self.new: dict[str, tuple] = {}
        self.reread = 0  # directories whose listing had to be read

    def get(self, path: str, rel: str) -> tuple[list[str], list[str]] | None:
        """The cached (files, subdirectories) of ``path`` if it is unchanged, else None."""
        try:
            st = os.lstat(path)
        except OSError:
            return None
        key = (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        entry = self.old.get(rel)
        if entry is not None and entry[0] == key:
            self.new[rel] = entry
            return entry[1], entry[2]
        self.reread += 1
        if max(st.st_mtime_ns, st.st_ctime_ns) < self.clock:
            self.new[rel] = (key, None, None)  # filled in by put()
        return None

    def put(self, rel: str, files: list[str], dirs: list[str]) -> None:
        entry = self.new.get(rel)
        if entry is not None and entry[1] is None:
            self.new[rel] = (entry[0], files, dirs)

    def save(self) -> None:
        """Write the listings back if any was re-read or a directory is gone; those outside
        the walked part are kept as they were."""
        gone = any(rel.startswith(self.scope) and rel not in self.new for rel in self.old)
        if not self.reread and not gone:
            return
        kept = {rel: e for rel, e in self.old.items() if not rel.startswith(self.scope)}
        kept.update((rel, e) for rel, e in self.new.items() if e[1] is not None)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(marshal.dumps((FORMAT, kept)))
            os.replace(tmp, self.path)
        except OSError:  # a cache: failing to write it only costs the next run time
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _load(path: str) -> dict[str, tuple]:
    try:
        with open(path, "rb") as f:
            version, entries = marshal.loads(f.read())
    except Exception:  # missing, torn or foreign: start afresh
        return {}
    return entries if version == FORMAT and isinstance(entries, dict) else {}
