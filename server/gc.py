"""``oxen-server gc``: delete what no branch or workspace reaches, while servers run
(the rule that keeps running pushes safe is in :mod:`oxen.serving.gc`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from oxen.cli.output import human_size
from oxen.errors import InvalidInput, NotFound
from oxen.server.auth import parse_duration
from oxen.server.fsck import store_scope
from oxen.server.state import Settings
from oxen.serving.direct_uploads import STALE_SECONDS, sweep_staging
from oxen.serving.gc import GRACE_SECONDS, GcReport, collect
from oxen.serving.gc_marks import GcMarks
from oxen.serving.store_check import repositories
from oxen.storage import Store, open_store
from oxen.storage.prefixed import PrefixedStore


def grace_seconds(text: str | None) -> float:
    if text is None:
        return GRACE_SECONDS
    if text.strip() in ("0", "0s"):
        return 0.0
    try:
        return float(parse_duration(text))
    except ValueError as e:
        raise InvalidInput(str(e)) from None


def line(report: GcReport) -> str:
    if report.state == "nothing to collect":
        return (
            f"{report.repository}: nothing to collect ({report.packs} packs, "
            f"{human_size(report.bytes)}, {report.reached} of {report.objects} objects reached)"
        )
    verb = "would free" if report.state == "dry run" else "freed"
    deleted = "" if report.state == "dry run" else f", deleted {report.deleted_packs}"
    return (
        f"{report.repository}: {verb} {human_size(report.freed_bytes)}: "
        f"{report.marked_packs} of {report.packs} packs collected{deleted}, "
        f"{report.copied} reached objects copied out, "
        f"{report.reached} of {report.objects} objects reached"
    )


REPOS_AT_ONCE = 4  # repositories marked or swept at once; their grace periods overlap


async def collect_all(
    store: Store,
    repos: list[tuple[str, str]],
    grace: float,
    dry_run: bool,
    report: Callable[[GcReport], None],
    waiting: Callable[[str, GcMarks], None],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[GcReport]:
    """Collect ``repos``, ``REPOS_AT_ONCE`` at a time while marking or sweeping; a
    repository waiting out its grace period takes no turn, so a store of many
    repositories takes about one grace period, not one each."""
    turns = asyncio.Semaphore(REPOS_AT_ONCE)

    async def wait_without_a_turn(seconds: float) -> None:
        turns.release()
        try:
            await sleep(seconds)
        finally:
            await turns.acquire()

    async def one(namespace: str, name: str) -> GcReport:
        repo_store = PrefixedStore(store, f"repos/{namespace}/{name}")
        label = f"{namespace}/{name}"

        async def marked(marks: GcMarks) -> None:
            waiting(label, marks)

        async with turns:
            with tempfile.TemporaryDirectory(prefix="oxen-gc-") as scratch:
                got = await collect(
                    repo_store, label, Path(scratch), grace, dry_run,
                    sleep=wait_without_a_turn, marked=marked,
                )  # fmt: skip
            if not dry_run:  # packs a client PUT directly and never had checked
                await sweep_staging(repo_store, STALE_SECONDS)
        report(got)
        return got

    return list(await asyncio.gather(*(one(ns, name) for ns, name in repos)))


def gc(args: argparse.Namespace, settings: Settings) -> int:
    grace = grace_seconds(args.grace)
    only = store_scope(args, settings)

    def report(got: GcReport) -> None:
        if not args.json:
            print(line(got), flush=True)

    def waiting(label: str, marks: GcMarks) -> None:
        left = marks.marked + grace - time.time()
        if left > 0:
            at = time.strftime("%H:%M:%S", time.localtime(marks.marked + grace))
            print(
                f"{label}: {len(marks.packs)} packs marked; deleted at {at}, once the grace"
                " period has passed (stopping now leaves the marks: the next gc sweeps them)",
                file=sys.stderr,
                flush=True,
            )

    async def go() -> list[GcReport]:
        store = open_store(settings.storage_url, **settings.store_options())
        try:
            found = await repositories(store)
            if only is not None and only not in found:
                raise NotFound(f"no repository {only[0]}/{only[1]}")
            repos = [only] if only else sorted(found)
            return await collect_all(store, repos, grace, args.dry_run, report, waiting)
        finally:
            await store.close()

    reports = asyncio.run(go())
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
    return 0
