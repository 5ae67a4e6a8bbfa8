"""Answer of the tree route: one folder of a revision, a page of its entries by name. The
logic is :mod:`oxen.serving.tree_reads`; this reads the query string and writes JSON."""

from __future__ import annotations

from aiohttp import web

from oxen.server.files import COMMIT_HEADER
from oxen.server.tables import count
from oxen.serving import tree_reads
from oxen.serving.file_reads import DEFAULT_REV
from oxen.serving.served_repo import ServedRepo


async def send_listing(request: web.Request, repo: ServedRepo) -> web.Response:
    offset = count(request, "offset", 0)
    limit = count(request, "limit", tree_reads.DEFAULT_LIMIT)
    body = await tree_reads.list_folder(
        repo,
        request.query.get("rev", DEFAULT_REV),
        request.match_info.get("path", ""),
        offset,
        limit,
    )
    return web.json_response(body, headers={COMMIT_HEADER: body["commit"]})
