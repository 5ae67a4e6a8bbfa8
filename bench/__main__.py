"""`python -m bench`: time our `oxen` against oxenai, git-lfs and dvc (docs/benchmarks.md)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import datagen, workloads
from bench.measure import log, rss_floor_kib
from bench.paths import HOMES, LOGS, RESULTS, ROOT
from bench.report import Table, fmt_bytes
from bench.settings import Settings
from bench.tools import ALL_TOOLS, InstallError, OxenAI, Tool, make_tools
from bench.trash import empty_trash

SIZES = {
    # name: (W1 files, W2 bytes, W3 files, runs, status repeats, per-command timeout s)
    "quick": (1_000, 32 * datagen.MIB, 2_000, 1, 2, 600.0),
    "full": (20_000, 1024 * datagen.MIB, 100_000, 3, 5, 3600.0),
}
# W4 --w4-concurrent: bytes each of the 8 clients pushes at once
W4_CONCURRENT_BYTES = {"quick": 32 * datagen.MIB, "full": 1024 * datagen.MIB}
WORKLOADS = ("w1", "w2", "w3", "w4")
LOAD_WARN = 1.5


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--quick", action="store_true", help="small sizes, 1 run: a smoke test (< 2 min)"
    )
    p.add_argument(
        "--runs", type=int, help="runs per step, median reported (default 3 full / 1 quick)"
    )
    p.add_argument(
        "--tools", default=",".join(ALL_TOOLS), help="comma-separated: ours,oxenai,git-lfs,dvc"
    )
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated: w1,w2,w3,w4")
    p.add_argument(
        "--w3-files", type=int, help="W3 file count (default 100,000 full / 2,000 quick)"
    )
    p.add_argument(
        "--w2-cdc",
        action="store_true",
        help="write W2's parquet with use_content_defined_chunking=True (pyarrow >= 21)",
    )
    p.add_argument(
        "--w4-concurrent",
        action="store_true",
        help="W4 also: 8 clients push 1 GiB each (quick: 32 MiB) to one server at once "
        "(server peak RSS; at full size 8 GiB of data and ~36 GiB of free disk)",
    )
    p.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    p.add_argument(
        "--install-peers",
        action="store_true",
        help="(re)install the selected peers, then exit (done automatically on first use)",
    )
    p.add_argument(
        "--no-install", action="store_true", help="never install peers; skip missing ones"
    )
    p.add_argument(
        "--no-save", action="store_true", help="print the tables, do not write bench/results/"
    )
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.runs is not None and args.runs < 1:
        p.error("--runs must be >= 1")
    if args.w3_files is not None and args.w3_files < 1:
        p.error("--w3-files must be >= 1")
    if args.w2_cdc and not datagen.cdc_supported():
        p.error("this pyarrow's ParquetWriter has no use_content_defined_chunking")
    args.tool_names = [t.strip() for t in args.tools.split(",") if t.strip()]
    args.workload_names = [w.strip().lower() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in args.workload_names if w not in WORKLOADS]
    if bad:
        p.error(f"unknown workload(s): {', '.join(bad)}")
    return args


def prepare_tools(tools: list[Tool], allow_install: bool, force: bool) -> dict[str, str]:
    """Install (if needed) and configure each tool; return {tool: reason it is skipped}."""
    skipped: dict[str, str] = {}
    for tool in tools:
        try:
            tool.ensure_installed(allow_install, force)
        except InstallError as exc:
            skipped[tool.name] = f"skipped: {exc}"
            continue
        shutil.rmtree(tool.home, ignore_errors=True)
        tool.home.mkdir(parents=True)
        for argv in tool.setup_cmds():
            proc = subprocess.run(
                argv, cwd=tool.home, env=tool.env(), capture_output=True, text=True, check=False
            )
            if proc.returncode != 0:
                lines = (
                    proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}"
                ).splitlines()
                skipped[tool.name] = f"failed: setup `{shlex.join(argv[-3:])}`: {lines[0][:120]}"
                break
    return skipped


def machine_line() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def header(
    size: str,
    args: argparse.Namespace,
    settings: Settings,
    tools: list[Tool],
    skipped: dict[str, str],
    load: float,
    floor_kib: int | None,
) -> str:
    lines = [
        f"# Benchmark results: {size} ({dt.date.today().isoformat()})",
        "",
        f"- command: `{' '.join(['python -m bench', *map(shlex.quote, args.argv)])}`",
        f"- machine: {machine_line()}",
        f"- load average (1 min): {load:.2f} at start, {os.getloadavg()[0]:.2f} at the end",
        f"- runs: {settings.runs} per step (median wall time shown; peak RSS is the max over runs, "
        f"of the tool's whole process tree); seed {settings.seed}",
        f"- peak RSS floor: {fmt_bytes((floor_kib or 0) * 1024)} (what the timing wrapper reports for "
        "`true`; a tool whose peak is smaller shows this value)",
        "- time vs ours = tool's median / ours' median (above 1.00x: ours is faster)",
        "- tools:",
    ]
    for tool in tools:
        version = skipped.get(tool.name) or tool.version()
        lines.append(f"  - {tool.name} ({version}): {tool.how}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tools = make_tools(args.tool_names)
    if args.install_peers:
        skipped = prepare_tools(tools, allow_install=True, force=True)
        for tool in tools:
            print(f"{tool.name}: {skipped.get(tool.name, 'ok: ' + tool.version())}")
        return 1 if skipped else 0

    size = "quick" if args.quick else "full"
    w1_n, w2_bytes, w3_n, runs, repeats, timeout = SIZES[size]
    settings = Settings(args.runs or runs, repeats, timeout, args.seed)
    load = os.getloadavg()[0]
    if load > LOAD_WARN:
        log(f"warning: load average {load:.2f} > {LOAD_WARN}: timings will be noisy")

    shutil.rmtree(LOGS, ignore_errors=True)  # only this session's logs, to read after a failure
    log("preparing tools (installs go to bench/.peers/install.log) ...")
    skipped = prepare_tools(tools, allow_install=not args.no_install, force=False)
    for name, why in skipped.items():
        log(f"  {name}: {why}")
    active = [t for t in tools if t.name not in skipped]

    extra_notes: list[str] = []
    for tool in active:
        if isinstance(tool, OxenAI):
            seconds = workloads.measure_startup(tool, tool.import_cmd(), settings)
            if seconds is not None:
                extra_notes.append(workloads.startup_note(tool, seconds))

    tables: list[Table] = []
    for name in args.workload_names:
        log(f"== {name.upper()} ({size})")
        if name == "w1":
            table = workloads.run_w1(active, settings, w1_n)
        elif name == "w2":
            table = workloads.run_w2(active, settings, w2_bytes, args.w2_cdc)
        elif name == "w3":
            table = workloads.run_w3(active, settings, args.w3_files or w3_n)
        else:
            tables.extend(
                workloads.run_w4(
                    active,
                    settings,
                    [t.name for t in tools],
                    skipped,
                    w1_n,
                    w2_bytes,
                    args.w2_cdc,
                    W4_CONCURRENT_BYTES[size] if args.w4_concurrent else None,
                    size == "full",
                )
            )
            continue
        table.tools = [t.name for t in tools]
        for tool_name, why in skipped.items():
            table.skip_tool(tool_name, why)
        table.notes.extend(extra_notes)
        tables.append(table)

    floor = rss_floor_kib(LOGS)
    text = (
        header(size, args, settings, tools, skipped, load, floor)
        + "\n"
        + "\n".join(t.render() for t in tables)
    )
    print(text)
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        # a subset of the workloads gets its own file, so it never replaces a whole run's
        subset = (
            ""
            if set(args.workload_names) == set(WORKLOADS)
            else "-" + "-".join(args.workload_names)
        )
        out = RESULTS / f"{dt.date.today().isoformat()}-{size}{subset}.md"
        tmp = out.with_suffix(".md.tmp")
        tmp.write_text(text)
        tmp.replace(out)
        log(f"wrote {out.relative_to(ROOT)}")
    shutil.rmtree(HOMES, ignore_errors=True)
    empty_trash()  # only now: see bench/trash.py
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
