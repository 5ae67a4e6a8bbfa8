"""Who is signed in to the web pages, and the forms' CSRF tokens.

Signing in takes the same token as the API (``oxen-server add-user``) once, checks it
against the same :class:`~oxen.server.auth.TokenStore` (so revocation and expiry apply
within the same few seconds), and keeps it in an ``HttpOnly``, ``SameSite=Strict``
cookie (``Secure`` over HTTPS): no script can read it, no other site's page can send it.
Nothing is kept on the server, so any server on the store serves the next page.

Every form that changes something (sign-in, sign-out) carries a CSRF token: an HMAC, with
a secret shared by the servers of a store (``server/web-secret``, made by the first that
needs it), of a random nonce kept in a second cookie, the form's purpose and the session's
token digest. A POST whose field does not match, or whose ``Origin`` is another host, is
refused (403).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

from oxen.errors import CorruptObject
from oxen.server.auth import TokenGrant, format_time, token_digest
from oxen.server.state import AUTH_FAILURE, STORE, TOKENS, USER

SESSION_COOKIE = "oxen_token"
NONCE_COOKIE = "oxen_csrf"
CSRF_FIELD = "csrf"
SECRET_KEY = "server/web-secret"
# How long a browser keeps a session (never past the token's own expiry).
SESSION_SECONDS = 7 * 86400
_NONCE = re.compile(r"[0-9a-f]{32}")


@dataclass
class WebState:
    """The application's web state: the CSRF secret, read from the store once."""

    secret: bytes | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


WEB = web.AppKey("web", WebState)
NEW_NONCE = web.RequestKey("web_nonce", str)  # a nonce the answer must set as a cookie


class SignInNeeded(Exception):
    """No session, or one whose token no longer works: the page sends the browser to
    sign in (with why)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


async def secret(app: web.Application) -> bytes:
    """The CSRF secret of the servers of this store (made once, by whichever asks first)."""
    state = app[WEB]
    if state.secret is None:
        async with state.lock:
            if state.secret is None:
                store = app[STORE]
                raw = await store.get(SECRET_KEY)
                if raw is None:
                    fresh = secrets.token_bytes(32)
                    raw = fresh if await store.put_if_absent(SECRET_KEY, fresh) else None
                    raw = raw or await store.get(SECRET_KEY)
                if raw is None or len(raw) < 32:
                    raise CorruptObject(f"{SECRET_KEY} in the store is not a secret")
                state.secret = raw
    return state.secret


def session_token(request: web.Request) -> str:
    return request.cookies.get(SESSION_COOKIE, "")


async def signed_in(request: web.Request) -> TokenGrant:
    """The grant of the session's token, or SignInNeeded."""
    token = session_token(request)
    grant = await request.app[TOKENS].lookup(token) if token else None
    if grant is None:
        request[AUTH_FAILURE] = "invalid" if token else "missing"
        raise SignInNeeded("your token is no longer valid: sign in again" if token else "")
    request[USER] = grant.email
    if grant.expired(time.time()):
        request[AUTH_FAILURE] = "expired"
        raise SignInNeeded(f"your token expired on {format_time(grant.expires)}")
    return grant


def nonce(request: web.Request) -> str:
    """The browser's CSRF nonce; a new one (set on the answer by the page) if it has none."""
    current = request.cookies.get(NONCE_COOKIE, "")
    if _NONCE.fullmatch(current):
        return current
    if NEW_NONCE not in request:
        request[NEW_NONCE] = secrets.token_hex(16)
    return request[NEW_NONCE]


async def csrf_token(request: web.Request, purpose: str, session: str = "") -> str:
    """The field a form of ``purpose`` must send back, for this browser (its nonce) and
    session (its token: "" before signing in)."""
    key = await secret(request.app)
    digest = token_digest(session) if session else ""
    message = f"{purpose}\n{nonce(request)}\n{digest}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


async def check_form(request: web.Request, purpose: str, sent: str, session: str = "") -> None:
    """403 unless ``sent`` is the CSRF field of a form of ``purpose`` this browser was
    given, and the request comes from this site."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise web.HTTPForbidden(reason="this form was sent from another site")
    if not _NONCE.fullmatch(request.cookies.get(NONCE_COOKIE, "")):
        raise web.HTTPForbidden(reason="this form has expired: load the page and send it again")
    expected = await csrf_token(request, purpose, session)
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise web.HTTPForbidden(reason="this form has expired: load the page and send it again")


def set_cookies(request: web.Request, response: web.StreamResponse) -> None:
    """The nonce cookie the page made, if it made one (on every page that has a form)."""
    if NEW_NONCE in request:
        response.set_cookie(
            NONCE_COOKIE,
            request[NEW_NONCE],
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )


def start_session(
    request: web.Request, response: web.StreamResponse, token: str, grant: TokenGrant
) -> None:
    seconds = SESSION_SECONDS
    if grant.expires is not None:
        seconds = max(1, min(seconds, int(grant.expires - time.time())))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path="/",
        max_age=seconds,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def end_session(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site only (never ``//host`` or a URL),
    else the home page."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 0x20 for c in target):
        return "/"
    return target
