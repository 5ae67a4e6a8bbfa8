"""The web pages, each thin over :mod:`oxen.serving.browsing` (docs/web.md):

| page | what it shows |
| --- | --- |
| ``/`` | the repositories the token may read, by namespace |
| ``/-/signin`` | the sign-in form (POST: sign in); ``/-/signout`` (POST) |
| ``/{ns}`` | a namespace's repositories |
| ``/{ns}/{name}``, ``.../tree/{path}`` | branches, the latest commit, a page of a folder |
| ``.../file/{path}`` | an image, the start of a text, a table's schema and a page of rows |
| ``.../raw/{path}`` | the bytes (Range, ``?download=1`` to save) |
| ``.../commits`` | a page of history |
| ``.../commit/{id}`` | parents, message, author, a page of changed paths |
| ``.../compare`` | two revisions: the commits between, a page of changed paths |
| ``.../rowdiff/{path}`` | a table's row diff between two revisions |
| ``.../rowcounts/{path}`` | the counts of that diff, as JSON (for the pages' script) |

Every page but the sign-in forms needs a signed-in token that may read the namespace
(``guard.reader``); ``rev`` is a branch or a full commit id, as for the API.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from aiohttp import web

from oxen.errors import InvalidInput
from oxen.server.files import send_file
from oxen.server.routes import served
from oxen.server.state import AUTH_FAILURE, GRANT, REGISTRY, TOKENS
from oxen.server.tables import count, names
from oxen.server.web.guard import WHY, public, reader, redirect
from oxen.server.web.render import page, repo_url
from oxen.server.web.session import (
    check_form,
    csrf_token,
    end_session,
    safe_next,
    session_token,
    start_session,
)
from oxen.serving import browsing, table_reads, tree_reads
from oxen.serving.file_reads import DEFAULT_REV

routes = web.RouteTableDef()

FORM_MAX = 16 * 1024  # bytes of a sign-in or sign-out form
ROWS_LIMIT = 100  # rows on a table's page
ROW_DIFF_LIMIT = 50  # rows of each kind on a row diff's page
RAW_HEADERS = {
    # a file's own bytes may be HTML or SVG: opened from this site, they run no script
    # and reach nothing of it
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self' data:;"
    " media-src 'self'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-cache",
}


async def _form(request: web.Request) -> dict[str, str]:
    """The fields of a form the pages sent (urlencoded, as every form of theirs is)."""
    if request.content_length is None:
        raise InvalidInput("a form is sent with its Content-Length")
    if request.content_length > FORM_MAX:
        raise web.HTTPRequestEntityTooLarge(max_size=FORM_MAX, actual_size=request.content_length)
    if request.content_type != "application/x-www-form-urlencoded":
        raise InvalidInput("a form is sent as application/x-www-form-urlencoded")
    try:
        form = await request.post()
    except ValueError as e:  # not what its Content-Type says
        raise InvalidInput(f"this form cannot be read: {e}") from None
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _crumbs(path: str) -> list[tuple[str, str]]:
    """(name, path) of each folder down to ``path``."""
    parts = path.split("/") if path else []
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


def _names(request: web.Request) -> tuple[str, str]:
    return request.match_info["namespace"], request.match_info["name"]


def _repo(request: web.Request) -> dict[str, Any]:
    info = request.match_info
    return {"ns": info["namespace"], "name": info["name"], "grant": request[GRANT]}


# -- signing in -------------------------------------------------------------------------


async def _signin_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    return await page(
        request,
        "signin.html",
        status=status,
        user=None,
        csrf=await csrf_token(request, "signin"),
        next=safe_next(request.query.get("next")),
        error=error,
    )


@routes.get("/-/signin")
@public
async def signin_form(request: web.Request) -> web.Response:
    return await _signin_page(request, WHY.get(request.query.get("why", ""), ""))


@routes.post("/-/signin")
@public
async def signin(request: web.Request) -> web.Response:
    form = await _form(request)
    await check_form(request, "signin", form.get("csrf", ""))
    token = form.get("token", "").strip()
    grant = await request.app[TOKENS].lookup(token) if token else None
    if grant is None:
        request[AUTH_FAILURE] = "invalid" if token else "missing"
        return await _signin_page(request, "this token is not valid on this server", 401)
    if grant.expired(time.time()):
        request[AUTH_FAILURE] = "expired"
        return await _signin_page(request, WHY["expired"], 401)
    response = redirect(safe_next(form.get("next")))
    start_session(request, response, token, grant)
    return response


@routes.post("/-/signout")
@public
async def signout(request: web.Request) -> web.Response:
    form = await _form(request)
    await check_form(request, "signout", form.get("csrf", ""), session_token(request))
    response = redirect("/-/signin")
    end_session(response)
    return response


# -- repositories ---------------------------------------------------------------------------


@routes.get("/")
@reader()
async def home(request: web.Request) -> web.Response:
    grant = request[GRANT]
    namespaces = None if grant.every_namespace else grant.namespaces
    repos = await browsing.repositories(request.app[REGISTRY], namespaces)
    return await page(request, "home.html", grant=grant, repos=repos)


@routes.get("/{namespace}")
@reader()
async def namespace(request: web.Request) -> web.Response:
    ns = request.match_info["namespace"]
    found = await request.app[REGISTRY].names(ns)
    return await page(
        request, "namespace.html", grant=request[GRANT], ns=ns, names=[n for _, n in found]
    )


@routes.get("/{namespace}/{name}")
@routes.get("/{namespace}/{name}/tree")
@routes.get("/{namespace}/{name}/tree/{path:.+}")
@reader()
async def tree(request: web.Request) -> web.Response:
    """A repository's page (its top folder) or one of its folders, at ``rev``."""
    offset = count(request, "offset", 0)
    limit = count(request, "limit", tree_reads.DEFAULT_LIMIT)
    path = request.match_info.get("path", "")
    async with served(request) as repo:
        branches = await browsing.branches(repo)
        rev = request.query.get("rev") or (branches[0].name if branches else "")
        if not rev:
            clone_url = f"{request.scheme}://{request.host}{repo_url(*_names(request))}"
            return await page(request, "empty.html", **_repo(request), url_of=clone_url)
        listing = await browsing.folder(repo, rev, path, offset, limit)
        latest = (await browsing.history(repo, listing.commit.hex(), 0, 1)).commits[0]
    return await page(
        request,
        "tree.html",
        **_repo(request),
        rev=rev,
        path=path,
        crumbs=_crumbs(path),
        branches=branches,
        folder=listing,
        latest=latest,
        limit=limit,
    )


@routes.get("/{namespace}/{name}/file/{path:.+}")
@reader()
async def file(request: web.Request) -> web.Response:
    """One file: an image, the start of a text, or a table's schema and a page of rows."""
    rev = request.query.get("rev", DEFAULT_REV)
    path = request.match_info["path"]
    offset = count(request, "offset", 0)
    where = request.query.get("filter") or None
    rows, rows_error = None, ""
    async with served(request) as repo:
        view = await browsing.file_view(repo, rev, path)
        if view.kind == "table":
            try:
                rows = await browsing.table_page(repo, view, offset, ROWS_LIMIT, where)
            except InvalidInput as e:
                rows_error = str(e)
    return await page(
        request,
        "file.html",
        **_repo(request),
        rev=rev,
        path=path,
        crumbs=_crumbs(path)[:-1],
        view=view,
        rows=rows,
        rows_error=rows_error,
        filter=where or "",
    )


@routes.get("/{namespace}/{name}/raw/{path:.+}")
@reader()
async def raw(request: web.Request) -> web.StreamResponse:
    """The file's bytes (``?rev=``), whole or the range asked for; ``?download=1`` to save
    it rather than show it."""
    name = request.match_info["path"].rsplit("/", 1)[-1]
    plain = "".join(c for c in name if c.isascii() and c.isprintable() and c not in '"\\')
    how = "attachment" if request.query.get("download") else "inline"
    disposition = f"{how}; filename=\"{plain or 'file'}\"; filename*=UTF-8''{quote(name, safe='')}"
    async with served(request) as repo:
        return await send_file(request, repo, {**RAW_HEADERS, "Content-Disposition": disposition})


# -- history and changes ---------------------------------------------------------------------


@routes.get("/{namespace}/{name}/commits")
@reader()
async def commits(request: web.Request) -> web.Response:
    offset = count(request, "offset", 0)
    async with served(request) as repo:
        branches = await browsing.branches(repo)
        rev = request.query.get("rev") or (branches[0].name if branches else DEFAULT_REV)
        found = await browsing.history(repo, rev, offset, browsing.HISTORY_LIMIT)
    return await page(
        request, "commits.html", **_repo(request), rev=rev, branches=branches, history=found
    )


@routes.get("/{namespace}/{name}/commit/{commit}")
@reader()
async def commit(request: web.Request) -> web.Response:
    offset = count(request, "offset", 0)
    async with served(request) as repo:
        view = await browsing.commit_view(repo, request.match_info["commit"], offset)
    return await page(request, "commit.html", **_repo(request), view=view)


@routes.get("/{namespace}/{name}/compare")
@reader()
async def compare(request: web.Request) -> web.Response:
    base, head = request.query.get("base", ""), request.query.get("head", "")
    offset = count(request, "offset", 0)
    found = None
    async with served(request) as repo:
        branches = await browsing.branches(repo)
        if base and head:
            found = await browsing.compare_revisions(repo, base, head, offset)
    return await page(
        request,
        "compare.html",
        **_repo(request),
        branches=branches,
        base=base,
        head=head,
        comparison=found,
    )


async def _row_diff(request: web.Request, limit: int) -> tuple[dict[str, Any], str, str]:
    base = request.query.get("base")
    if not base:
        raise InvalidInput("base is required: the branch or commit to diff from")
    head = request.query.get("head", DEFAULT_REV)
    offset = count(request, "offset", 0)
    table_reads.check_page(offset, limit)
    keys = names(request, "keys") or []
    async with served(request) as repo:
        diff = await browsing.row_diff(
            repo, request.match_info["path"], base, head, keys, offset, limit
        )
    return diff, base, head


@routes.get("/{namespace}/{name}/rowdiff/{path:.+}")
@reader()
async def row_diff(request: web.Request) -> web.Response:
    """A table's row diff: counts, and the first rows added, removed and modified."""
    path = request.match_info["path"]
    try:
        diff, error = (await _row_diff(request, ROW_DIFF_LIMIT))[0], ""
    except InvalidInput as e:  # keys, base or head to fix: the form stays on the page
        diff, error = None, str(e)
    return await page(
        request,
        "rowdiff.html",
        **_repo(request),
        path=path,
        base=request.query.get("base", ""),
        head=request.query.get("head", DEFAULT_REV),
        keys=request.query.get("keys", ""),
        diff=diff,
        error=error,
        limit=ROW_DIFF_LIMIT,
    )


@routes.get("/{namespace}/{name}/rowcounts/{path:.+}")
@reader("json")
async def row_counts(request: web.Request) -> web.Response:
    """How many rows a table's row diff adds, removes and modifies (for the pages' script)."""
    diff, _, _ = await _row_diff(request, 1)
    fields = ("added", "removed", "modified", "keys", "columns_added", "columns_removed")
    return web.json_response({k: diff[k] for k in fields})
