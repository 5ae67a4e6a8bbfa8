"""Pages from the jinja2 templates of ``templates/``, with autoescaping on: every file name,
commit message and cell reaches the page as text, never as markup. Links are built here
(each path segment and query value percent-encoded), never by hand in a template.

Every page is sent with a Content-Security-Policy that allows scripts, styles and images
from this server only (no inline script, no other site), and may not be framed.
"""

from __future__ import annotations

import functools
import json
import mimetypes
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import web

from oxen.server.web.session import csrf_token, session_token, set_cookies
from oxen.serving import browsing

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_PREFIX = "/-/static"
_COMMIT = re.compile(r"[0-9a-fA-F]{64}")

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def repo_url(namespace: str, name: str, kind: str = "", path: str = "", **query: Any) -> str:
    """``/NS/NAME[/KIND][/PATH][?QUERY]``, each part percent-encoded; query values that
    are None or "" are left out."""
    url = f"/{quote(namespace, safe='')}/{quote(name, safe='')}"
    if kind:
        url += f"/{kind}"
    if path:
        url += "/" + quote(path, safe="/")
    return url + query_string(**query)


def query_string(**query: Any) -> str:
    kept = {k: v for k, v in query.items() if v is not None and v != ""}
    return "?" + urlencode(kept) if kept else ""


def with_offset(request: web.Request, offset: int) -> str:
    """This page's URL with another ``offset`` (the pagers' links)."""
    query = {**request.query, "offset": str(offset)}
    if offset == 0:
        del query["offset"]
    return request.rel_url.raw_path + query_string(**query)


def human_size(n: int | None) -> str:
    if n is None:
        return ""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            return f"{value:.1f} {unit}"
    return f"{n} B"  # unreachable


def when(epoch: int | None) -> str:
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def short(commit: bytes | str) -> str:
    text = commit.hex() if isinstance(commit, bytes) else commit
    return text[:10]


def rev(name: str) -> str:
    """A revision as given: a branch's name, or a commit id made short."""
    return short(name) if _COMMIT.fullmatch(name) else name


def count(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def title(message: str) -> str:
    """The first line of a commit message."""
    return message.strip().split("\n", 1)[0]


def cell(value: Any) -> str:
    """A table's value (as the rows route gives it) as text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def kind_of(name: str) -> str:
    """What a file is, from its name, for a listing."""
    guessed = mimetypes.guess_type(name, strict=False)[0]
    if guessed == "text/plain":
        return "text"
    if guessed:
        kind, _, sub = guessed.partition("/")
        return kind if kind in ("image", "video", "audio") else sub.removeprefix("x-")
    suffix = name.rpartition(".")[2].lower() if "." in name else ""
    return suffix or "file"


def ns_url(namespace: str) -> str:
    return "/" + quote(namespace, safe="")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template is HTML: escape everything not marked safe
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        size=human_size, when=when, short=short, rev=rev, count=count, title=title, cell=cell
    )
    env.globals.update(
        url=repo_url,
        ns_url=ns_url,
        kind_of=kind_of,
        static=STATIC_PREFIX,
        history_limit=browsing.HISTORY_LIMIT,
        changes_limit=browsing.CHANGES_LIMIT,
        text_bytes=browsing.TEXT_BYTES,
    )
    return env


ENV = _environment()


async def page(
    request: web.Request, template: str, status: int = 200, **context: Any
) -> web.Response:
    """The page ``template`` rendered with ``context``, and what every page has: who is
    signed in (``user``) and the sign-out form's CSRF field."""
    session = session_token(request)
    grant = context.pop("grant", None)
    context.setdefault("user", grant.email if grant is not None else None)
    context["with_offset"] = functools.partial(with_offset, request)
    if context["user"] is not None:
        context["signout_csrf"] = await csrf_token(request, "signout", session)
    html = ENV.get_template(template).render(**context)
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    response.headers.update(PAGE_HEADERS)
    set_cookies(request, response)
    return response
