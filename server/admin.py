"""``oxen-server add-user``: tokens, straight on the store (no server needs to run)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import tomli_w

from oxen.config import write_private
from oxen.errors import InvalidInput
from oxen.server.auth import Role, TokenGrant, TokenStore
from oxen.server.state import Settings
from oxen.storage import open_store

T = TypeVar("T")


def _on_store(settings: Settings, work: Callable[[TokenStore], Awaitable[T]]) -> T:
    async def go() -> T:
        store = open_store(settings.storage_url, **settings.store_options())
        try:
            return await work(TokenStore(store))
        finally:
            await store.close()

    return asyncio.run(go())


def _role(args: argparse.Namespace) -> Role:
    if args.read_only and args.role not in (None, Role.READER):
        raise InvalidInput(f"--read-only and --role {args.role} disagree")
    return Role.READER if args.read_only else Role(args.role or Role.WRITER)


def add_user(args: argparse.Namespace, settings: Settings) -> int:
    grant = TokenGrant(
        email=args.email, name=args.name, namespaces=args.namespace or ["*"], role=_role(args)
    )
    token = _on_store(settings, lambda tokens: tokens.issue(grant))
    out = Path(args.output)
    user = {"user": {"name": args.name, "email": args.email}, "auth": {"token": token}}
    write_private(out, tomli_w.dumps(user))
    print(f"token for {args.email} ({grant.role}) written to {out}")
    if grant.every_namespace:
        print(
            f"note: this token may {'read' if grant.read_only else 'write to'} every namespace;"
            " give --namespace NS (repeatable) to limit it"
        )
    print(f"the user runs: oxen config --auth HOST:PORT {token}")
    return 0
