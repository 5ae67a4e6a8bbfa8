"""``oxen-server``: start the service, or issue a user's token.

Embedded defaults need no cloud account: objects on local disk under ``--data-dir``
(default ``./oxen-server-data``), caches beside them.  ``--storage s3://bucket/prefix``
puts everything the server needs in the bucket (``--s3-endpoint`` or
``AWS_ENDPOINT_URL`` for MinIO, Ceph or moto).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

import tomli_w
from aiohttp import web

from oxen.config import write_private
from oxen.errors import OxenError
from oxen.server.app import create_app
from oxen.server.auth import TokenGrant, TokenStore
from oxen.server.state import BODY_IDLE_TIMEOUT, Settings
from oxen.storage import StoreError, open_store

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
    return Settings(
        storage_url=storage, data_dir=data_dir, s3_endpoint=endpoint, body_idle_timeout=idle
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="oxen-server", description="Serve oxen repositories over HTTP."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help in (("start", "Run the server."), ("add-user", "Create a user's access token.")):
        c = sub.add_parser(name, help=help, description=help)
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
        if name == "start":
            c.add_argument("--host", default="127.0.0.1")
            c.add_argument("--port", type=int, default=DEFAULT_PORT)
            c.add_argument(
                "--body-timeout",
                type=float,
                metavar="SECONDS",
                help=f"answer 408 when a request body stalls this long (default {BODY_IDLE_TIMEOUT:.0f})",
            )
        else:
            c.add_argument("--email", required=True)
            c.add_argument("--name", required=True)
            c.add_argument(
                "--output", metavar="FILE", required=True, help="where to write the user's config"
            )
            c.add_argument(
                "--namespace", action="append", help="namespaces the token may use (default: all)"
            )
            c.add_argument("--read-only", action="store_true")
    return p


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


def add_user(args: argparse.Namespace) -> int:
    settings = _settings(args)
    grant = TokenGrant(
        email=args.email,
        name=args.name,
        namespaces=args.namespace or ["*"],
        read_only=args.read_only,
    )

    async def go() -> str:
        options = (
            {"endpoint_url": settings.s3_endpoint}
            if settings.storage_url.startswith("s3://") and settings.s3_endpoint
            else {}
        )
        store = open_store(settings.storage_url, **options)
        try:
            return await TokenStore(store).issue(grant)
        finally:
            await store.close()

    token = asyncio.run(go())
    out = Path(args.output)
    user = {"user": {"name": args.name, "email": args.email}, "auth": {"token": token}}
    write_private(out, tomli_w.dumps(user))
    print(f"token for {args.email} written to {out}")
    print(f"the user runs: oxen config --auth HOST:PORT {token}")
    return 0


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = start(args) if args.command == "start" else add_user(args)
    except (OxenError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)


if __name__ == "__main__":
    main()
