"""oxen: version control for machine-learning data.

``oxen.Repo`` is the synchronous API, ``oxen.AsyncRepo`` the async one it wraps;
``oxen.download`` reads one file of a remote repository without a repository here, and
``oxen.RemoteRepo`` / ``oxen.AsyncRemoteRepo`` (with their ``Workspace``) change one
without a clone.  They
are imported lazily so that light commands (``oxen status``) do not pay for asyncio.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs ~10 ms on every command

__version__ = "0.2.0"  # repository format 2, protocol 2 (BLAKE3 ids)
__all__ = [
    "AsyncRemoteRepo",
    "AsyncRepo",
    "AsyncWorkspace",
    "OxenError",
    "RemoteRepo",
    "Repo",
    "Workspace",
    "__version__",
    "download",
]

if TYPE_CHECKING:
    from oxen.api import RemoteRepo, Repo, Workspace, download
    from oxen.errors import OxenError
    from oxen.remote import AsyncRemoteRepo, AsyncWorkspace
    from oxen.repo import AsyncRepo


def __getattr__(name: str) -> object:
    if name == "Repo":
        from oxen.api import Repo

        return Repo
    if name == "download":
        from oxen.api import download

        return download
    if name in ("RemoteRepo", "Workspace"):
        from oxen import api

        return getattr(api, name)
    if name in ("AsyncRemoteRepo", "AsyncWorkspace"):
        from oxen import remote

        return getattr(remote, name)
    if name == "AsyncRepo":
        from oxen.repo import AsyncRepo

        return AsyncRepo
    if name == "OxenError":
        from oxen.errors import OxenError

        return OxenError
    raise AttributeError(name)
