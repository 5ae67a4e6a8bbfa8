"""Handlers of the local commands of history and branches: log, branch, checkout, merge, diff. Each calls one verb and prints.

The handlers are split by the verbs they load (a command imports only its own module, see
``cli/main.py``), and they open a :class:`Repository` and call the verb modules directly:
the ``oxen.AsyncRepo`` facade would also load the network stack, which no local command
needs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from oxen.cli.output import human_size
from oxen.cli.progress import bar
from oxen.cli.running import with_repo
from oxen.core.repository import Repository
from oxen.errors import MergeConflict, OxenError
from oxen.verbs import branches
from oxen.verbs import checkout as checkout_verb
from oxen.verbs import diff as diff_verb
from oxen.verbs import merge as merge_verb
from oxen.worktree.tabular import format_of


def commit_date(timestamp: int, tz_offset: int) -> str:
    """A commit's date as git prints it; one past what this platform's calendar holds (any
    64-bit number decodes) as ``@seconds``."""
    sign = "+" if tz_offset >= 0 else "-"
    tz = f"{sign}{abs(tz_offset) // 60:02d}{abs(tz_offset) % 60:02d}"
    try:
        when = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(timestamp + tz_offset * 60))
    except (OverflowError, OSError, ValueError):
        when = f"@{timestamp}"
    return f"{when} {tz}"


def log(args: argparse.Namespace) -> int:
    commits = with_repo(lambda r: branches.log(r, args.ref, args.limit))
    if not commits and args.ref is None:
        print("no commits yet: oxen add, then oxen commit", file=sys.stderr)
    for c in commits:
        if args.oneline:
            print(f"{c.id.hex()[:10]} {c.message.splitlines()[0] if c.message else ''}")
            continue
        print(f"commit {c.id.hex()}")
        if len(c.parents) > 1:
            print("Merge: " + " ".join(p.hex()[:10] for p in c.parents))
        print(f"Author: {c.author} <{c.email}>")
        print(f"Date:   {commit_date(c.timestamp, c.tz_offset)}\n")
        for line in c.message.splitlines():
            print(f"    {line}")
        print()
    if commits and commits[-1].parents and (args.limit is None or len(commits) < args.limit):
        print("(older history is on the remote: this clone was made with --depth)", file=sys.stderr)
    return 0


def branch(args: argparse.Namespace) -> int:
    async def go(repo: Repository) -> None:
        current = (await repo.head()).branch
        if args.show_current:
            if current:
                print(current)
            return
        if args.delete or args.force_delete:
            if not args.name:
                raise OxenError("branch -d needs a branch name")
            await branches.delete_branch(repo, args.name, force=args.force_delete)
            print(f"Deleted branch {args.name}")
            return
        if args.name:
            await branches.create_branch(repo, args.name, args.start)
            return
        local = {} if args.remotes else await branches.branches(repo)
        remote = await branches.remote_branches(repo) if args.remotes or args.all else {}
        for name in sorted(local):
            print(("* " if name == current else "  ") + name)
        for name in sorted(remote):
            print(("  remotes/" if args.all else "  ") + name)
        if not local and not remote:
            print(
                "no remote-tracking branches (oxen fetch gets them)"
                if args.remotes
                else f"no branches yet: the first commit creates {current or 'main'}"
            )

    with_repo(go)
    return 0


def checkout(args: argparse.Namespace) -> int:
    async def go(repo: Repository) -> tuple[str | None, bytes | None] | None:
        if not args.create and args.target == (await repo.head()).branch:
            return None  # nothing to switch
        return await checkout_verb.checkout(repo, args.target, args.create, bar)

    switched = with_repo(go)
    if switched is None:
        print(f"Already on '{args.target}'")
        return 0
    new_branch, cid = switched
    if new_branch:
        print(f"Switched to {'a new ' if args.create else ''}branch '{new_branch}'")
    else:
        print(f"HEAD is now at {cid.hex()[:10] if cid else '?'} (detached)")
    return 0


def switch(args: argparse.Namespace) -> int:
    """``checkout`` for branches: a commit only with ``--detach``, as git's switch."""

    async def is_branch(repo: Repository) -> bool:
        if await repo.refs.get(args.target) is not None:
            return True
        return any([await repo.refs.remote(r, args.target) for r in repo.config.remotes])

    if not args.create and not args.detach and not with_repo(is_branch):
        raise OxenError(f"no branch {args.target!r} (a commit: oxen switch --detach REV)")
    return checkout(args)


def merge(args: argparse.Namespace) -> int:
    if args.abort:
        with_repo(merge_verb.merge_abort)
        print("merge aborted")
        return 0
    if not args.branch:
        raise OxenError("merge needs a branch (or --abort)")
    try:
        result = with_repo(lambda r: merge_verb.merge(r, args.branch, bar))
    except MergeConflict as e:
        print(f"CONFLICT: {e}", file=sys.stderr)
        for p in e.paths:
            print(f"  both changed: {p}", file=sys.stderr)
        print(
            "our version is kept at each path and theirs beside it as <path>.theirs; "
            "fix, oxen add, oxen commit (or oxen merge --abort)",
            file=sys.stderr,
        )
        return 1
    if result.kind == "up-to-date":
        print("Already up to date.")
    elif result.kind == "fast-forward":
        print(f"Fast-forward to {result.commit.hex()[:10] if result.commit else ''}")
    else:
        print(f"Merge made: {result.commit.hex()[:10] if result.commit else ''}")
    return 0


def diff(args: argparse.Namespace) -> int:
    if args.refs and format_of(args.refs[-1]) is not None:
        from oxen.cli.dataframe_commands import table_diff

        return table_diff(args)
    if args.keys or args.compare or args.output:
        raise OxenError("--keys, --compare and --output are for a tabular file: diff [REV] FILE")
    if len(args.refs) > 2:
        raise OxenError("diff takes at most two revisions")
    a = args.refs[0] if args.refs else None
    b = args.refs[1] if len(args.refs) > 1 else None
    entries = with_repo(lambda r: diff_verb.diff(r, a, b))
    if args.json:
        print(json.dumps([dataclasses.asdict(e) for e in entries], indent=2))
        return 0
    letters = {"added": "A", "modified": "M", "removed": "D"}
    for e in entries:
        if e.change == "modified":
            sizes = f"{human_size(e.old_size)} -> {human_size(e.new_size)}"
        else:
            sizes = human_size(e.new_size if e.change == "added" else e.old_size)
        print(f"{letters[e.change]}  {e.path}  ({sizes})")
        if e.schema is not None and (described := e.schema.describe()):
            print(f"     {described}")
    counts = {k: sum(1 for e in entries if e.change == k) for k in letters}
    print(f"{counts['added']} added, {counts['modified']} modified, {counts['removed']} removed")
    return 0
