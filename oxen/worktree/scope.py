"""What a partial clone holds: the folders whose files its working tree keeps, and the
commits where its history stops.

A clone of the whole tip (the default, and ``--all``) holds every path.  ``--subtree``
holds the files below the folders it names, ``--no-data`` none; ``fetch-data`` widens
the scope and ``drop-data`` narrows it.  Every change of the working tree writes only the
paths in scope, and HEAD's file table lists only those, so ``status`` and ``add`` see
the files that are here and never call the others deleted.  A commit applies the
staging area to HEAD's whole tree, so paths outside the scope keep their ids.

Kept in the database's state table (key ``PARTIAL``, JSON), absent for a whole clone.
Plain class, no dataclasses: ``status`` reads it and keeps its imports few.
"""

from __future__ import annotations

from collections.abc import Iterable

PARTIAL_KEY = "PARTIAL"


class Partial:
    __slots__ = ("all_trees", "paths", "shallow")

    def __init__(
        self,
        paths: tuple[str, ...] | None = None,
        shallow: Iterable[bytes] = (),
        all_trees: bool = True,
    ) -> None:
        # None: every path; (): no file data; else the folders (or files) held
        self.paths = paths
        # commits whose parents this clone does not hold (a ``--depth`` clone's boundary)
        self.shallow = frozenset(shallow)
        # whether fetches bring every tree (--no-data) or only those in scope (--subtree)
        self.all_trees = all_trees or paths is None

    def _key(self) -> tuple:
        return (self.paths, self.shallow, self.all_trees)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Partial) and self._key() == other._key()

    def but(self, **changes: object) -> Partial:
        """A copy with some fields changed."""
        fields = {"paths": self.paths, "shallow": self.shallow, "all_trees": self.all_trees}
        return Partial(**{**fields, **changes})  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"Partial(paths={self.paths!r}, shallow={len(self.shallow)} commits)"

    @property
    def is_partial(self) -> bool:
        return self.paths is not None or bool(self.shallow)

    def holds(self, path: str) -> bool:
        """Whether the file at ``path`` is in scope."""
        if self.paths is None:
            return True
        return any(path == p or path.startswith(p + "/") for p in self.paths)

    def reaches(self, folder: str) -> bool:
        """Whether anything in scope is at or below ``folder`` ('' or 'a/b/' style), or
        ``folder`` is below something in scope: a tree walk must descend into it."""
        if self.paths is None:
            return True
        d = folder.rstrip("/")
        return any(
            not d or p == d or p.startswith(d + "/") or d.startswith(p + "/") for p in self.paths
        )

    def widened(self, paths: Iterable[str]) -> Partial:
        """This scope with ``paths`` added (those already held change nothing)."""
        if self.paths is None:
            return self
        kept = list(self.paths)
        for path in paths:
            path = path.strip("/")
            if not path:
                return self.but(paths=None)
            if self.holds(path):
                continue
            kept = [p for p in kept if not p.startswith(path + "/")] + [path]
        return self.but(paths=tuple(sorted(kept)))

    def narrowed(self, paths: Iterable[str]) -> Partial:
        """This scope without ``paths``: each must be held as listed or below a listed
        folder that is itself dropped (a folder above one is split first, by the verb
        that knows the tree: :func:`oxen.verbs.partial.drop_data`)."""
        drop = [p.strip("/") for p in paths]
        kept = self.paths if self.paths is not None else ("",)
        out = [p for p in kept if not any(p == d or p.startswith(d + "/") or not d for d in drop)]
        return self.but(paths=tuple(sorted(out)))

    def describe(self) -> str | None:
        """One line for ``status`` (None for a clone of everything)."""
        parts = []
        if self.paths is not None:
            if not self.paths:
                parts.append("no file data (oxen fetch-data PATH brings a folder's)")
            else:
                shown = ", ".join(self.paths[:5])
                more = f" and {len(self.paths) - 5} more" if len(self.paths) > 5 else ""
                parts.append(f"the data of {shown}{more} only (oxen fetch-data PATH for more)")
        if self.shallow:
            parts.append("history back to the clone's depth")
        return ("Partial clone: holds " + "; ".join(parts)) if parts else None

    def encode(self) -> bytes:
        import json

        paths = None if self.paths is None else list(self.paths)
        shallow = sorted(c.hex() for c in self.shallow)
        record = {"paths": paths, "shallow": shallow, "all_trees": self.all_trees}
        return json.dumps(record).encode()

    @classmethod
    def decode(cls, value: bytes | None) -> Partial:
        if value is None:
            return cls()
        import json

        data = json.loads(value)
        paths = data.get("paths")
        shallow = (bytes.fromhex(c) for c in data.get("shallow") or ())
        return cls(
            None if paths is None else tuple(paths), shallow, bool(data.get("all_trees", True))
        )


WHOLE = Partial()
