"""Pluggable object stores behind one small async interface.

Nothing in this package knows about commits, trees or chunks: a store maps
string keys to immutable byte objects, plus one small mutable primitive
(compare-and-swap) for refs.  Stores are chosen by URL, see :func:`open_store`.
"""

from oxen.storage.base import ByteRange, Store
from oxen.storage.errors import (
    ConditionalWriteUnsupported,
    InvalidKey,
    LockTimeout,
    StoreError,
    StoreUnavailable,
)
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
