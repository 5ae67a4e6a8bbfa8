"""The HTTP status of each domain error: one table for the JSON routes and the web pages."""

from __future__ import annotations

from oxen.errors import (
    AlreadyExists,
    CorruptObject,
    InvalidInput,
    MergeConflict,
    MissingObject,
    NonFastForward,
    NotFound,
    OxenError,
    PathError,
    RefConflict,
    RefError,
)
from oxen.storage import InvalidKey, StoreUnavailable

STATUS_OF: list[tuple[type[Exception], int]] = [
    (NotFound, 404),
    (MergeConflict, 409),
    (AlreadyExists, 409),
    (RefConflict, 409),
    (NonFastForward, 409),
    (InvalidInput, 400),
    (CorruptObject, 400),
    (MissingObject, 400),
    (PathError, 400),
    (RefError, 400),
    (InvalidKey, 400),
    (StoreUnavailable, 503),
    (OxenError, 400),
]


def status_of(error: Exception) -> int | None:
    """The status a domain error is answered with; None for any other exception (a bug:
    500)."""
    for kind, status in STATUS_OF:
        if isinstance(error, kind):
            return status
    return None
