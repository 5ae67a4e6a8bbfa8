"""Answers of the file routes: one file of a revision, whole or one byte range, streamed
from the store; and the lengths of its chunks (what a client needs to check the bytes
against the file's id). The logic is :mod:`oxen.serving.file_reads`; this is HTTP."""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Mapping
from contextlib import aclosing
from email.utils import formatdate

from aiohttp import web

from oxen.server.ranges import Span, Unsatisfiable, parse_range
from oxen.serving.file_reads import DEFAULT_REV, FileAt, chunk_lengths, find_file, plan_read
from oxen.serving.served_repo import ServedRepo

log = logging.getLogger("oxen.server")

COMMIT_HEADER = "Oxen-Commit"  # the commit the revision named, so a second read can pin it


async def _file(request: web.Request, repo: ServedRepo) -> FileAt:
    return await find_file(repo, request.query.get("rev", DEFAULT_REV), request.match_info["path"])


def _headers(file: FileAt) -> dict[str, str]:
    kind, _ = mimetypes.guess_type(file.path.rsplit("/", 1)[-1], strict=False)
    return {
        "ETag": f'"{file.entry.id.hex()}"',
        "Accept-Ranges": "bytes",
        "Content-Type": kind or "application/octet-stream",
        COMMIT_HEADER: file.commit.hex(),
        "Last-Modified": formatdate(file.committed, usegmt=True),  # the commit's time
    }


def _wanted(request: web.Request, file: FileAt) -> Span | None:
    """The range asked for; None for the whole file (no Range, one we do not serve, or an
    If-Range naming another version of it)."""
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != f'"{file.entry.id.hex()}"':
        return None
    return parse_range(request.headers.get("Range"), file.size)


async def send_file(
    request: web.Request, repo: ServedRepo, extra: Mapping[str, str] | None = None
) -> web.StreamResponse:
    """The file (``?rev=``, the route's path), whole or the range asked for; ``extra``
    headers are added to the answer's (the web pages' download and sandbox headers)."""
    file = await _file(request, repo)
    headers = {**_headers(file), **(extra or {})}
    try:
        span = _wanted(request, file)
    except Unsatisfiable:
        return web.json_response(
            {"error": f"range not satisfiable: {file.path} is {file.size} bytes", "status": 416},
            status=416,
            headers={
                **{k: v for k, v in headers.items() if k != "Content-Type"},
                "Content-Range": f"bytes */{file.size}",
            },
        )
    if span is not None:
        headers["Content-Range"] = span.content_range(file.size)
    whole = span or Span(0, file.size)
    plan = await plan_read(repo, file, whole.start, whole.end)
    response = web.StreamResponse(status=206 if span else 200, headers=headers)
    response.content_length = whole.length
    if request.method == "HEAD":
        await response.prepare(request)
        return response
    async with aclosing(plan.pieces()) as pieces:
        first = await anext(pieces, b"")  # until the answer begins, errors are JSON errors
        await response.prepare(request)
        try:
            await response.write(first)
            async for piece in pieces:
                await response.write(piece)
        except ConnectionError:
            raise  # the client went away: the error middleware logs it in one line
        except Exception as e:  # the answer has begun: no error body can follow it now
            log.warning("read of %s cut off: %s: %s", request.path, type(e).__name__, e)
            if request.transport is not None:
                request.transport.close()  # the client sees fewer bytes than announced
            return response
    await response.write_eof()
    return response


async def send_chunk_lengths(request: web.Request, repo: ServedRepo) -> web.Response:
    file = await _file(request, repo)
    body = {
        "commit": file.commit.hex(),
        "id": file.entry.id.hex(),
        "size": file.size,
        "lengths": await chunk_lengths(repo, file),
    }
    return web.json_response(body, headers={COMMIT_HEADER: file.commit.hex()})
