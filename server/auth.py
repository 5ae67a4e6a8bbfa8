"""Bearer tokens. The store keeps only a SHA-256 of each token, never the token itself,
under ``server/tokens/<sha256>.json``, so every server on a bucket knows every user."""

from __future__ import annotations

import hashlib
import json
import secrets

from pydantic import BaseModel, Field

from oxen.storage import Store


class TokenGrant(BaseModel):
    email: str
    name: str
    namespaces: list[str] = Field(default_factory=lambda: ["*"])
    read_only: bool = False

    def can_read(self, namespace: str) -> bool:
        return "*" in self.namespaces or namespace in self.namespaces

    def can_write(self, namespace: str) -> bool:
        return not self.read_only and self.can_read(namespace)


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
