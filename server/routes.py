"""Every route of the sync protocol (documented in docs/sync-protocol.md), thin over
:mod:`oxen.serving`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import msgpack
from aiohttp import web

from oxen.errors import InvalidInput
from oxen.formats.ids import ID_LEN, from_hex, split_ids
from oxen.objects.temp_files import temp_path
from oxen.server import files, tables, trees
from oxen.server.auth import Role, needs
from oxen.server.protocol import plain_http
from oxen.server.state import REGISTRY, SETTINGS, SMALL_BODY_MAX, grant_of
from oxen.serving.direct_downloads import hand_out_reads
from oxen.serving.direct_uploads import URL_SECONDS, hand_out, receive_staged
from oxen.serving.served_repo import MAX_PACK_BYTES, ServedRepo

routes = web.RouteTableDef()

MAX_IDS = 100_000
WRITE_BATCH = 4 * 1024 * 1024


def decode_ids(body: bytes) -> list[bytes]:
    """A request body holding ids: msgpack bin of concatenated 32-byte ids."""
    try:
        blob = msgpack.unpackb(body, raw=False)
    except Exception:
        raise InvalidInput("body is not valid msgpack") from None
    if not isinstance(blob, bytes) or len(blob) % ID_LEN:
        raise InvalidInput(f"body must be msgpack bin of {ID_LEN}-byte ids")
    if len(blob) // ID_LEN > MAX_IDS:
        raise InvalidInput(f"at most {MAX_IDS} ids per request")
    return split_ids(blob)


def encode_ids(ids: list[bytes]) -> bytes:
    return msgpack.packb(b"".join(ids), use_bin_type=True)


async def body_pieces(request: web.Request, limit: int) -> AsyncIterator[bytes]:
    """A request body as it arrives, bounded in size (413) and in how long it may stall
    without a byte (408: the settings' ``body_idle_timeout``)."""
    idle = request.app[SETTINGS].body_idle_timeout
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    size = 0
    while True:
        try:
            async with asyncio.timeout(idle):
                piece = await request.content.readany()
        except TimeoutError:
            raise web.HTTPRequestTimeout(
                reason=f"the request body stalled for {idle:g} s"
            ) from None
        if not piece:
            return
        size += len(piece)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        yield piece


async def small_body(request: web.Request) -> bytes:
    return b"".join([piece async for piece in body_pieces(request, SMALL_BODY_MAX)])


async def json_body(request: web.Request) -> dict:
    raw = await small_body(request)
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidInput("body is not valid JSON") from None
    except RecursionError:  # [[[[... deeper than the parser recurses
        raise InvalidInput("body is JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise InvalidInput("body must be a JSON object")
    return body


def parse_commit(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a commit id")
    try:
        return from_hex(value)
    except ValueError:
        raise InvalidInput(f"{field} is not a commit id: {value!r}") from None


def served(request: web.Request) -> AbstractAsyncContextManager[ServedRepo]:
    """The route's repository, held open (never closed under the request) until the
    ``async with`` block ends."""
    return request.app[REGISTRY].use(request.match_info["namespace"], request.match_info["name"])


@routes.get("/api/health")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@routes.post("/api/repos")
@needs(Role.WRITER)  # in the namespace the body names, checked below
async def create_repo(request: web.Request) -> web.Response:
    body = await json_body(request)
    namespace, name = body.get("namespace"), body.get("name")
    if not isinstance(namespace, str) or not isinstance(name, str):
        raise InvalidInput("namespace and name are required")
    grant = grant_of(request)
    if not grant.allows(namespace, Role.WRITER):
        raise web.HTTPForbidden(reason=grant.refusal(namespace, Role.WRITER))
    info = await request.app[REGISTRY].create(namespace, name)
    return web.json_response(info.as_dict(), status=201)


@routes.get("/api/repos/{namespace}")
@needs(Role.READER)
async def list_repos(request: web.Request) -> web.Response:
    repos = await request.app[REGISTRY].list(request.match_info["namespace"])
    return web.json_response({"repositories": [r.as_dict() for r in repos]})


@routes.get("/api/repos/{namespace}/{name}")
@needs(Role.READER)
async def get_repo(request: web.Request) -> web.Response:
    async with served(request) as repo:
        branches = {b: c.hex() for b, c in (await repo.refs()).items()}
        return web.json_response({**repo.info.as_dict(), "branches": branches})


@routes.delete("/api/repos/{namespace}/{name}")
@needs(Role.ADMIN)
async def delete_repo(request: web.Request) -> web.Response:
    await request.app[REGISTRY].delete(request.match_info["namespace"], request.match_info["name"])
    return web.json_response({"deleted": True})


@routes.get("/api/repos/{namespace}/{name}/refs")
@needs(Role.READER)
async def list_refs(request: web.Request) -> web.Response:
    async with served(request) as repo:
        answer: dict[str, object] = {
            "branches": {b: c.hex() for b, c in (await repo.refs()).items()}
        }
        if request.app[SETTINGS].direct_uploads:  # the client may PUT packs to the store
            answer["direct_uploads"] = True
        if request.app[SETTINGS].direct_downloads:  # and read objects from it
            answer["direct_downloads"] = True
        return web.json_response(answer)


@routes.put("/api/repos/{namespace}/{name}/refs/heads/{branch:.+}")
@needs(Role.WRITER)
async def update_ref(request: web.Request) -> web.Response:
    async with served(request) as repo:
        body = await json_body(request)
        old = None if body.get("old") is None else parse_commit(body.get("old"), "old")
        new = parse_commit(body.get("new"), "new")
        await repo.update_ref(request.match_info["branch"], old, new)
        return web.json_response({"branch": request.match_info["branch"], "commit": new.hex()})


@routes.delete("/api/repos/{namespace}/{name}/refs/heads/{branch:.+}")
@needs(Role.WRITER)
async def delete_ref(request: web.Request) -> web.Response:
    async with served(request) as repo:
        body = await json_body(request)
        await repo.delete_ref(request.match_info["branch"], parse_commit(body.get("old"), "old"))
        return web.json_response({"deleted": request.match_info["branch"]})


@routes.post("/api/repos/{namespace}/{name}/objects/missing")
@needs(Role.READER)
async def missing_objects(request: web.Request) -> web.Response:
    async with served(request) as repo:
        ids = decode_ids(await small_body(request))
        missing = await repo.missing(ids)
        return web.Response(
            body=encode_ids([i for i in ids if i in missing]), content_type="application/msgpack"
        )


@routes.post("/api/repos/{namespace}/{name}/packs")
@needs(Role.WRITER)
async def upload_pack(request: web.Request) -> web.Response:
    """A pack streamed to a temp file (bounded memory), verified, then stored."""
    async with served(request) as repo:
        path = temp_path(repo.tmp_dir, "upload", ".pack")
        size = 0
        f = await asyncio.to_thread(open, path, "wb")
        try:
            buffer = bytearray()
            async for piece in body_pieces(request, MAX_PACK_BYTES):
                size += len(piece)
                buffer += piece
                if len(buffer) >= WRITE_BATCH:
                    await asyncio.to_thread(f.write, buffer)
                    buffer = bytearray()
            await asyncio.to_thread(f.write, buffer)
            f.close()
            objects = await repo.receive_pack(path)
        finally:
            f.close()
            await asyncio.to_thread(path.unlink, missing_ok=True)
        return web.json_response({"objects": objects, "bytes": size}, status=201)


def _direct_uploads_on(request: web.Request) -> None:
    if not request.app[SETTINGS].direct_uploads:
        raise web.HTTPNotFound(reason="this server takes packs only by POST .../packs")


@routes.post("/api/repos/{namespace}/{name}/uploads")
@needs(Role.WRITER)
async def direct_upload_urls(request: web.Request) -> web.Response:
    """``{"count": N}``: N staging keys, each with a presigned URL to PUT a pack to."""
    _direct_uploads_on(request)
    body = await json_body(request)
    async with served(request) as repo:
        uploads = await hand_out(repo.store, body.get("count", 1))
        return web.json_response({"uploads": uploads, "expires": URL_SECONDS})


@routes.post("/api/repos/{namespace}/{name}/uploads/complete")
@needs(Role.WRITER)
async def direct_upload_complete(request: web.Request) -> web.Response:
    """``{"key": K}``: the pack PUT to K, verified and stored as one uploaded is."""
    _direct_uploads_on(request)
    body = await json_body(request)
    async with served(request) as repo:
        objects, size = await receive_staged(repo, body.get("key"))
        return web.json_response({"objects": objects, "bytes": size}, status=201)


@routes.post("/api/repos/{namespace}/{name}/objects/fetch")
@needs(Role.READER)
async def fetch_objects(request: web.Request) -> web.StreamResponse:
    """The requested objects as one pack, streamed from a temp file."""
    async with served(request) as repo:
        ids = decode_ids(await small_body(request))
        if not ids:  # a pack of nothing is no pack: its reader refuses it
            raise InvalidInput("no ids to fetch")
        path = temp_path(repo.tmp_dir, "fetch", ".pack")
        try:
            size = await repo.pack_of(ids, path)
            response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            response.content_length = size
            await response.prepare(request)
            f = await asyncio.to_thread(open, path, "rb")
            try:
                while piece := await asyncio.to_thread(f.read, WRITE_BATCH):
                    await response.write(piece)
            finally:
                f.close()
            await response.write_eof()
            return response
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)


@routes.post("/api/repos/{namespace}/{name}/objects/locate")
@needs(Role.READER)
async def locate_objects(request: web.Request) -> web.Response:
    """The requested objects' places in the store, with a presigned URL for each pack
    (msgpack): the client reads them there itself (:mod:`oxen.serving.direct_downloads`)."""
    if not request.app[SETTINGS].direct_downloads:
        raise web.HTTPNotFound(reason="this server sends objects only by POST .../objects/fetch")
    async with served(request) as repo:
        ids = decode_ids(await small_body(request))
        if not ids:
            raise InvalidInput("no ids to locate")
        body = await hand_out_reads(repo, ids)
        return web.Response(body=body, content_type="application/x-msgpack")


@routes.get("/api/repos/{namespace}/{name}/files/{path:.+}")
@needs(Role.READER)
@plain_http
async def read_file(request: web.Request) -> web.StreamResponse:
    """One file of a revision (``?rev=``, default main), whole or one byte range."""
    async with served(request) as repo:
        return await files.send_file(request, repo)


@routes.get("/api/repos/{namespace}/{name}/tree")
@routes.get("/api/repos/{namespace}/{name}/tree/{path:.+}")
@needs(Role.READER)
async def list_tree(request: web.Request) -> web.Response:
    """A page of one folder's entries at a revision (``?rev=``, ``offset``, ``limit``), by
    name: files with their size, id and table format, folders with their file count."""
    async with served(request) as repo:
        return await trees.send_listing(request, repo)


@routes.get("/api/repos/{namespace}/{name}/chunks/{path:.+}")
@needs(Role.READER)
async def file_chunks(request: web.Request) -> web.Response:
    """The lengths of a file's chunks: what a client needs to check its bytes."""
    async with served(request) as repo:
        return await files.send_chunk_lengths(request, repo)


@routes.get("/api/repos/{namespace}/{name}/schema/{path:.+}")
@needs(Role.READER)
async def table_schema(request: web.Request) -> web.Response:
    """A tabular file's format, columns and row count at a revision, from its tree."""
    async with served(request) as repo:
        return await tables.send_schema(request, repo)


@routes.get("/api/repos/{namespace}/{name}/rows/{path:.+}")
@needs(Role.READER)
async def table_rows(request: web.Request) -> web.Response:
    """A page of a tabular file's rows at a revision (``offset``, ``limit``, ``columns``,
    ``filter``), reading only what the page needs."""
    async with served(request) as repo:
        return await tables.send_rows(request, repo)


@routes.get("/api/repos/{namespace}/{name}/diff/{path:.+}")
@needs(Role.READER)
async def table_diff(request: web.Request) -> web.Response:
    """The row diff of a tabular file from ``base`` to ``head`` by ``keys``."""
    async with served(request) as repo:
        return await tables.send_diff(request, repo)
