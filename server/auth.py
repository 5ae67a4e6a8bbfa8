"""Bearer tokens. The store keeps only a SHA-256 of each token, never the token itself,
under ``server/tokens/<sha256>.json``, so every server on a bucket knows every user.

A server keeps each grant it has read for ``recheck`` seconds (``TOKEN_RECHECK_SECONDS``)
before reading it from the store again: a request with a fresh entry reads nothing, and a
token revoked (its grant deleted) through any server or ``oxen-server revoke-token``
stops working on every server on the store within that time.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, Field, model_validator

from oxen.storage import Store

TOKEN_PREFIX = "server/tokens/"
# Seconds a server trusts a grant it has read before reading it again: the longest a
# revoked token keeps working on a server that saw it just before the revocation.
TOKEN_RECHECK_SECONDS = 5.0
# Hex digits of a grant's SHA-256 that name it in listings and revocations.
ID_LENGTH = 12


class Role(StrEnum):
    """What a token may do in its namespaces, each role including the ones before it."""

    READER = "reader"  # list, read refs, fetch
    WRITER = "writer"  # also create repositories, push, delete branches
    ADMIN = "admin"  # also delete repositories

    def includes(self, other: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(other)


_ACTION = {Role.READER: "read", Role.WRITER: "write to", Role.ADMIN: "administer"}


class TokenGrant(BaseModel):
    email: str
    name: str
    namespaces: list[str] = Field(default_factory=lambda: ["*"])
    role: Role = Role.WRITER
    # Grants stored before roles existed have only this; it is still written (true for a
    # reader) so that a server of that time sharing the store never lets a reader write.
    read_only: bool = False
    created: int | None = None  # epoch seconds
    expires: int | None = None  # epoch seconds; None: never

    @model_validator(mode="before")
    @classmethod
    def _role_of_old_grants(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("role") is None:
            data = {**data, "role": Role.READER if data.get("read_only") else Role.WRITER}
        return data

    @model_validator(mode="after")
    def _read_only_follows_role(self) -> TokenGrant:
        self.read_only = self.role is Role.READER
        return self

    @property
    def every_namespace(self) -> bool:
        return "*" in self.namespaces

    def allows(self, namespace: str, role: Role) -> bool:
        return self.role.includes(role) and (self.every_namespace or namespace in self.namespaces)

    def refusal(self, namespace: str, role: Role) -> str:
        """Why ``allows(namespace, role)`` is false, for the 403."""
        message = f"this token may not {_ACTION[role]} namespace {namespace}"
        if self.every_namespace or namespace in self.namespaces:
            message += f": it is a {self.role}, this needs {role}"
        return message

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_key(token: str) -> str:
    return f"{TOKEN_PREFIX}{token_digest(token)}.json"


def format_time(epoch: float | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def parse_duration(text: str) -> int:
    """Seconds in ``30d``, ``12h``, ``45m``, ``90s`` or ``2w``."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text.lower())
    if not match or int(match[1]) == 0:
        raise ValueError(f"not a duration: {text!r} (say 30d, 12h, 45m, 90s or 2w)")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[match[2]]
    return int(match[1]) * unit


class TokenStore:
    """Grants in the store, with a per-process cache re-validated every ``recheck`` seconds
    of ``clock`` (monotonic; injected by tests)."""

    def __init__(
        self,
        store: Store,
        recheck: float = TOKEN_RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.recheck = recheck
        self.clock = clock
        self._cache: dict[str, tuple[TokenGrant, float]] = {}  # digest -> grant, read at

    async def issue(self, grant: TokenGrant) -> str:
        token = "oxn_" + secrets.token_urlsafe(32)
        await self.store.put(token_key(token), grant.model_dump_json().encode())
        return token

    async def lookup(self, token: str) -> TokenGrant | None:
        if not token or len(token) > 200 or not token.isascii():
            return None  # tokens are URL-safe base64; anything else is no token of ours
        digest = token_digest(token)
        now = self.clock()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[1] < self.recheck:
            return cached[0]
        raw = await self.store.get(f"{TOKEN_PREFIX}{digest}.json")
        if raw is None:
            self._cache.pop(digest, None)
            return None
        grant = TokenGrant.model_validate_json(raw)
        self._cache[digest] = (grant, now)
        return grant

    async def grants(self) -> list[tuple[str, TokenGrant]]:
        """Every stored grant with its digest, oldest first."""
        out = []
        async for key in self.store.list(TOKEN_PREFIX):
            digest = key.removeprefix(TOKEN_PREFIX).removesuffix(".json")
            raw = await self.store.get(key)
            if raw is not None:  # None: revoked while we listed
                out.append((digest, TokenGrant.model_validate_json(raw)))
        return sorted(out, key=lambda g: (g[1].created or 0, g[0]))

    async def revoke(self, digest: str) -> None:
        await self.store.delete(f"{TOKEN_PREFIX}{digest}.json")
        self._cache.pop(digest, None)


T = TypeVar("T")
ROLE_ATTRIBUTE = "oxen_required_role"


def needs(role: Role) -> Callable[[T], T]:
    """Mark a route handler with the role a token needs in the route's namespace."""

    def mark(handler: T) -> T:
        setattr(handler, ROLE_ATTRIBUTE, role)
        return handler

    return mark


def required_role(handler: object) -> Role:
    """The role a handler was marked with; an unmarked one needs the most (fails closed)."""
    return getattr(handler, ROLE_ATTRIBUTE, Role.ADMIN)
