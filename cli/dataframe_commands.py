"""``oxen df``: rows of a tabular file as a readable table, JSON, or a file."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oxen.cli.running import with_repo
from oxen.core.repository import Repository
from oxen.errors import InvalidInput
from oxen.verbs import dataframe

if TYPE_CHECKING:
    import pyarrow as pa

CELL = 24  # characters a cell shows at most


def df(args: argparse.Namespace) -> int:
    rows = _rows(args)
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    if columns is not None and not all(columns):
        raise InvalidInput("--columns takes names separated by commas")

    async def go(repo: Repository) -> dataframe.Frame:
        path = repo.repo_path(args.path)
        return await dataframe.df(repo, path, args.rev, rows, columns, args.filter, args.sql)

    frame = with_repo(go)
    if args.output:
        dataframe.write_out(frame.table, Path(args.output))
        print(f"wrote {frame.table.num_rows:,} rows to {args.output}")
        return 0
    if args.json:
        print(json.dumps(frame.table.to_pylist(), default=str, indent=1))
        return 0
    print(render(frame.table, frame.total_rows))
    return 0


def _rows(args: argparse.Namespace) -> dataframe.Rows:
    for n, flag in ((args.head, "--head"), (args.tail, "--tail")):
        if n is not None and n < 0:
            raise InvalidInput(f"{flag} takes a number of rows, 0 or more")
    if args.head is not None:
        return dataframe.Rows(head=args.head)
    if args.tail is not None:
        return dataframe.Rows(tail=args.tail)
    if args.slice is not None:
        return dataframe.Rows.parse_slice(args.slice)
    if args.output or args.json:
        return dataframe.Rows()
    return dataframe.Rows(head=dataframe.DEFAULT_HEAD)


def render(table: pa.Table, total: int | None) -> str:
    """A plain text table: a header of names and types, one line per row, cells cut to
    fit, and the table's shape."""
    names = table.column_names
    types = [str(t) for t in table.schema.types]
    cells = [[_cell(v) for v in row.values()] for row in table.to_pylist()]
    widths = [
        max([len(n), len(t), *(len(r[i]) for r in cells)])
        for i, (n, t) in enumerate(zip(names, types, strict=True))
    ]
    room = shutil.get_terminal_size((160, 24)).columns
    shown = _fitting(widths, room)
    more = len(names) - shown

    def line(values: list[str]) -> str:
        text = " | ".join(v.ljust(w) for v, w in zip(values[:shown], widths[:shown], strict=True))
        return text + (" | …" if more else "")

    rule = "-+-".join("-" * w for w in widths[:shown]) + ("-+--" if more else "")
    out = [line(names), line(types), rule, *(line(r) for r in cells)]
    of = f" of {total:,}" if total is not None else ""
    hidden = f"; {more} more column(s): --columns to choose" if more else ""
    out.append(f"({table.num_rows:,} rows{of}, {len(names)} columns{hidden})")
    return "\n".join(out)


def _fitting(widths: list[int], room: int) -> int:
    used, n = 0, 0
    for w in widths:
        if n and used + w + 3 > room:
            break
        used += w + 3
        n += 1
    return max(1, n)


def _cell(value: Any) -> str:
    text = "null" if value is None else str(value).replace("\n", "\\n")
    return text if len(text) <= CELL else text[: CELL - 1] + "…"


def _names(text: str | None, flag: str) -> list[str] | None:
    if text is None:
        return None
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise InvalidInput(f"{flag} takes column names separated by commas")
    return names


def table_diff(args: argparse.Namespace) -> int:
    """``oxen diff [REV_A [REV_B]] FILE``: the rows of a tabular file that differ."""
    from oxen.verbs.table_diff import diff_table

    *revs, target = args.refs
    if len(revs) > 2:
        raise InvalidInput("diff takes at most two revisions before the file")
    a = revs[0] if revs else None
    b = revs[1] if len(revs) > 1 else None
    keys = _names(args.keys, "--keys") or []
    compare = _names(args.compare, "--compare")
    output = Path(args.output) if args.output else None

    async def go(repo: Repository) -> Any:
        return await diff_table(repo, repo.repo_path(target), a, b, keys, compare, output)

    result = with_repo(go)
    if args.json:
        print(json.dumps(result.as_dict(), default=str, indent=1))
        return 0
    than = f"{a or 'HEAD'} -> {b or 'working tree'}"
    how = f"by {', '.join(keys)}" if keys else "whole rows"
    print(f"{target} ({than}, {how}):")
    print(f"  {result.added:,} added, {result.removed:,} removed, {result.modified:,} modified")
    if result.changed_columns:
        changed = ", ".join(f"{c} ({n:,})" for c, n in result.changed_columns.items())
        print(f"  changed columns: {changed}")
    if result.columns_added or result.columns_removed:
        print(
            f"  columns added: {', '.join(result.columns_added) or '-'}; "
            f"removed: {', '.join(result.columns_removed) or '-'}"
        )
    import pyarrow as pa

    for kind, rows in result.first.items():
        print(f"\nfirst {kind}:")
        print(render(pa.Table.from_pylist(rows), None))
    if output is not None:
        print(f"\nwrote every changed row to {output}")
    return 0
