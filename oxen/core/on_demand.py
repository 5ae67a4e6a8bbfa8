"""Objects a partial clone lacks, fetched when a command needs them.

The core only says what it needs (:class:`OnDemand`); :mod:`oxen.sync.on_demand` says
how, over the clone's remote.  A command run ``--offline``, or in a repository without
a remote, has none, and refuses before it changes anything, naming the command that
would fetch what it lacks.
"""

from __future__ import annotations

from typing import Protocol

from oxen.db.rows import FileRow


class OnDemand(Protocol):
    async def objects(self, ids: list[bytes]) -> None:
        """Fetch these objects (nodes, or some chunks of a file: absent here)."""

    async def files(self, rows: list[FileRow]) -> None:
        """Fetch every chunk of these files that is absent here."""

    async def lacks(self, ids: list[bytes]) -> set[bytes]:
        """Those of ``ids`` the remote does not hold either."""

    async def close(self) -> None: ...
