"""Handlers of the local commands that need the async core. Each calls one verb and prints.

They open a :class:`Repository` and call the verb modules directly: the ``oxen.AsyncRepo``
facade would also load the network stack (aiohttp, 0.2 s), which no local command needs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from oxen.cli.output import human_size
from oxen.cli.progress import bar
from oxen.config import UserConfig, load_user_config, save_auth_token, save_user_config
from oxen.core.repository import Repository
from oxen.errors import MergeConflict, OxenError
from oxen.verbs import branches, inspection, staging
from oxen.verbs import checkout as checkout_verb
from oxen.verbs import commit as commit_verb
from oxen.verbs import diff as diff_verb
from oxen.verbs import merge as merge_verb

T = TypeVar("T")


def with_repo(verb: Callable[[Repository], Awaitable[T]]) -> T:
    async def go() -> T:
        async with await Repository.open() as repo:
            return await verb(repo)

    return asyncio.run(go())


def init(args: argparse.Namespace) -> int:
    async def go() -> Path:
        repo = await Repository.init(args.dir, args.storage)
        await repo.close()
        return repo.root

    root = asyncio.run(go())
    print(f"Initialized empty oxen repository in {root}")
    return 0


def config(args: argparse.Namespace) -> int:
    if args.set_remote:
        from oxen.cli.sync_commands import set_remote

        set_remote(*args.set_remote)
        return 0
    if args.auth:
        host, token = args.auth
        if not host or "/" in host or not token.strip():
            raise OxenError("--auth takes HOST[:PORT] and a token")
        save_auth_token(host, token.strip())
        return 0
    user = load_user_config()
    if args.name is None and args.email is None:
        print(f"name = {user.name or ''}\nemail = {user.email or ''}")
        return 0
    updated = UserConfig(
        name=args.name if args.name is not None else user.name,
        email=args.email if args.email is not None else user.email,
    )
    if updated.name is not None and not updated.name.strip():
        raise OxenError("name must not be empty")
    if updated.email is not None and "@" not in updated.email:
        raise OxenError(f"not an email address: {updated.email}")
    save_user_config(updated)
    return 0


def add(args: argparse.Namespace) -> int:
    result = with_repo(lambda r: staging.add(r, args.paths, bar, force=args.force))
    print(
        f"staged {result.staged} file(s), {result.removed} removal(s); "
        f"hashed {human_size(result.bytes_hashed)}, stored {human_size(result.bytes_stored)} new"
    )
    return 0


def rm(args: argparse.Namespace) -> int:
    removed = with_repo(lambda r: staging.rm(r, args.paths, args.recursive, args.staged))
    for p in removed[:20]:
        print(f"rm '{p}'")
    if len(removed) > 20:
        print(f"... and {len(removed) - 20} more")
    return 0


def restore(args: argparse.Namespace) -> int:
    with_repo(lambda r: staging.restore(r, args.paths, args.staged, args.source, bar))
    return 0


def commit(args: argparse.Namespace) -> int:
    async def go(repo: Repository) -> tuple[bytes, str | None]:
        cid = await commit_verb.commit(repo, args.message)
        return cid, (await repo.head()).branch

    cid, branch = with_repo(go)
    print(f"[{branch or 'detached HEAD'} {cid.hex()[:10]}] {args.message.splitlines()[0]}")
    return 0


def log(args: argparse.Namespace) -> int:
    commits = with_repo(lambda r: branches.log(r, args.ref, args.limit))
    for c in commits:
        if args.oneline:
            print(f"{c.id.hex()[:10]} {c.message.splitlines()[0] if c.message else ''}")
            continue
        when = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(c.timestamp + c.tz_offset * 60))
        sign = "+" if c.tz_offset >= 0 else "-"
        tz = f"{sign}{abs(c.tz_offset) // 60:02d}{abs(c.tz_offset) % 60:02d}"
        print(f"commit {c.id.hex()}")
        if len(c.parents) > 1:
            print("Merge: " + " ".join(p.hex()[:10] for p in c.parents))
        print(f"Author: {c.author} <{c.email}>")
        print(f"Date:   {when} {tz}\n")
        for line in c.message.splitlines():
            print(f"    {line}")
        print()
    return 0


def branch(args: argparse.Namespace) -> int:
    async def go(repo: Repository) -> None:
        current = (await repo.head()).branch
        if args.show_current:
            if current:
                print(current)
            return
        if args.delete:
            if not args.name:
                raise OxenError("branch -d needs a branch name")
            await branches.delete_branch(repo, args.name)
            print(f"Deleted branch {args.name}")
            return
        if args.name:
            await branches.create_branch(repo, args.name, args.start)
            return
        for name in sorted(await branches.branches(repo)):
            print(("* " if name == current else "  ") + name)

    with_repo(go)
    return 0


def checkout(args: argparse.Namespace) -> int:
    new_branch, cid = with_repo(lambda r: checkout_verb.checkout(r, args.target, args.create, bar))
    if new_branch:
        print(f"Switched to {'a new ' if args.create else ''}branch '{new_branch}'")
    else:
        print(f"HEAD is now at {cid.hex()[:10] if cid else '?'} (detached)")
    return 0


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
    if len(args.refs) > 2:
        raise OxenError("diff takes at most two revisions")
    a = args.refs[0] if args.refs else None
    b = args.refs[1] if len(args.refs) > 1 else None
    entries = with_repo(lambda r: diff_verb.diff(r, a, b))
    if args.json:
        print(json.dumps([e.__dict__ for e in entries], indent=2))
        return 0
    letters = {"added": "A", "modified": "M", "removed": "D"}
    for e in entries:
        if e.change == "modified":
            sizes = f"{human_size(e.old_size)} -> {human_size(e.new_size)}"
        else:
            sizes = human_size(e.new_size if e.change == "added" else e.old_size)
        print(f"{letters[e.change]}  {e.path}  ({sizes})")
    counts = {k: sum(1 for e in entries if e.change == k) for k in letters}
    print(f"{counts['added']} added, {counts['modified']} modified, {counts['removed']} removed")
    return 0


def info(args: argparse.Namespace) -> int:
    data = with_repo(lambda r: inspection.info(r, args.path, args.rev)).as_dict()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    width = max(len(k) for k in data)
    for key, value in data.items():
        shown = human_size(value) + f" ({value} bytes)" if key == "size" else value
        print(f"{key:<{width}}  {shown if shown is not None else '-'}")
    return 0


def tree(args: argparse.Namespace) -> int:
    rows = with_repo(lambda r: inspection.tree_rows(r, args.ref, args.files, args.depth))
    for row in rows:
        pad = "  " * row.depth
        if row.kind == "dir":
            print(f"{pad}{row.name}  dir {row.id.hex()}  {row.count} files, {human_size(row.size)}")
        elif row.kind == "vnode":
            print(f"{pad}vnode {row.id.hex()}  {row.count} entries")
        else:
            print(f"{pad}{row.name}  {row.id.hex()}  {human_size(row.size)}")
    return 0


def node(args: argparse.Namespace) -> int:
    print(json.dumps(with_repo(lambda r: inspection.node(r, args.id)).as_dict(), indent=2))
    return 0


def fsck(args: argparse.Namespace) -> int:
    report = with_repo(inspection.fsck)
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
    print(
        f"checked {report.packs} packs, {report.objects} objects ({human_size(report.bytes)}), "
        f"{report.commits} commits: {'ok' if not report.problems else f'{len(report.problems)} problem(s)'}"
    )
    return 1 if report.problems else 0
