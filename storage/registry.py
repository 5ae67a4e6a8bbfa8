"""Choose a store by URL.

* ``file:///path`` or a plain path: :class:`~oxen.storage.local.LocalStore` (local disk).
* ``nfs:///path``, or ``file:///path?nfs=1``: :class:`~oxen.storage.nfs.NfsStore`, safe
  for several hosts sharing the directory (no flock, no mmap).
* ``s3://bucket/prefix``: :class:`~oxen.storage.s3.S3Store`.  Options come from the query
  (``?endpoint_url=http://minio:9000&max_concurrency=32&single_writer=1``) or as keyword
  arguments, which win.

Backends are imported here, when a URL asks for them: aiobotocore alone costs ~0.4 s of
import, which local commands must not pay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlparse

from oxen.storage.base import Store
from oxen.storage.errors import StoreError

_FS_OPTIONS: dict[str, type] = {"fsync": bool, "lock_stale_after": float, "lock_wait": float}
_TRUE = ("1", "true", "yes", "on", "")


def open_store(url: str | Path, **options: Any) -> Store:
    """Open the store a URL names."""
    url = str(url)
    parsed = urlparse(url)
    scheme = parsed.scheme
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    if scheme in ("", "file", "nfs"):
        return _open_fs(url, parsed.scheme and scheme, parsed.path, parsed.query, options)
    if scheme == "s3":
        try:
            from oxen.storage.s3 import S3Store
        except ImportError as e:
            raise StoreError(
                f"{url!r} needs the S3 backend's dependencies (aiobotocore): {e}"
            ) from e
        return S3Store.from_url(url, **options)
    raise StoreError(f"unsupported store URL scheme {scheme!r} in {url!r}")


def with_query(url: str, **options: str) -> str:
    """``url`` with these options set in its query (``s3://b/p?endpoint_url=...``)."""
    parsed = urlparse(url)
    query = dict(parse_qsl(parsed.query, keep_blank_values=True))
    query.update(options)
    return parsed._replace(query=urlencode(query)).geturl()


def filesystem_root(url: str | Path) -> Path | None:
    """The directory a filesystem store's URL names, without opening (or creating) it;
    None for a store of another kind."""
    url = str(url)
    parsed = urlparse(url)
    scheme = "" if len(parsed.scheme) == 1 else parsed.scheme
    if scheme not in ("", "file", "nfs"):
        return None
    return Path(unquote(parsed.path)) if scheme else Path(url)


def _open_fs(url: str, scheme: str, path: str, query: str, options: dict[str, Any]) -> Store:
    params = dict(parse_qsl(query, keep_blank_values=True)) if scheme else {}
    nfs = scheme == "nfs" or params.pop("nfs", "0").lower() in _TRUE
    opts: dict[str, Any] = {}
    for name, value in params.items():
        kind = _FS_OPTIONS.get(name)
        if kind is None:
            raise StoreError(f"unknown store option {name!r} in {url!r}")
        try:
            opts[name] = value.lower() in _TRUE if kind is bool else kind(value)
        except ValueError:
            raise StoreError(f"store option {name} has a bad value {value!r} in {url!r}") from None
    opts.update(options)
    root = Path(unquote(path)) if scheme else Path(url)
    if nfs:
        from oxen.storage.nfs import NfsStore

        return NfsStore(root, **opts)
    opts.pop("lock_stale_after", None)
    opts.pop("lock_wait", None)
    from oxen.storage.local import LocalStore

    return LocalStore(root, **opts)
