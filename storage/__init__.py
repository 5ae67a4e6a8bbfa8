"""Pluggable object stores behind one small async interface.

Nothing in this package knows about commits, trees or chunks: a store maps
string keys to immutable byte objects, plus one small mutable primitive
(compare-and-swap) for refs.  Stores are chosen by URL, see :func:`open_store`.

The errors are imported eagerly (the CLI catches :class:`StoreError` on every command);
the rest on first use, so that catching a storage error costs no import of the stores.
"""

from __future__ import annotations

from oxen.storage.errors import (
    ConditionalWriteUnsupported,
    InvalidKey,
    LockTimeout,
    StoreError,
    StoreUnavailable,
)

TYPE_CHECKING = False  # not typing's: it costs ~10 ms on every command
if TYPE_CHECKING:
    from oxen.storage.base import ByteRange, Store
    from oxen.storage.registry import open_store

__all__ = [
    "ByteRange",
    "ConditionalWriteUnsupported",
    "InvalidKey",
    "LockTimeout",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]


def __getattr__(name: str) -> object:
    if name in ("ByteRange", "Store"):
        from oxen.storage import base

        return getattr(base, name)
    if name == "open_store":
        from oxen.storage.registry import open_store

        return open_store
    raise AttributeError(name)
