"""Errors raised by stores. Every backend maps its own failures onto these."""


class StoreError(Exception):
    """Base class of every storage failure."""


class InvalidKey(StoreError, ValueError):
    """A key that is not a clean relative path of safe characters."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached, or refuses us (credentials, missing bucket)."""


class ConditionalWriteUnsupported(StoreError):
    """The backend cannot write conditionally, so refs would need a single writer."""


class LockTimeout(StoreError):
    """A filesystem lock stayed held by another live writer for too long."""
