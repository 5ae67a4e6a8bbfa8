"""``oxen-server``: start the service; issue, list and revoke users' tokens; check a store.

Embedded defaults need no cloud account: objects on local disk under ``--data-dir``
(default ``./oxen-server-data``), caches beside them.  ``--storage s3://bucket/prefix``
puts everything the server needs in the bucket (``--s3-endpoint`` or
``AWS_ENDPOINT_URL`` for MinIO, Ceph or moto).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from aiohttp import web

from oxen.errors import OxenError
from oxen.server.admin import add_user, list_tokens, revoke_token
from oxen.server.app import create_app
from oxen.server.auth import TOKEN_RECHECK_SECONDS, Role
from oxen.server.fsck import fsck
from oxen.server.state import BODY_IDLE_TIMEOUT, Settings
from oxen.serving.registry import MAX_OPEN_REPOS
from oxen.storage import StoreError

DEFAULT_PORT = 3000


def _settings(args: argparse.Namespace) -> Settings:
    data_dir = Path(
        args.data_dir or os.environ.get("OXEN_SERVER_DATA", "oxen-server-data")
    ).absolute()
    storage = args.storage or os.environ.get("OXEN_SERVER_STORAGE") or str(data_dir / "store")
    endpoint = (
        args.s3_endpoint
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    idle = getattr(args, "body_timeout", None) or float(
        os.environ.get("OXEN_SERVER_BODY_TIMEOUT", BODY_IDLE_TIMEOUT)
    )
    recheck = getattr(args, "token_recheck", None)
    if recheck is None:
        recheck = float(os.environ.get("OXEN_SERVER_TOKEN_RECHECK", TOKEN_RECHECK_SECONDS))
    max_open = getattr(args, "max_open_repos", None)
    if max_open is None:
        max_open = int(os.environ.get("OXEN_SERVER_MAX_OPEN_REPOS", MAX_OPEN_REPOS))
    return Settings(
        storage_url=storage,
        data_dir=data_dir,
        s3_endpoint=endpoint,
        body_idle_timeout=idle,
        token_recheck=recheck,
        max_open_repos=max_open,
    )


def _store_arguments(c: argparse.ArgumentParser) -> None:
    c.add_argument(
        "--storage",
        metavar="URL",
        help="object store: a path, file://, nfs:// or s3://bucket/prefix",
    )
    c.add_argument(
        "--data-dir", metavar="DIR", help="local data and cache (default ./oxen-server-data)"
    )
    c.add_argument(
        "--s3-endpoint", metavar="URL", help="S3-compatible endpoint (MinIO, Ceph, moto)"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oxen-server", description="Serve oxen repositories over HTTP."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("start", help="Run the server.", description="Run the server.")
    _store_arguments(c)
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=DEFAULT_PORT)
    c.add_argument(
        "--body-timeout",
        type=float,
        metavar="SECONDS",
        help=f"answer 408 when a request body stalls this long (default {BODY_IDLE_TIMEOUT:.0f})",
    )
    c.add_argument(
        "--token-recheck",
        type=float,
        metavar="SECONDS",
        help="read a token's grant from the store again once it is this old: a revoked token"
        f" works at most this long (default {TOKEN_RECHECK_SECONDS:g})",
    )
    c.add_argument(
        "--max-open-repos",
        type=int,
        metavar="N",
        help="keep at most N repositories open (more only while more are in use); each"
        f" holds a thread and three files (default {MAX_OPEN_REPOS})",
    )

    what = "Create a user's access token."
    c = sub.add_parser("add-user", help=what, description=what)
    _store_arguments(c)
    c.add_argument("--email", required=True)
    c.add_argument("--name", required=True)
    c.add_argument(
        "--output", metavar="FILE", required=True, help="where to write the user's config"
    )
    c.add_argument(
        "--namespace",
        action="append",
        help="a namespace the token may use (repeatable; default: all)",
    )
    c.add_argument(
        "--role",
        choices=[r.value for r in Role],
        help="reader: read and fetch; writer: also create repositories and push (the default);"
        " admin: also delete repositories",
    )
    c.add_argument("--read-only", action="store_true", help="the same as --role reader")
    c.add_argument(
        "--expires", metavar="DURATION", help="the token stops working after 30d, 12h, 45m..."
    )

    what = "List the tokens (never the tokens themselves: their ids)."
    c = sub.add_parser("list-tokens", help=what, description=what)
    _store_arguments(c)

    what = "Revoke tokens: by id (or the start of one), by --email, or both."
    c = sub.add_parser("revoke-token", help=what, description=what)
    _store_arguments(c)
    c.add_argument("id", nargs="?", metavar="ID_OR_PREFIX", help="as list-tokens shows it")
    c.add_argument("--email", help="every token of this user (with an id: only those)")

    what = (
        "Check every object and branch the store holds (read-only; a server may be running):"
        " packs, blob ids, nodes, each branch's whole history, repo.json."
    )
    c = sub.add_parser(
        "fsck", help="Check every object and branch the store holds.", description=what
    )
    _store_arguments(c)
    c.add_argument("--repo", metavar="NS/NAME", help="only this repository")
    c.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    return p


COMMANDS = {
    "add-user": add_user,
    "list-tokens": list_tokens,
    "revoke-token": revoke_token,
    "fsck": fsck,
}


def start(args: argparse.Namespace) -> int:
    settings = _settings(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(
        f"oxen-server on http://{args.host}:{args.port} (storage: {settings.storage_url})\n"
        f"  create a token:  oxen-server add-user --email you@example.com --name You --output user.toml"
        f"{' --storage ' + settings.storage_url if args.storage else ''}\n"
        f"  then:            oxen config --auth {args.host}:{args.port} <token>",
        flush=True,
    )
    web.run_app(create_app(settings), host=args.host, port=args.port, print=None, access_log=None)
    return 0


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "start":
            code = start(args)
        else:
            code = COMMANDS[args.command](args, _settings(args))
    except (OxenError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)


if __name__ == "__main__":
    main()
