"""Handlers of the local commands that change the index: init, config, add, rm, restore, commit. Each calls one verb and prints.

The handlers are split by the verbs they load (a command imports only its own module, see
``cli/main.py``), and they open a :class:`Repository` and call the verb modules directly:
the ``oxen.AsyncRepo`` facade would also load the network stack, which no local command
needs.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from oxen.cli.output import human_size
from oxen.cli.progress import bar
from oxen.cli.running import with_repo
from oxen.config import UserConfig, load_user_config, save_auth_token, save_user_config
from oxen.core.repository import Repository
from oxen.errors import OxenError
from oxen.storage.registry import with_query
from oxen.verbs import commit as commit_verb
from oxen.verbs import staging


def init(args: argparse.Namespace) -> int:
    async def go() -> Path:
        storage = args.storage
        if args.s3_endpoint:
            if not storage or not storage.startswith("s3://"):
                raise OxenError("--s3-endpoint goes with --storage s3://BUCKET/PREFIX")
            storage = with_query(storage, endpoint_url=args.s3_endpoint)
        repo = await Repository.init(args.dir, storage)
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
