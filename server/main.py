"""``oxen-server``: start the service; issue, list and revoke users' tokens; check a store.

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
import shlex
import sys
from pathlib import Path
from typing import NoReturn, TextIO

from oxen.errors import InvalidInput, NotFound, OxenError
from oxen.server.admin import add_user, list_tokens, revoke_token
from oxen.server.app import create_app
from oxen.server.auth import TOKEN_RECHECK_SECONDS, Role
from oxen.server.fsck import fsck
from oxen.server.gc import gc
from oxen.server.serve import listen, serve
from oxen.server.state import BODY_IDLE_TIMEOUT, Settings
from oxen.serving.registry import MAX_OPEN_REPOS
from oxen.serving.workspaces import IDLE_SECONDS
from oxen.storage import StoreError
from oxen.storage.registry import filesystem_root

DEFAULT_PORT = 3000
# Seconds a SIGTERM waits for the requests running before cancelling them.
SHUTDOWN_TIMEOUT = 30.0


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
    workspace_idle = getattr(args, "workspace_idle", None)
    if workspace_idle is None:
        workspace_idle = float(os.environ.get("OXEN_SERVER_WORKSPACE_IDLE", IDLE_SECONDS))
    metrics = getattr(args, "metrics", None)
    if metrics is None:
        metrics = os.environ.get("OXEN_SERVER_METRICS", "1").lower() not in (
            "0",
            "false",
            "no",
            "off",
        )
    direct_uploads = _flag(args, "direct_uploads", "OXEN_SERVER_DIRECT_UPLOADS")
    direct_downloads = _flag(args, "direct_downloads", "OXEN_SERVER_DIRECT_DOWNLOADS")
    return Settings(
        storage_url=storage,
        data_dir=data_dir,
        s3_endpoint=endpoint,
        body_idle_timeout=idle,
        token_recheck=recheck,
        max_open_repos=max_open,
        workspace_idle=workspace_idle,
        metrics=metrics,
        direct_uploads=direct_uploads,
        direct_downloads=direct_downloads,
    )


def _flag(args: argparse.Namespace, name: str, env: str) -> bool:
    """A ``--x/--no-x`` option, else its environment variable, else off."""
    value = getattr(args, name, None)
    if value is None:
        return os.environ.get(env, "0").lower() in ("1", "true", "yes", "on")
    return bool(value)


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


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0 to 65535)")
    return port


class Parser(argparse.ArgumentParser):
    """A mistake on the command line is one line (with where to read more), not the
    usage and then the mistake."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="oxen-server", description="Serve oxen repositories over HTTP.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("start", help="Run the server.", description="Run the server.")
    _store_arguments(c)
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=port_number, default=DEFAULT_PORT, help="0: any free port")
    c.add_argument(
        "--shutdown-timeout",
        type=float,
        metavar="SECONDS",
        help="on SIGTERM, wait this long for the requests running (uploads, clones) before"
        f" cancelling them (default {SHUTDOWN_TIMEOUT:g}; or OXEN_SERVER_SHUTDOWN_TIMEOUT)",
    )
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
    c.add_argument(
        "--workspace-idle",
        type=float,
        metavar="SECONDS",
        help="remove a workspace once it has gone this long without a change"
        f" (default {IDLE_SECONDS:.0f}: 14 days)",
    )

    c.add_argument(
        "--metrics",
        action=argparse.BooleanOptionalAction,
        help="serve GET /metrics (Prometheus text format, no token: keep it on a private"
        " network) and time the store's calls for it (default: on; OXEN_SERVER_METRICS=0)",
    )

    c.add_argument(
        "--direct-uploads",
        action=argparse.BooleanOptionalAction,
        help="let clients PUT packs straight to the store by presigned URLs, verified by"
        " the server before a branch may use them (s3:// stores only; default: off;"
        " or OXEN_SERVER_DIRECT_UPLOADS=1)",
    )
    c.add_argument(
        "--direct-downloads",
        action=argparse.BooleanOptionalAction,
        help="let clients read the objects they fetch straight from the store by presigned"
        " URLs, and verify them as they verify what the server sends (s3:// stores only;"
        " default: off; or OXEN_SERVER_DIRECT_DOWNLOADS=1)",
    )

    c.add_argument(
        "--access-log",
        metavar="FILE",
        help="one JSON line per request: appended to FILE, - for stdout, off for none"
        " (default: stderr; or OXEN_SERVER_ACCESS_LOG)",
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

    what = (
        "Delete the packs and objects no branch or workspace reaches; sparse packs are"
        " rewritten. Safe while servers run: packs are marked, servers stop using them,"
        " and they are deleted only after the grace period (see docs/operations.md)."
    )
    c = sub.add_parser("gc", help="Delete what no branch or workspace reaches.", description=what)
    _store_arguments(c)
    c.add_argument("--repo", metavar="NS/NAME", help="only this repository")
    c.add_argument("--dry-run", action="store_true", help="say what would be freed, change nothing")
    c.add_argument(
        "--grace",
        metavar="DURATION",
        help="time between marking and deleting, e.g. 10m (the default), 1h; must exceed"
        " the servers' 5 s recheck plus the longest push; 0 only with no server running",
    )
    c.add_argument("--json", action="store_true", help="the reports as JSON on stdout")
    return p


COMMANDS = {
    "add-user": add_user,
    "list-tokens": list_tokens,
    "revoke-token": revoke_token,
    "fsck": fsck,
    "gc": gc,
}


def access_log_stream(where: str | None) -> TextIO | None:
    """The stream ``--access-log`` names: stderr by default, stdout for ``-``, none for
    ``off``, else a file appended to (one line at a time)."""
    where = where or os.environ.get("OXEN_SERVER_ACCESS_LOG") or "stderr"
    if where == "off":
        return None
    if where == "-":
        return sys.stdout
    if where == "stderr":
        return sys.stderr
    try:
        return open(where, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - the server's life
    except OSError as e:
        raise OxenError(f"cannot write the access log to {where}: {e.strerror}") from None


def add_user_hint(args: argparse.Namespace, settings: Settings) -> str:
    """The options that point ``add-user`` (run from anywhere) at this server's store."""
    parts: list[str] = []
    if args.storage or os.environ.get("OXEN_SERVER_STORAGE"):
        parts += ["--storage", settings.storage_url]
        if settings.storage_url.startswith("s3://") and settings.s3_endpoint:
            parts += ["--s3-endpoint", settings.s3_endpoint]
    elif args.data_dir or os.environ.get("OXEN_SERVER_DATA"):
        parts += ["--data-dir", str(settings.data_dir)]
    return "".join(f" {shlex.quote(part)}" for part in parts)


def start(args: argparse.Namespace) -> int:
    settings = _settings(args)
    for on, flag in (
        (settings.direct_uploads, "uploads"),
        (settings.direct_downloads, "downloads"),
    ):
        if on and not settings.storage_url.startswith("s3://"):
            raise InvalidInput(
                f"--direct-{flag} needs an s3:// store (clients use presigned URLs);"
                f" this server's store is {settings.storage_url}"
            )
    shutdown = args.shutdown_timeout
    if shutdown is None:
        shutdown = float(os.environ.get("OXEN_SERVER_SHUTDOWN_TIMEOUT", SHUTDOWN_TIMEOUT))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("botocore", "aiobotocore"):  # "Found credentials in ..." at every start
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sockets = listen(args.host, args.port)  # a port in use: one line, nothing printed before
    port = sockets[0].getsockname()[1]
    routes = "/healthz /readyz" + (" /metrics" if settings.metrics else "")

    def banner() -> None:
        print(
            f"oxen-server on http://{args.host}:{port} (storage: {settings.storage_url})\n"
            "  create a token:  oxen-server add-user --email you@example.com --name You"
            f" --output user.toml{add_user_hint(args, settings)}\n"
            f"  then:            oxen config --auth {args.host}:{port} <token>\n"
            f"  in a browser:    http://{args.host}:{port}/ (sign in with that token)\n"
            f"  operations:      {routes}; SIGTERM or Ctrl-C stops, waiting up to"
            f" {shutdown:g} s for the requests running",
            flush=True,
        )

    access_log = None
    try:
        access_log = access_log_stream(args.access_log)
        app = create_app(settings, access_log=access_log)
        asyncio.run(serve(app, sockets, shutdown, banner))
    finally:
        for sock in sockets:
            sock.close()
        if access_log is not None and access_log not in (sys.stdout, sys.stderr):
            access_log.close()
    return 0


def require_store(settings: Settings) -> None:
    """The token commands work on the store of a server that has run: they never make a
    second, empty store whose tokens the server would not know."""
    root = filesystem_root(settings.storage_url)
    if root is not None and not root.is_dir():
        raise NotFound(
            f"no server store at {root}: give the server's --data-dir DIR (or --storage URL,"
            " or set OXEN_SERVER_DATA); `oxen-server start` creates it"
        )


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "start":
            code = start(args)
        else:
            settings = _settings(args)
            if args.command in ("add-user", "list-tokens", "revoke-token"):
                require_store(settings)
            code = COMMANDS[args.command](args, settings)
    except (OxenError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)


if __name__ == "__main__":
    main()
