"""Routes of workspaces: changes to a branch staged on the server and committed there, by
clients without a clone (docs/sync-protocol.md, "Workspaces"); thin over
:mod:`oxen.serving.workspaces`."""

from __future__ import annotations

import asyncio

from aiohttp import web

from oxen.errors import InvalidInput
from oxen.server.auth import Role, needs
from oxen.server.routes import json_body, served
from oxen.server.state import SETTINGS, grant_of
from oxen.server.tables import count, names
from oxen.serving import table_reads
from oxen.serving.row_edits import RowEdits
from oxen.serving.served_repo import ServedRepo
from oxen.serving.workspaces import Workspaces, parse_entry

routes = web.RouteTableDef()
BASE = "/api/repos/{namespace}/{name}/workspaces"


def _workspaces(request: web.Request, repo: ServedRepo) -> Workspaces:
    return Workspaces(repo, idle=request.app[SETTINGS].workspace_idle)


def _paths(body: dict) -> list[str]:
    paths = body.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise InvalidInput("paths must be a non-empty list of paths")
    return paths


@routes.post(BASE)
@needs(Role.WRITER)
async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    branch, name = body.get("branch", "main"), body.get("name")
    if not isinstance(branch, str) or (name is not None and not isinstance(name, str)):
        raise InvalidInput("branch and name must be strings")
    async with served(request) as repo:
        ws = await _workspaces(request, repo).create(branch, grant_of(request).email, name)
        return web.json_response(ws.summary(), status=201)


@routes.get(BASE)
@needs(Role.READER)
async def list_all(request: web.Request) -> web.Response:
    async with served(request) as repo:
        found = await _workspaces(request, repo).list()
        return web.json_response({"workspaces": [ws.summary() for ws in found]})


@routes.get(BASE + "/{ws}")
@needs(Role.READER)
async def status(request: web.Request) -> web.Response:
    async with served(request) as repo:
        return web.json_response(await _workspaces(request, repo).status(request.match_info["ws"]))


@routes.delete(BASE + "/{ws}")
@needs(Role.WRITER)
async def delete(request: web.Request) -> web.Response:
    async with served(request) as repo:
        ws = await _workspaces(request, repo).delete(request.match_info["ws"])
        return web.json_response({"deleted": ws.id})


@routes.post(BASE + "/{ws}/files")
@needs(Role.WRITER)
async def stage(request: web.Request) -> web.Response:
    """Stage files whose chunks and nodes were uploaded first (``POST .../packs``)."""
    body = await json_body(request)
    files = body.get("files")
    if not isinstance(files, list) or not files:
        raise InvalidInput("files must be a non-empty list of file entries")
    rows = [parse_entry(f) for f in files]
    async with served(request) as repo:
        ws = await _workspaces(request, repo).stage(request.match_info["ws"], rows)
        return web.json_response(ws.summary())


@routes.post(BASE + "/{ws}/remove")
@needs(Role.WRITER)
async def remove(request: web.Request) -> web.Response:
    paths = _paths(await json_body(request))
    async with served(request) as repo:
        ws = await _workspaces(request, repo).remove(request.match_info["ws"], paths)
        return web.json_response(ws.summary())


@routes.post(BASE + "/{ws}/unstage")
@needs(Role.WRITER)
async def unstage(request: web.Request) -> web.Response:
    paths = _paths(await json_body(request))
    async with served(request) as repo:
        ws = await _workspaces(request, repo).unstage(request.match_info["ws"], paths)
        return web.json_response(ws.summary())


@routes.get(BASE + "/{ws}/ls")
@routes.get(BASE + "/{ws}/ls/{path:.+}")
@needs(Role.READER)
async def listing(request: web.Request) -> web.Response:
    async with served(request) as repo:
        found = await _workspaces(request, repo).listing(
            request.match_info["ws"], request.match_info.get("path", "")
        )
        return web.json_response(found)


@routes.post(BASE + "/{ws}/commit")
@needs(Role.WRITER)
async def commit(request: web.Request) -> web.Response:
    body = await json_body(request)
    message = body.get("message")
    if not isinstance(message, str):
        raise InvalidInput("message is required")
    grant = grant_of(request)
    async with served(request) as repo:
        workspaces = _workspaces(request, repo)
        cid = await workspaces.commit(request.match_info["ws"], message, (grant.name, grant.email))
        ws = await workspaces.get(request.match_info["ws"])
        return web.json_response({"commit": cid.hex(), "branch": ws.branch, "workspace": ws.id})


@routes.get(BASE + "/{ws}/rows/{path:.+}")
@needs(Role.READER)
async def rows(request: web.Request) -> web.Response:
    """A page of the workspace's version of a tabular file (as the rows route pages one of
    a commit: offset, limit, columns, filter)."""
    offset = count(request, "offset", 0)
    limit = count(request, "limit", table_reads.DEFAULT_LIMIT)
    table_reads.check_page(offset, limit)
    ref = request.match_info["ws"]
    async with served(request) as repo:
        file = await _workspaces(request, repo).file_at(ref, request.match_info["path"])
        page = await table_reads.read_page_of(
            repo, file, f"workspace {ref}", offset, limit, names(request, "columns"),
            request.query.get("filter"),
        )  # fmt: skip
        body = {**page.body, "workspace": ref}
        data = await asyncio.to_thread(table_reads.encode_answer, body)
        return web.Response(body=data, content_type="application/json")


@routes.post(BASE + "/{ws}/rows/{path:.+}")
@needs(Role.WRITER)
async def edit_rows(request: web.Request) -> web.Response:
    """Append rows, and update or delete rows by key, of a tabular file: its next version
    (parquet with content-defined pages) is stored and staged."""
    edits = RowEdits.parse(await json_body(request))
    async with served(request) as repo:
        result = await _workspaces(request, repo).edit_rows(
            request.match_info["ws"], request.match_info["path"], edits
        )
        return web.json_response(result.__dict__)
