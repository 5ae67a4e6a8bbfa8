"""``oxen-server fsck``: check every object and branch the store holds, straight on the
store (a server may be running on it, or none), never writing. Each problem is one line
on stderr; the summary goes to stdout; the exit code is 1 when anything is wrong."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from oxen.cli.output import human_size
from oxen.errors import InvalidInput, NotFound
from oxen.server.state import Settings
from oxen.serving.store_check import StoreProblem, StoreReport, check_store
from oxen.storage import open_store
from oxen.storage.registry import filesystem_root


def summary(report: StoreReport) -> str:
    verdict = f"{len(report.problems)} problem(s)" if report.problems else "ok"
    return (
        f"checked {report.repositories} repositories: {report.packs} packs, "
        f"{report.objects} objects ({human_size(report.bytes)}), {report.branches} branches, "
        f"{report.commits} commits: {verdict}"
    )


def store_scope(args: argparse.Namespace, settings: Settings) -> tuple[str, str] | None:
    """The repository ``--repo NS/NAME`` names (None: all), once the store is known to
    exist: shared by the commands that work straight on a store (fsck, gc)."""
    only: tuple[str, str] | None = None
    if args.repo:
        namespace, sep, name = args.repo.partition("/")
        if not sep:
            raise InvalidInput(f"--repo must be NAMESPACE/NAME, not {args.repo!r}")
        only = (namespace, name)
    root = filesystem_root(settings.storage_url)
    if root is not None and not root.is_dir():
        raise NotFound(f"no store at {root} (give --data-dir or --storage)")
    return only


def fsck(args: argparse.Namespace, settings: Settings) -> int:
    only = store_scope(args, settings)

    def shown(problem: StoreProblem) -> None:
        print(f"error: {problem}", file=sys.stderr, flush=True)

    async def go() -> StoreReport:
        store = open_store(settings.storage_url, **settings.store_options())
        try:
            return await check_store(store, only, None if args.json else shown)
        finally:
            await store.close()

    report = asyncio.run(go())
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(summary(report))
    return 1 if report.problems else 0
