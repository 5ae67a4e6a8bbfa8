"""Answers of the table routes: a tabular file's schema, a page of its rows, the row diff
of two of its versions. The logic is :mod:`oxen.serving.table_reads`; this reads the
query string and writes JSON."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web

from oxen.errors import InvalidInput
from oxen.server.files import COMMIT_HEADER
from oxen.serving import table_reads
from oxen.serving.file_reads import DEFAULT_REV
from oxen.serving.served_repo import ServedRepo

_WHOLE = re.compile(r"[0-9]{1,15}")
MAX_NAMES = 1000  # columns or keys one request may name


def count(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _WHOLE.fullmatch(raw):
        raise InvalidInput(f"{name} must be a whole number, not {raw[:40]!r}")
    return int(raw)


def names(request: web.Request, name: str) -> list[str] | None:
    """A comma-separated list of column names; None when the parameter is absent."""
    raw = request.query.get(name)
    if raw is None:
        return None
    listed = raw.split(",")
    if "" in listed:
        raise InvalidInput(f"{name} names an empty column: {raw[:100]!r}")
    if len(listed) > MAX_NAMES:
        raise InvalidInput(f"{name} names more than {MAX_NAMES} columns")
    twice = next((n for i, n in enumerate(listed) if n in listed[:i]), None)
    if twice is not None:
        raise InvalidInput(f"{name} names column {twice[:100]!r} twice")
    return listed


async def _answer(body: dict[str, Any], commit: str) -> web.Response:
    data = await asyncio.to_thread(table_reads.encode_answer, body)
    return web.Response(body=data, content_type="application/json", headers={COMMIT_HEADER: commit})


async def send_schema(request: web.Request, repo: ServedRepo) -> web.Response:
    rev = request.query.get("rev", DEFAULT_REV)
    body = await table_reads.table_schema(repo, rev, request.match_info["path"])
    return await _answer(body, body["commit"])


async def send_rows(request: web.Request, repo: ServedRepo) -> web.Response:
    offset = count(request, "offset", 0)
    limit = count(request, "limit", table_reads.DEFAULT_LIMIT)
    table_reads.check_page(offset, limit)
    columns = names(request, "columns")
    page = await table_reads.read_page(
        repo,
        request.query.get("rev", DEFAULT_REV),
        request.match_info["path"],
        offset,
        limit,
        columns,
        request.query.get("filter"),
    )
    return await _answer(page.body, page.body["commit"])


async def send_diff(request: web.Request, repo: ServedRepo) -> web.Response:
    base = request.query.get("base")
    if base is None:
        raise InvalidInput("base is required: the branch or commit to diff from")
    offset = count(request, "offset", 0)
    limit = count(request, "limit", table_reads.DEFAULT_LIMIT)
    table_reads.check_page(offset, limit)
    body = await table_reads.diff_versions(
        repo,
        request.match_info["path"],
        base,
        request.query.get("head", DEFAULT_REV),
        names(request, "keys") or [],
        names(request, "compare"),
        offset,
        limit,
    )
    return await _answer(body, body["head"])
