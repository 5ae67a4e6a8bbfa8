"""oxen: version control for machine-learning data.

``oxen.Repo`` is the synchronous API, ``oxen.AsyncRepo`` the async one it wraps;
``oxen.download`` reads one file of a remote repository without a repository here.  They
are imported lazily so that light commands (``oxen status``) do not pay for asyncio.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs ~10 ms on every command

__version__ = "0.2.0"  # repository format 2, protocol 2 (BLAKE3 ids)
__all__ = ["AsyncRepo", "OxenError", "Repo", "__version__", "download"]

if TYPE_CHECKING:
    from oxen.api import Repo, download
    from oxen.errors import OxenError
    from oxen.repo import AsyncRepo


def __getattr__(name: str) -> object:
    if name == "Repo":
        from oxen.api import Repo

        return Repo
    if name == "download":
        from oxen.api import download

        return download
    if name == "AsyncRepo":
        from oxen.repo import AsyncRepo

        return AsyncRepo
    if name == "OxenError":
        from oxen.errors import OxenError

        return OxenError
    raise AttributeError(name)
