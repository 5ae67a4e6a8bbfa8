"""Commands that talk to a remote: create-remote, remote, download, ls, push, pull, fetch,
clone.

Each calls one verb of :mod:`oxen.sync` over a connection from :mod:`oxen.sync.remotes`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from oxen.cli.output import human_size
from oxen.cli.progress import bar
from oxen.core.repository import Repository
from oxen.errors import OxenError
from oxen.sync import data, remotes
from oxen.sync.clone import CloneMode
from oxen.sync.clone import clone as clone_repo
from oxen.sync.download import download as download_file
from oxen.sync.fetch import fetch as fetch_repo
from oxen.sync.fetch import pull as pull_repo
from oxen.sync.listing import Listing, list_tree
from oxen.sync.on_demand import remote_name_of
from oxen.sync.protocol import RemoteURL
from oxen.sync.push import branch_to_push, delete_remote_branch
from oxen.sync.push import push as push_repo


def create_remote(args: argparse.Namespace) -> int:
    namespace, sep, name = args.name.partition("/")
    if not sep:
        raise OxenError("--name must be NAMESPACE/NAME")
    url = asyncio.run(remotes.create_remote(f"{args.scheme}://{args.host}/{namespace}/{name}"))
    print(f"created {url}")
    print(f"add it to a repository with: oxen remote add origin {url}")
    return 0


def set_remote(name: str, url: str) -> None:
    async def go() -> None:
        async with await Repository.open() as repo:
            await remotes.set_remote(repo, name, url)

    asyncio.run(go())


def remote(args: argparse.Namespace) -> int:
    async def go() -> dict[str, str]:
        async with await Repository.open() as repo:
            return dict(repo.config.remotes)

    for name, url in sorted(asyncio.run(go()).items()):
        print(f"{name}\t{url}" if args.verbose else name)
    return 0


def remote_add(args: argparse.Namespace) -> int:
    async def go() -> None:
        async with await Repository.open() as repo:
            await remotes.add_remote(repo, args.name, args.url)

    asyncio.run(go())
    return 0


def remote_remove(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with await Repository.open() as repo:
            return await remotes.remove_remote(repo, args.name)

    dropped = asyncio.run(go())
    print(f"removed remote {args.name} and its {dropped} remote-tracking branch(es)")
    return 0


def remote_rename(args: argparse.Namespace) -> int:
    async def go() -> int:
        async with await Repository.open() as repo:
            return await remotes.rename_remote(repo, args.old, args.new)

    moved = asyncio.run(go())
    print(f"renamed remote {args.old} to {args.new} ({moved} remote-tracking branch(es) moved)")
    return 0


def download(args: argparse.Namespace) -> int:
    url = RemoteURL.parse(args.url)

    async def go() -> str:
        async with remotes.connect(url, jobs=1) as client:
            r = await download_file(client, args.path, args.rev, args.out, args.force, bar)
        return f"wrote {r.out}: {r.path} at {r.commit.hex()[:10]}, {human_size(r.size)}"

    print(asyncio.run(go()))
    return 0


def ls(args: argparse.Namespace) -> int:
    url = RemoteURL.parse(args.url)
    if args.limit is not None and args.limit < 1:
        raise OxenError("--limit must be 1 or more")

    async def go() -> Listing:
        async with remotes.connect(url, jobs=1) as client:
            return await list_tree(client, args.path, args.rev, args.limit)

    found = asyncio.run(go())
    if args.json:
        print(json.dumps(found.as_dict(), indent=2))
    elif args.long:
        for e in found.entries:
            print(_long_line(e))
    else:
        for e in found.entries:
            print(e["name"] + ("/" if e["type"] == "dir" else ""))
    if len(found.entries) < found.total and not args.json:
        more = found.total - len(found.entries)
        print(f"({more} more: a larger --limit lists them)", file=sys.stderr)
    return 0


def _long_line(e: dict[str, Any]) -> str:
    """``dir  1.2 MiB  <id>  201 files  many/`` or ``file  ...  parquet, 3 rows  t.parquet``."""
    if e["type"] == "dir":
        what, name = f"{e.get('count', 0)} files", e["name"] + "/"
    else:
        what, name = "", e["name"]
        if "format" in e:
            rows = e.get("rows")
            what = e["format"] + (f", {rows} rows" if rows is not None else "")
    return f"{e['type']:<4} {human_size(e['size']):>10}  {str(e.get('id', ''))[:10]:<10}  {what:<20} {name}"


def push(args: argparse.Namespace) -> int:
    async def go() -> str:
        async with await Repository.open() as repo:
            if args.delete and not args.branch:  # never the current branch by default
                raise OxenError("push -d needs the branch to delete: oxen push origin -d BRANCH")
            url = remotes.remote_url(repo, args.remote)
            branch = await branch_to_push(repo, args.branch)
            async with remotes.connect(url, args.jobs) as client:
                if args.delete:
                    await delete_remote_branch(repo, client, branch, args.remote)
                    return f"deleted {branch} on {url}"
                r = await push_repo(
                    repo, client, args.remote, branch, args.jobs, bar, merge=not args.no_merge
                )
            if r.up_to_date:
                return "Everything up-to-date"
            old = r.old.hex()[:10] if r.old else "(new branch)"
            lines = [
                f"{url} {branch}: {old} -> {r.new.hex()[:10]}",
                f"{r.commits} commits, {r.nodes} nodes, {r.chunks} chunks in {r.packs} packs; "
                f"sent {r.bytes_sent} bytes ({human_size(r.bytes_sent)})",
            ]
            if r.merged is not None:
                n = len(r.merged.taken)
                lines.insert(
                    1,
                    f"the remote's {branch} had moved on: pushed a merge with its "
                    f"{n} changed path{'s' if n != 1 else ''} (no file data fetched); "
                    f"your {branch} stays at {(await repo.refs.get(branch) or b'').hex()[:10]}: "
                    f"oxen pull brings the merge and their files",
                )
            return "\n".join(lines)

    print(asyncio.run(go()))
    return 0


def fetch(args: argparse.Namespace) -> int:
    async def go() -> str:
        async with await Repository.open() as repo:
            url = remotes.remote_url(repo, args.remote)
            async with remotes.connect(url, args.jobs, operation="fetch") as client:
                r = await fetch_repo(
                    repo, client, args.remote, args.branch, args.all, args.jobs, bar
                )
        names = ", ".join(f"{args.remote}/{b}" for b in sorted(r.branches))
        return f"fetched {names}: {r.nodes} nodes, {r.chunks} chunks; received {r.bytes_received} bytes ({human_size(r.bytes_received)})"

    print(asyncio.run(go()))
    return 0


def pull(args: argparse.Namespace) -> int:
    async def go() -> str:
        async with await Repository.open() as repo:
            url = remotes.remote_url(repo, args.remote)
            async with remotes.connect(url, args.jobs, operation="pull") as client:
                fetched, merged = await pull_repo(
                    repo, client, args.remote, args.branch, args.jobs, bar
                )
        what = {
            "up-to-date": "Already up to date.",
            "fast-forward": "Fast-forward",
            "merged": "Merge made",
        }[merged.kind]
        return f"{what} (received {fetched.bytes_received} bytes, {human_size(fetched.bytes_received)})"

    print(asyncio.run(go()))
    return 0


def clone(args: argparse.Namespace) -> int:
    url = RemoteURL.parse(args.url)
    dest = Path(args.dir or url.name).absolute()

    async def go() -> str:
        async with remotes.connect(url, args.jobs, operation="clone") as client:
            repo, r = await clone_repo(str(url), dest, client, args.branch, mode, args.jobs, bar)
            held = (await repo.partial()).describe()
            await repo.close()
        line = f"cloned {url} into {dest}: received {r.bytes_received} bytes ({human_size(r.bytes_received)})"
        return line + (f"\n{held}" if held else "")

    mode = CloneMode(
        all_data=args.all,
        depth=args.depth,
        subtrees=tuple(args.subtree),
        no_data=args.no_data,
    )

    print(asyncio.run(go()))
    return 0


def fetch_data(args: argparse.Namespace) -> int:
    async def go() -> str:
        async with await Repository.open() as repo:
            paths = [repo.repo_path(p) for p in args.paths]
            url = remotes.remote_url(repo, remote_name_of(repo) or "origin")
            async with remotes.connect(url, args.jobs) as client:
                r = await data.fetch_data(
                    repo, client, paths, args.rev, args.all_history, args.jobs, bar
                )
        wrote = f", wrote {r.files} file(s)" if r.files else ""
        return f"fetched {r.chunks} chunk(s), {human_size(r.bytes)}{wrote}"

    print(asyncio.run(go()))
    return 0


def drop_data(args: argparse.Namespace) -> int:
    async def go() -> str:
        async with await Repository.open() as repo:
            url = remotes.remote_url(repo, remote_name_of(repo) or "origin")
            async with remotes.connect(url) as client:
                r = await data.drop_data(repo, client, args.paths)
        return (
            f"dropped {r.files} file(s); freed {human_size(r.bytes)} the remote holds "
            "(oxen fetch-data brings them back)"
        )

    print(asyncio.run(go()))
    return 0
