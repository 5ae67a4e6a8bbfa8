""".oxenignore: paths that ``status`` does not report as untracked and ``add`` leaves out.

Git's syntax and rules, in one file at the top of the working tree: ``#`` comments, ``!``
to re-include, a leading or inner ``/`` anchors a pattern to the top, a trailing ``/``
matches directories only, ``*`` ``?`` ``[...]`` do not cross ``/``, ``**`` does; the last
matching line wins, and nothing inside an ignored directory can be re-included. As in
git, ignoring concerns untracked paths only: a tracked file that matches stays tracked
(its changes are seen and added), and ``oxen add --force`` adds an ignored path. An
ignored directory is not walked at all, so a large cache folder costs nothing; tracked
files under it are still checked one by one.

Patterns become regular expressions here rather than through pathspec: importing that
costs ``status`` ~30 ms, a fifth of its budget, and it lets ``[!a]`` match "/" and
re-includes files inside ignored directories, where git does neither. The tests check
this module against git itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from oxen.errors import InvalidInput

IGNORE_FILE = ".oxenignore"


class Ignore:
    def __init__(self, lines: Iterable[str]) -> None:
        self.rules = [rule for rule in map(_parse, lines) if rule is not None]
        self.pruned: set[str] = set()  # ignored directories a walk skipped ("a/b/")
        self._dirs: dict[str, bool] = {}  # directory ("a/b") -> ignored, decided once

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> Ignore | None:
        """The rules of ``root/.oxenignore``, or None when there are none."""
        path = os.path.join(root, IGNORE_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise InvalidInput(f"cannot read {IGNORE_FILE}: {e}") from None
        ignore = cls(lines)
        return ignore if ignore.rules else None

    def _matches(self, path: str, is_dir: bool) -> bool:
        ignored = False
        for regex, negated, dir_only in self.rules:
            if ignored == negated and (is_dir or not dir_only) and regex.match(path):
                ignored = not negated
        return ignored

    def file(self, rel: str) -> bool:
        """Whether the path ``rel`` is ignored: itself (as a file, or as a directory when
        it ends in "/"), or any directory above it."""
        is_dir = rel.endswith("/")
        path = rel.rstrip("/")
        slash = path.find("/")
        while slash != -1:
            if self._dir(path[:slash]):
                return True
            slash = path.find("/", slash + 1)
        return self._matches(path, is_dir)

    def _dir(self, path: str) -> bool:
        """Whether the directory ``path`` itself matches (its parents aside), memoised:
        every file of a directory asks again."""
        ignored = self._dirs.get(path)
        if ignored is None:
            ignored = self._dirs[path] = self._matches(path, True)
        return ignored

    def prune(self, rel_dir: str) -> bool:
        """Whether a walk should skip the directory ``rel_dir`` ("a/b/"); remembers it.
        (The walk asks for each directory on its way down, so only the last part can
        newly match.)"""
        if self._dir(rel_dir.rstrip("/")):
            self.pruned.add(rel_dir)
            return True
        return False

    def under_pruned(self, paths: Iterable[str]) -> list[str]:
        """The ``paths`` that lie in a directory the walk skipped."""
        if not self.pruned:
            return []
        pruned = self.pruned
        out = []
        for path in paths:
            slash = path.find("/")
            while slash != -1:
                if path[: slash + 1] in pruned:
                    out.append(path)
                    break
                slash = path.find("/", slash + 1)
        return out


def _parse(line: str) -> tuple[re.Pattern[str], bool, bool] | None:
    """(regex over a repository path, negated, directories only), or None for no rule."""
    if line.startswith("#"):
        return None
    end = len(line)  # trailing spaces are dropped unless escaped with a backslash
    while end and line[end - 1] == " " and not (end >= 2 and line[end - 2] == "\\"):
        end -= 1
    line = line[:end]
    negated = line.startswith("!")
    if negated or line.startswith("\\!") or line.startswith("\\#"):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.removeprefix("/")
    body = _translate(line)
    prefix = "" if anchored else "(?:.*/)?"
    return re.compile(f"{prefix}{body}\\Z", re.DOTALL), negated, dir_only


def _translate(glob: str) -> str:
    parts = glob.split("/")
    out: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            if last:
                out.append(".*")  # "a/**": everything inside a/
            else:
                out.append("(?:.*/)?")  # "**/" and "/**/": zero or more directories
            continue
        out.append(_segment(part) + ("" if last else "/"))
    return "".join(out)


def _segment(part: str) -> str:
    """One path segment of a glob; ``*`` and ``?`` stop at "/"."""
    out: list[str] = []
    i, n = 0, len(part)
    while i < n:
        c = part[i]
        i += 1
        if c == "\\" and i < n:
            out.append(re.escape(part[i]))
            i += 1
        elif c == "*":
            while i < n and part[i] == "*":
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            first = i + 1 if i < n and part[i] in "!^" else i
            close = part.find("]", first + 1)  # a "]" right after "[" or "[!" is literal
            if close == -1:
                out.append("\\[")
                continue
            body = part[i:close]
            i = close + 1
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("(?!/)[" + body.replace("\\", "\\\\") + "]")
        else:
            out.append(re.escape(c))
    return "".join(out)
