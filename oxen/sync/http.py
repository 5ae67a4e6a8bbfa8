"""The remote over HTTP (aiohttp): one pooled session, msgpack id lists, packs streamed."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import msgpack

from oxen.config import load_auth_tokens
from oxen.errors import (
    IncompletePush,
    MergeConflict,
    NonFastForward,
    NotFound,
    RefError,
    RemoteError,
)
from oxen.formats.ids import from_hex, split_ids
from oxen.formats.refnames import check_branch_name
from oxen.sync.direct_reads import StoreReadFailed, parse_locations, read_into_pack
from oxen.sync.protocol import (
    MISSING_BATCH,
    OPERATION_HEADER,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    FileBody,
    FileHead,
    FileLayout,
    RemoteURL,
)

TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)


DEFAULT_PORTS = {"http": "80", "https": "443"}


def host_port(scheme: str, host: str) -> str:
    """``host:port``, the default port of ``scheme`` filled in (tokens are keyed by it)."""
    if host.startswith("["):  # an IPv6 literal: [::1] or [::1]:3000
        return host if "]:" in host else f"{host}:{DEFAULT_PORTS.get(scheme, '80')}"
    return host if ":" in host else f"{host}:{DEFAULT_PORTS.get(scheme, '80')}"


def token_for(url: RemoteURL) -> str | None:
    """The token for exactly this server (host and port), never one saved for another.

    ``OXEN_AUTH_TOKEN`` is used only for the servers ``OXEN_AUTH_HOST`` names (host:port,
    comma-separated); a token saved with ``oxen config --auth HOST`` without a port only
    for the scheme's default port."""
    here = host_port(url.scheme, url.host)
    if env := os.environ.get("OXEN_AUTH_TOKEN"):
        hosts = os.environ.get("OXEN_AUTH_HOST", "")
        if here in {host_port(url.scheme, h.strip()) for h in hosts.split(",") if h.strip()}:
            return env
    for saved, token in load_auth_tokens().items():
        if host_port(url.scheme, saved) == here:
            return token
    return None


def _ids_body(ids: list[bytes]) -> bytes:
    return msgpack.packb(b"".join(ids), use_bin_type=True)


class HttpRemote:
    def __init__(
        self,
        url: RemoteURL,
        token: str | None = None,
        connections: int = 8,
        operation: str | None = None,
    ) -> None:
        """``operation`` (clone, fetch, pull) is named to the server on the first read of
        its branches, once."""
        self.url = url
        self.operation = operation
        self.token = token if token is not None else token_for(url)
        headers = {PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.session = aiohttp.ClientSession(
            headers=headers, timeout=TIMEOUT, connector=aiohttp.TCPConnector(limit=connections)
        )
        self.bytes_sent = 0
        self.bytes_received = 0
        # The server lets packs go straight to its store (it said so with its branches).
        self.direct_uploads = False
        # ... and lets us read the objects we fetch straight from it.
        self.direct_downloads = False
        self._store_session: aiohttp.ClientSession | None = None
        self._connections = connections

    async def close(self) -> None:
        await self.session.close()
        if self._store_session is not None:
            await self._store_session.close()

    def store_session(self) -> aiohttp.ClientSession:
        """A session for the object store's presigned URLs: without our token or headers
        (a presigned URL carries its own authority, and S3 refuses a second one)."""
        if self._store_session is None:
            self._store_session = aiohttp.ClientSession(
                timeout=TIMEOUT, connector=aiohttp.TCPConnector(limit=self._connections)
            )
        return self._store_session

    async def _request(self, method: str, path: str, **kwargs: object) -> aiohttp.ClientResponse:
        url = f"{self.url.api}{path}" if path != "" else self.url.api
        try:
            response = await self.session.request(method, url, **kwargs)  # type: ignore[arg-type]
        except aiohttp.ClientConnectionError as e:
            raise RemoteError(f"cannot reach {self.url.host}: {_reason(e)}") from None
        _check_protocol(response, self.url.host)
        if response.status >= 400:
            await _raise_for(response, str(self.url))
        return response

    async def create(self) -> None:
        base = f"{self.url.scheme}://{self.url.host}/api/repos"
        try:
            response = await self.session.post(
                base, json={"namespace": self.url.namespace, "name": self.url.name}
            )
        except aiohttp.ClientConnectionError as e:
            raise RemoteError(f"cannot reach {self.url.host}: {_reason(e)}") from None
        _check_protocol(response, self.url.host)
        if response.status >= 400:
            await _raise_for(response, str(self.url))
        response.release()

    async def refs(self) -> dict[str, bytes]:
        named = {OPERATION_HEADER: self.operation} if self.operation else {}
        self.operation = None
        response = await self._request("GET", "/refs", headers=named)
        raw = await response.read()
        self.bytes_received += len(raw)
        try:
            answer = json.loads(raw)
            branches = answer["branches"]
            self.direct_uploads = answer.get("direct_uploads") is True
            self.direct_downloads = answer.get("direct_downloads") is True
            return {check_branch_name(b): from_hex(c) for b, c in branches.items()}
        except (ValueError, TypeError, LookupError, AttributeError, RecursionError, RefError):
            raise RemoteError(
                f"the server answered a malformed list of branches: {raw[:80]!r}"
            ) from None

    async def missing(self, ids: list[bytes]) -> set[bytes]:
        out: set[bytes] = set()
        for i in range(0, len(ids), MISSING_BATCH):
            body = _ids_body(ids[i : i + MISSING_BATCH])
            response = await self._request("POST", "/objects/missing", data=body)
            raw = await response.read()
            self.bytes_sent += len(body)
            self.bytes_received += len(raw)
            try:
                blob = msgpack.unpackb(raw)
                if not isinstance(blob, bytes):  # a str of 32 characters is no id
                    raise ValueError(f"a msgpack {type(blob).__name__}, not bin")
                out.update(split_ids(blob))
            except (ValueError, TypeError, msgpack.ExtraData) as e:
                raise RemoteError(f"the server answered a malformed id list: {e}") from None
        return out

    async def upload_pack(self, path: Path) -> None:
        """Send one pack (packs we send are ~16 MiB, so read whole in a worker thread):
        to the store by a presigned URL when the server offers it, else to the server."""
        data = await asyncio.to_thread(path.read_bytes)
        if self.direct_uploads:
            await self._upload_direct(data)
            self.bytes_sent += len(data)
            return
        response = await self._request(
            "POST", "/packs", data=data, headers={"Content-Type": "application/octet-stream"}
        )
        response.release()
        self.bytes_sent += len(data)

    async def _upload_direct(self, data: bytes) -> None:
        """A URL from the server, the pack PUT to the store (without our token: a
        presigned URL carries its own authority), then the server's check of it."""
        answer = await self.call("POST", "/uploads", {"count": 1})
        try:
            upload = answer["uploads"][0]
            key, url = str(upload["key"]), str(upload["url"])
        except (LookupError, TypeError):
            raise RemoteError("the server answered a malformed list of upload URLs") from None
        try:
            async with self.store_session().put(url, data=data) as response:
                if response.status >= 300:
                    text = (await response.text())[:200]
                    raise RemoteError(f"the store refused a pack ({response.status}): {text}")
        except aiohttp.ClientConnectionError as e:
            where = url.split("?")[0]
            raise RemoteError(f"cannot reach the store at {where}: {_reason(e)}") from None
        await self.call("POST", "/uploads/complete", {"key": key})

    async def fetch_pack(self, ids: list[bytes], dest: Path) -> None:
        """The objects ``ids`` as a pack at ``dest`` (verified by the caller): read from
        the store by presigned URLs when the server offers it, else sent by the server."""
        if self.direct_downloads:
            body = _ids_body(ids)
            response = await self._request("POST", "/objects/locate", data=body)
            raw = await response.read()
            self.bytes_sent += len(body)
            self.bytes_received += len(raw)
            packs = parse_locations(raw, list(dict.fromkeys(ids)))
            try:
                self.bytes_received += await read_into_pack(self.store_session(), packs, dest)
                return
            except StoreReadFailed as e:
                # a pack swept since, or a store this client cannot reach: the server's
                # way (for every pack from now on, when the store is out of reach)
                self.direct_downloads = not e.unreachable
                await asyncio.to_thread(dest.unlink, missing_ok=True)
        body = _ids_body(ids)
        response = await self._request("POST", "/objects/fetch", data=body)
        self.bytes_sent += len(body)
        f = await asyncio.to_thread(open, dest, "wb")
        try:
            buffer = bytearray()
            async for piece in response.content.iter_any():
                buffer += piece
                self.bytes_received += len(piece)
                if len(buffer) >= 4 * 1024 * 1024:
                    await asyncio.to_thread(f.write, buffer)
                    buffer = bytearray()
            await asyncio.to_thread(f.write, buffer)
        finally:
            f.close()
            response.release()

    async def file_layout(self, path: str, rev: str | None = None) -> FileLayout:
        """The commit ``rev`` names (default: the server's, main), the id and size of the
        file at ``path`` in it and the lengths of its chunks."""
        response = await self._request("GET", _file_route("chunks", path), params=_rev(rev))
        raw = await response.read()
        self.bytes_received += len(raw)
        try:
            body = json.loads(raw)
            lengths = body["lengths"]
            if not isinstance(lengths, list) or not all(type(n) is int and n > 0 for n in lengths):
                raise ValueError("chunk lengths are not positive integers")
            size = body["size"]
            if type(size) is not int or sum(lengths) != size:
                raise ValueError("chunk lengths do not add up to the size")
            return FileLayout(from_hex(body["commit"]), from_hex(body["id"]), size, lengths)
        except (ValueError, TypeError, LookupError, RecursionError) as e:
            raise RemoteError(f"the server answered a malformed file layout: {e}") from None

    @asynccontextmanager
    async def read_file(self, path: str, rev: str | None = None) -> AsyncIterator[FileBody]:
        """The file at ``path`` in ``rev``: its id (ETag), size and commit, and its bytes
        as they arrive (a cut-off answer is a RemoteError)."""
        response = await self._request("GET", _file_route("files", path), params=_rev(rev))
        try:
            oid, cid = _file_headers(response)
            if response.content_length is None:
                raise RemoteError("the server did not say how long the file is")
            yield FileBody(oid, response.content_length, cid, self._pieces(response))
        finally:
            response.release()

    async def file_head(self, path: str, rev: str | None = None) -> FileHead:
        """The id, size and commit of the file at ``path`` in ``rev``, without its bytes
        (a HEAD request)."""
        response = await self._request("HEAD", _file_route("files", path), params=_rev(rev))
        try:
            oid, commit = _file_headers(response)
            if commit is None or response.content_length is None:
                raise RemoteError("the server did not say which commit or how long the file is")
            return FileHead(oid, response.content_length, commit, _http_date(response))
        finally:
            response.release()

    async def read_range(self, path: str, rev: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (excluded) of the file at ``path`` in ``rev``, which
        should be a commit id so that every range comes from one version: one ranged GET,
        which the server answers from the chunks that hold those bytes alone."""
        if end <= start:
            return b""
        response = await self._request(
            "GET",
            _file_route("files", path),
            params=_rev(rev),
            headers={"Range": f"bytes={start}-{end - 1}"},
        )
        try:
            span = response.headers.get("Content-Range", "").partition("/")[0]
            if response.status != 206 or span != f"bytes {start}-{end - 1}":
                raise RemoteError(
                    f"the server answered a read of bytes {start}-{end - 1} of {path} "
                    f"with {response.status} {span or 'and no range'}"
                )
            try:
                data = await response.read()
            except aiohttp.ClientError as e:
                raise RemoteError(f"the answer from {self.url.host} was cut off: {e}") from None
            self.bytes_received += len(data)
            if len(data) != end - start:
                raise RemoteError(f"the server sent {len(data)} bytes of {path}, not {end - start}")
            return data
        finally:
            response.release()

    async def tree(
        self, path: str, rev: str | None = None, offset: int = 0, limit: int = 1000
    ) -> dict[str, Any]:
        """One page of the folder at ``path`` ("" for the top) in ``rev``: the tree
        route's answer as it is (:func:`oxen.sync.listing.list_tree` checks and pages it)."""
        route = "/tree" + (f"/{quote(path, safe='/')}" if path else "")
        params = {**_rev(rev), "offset": str(offset), "limit": str(limit)}
        return await self.call("GET", route, params=params)

    async def _pieces(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        try:
            async for piece in response.content.iter_any():
                self.bytes_received += len(piece)
                yield piece
        except aiohttp.ClientError as e:
            raise RemoteError(f"the answer from {self.url.host} was cut off: {e}") from None

    async def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A JSON request to a route of this repository and its JSON answer (an object)."""
        response = await self._request(method, path, json=body, params=params or {})
        raw = await response.read()
        self.bytes_received += len(raw)
        try:
            answer = json.loads(raw)
        except (ValueError, RecursionError):
            raise RemoteError(f"the server answered {path} with malformed JSON") from None
        if not isinstance(answer, dict):
            raise RemoteError(f"the server answered {path} with JSON that is not an object")
        return answer

    async def update_ref(self, branch: str, old: bytes | None, new: bytes) -> None:
        body = {"old": old.hex() if old else None, "new": new.hex()}
        (await self._request("PUT", f"/refs/heads/{branch}", json=body)).release()

    async def delete_ref(self, branch: str, old: bytes) -> None:
        (await self._request("DELETE", f"/refs/heads/{branch}", json={"old": old.hex()})).release()


def _file_route(kind: str, path: str) -> str:
    return f"/{kind}/{quote(path, safe='/')}"


def _file_headers(response: aiohttp.ClientResponse) -> tuple[bytes, bytes | None]:
    """The file id (ETag) and the commit (Oxen-Commit) of an answer of the file route."""
    etag = response.headers.get("ETag", "").strip('"')
    commit = response.headers.get("Oxen-Commit")
    try:
        oid = from_hex(etag)
    except ValueError:
        raise RemoteError(f"the server answered a malformed ETag: {etag[:80]!r}") from None
    try:
        return oid, from_hex(commit) if commit is not None else None
    except ValueError:
        raise RemoteError(f"the server answered a malformed commit: {commit[:80]!r}") from None


def _http_date(response: aiohttp.ClientResponse) -> float | None:
    """The answer's Last-Modified as epoch seconds; None when absent or malformed."""
    try:
        return parsedate_to_datetime(response.headers["Last-Modified"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def _rev(rev: str | None) -> dict[str, str]:
    return {} if rev is None else {"rev": rev}


def _reason(e: aiohttp.ClientConnectionError) -> str:
    """What went wrong reaching a server, in a few words (not aiohttp's whole text)."""
    if isinstance(e, aiohttp.ClientConnectorError):
        err = e.os_error
        if isinstance(err, ConnectionRefusedError):
            return "connection refused (is an oxen-server running there?)"
        if isinstance(err, OSError) and err.errno and err.errno > 0:
            return os.strerror(err.errno).lower()
        if isinstance(err, OSError) and err.strerror:
            return err.strerror.lower()
        return str(err) or "connection failed"
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return str(e) or type(e).__name__


def _check_protocol(response: aiohttp.ClientResponse, host: str) -> None:
    """An answer from a server of another protocol version: one line, before anything else
    (an error without the header may come from a proxy in front: _raise_for says it)."""
    theirs = response.headers.get(PROTOCOL_HEADER)
    if theirs != str(PROTOCOL_VERSION) and (theirs is not None or response.status < 400):
        response.release()
        newer = theirs is not None and theirs.isdigit() and int(theirs) > PROTOCOL_VERSION
        raise RemoteError(
            f"the server at {host} speaks oxen protocol {theirs or 1} and this client "
            f"{PROTOCOL_VERSION} (32-byte BLAKE3 ids): "
            + ("upgrade oxen" if newer else "upgrade the server")
        )


def _env_token_hint(where: str) -> str:
    """Why OXEN_AUTH_TOKEN was not sent, when it is set and was not."""
    if not os.environ.get("OXEN_AUTH_TOKEN"):
        return ""
    url = RemoteURL.parse(where) if where.count("/") >= 4 else None
    if url is None or token_for(url) is not None:
        return ""
    return (
        f" (OXEN_AUTH_TOKEN is set, but it is sent only to the servers OXEN_AUTH_HOST names:"
        f" OXEN_AUTH_HOST={host_port(url.scheme, url.host)})"
    )


async def _raise_for(response: aiohttp.ClientResponse, where: str) -> None:
    paths: list[str] | None = None
    incomplete = False
    try:
        body = await response.json()
        message = body.get("error", response.reason)
        paths = body.get("paths")
        incomplete = body.get("incomplete") is True
    except Exception:
        message = response.reason or "error"
    response.release()
    if response.status == 400 and incomplete:
        raise IncompletePush(f"rejected by {where}: {message}")
    if response.status == 409 and isinstance(paths, list):  # a merge that would conflict
        raise MergeConflict(f"rejected by {where}: {message}", [str(p) for p in paths])
    if response.status == 401:
        raise RemoteError(f"{where}: {message}{_env_token_hint(where)}", 401)
    if response.status == 403:
        raise RemoteError(f"{where}: permission denied: {message}", 403)
    if response.status == 404:
        raise NotFound(f"{where}: {message}")
    if response.status == 409:
        raise NonFastForward(f"rejected by {where}: {message}")
    raise RemoteError(f"{where} answered {response.status}: {message}", response.status)
