"""``oxen-server gc``: delete what no branch or workspace reaches, while servers run
(the rule that keeps running pushes safe is in :mod:`oxen.serving.gc`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from oxen.cli.output import human_size
from oxen.errors import InvalidInput, NotFound
from oxen.server.auth import parse_duration
from oxen.server.fsck import store_scope
from oxen.server.state import Settings
from oxen.serving.direct_uploads import STALE_SECONDS, sweep_staging
from oxen.serving.gc import GRACE_SECONDS, GcReport, collect
from oxen.serving.store_check import repositories
from oxen.storage import open_store
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


def gc(args: argparse.Namespace, settings: Settings) -> int:
    grace = grace_seconds(args.grace)
    only = store_scope(args, settings)

    async def go() -> list[GcReport]:
        store = open_store(settings.storage_url, **settings.store_options())
        reports: list[GcReport] = []
        try:
            found = await repositories(store)
            if only is not None and only not in found:
                raise NotFound(f"no repository {only[0]}/{only[1]}")
            for namespace, name in [only] if only else found:
                repo_store = PrefixedStore(store, f"repos/{namespace}/{name}")
                with tempfile.TemporaryDirectory(prefix="oxen-gc-") as scratch:
                    report = await collect(
                        repo_store, f"{namespace}/{name}", Path(scratch), grace, args.dry_run
                    )
                if not args.dry_run:  # packs a client PUT directly and never had checked
                    await sweep_staging(repo_store, STALE_SECONDS)
                reports.append(report)
                if not args.json:
                    print(line(report), flush=True)
        finally:
            await store.close()
        return reports

    reports = asyncio.run(go())
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
    return 0
