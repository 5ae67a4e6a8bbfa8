"""Bearer tokens. The store keeps only a SHA-256 of each token, never the token itself,
under ``server/tokens/<sha256>.json``, so every server on a bucket knows every user."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, Field, model_validator

from oxen.storage import Store


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


def token_key(token: str) -> str:
    return f"server/tokens/{hashlib.sha256(token.encode()).hexdigest()}.json"


class TokenStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, TokenGrant] = {}

    async def issue(self, grant: TokenGrant) -> str:
        token = "oxn_" + secrets.token_urlsafe(32)
        await self.store.put(token_key(token), grant.model_dump_json().encode())
        return token

    async def lookup(self, token: str) -> TokenGrant | None:
        if not token or len(token) > 200 or not token.isascii():
            return None  # tokens are URL-safe base64; anything else is no token of ours
        key = token_key(token)
        if key in self._cache:
            return self._cache[key]
        raw = await self.store.get(key)
        if raw is None:
            return None
        grant = TokenGrant.model_validate(json.loads(raw))
        self._cache[key] = grant
        return grant


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
