"""``oxen-server add-user``, ``list-tokens``, ``revoke-token``: tokens, straight on the
store (no server needs to run). A token is named by the first hex digits of its SHA-256
(its id); the token itself is shown once, when it is created, and never stored."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import tomli_w

from oxen.config import write_private
from oxen.errors import InvalidInput
from oxen.server.auth import (
    ID_LENGTH,
    TOKEN_RECHECK_SECONDS,
    Role,
    TokenGrant,
    TokenStore,
    format_time,
    parse_duration,
    token_digest,
)
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
    created = int(time.time())
    try:
        expires = created + parse_duration(args.expires) if args.expires else None
    except ValueError as e:
        raise InvalidInput(f"--expires: {e}") from None
    grant = TokenGrant(
        email=args.email,
        name=args.name,
        namespaces=args.namespace or ["*"],
        role=_role(args),
        created=created,
        expires=expires,
    )
    token = _on_store(settings, lambda tokens: tokens.issue(grant))
    out = Path(args.output)
    user = {"user": {"name": args.name, "email": args.email}, "auth": {"token": token}}
    write_private(out, tomli_w.dumps(user))
    until = f", expires {format_time(expires)}" if expires else ""
    print(f"token for {args.email} ({grant.role}{until}) written to {out}")
    if grant.every_namespace:
        print(
            f"note: this token may {'read' if grant.read_only else 'write to'} every namespace;"
            " give --namespace NS (repeatable) to limit it"
        )
    print(f"the user runs: oxen config --auth HOST:PORT {token}")
    return 0


def _row(digest: str, grant: TokenGrant, now: float) -> list[str]:
    expires = format_time(grant.expires)
    if grant.expired(now):
        expires += " (expired)"
    return [
        digest[:ID_LENGTH],
        grant.name,
        grant.email,
        grant.role.value,
        ",".join(grant.namespaces),
        format_time(grant.created),
        expires,
    ]


def list_tokens(args: argparse.Namespace, settings: Settings) -> int:
    grants = _on_store(settings, lambda tokens: tokens.grants())
    now = time.time()
    rows = [["ID", "NAME", "EMAIL", "ROLE", "NAMESPACES", "CREATED", "EXPIRES"]]
    rows += [_row(digest, grant, now) for digest, grant in grants]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _chosen(grants: list[tuple[str, TokenGrant]], args: argparse.Namespace) -> list[str]:
    """The digests ``revoke-token`` means: those whose id starts with the one given (or of
    the token itself, if that is what was pasted) and, with ``--email``, of that user."""
    given = (args.id or "").strip().lower()
    if given.startswith("oxn_"):
        given = token_digest(args.id.strip())
    if given and not all(c in "0123456789abcdef" for c in given):
        raise InvalidInput(f"not a token id: {args.id!r} (see oxen-server list-tokens)")
    chosen = [
        digest
        for digest, grant in grants
        if digest.startswith(given) and (args.email is None or grant.email == args.email)
    ]
    if not chosen:
        raise InvalidInput("no token matches (see oxen-server list-tokens)")
    if args.email is None and len(chosen) > 1:
        ids = ", ".join(d[:ID_LENGTH] for d in chosen)
        raise InvalidInput(f"{given!r} is the start of {len(chosen)} token ids ({ids}): give more")
    return chosen


def revoke_token(args: argparse.Namespace, settings: Settings) -> int:
    if not args.id and not args.email:
        raise InvalidInput("name the token: its id (or a prefix of it) or --email")

    async def revoke(tokens: TokenStore) -> list[tuple[str, TokenGrant]]:
        grants = await tokens.grants()
        chosen = _chosen(grants, args)
        for digest in chosen:
            await tokens.revoke(digest)
        return [(d, g) for d, g in grants if d in chosen]

    for digest, grant in _on_store(settings, revoke):
        print(f"revoked {digest[:ID_LENGTH]} ({grant.name} <{grant.email}>, {grant.role})")
    print(
        "every server on this store refuses it within its --token-recheck time"
        f" ({TOKEN_RECHECK_SECONDS:g} s unless set)"
    )
    return 0
