"""Commands that talk to a remote: create-remote, remote, push, pull, fetch, clone."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from oxen.cli.output import human_size
from oxen.cli.progress import bar
from oxen.config import save_toml_model
from oxen.errors import OxenError
from oxen.repo import CONFIG_NAME, AsyncRepo
from oxen.sync.fetch import clone as clone_repo
from oxen.sync.fetch import fetch as fetch_repo
from oxen.sync.fetch import pull as pull_repo
from oxen.sync.http import HttpRemote
from oxen.sync.protocol import RemoteURL
from oxen.sync.push import push as push_repo


def _remote_url(repo: AsyncRepo, name: str) -> RemoteURL:
    url = repo.config.remotes.get(name)
    if url is None:
        raise OxenError(
            f"no remote named {name!r}: add one with oxen config --set-remote {name} URL"
        )
    return RemoteURL.parse(url)


def create_remote(args: argparse.Namespace) -> int:
    namespace, sep, name = args.name.partition("/")
    if not sep:
        raise OxenError("--name must be NAMESPACE/NAME")
    url = RemoteURL.parse(f"{args.scheme}://{args.host}/{namespace}/{name}")

    async def go() -> None:
        remote = HttpRemote(url)
        try:
            await remote.create()
        finally:
            await remote.close()

    asyncio.run(go())
    print(f"created {url}")
    print(f"add it to a repository with: oxen config --set-remote origin {url}")
    return 0


def set_remote(name: str, url: str) -> None:
    RemoteURL.parse(url)

    async def go() -> None:
        async with await AsyncRepo.open() as repo:
            repo.config.remotes[name] = url
            await asyncio.to_thread(save_toml_model, repo.oxen_dir / CONFIG_NAME, repo.config)

    asyncio.run(go())


def remote(args: argparse.Namespace) -> int:
    async def go() -> dict[str, str]:
        async with await AsyncRepo.open() as repo:
            return dict(repo.config.remotes)

    for name, url in sorted(asyncio.run(go()).items()):
        print(f"{name}\t{url}" if args.verbose else name)
    return 0


def push(args: argparse.Namespace) -> int:
    async def go() -> str:
        async with await AsyncRepo.open() as repo:
            url = _remote_url(repo, args.remote)
            branch = args.branch or (await repo.head())[0]
            if branch is None:
                raise OxenError("HEAD is detached: say which branch to push")
            client = HttpRemote(url, connections=max(4, args.jobs * 2))
            try:
                if args.delete:
                    old = (await client.refs()).get(branch)
                    if old is None:
                        raise OxenError(f"the remote has no branch {branch}")
                    await client.delete_ref(branch, old)
                    return f"deleted {branch} on {url}"
                r = await push_repo(repo, client, args.remote, branch, args.jobs, bar)
            finally:
                await client.close()
            if r.up_to_date:
                return "Everything up-to-date"
            old = r.old.hex()[:10] if r.old else "(new branch)"
            return (
                f"{url} {branch}: {old} -> {r.new.hex()[:10]}\n"
                f"{r.commits} commits, {r.nodes} nodes, {r.chunks} chunks in {r.packs} packs; "
                f"sent {r.bytes_sent} bytes ({human_size(r.bytes_sent)})"
            )

    print(asyncio.run(go()))
    return 0


def fetch(args: argparse.Namespace) -> int:
    async def go() -> str:
        async with await AsyncRepo.open() as repo:
            client = HttpRemote(_remote_url(repo, args.remote), connections=max(4, args.jobs * 2))
            try:
                r = await fetch_repo(
                    repo, client, args.remote, args.branch, args.all, args.jobs, bar
                )
            finally:
                await client.close()
        names = ", ".join(f"{args.remote}/{b}" for b in sorted(r.branches))
        return f"fetched {names}: {r.nodes} nodes, {r.chunks} chunks; received {r.bytes_received} bytes ({human_size(r.bytes_received)})"

    print(asyncio.run(go()))
    return 0


def pull(args: argparse.Namespace) -> int:
    async def go() -> str:
        async with await AsyncRepo.open() as repo:
            client = HttpRemote(_remote_url(repo, args.remote), connections=max(4, args.jobs * 2))
            try:
                fetched, merged = await pull_repo(
                    repo, client, args.remote, args.branch, args.jobs, bar
                )
            finally:
                await client.close()
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
        client = HttpRemote(url, connections=max(4, args.jobs * 2))
        try:
            repo, r = await clone_repo(
                str(url), dest, client, args.branch, args.all, args.jobs, bar
            )
            await repo.close()
        finally:
            await client.close()
        return f"cloned {url} into {dest}: received {r.bytes_received} bytes ({human_size(r.bytes_received)})"

    print(asyncio.run(go()))
    return 0
