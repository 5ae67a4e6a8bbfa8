"""Handlers of the local commands that look inside: info, schemas, tree, node, fsck. Each calls one verb and prints.

The handlers are split by the verbs they load (a command imports only its own module, see
``cli/main.py``), and they open a :class:`Repository` and call the verb modules directly:
the ``oxen.AsyncRepo`` facade would also load the network stack, which no local command
needs.
"""

from __future__ import annotations

import argparse
import json
import sys

from oxen.cli.output import human_size
from oxen.cli.running import with_repo
from oxen.core.repository import Repository
from oxen.verbs import inspection
from oxen.verbs import schemas as schemas_verb


def info(args: argparse.Namespace) -> int:
    data = with_repo(lambda r: inspection.info(r, args.path, args.rev)).as_dict()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    width = max(len(k) for k in data)
    for key, value in data.items():
        shown = human_size(value) + f" ({value} bytes)" if key == "size" else value
        print(f"{key:<{width}}  {shown if shown is not None else '-'}")
    return 0


def schemas(args: argparse.Namespace) -> int:
    async def go(repo: Repository) -> list[schemas_verb.FileSchema]:
        path = repo.repo_path(args.path) if args.path else ""
        return await schemas_verb.schemas(repo, path, args.rev)

    found = with_repo(go)
    if args.json:
        print(json.dumps([f.as_dict() for f in found], indent=2))
        return 0
    if not found:
        print("no tabular files (csv, tsv, parquet, arrow, jsonl)", file=sys.stderr)
    for f in found:
        if f.error:
            print(f"{f.path}  binary: {f.error}")
            continue
        rows = "?" if f.rows is None else f"{f.rows:,}"
        print(f"{f.path}  {f.format}, {rows} rows, {len(f.columns)} columns")
        for name, kind in f.columns:
            print(f"    {name}: {kind}")
    return 0


def tree(args: argparse.Namespace) -> int:
    rows = with_repo(lambda r: inspection.tree_rows(r, args.ref, args.files, args.depth))
    for row in rows:
        pad = "  " * row.depth
        if row.kind == "dir":
            print(f"{pad}{row.name}  dir {row.id.hex()}  {row.count} files, {human_size(row.size)}")
        elif row.kind == "vnode":
            print(f"{pad}vnode {row.id.hex()}  {row.count} entries")
        else:
            print(f"{pad}{row.name}  {row.id.hex()}  {human_size(row.size)}")
    return 0


def node(args: argparse.Namespace) -> int:
    print(json.dumps(with_repo(lambda r: inspection.node(r, args.id)).as_dict(), indent=2))
    return 0


def fsck(args: argparse.Namespace) -> int:
    report = with_repo(inspection.fsck)
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
    if report.absent_held:
        print(f"{report.absent_held} objects are not held here and are held by the remote")
    if report.absent_unchecked:
        print(
            f"{report.absent_unchecked} objects are not held here (a partial clone); "
            "run online to check the remote holds them"
        )
    print(
        f"checked {report.packs} packs, {report.objects} objects ({human_size(report.bytes)}), "
        f"{report.commits} commits: {'ok' if not report.problems else f'{len(report.problems)} problem(s)'}"
    )
    return 1 if report.problems else 0


def gc(args: argparse.Namespace) -> int:
    from oxen.verbs.gc import gc as collect

    report = with_repo(lambda r: collect(r, args.dry_run))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    verb = "would remove" if report.dry_run else "removed"
    print(
        f"{verb} {report.removed} of {report.objects} objects ({human_size(report.bytes_freed)}):"
        f" {report.packs_deleted} packs deleted, {report.packs_rewritten} rewritten"
    )
    if report.kept_unreached:
        print(
            f"kept {report.kept_unreached} unreached objects ({human_size(report.kept_bytes)})"
            " in packs mostly in use"
        )
    return 0
