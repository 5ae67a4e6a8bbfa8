"""Commands that change a remote repository without a clone: ``oxen workspace ...`` and
``oxen upload``. Each calls one function of :mod:`oxen.sync.workspace` and prints."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from oxen.cli.output import human_size
from oxen.cli.progress import bar
from oxen.errors import OxenError
from oxen.sync import remotes
from oxen.sync import workspace as ws
from oxen.sync.http import HttpRemote
from oxen.sync.protocol import RemoteURL

T = TypeVar("T")


def _run(args: argparse.Namespace, work: Callable[[HttpRemote], Awaitable[T]]) -> T:
    async def go() -> T:
        async with remotes.connect(RemoteURL.parse(args.url)) as client:
            return await work(client)

    return asyncio.run(go())


def _show(args: argparse.Namespace, answer: Any, text: str) -> int:
    print(json.dumps(answer, indent=2) if getattr(args, "json", False) else text)
    return 0


def workspace(args: argparse.Namespace) -> int:
    print(
        "usage: oxen workspace create|list|status|add|rm|unstage|ls|df|edit|commit|delete URL ...\n"
        "  (oxen workspace VERB -h for each)",
        file=sys.stderr,
    )
    return 2


def create(args: argparse.Namespace) -> int:
    found = _run(args, lambda c: ws.create(c, args.branch, args.name))
    name = f" ({found['name']})" if found.get("name") else ""
    return _show(args, found, f"workspace {found['id']}{name} on {found['branch']}")


def list_all(args: argparse.Namespace) -> int:
    found = _run(args, ws.list_all)
    lines = [
        f"{w['id']}  {w['name'] or '-':<16} {w['branch']:<16} {w['changes']:>6} changes  {w['owner']}"
        for w in found
    ]
    return _show(args, found, "\n".join(lines) or "no workspaces")


def status(args: argparse.Namespace) -> int:
    found = _run(args, lambda c: ws.status(c, args.workspace))
    lines = [f"workspace {found['id']} on {found['branch']}"]
    if found["branch_moved"]:
        lines.append(f"  {found['branch']} has moved since it began (a commit goes on top)")
    for kind in ("added", "modified", "removed"):
        lines += [f"  {kind}: {p}" for p in found[kind]]
    if not (found["added"] or found["modified"] or found["removed"]):
        lines.append("  nothing staged")
    return _show(args, found, "\n".join(lines))


def add(args: argparse.Namespace) -> int:
    staged = _run(args, lambda c: ws.add(c, args.workspace, args.paths, args.dst or "", bar))
    text = (
        f"staged {len(staged.files)} file(s); hashed {human_size(staged.bytes_hashed)}, "
        f"sent {staged.bytes_sent} bytes ({human_size(staged.bytes_sent)})"
    )
    return _show(args, staged.__dict__, text)


def rm(args: argparse.Namespace) -> int:
    found = _run(args, lambda c: ws.remove(c, args.workspace, args.paths))
    return _show(args, found, f"staged; the workspace has {found['changes']} change(s)")


def unstage(args: argparse.Namespace) -> int:
    found = _run(args, lambda c: ws.unstage(c, args.workspace, args.paths))
    return _show(args, found, f"unstaged; the workspace has {found['changes']} change(s)")


def ls(args: argparse.Namespace) -> int:
    found = _run(args, lambda c: ws.listing(c, args.workspace, args.path or ""))
    lines = []
    for e in found["entries"]:
        name = e["name"] + ("/" if e["type"] == "dir" else "")
        size = human_size(e["size"]) if e.get("size") is not None else ""
        lines.append(f"{'*' if e.get('staged') else ' '} {size:>10}  {name}")
    return _show(args, found, "\n".join(lines) or "(empty)")


def df(args: argparse.Namespace) -> int:
    columns = args.columns.split(",") if args.columns else None
    page = _run(
        args,
        lambda c: ws.rows(
            c, args.workspace, args.path, args.offset, args.limit, columns, args.filter
        ),
    )
    names = [c["name"] for c in page["columns"]]
    lines = [" | ".join(names)]
    lines += [" | ".join(str(r.get(n)) for n in names) for r in page["rows"]]
    total = page.get("total_rows")
    lines.append(
        f"(rows {page['offset']}..{page['offset'] + len(page['rows'])} of {total if total is not None else '?'})"
    )
    return _show(args, page, "\n".join(lines))


def _rows_of(path: str | None) -> list[dict[str, Any]]:
    """Rows from a JSON Lines file ('-': standard input)."""
    if path is None:
        return []
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise OxenError(f"cannot read rows from {path}: {e.strerror or e}") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError:
                raise OxenError(f"{path}:{n}: not a JSON object") from None
            if not isinstance(row, dict):
                raise OxenError(f"{path}:{n}: not a JSON object")
            rows.append(row)
    return rows


def edit(args: argparse.Namespace) -> int:
    keys = args.keys.split(",") if args.keys else []
    append, update, delete = _rows_of(args.append), _rows_of(args.update), _rows_of(args.delete)
    found = _run(
        args, lambda c: ws.edit_rows(c, args.workspace, args.path, keys, append, update, delete)
    )
    text = (
        f"{args.path}: {found['appended']} appended, {found['updated']} updated, "
        f"{found['deleted']} deleted; {found['rows']} rows, staged"
    )
    return _show(args, found, text)


def commit(args: argparse.Namespace) -> int:
    found = _run(args, lambda c: ws.commit(c, args.workspace, args.message))
    return _show(args, found, f"[{found['branch']} {found['commit'][:10]}] {args.message}")


def delete(args: argparse.Namespace) -> int:
    _run(args, lambda c: ws.delete(c, args.workspace))
    return _show(args, {"deleted": args.workspace}, f"deleted workspace {args.workspace}")


def upload(args: argparse.Namespace) -> int:
    cid, staged = _run(
        args, lambda c: ws.upload(c, args.paths, args.message, args.branch, args.dst or "", bar)
    )
    text = (
        f"[{args.branch} {cid[:10]}] {args.message}: {len(staged.files)} file(s); "
        f"sent {staged.bytes_sent} bytes ({human_size(staged.bytes_sent)})"
    )
    return _show(args, {"commit": cid, **staged.__dict__}, text)
