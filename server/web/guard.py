"""What every web page checks before it is made, and how its errors are shown.

A page handler is marked with :func:`reader` (a signed-in token that may read the route's
namespace, with the API's role rules: ``grant.allows(namespace, Role.READER)``) or
:func:`public` (the sign-in forms). Errors of marked handlers are answered here as an
HTML page (or JSON, for the one route the pages' script reads), with the status the API
gives the same error; a missing or dead session sends a browser to the sign-in page.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web

from oxen.server.auth import Role
from oxen.server.state import GRANT
from oxen.server.statuses import status_of
from oxen.server.web.render import page, query_string
from oxen.server.web.session import SignInNeeded, signed_in

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Kind = Literal["html", "json"]
PAGE_KIND = "oxen_web_page"  # attribute of a marked handler: how its errors are answered
SIGN_IN = "/-/signin"
# Why the sign-in page was shown instead of the page asked for (?why=), by code only:
# the page never shows text taken from its URL.
WHY = {
    "invalid": "your token is no longer valid: sign in again",
    "expired": "your token has expired: ask for a new one",
}


def public(handler: Handler) -> Handler:
    setattr(handler, PAGE_KIND, "html")
    return handler


def reader(kind: Kind = "html") -> Callable[[Handler], Handler]:
    """Mark a page that a signed-in token may see if it may read the route's namespace
    (any namespace it may use, for a page with none)."""

    def mark(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            grant = await signed_in(request)
            request[GRANT] = grant  # (a refusal's page still shows who is signed in)
            namespace = request.match_info.get("namespace")
            if namespace is not None and not grant.allows(namespace, Role.READER):
                raise web.HTTPForbidden(reason=grant.refusal(namespace, Role.READER))
            return await handler(request)

        setattr(guarded, PAGE_KIND, kind)
        return guarded

    return mark


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


@web.middleware
async def web_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    kind: Kind | None = getattr(request.match_info.handler, PAGE_KIND, None)
    if kind is None:
        return await handler(request)
    try:
        return await handler(request)
    except SignInNeeded as e:
        if kind == "json" or request.method not in ("GET", "HEAD"):
            return json_error(401, e.reason or "sign in first")
        why = "expired" if "expired" in e.reason else "invalid" if e.reason else None
        return redirect(SIGN_IN + query_string(next=str(request.rel_url), why=why))
    except asyncio.CancelledError:
        raise
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return await _answer(request, kind, e.status, e.reason or "error")
    except Exception as e:
        status = status_of(e)
        if status is None:
            raise  # a bug: the error middleware logs it and answers 500
        return await _answer(request, kind, status, str(e))


async def _answer(request: web.Request, kind: Kind, status: int, message: str) -> web.Response:
    if kind == "json" or request.method == "HEAD":
        return json_error(status, message)
    return await page(
        request, "error.html", status=status, grant=request.get(GRANT), status_code=status,
        message=message,
    )  # fmt: skip


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status)
