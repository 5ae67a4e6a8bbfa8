"""Running one verb over the repository of the current directory, for the CLI's handlers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from oxen.core.repository import Repository

T = TypeVar("T")


def with_repo(verb: Callable[[Repository], Awaitable[T]]) -> T:
    async def go() -> T:
        async with await Repository.open() as repo:
            return await verb(repo)

    return asyncio.run(go())
