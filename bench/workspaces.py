"""`python -m bench.workspaces`: contributing without a clone (docs/benchmarks.md,
"Workspaces and pushes without a pull").

1. One new file into W3 (100,000 files), through one oxen-server behind the counting
   proxy: `oxen upload` (a workspace, the file added, the commit made on the server)
   against `clone` + add + commit + push, and against `clone --no-data` + add + commit +
   push. Time and bytes on the wire, both ways. Medians over the runs. Then W2 v1 (1 GiB
   parquet) pushed and v3 (1% of its rows given new values mid-file) uploaded over it:
   the bytes sent against the file's size.
2. Two clients committing 20 disjoint files each to one branch at the same time, through
   two oxen-server processes on one S3 bucket (moto): each client talks to its own server.
   With workspaces (`oxen upload` per file) and with pushes (commit + push per file, the
   other client's pushes landing in between: pushes without a pull). Every command must
   succeed on its first try; afterwards a fresh clone must hold all 40 files and 40
   commits of theirs. Wall time of the whole race.

`--quick`: W3 of 2,000 files, 5 files per client, one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bench import datagen
from bench.measure import log
from bench.partial import NS, Bench
from bench.paths import RESULTS, WORK
from bench.report import fmt_bytes
from bench.services import S3_CREDENTIALS, Moto, OxenServer
from bench.tools import IDENTITY, Ours
from bench.trash import discard

SIZES = {
    "quick": (2_000, 5, 1, 32 * datagen.MIB),
    "full": (100_000, 20, 3, 1024 * datagen.MIB),
}

Row = tuple[str, list[float], list[int], list[int], str]


def _one_file(b: Bench, runs: int, w3_n: int) -> list[Row]:
    w3 = datagen.w3_files(w3_n, 0)
    b.publish("w3", w3.path)
    new = b.root / "new" / "labels.csv"
    new.parent.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    ways = {
        "oxen upload (a workspace)": None,
        "clone + add + commit + push": [],
        "clone --no-data + add + commit + push": ["--no-data"],
    }
    for label, clone_args in ways.items():
        times, ups, downs = [], [], []
        for r in range(runs):
            new.write_text(f"id,label\n{r},{label}\n")
            assert b.proxy is not None
            up0, down0 = b.proxy.settle()
            start = time.perf_counter()
            if clone_args is None:
                b.oxen(b.root, "upload", b.url("w3"), str(new), "--dst", f"added/{r}", "-m", label)
            else:
                dest = b.root / f"clone-{r}"
                discard(dest)
                b.oxen(b.root, "clone", *clone_args, b.url("w3"), str(dest))
                target = dest / "added" / f"{r}-{len(clone_args)}"
                target.mkdir(parents=True)
                (target / "labels.csv").write_bytes(new.read_bytes())
                b.oxen(dest, "add", "added")
                b.oxen(dest, "commit", "-m", label)
                b.oxen(dest, "push")
            times.append(time.perf_counter() - start)
            up1, down1 = b.proxy.settle()
            ups.append(up1 - up0)
            downs.append(down1 - down0)
            if clone_args is not None:
                discard(b.root / f"clone-{r}")
        rows.append((label, times, ups, downs, ""))
    base = statistics.median(rows[1][1])
    for i, (label, times, ups, downs, _) in enumerate(rows):
        if i != 1:
            rows[i] = (
                label,
                times,
                ups,
                downs,
                f"{statistics.median(times) / base:.3f}x the clone's time",
            )
    return rows


def _parquet_edit(b: Bench, w2_bytes: int) -> Row:
    """W2 v1 pushed, then v3 (1% of the rows given new values mid-file) uploaded over it
    through a workspace: the bytes that travel against the file's size."""
    w2 = datagen.w2_parquet(w2_bytes, 0, False)
    src = b.root / "w2-files"
    src.mkdir(parents=True, exist_ok=True)
    (src / "data.parquet").write_bytes(w2.v1.read_bytes())
    b.publish("w2", src)
    new = b.root / "w2-v3" / "data.parquet"
    new.parent.mkdir(parents=True, exist_ok=True)
    new.write_bytes(w2.v3.read_bytes())
    assert b.proxy is not None
    up0, down0 = b.proxy.settle()
    start = time.perf_counter()
    b.oxen(b.root, "upload", b.url("w2"), str(new), "-m", "v3")
    seconds = time.perf_counter() - start
    up1, down1 = b.proxy.settle()
    size = new.stat().st_size
    note = f"{(up1 - up0) / size:.1%} of the {fmt_bytes(size)} file sent"
    return (
        "W2 v3 uploaded over v1 (1% of rows changed)",
        [seconds],
        [up1 - up0],
        [down1 - down0],
        note,
    )


def _race(root: Path, per_client: int, mode: str) -> Row:
    """Two clients, two servers on one bucket, ``per_client`` commits each at once."""
    exe = Ours().exe
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(root / "home"),
        "OXEN_CONFIG_DIR": str(root / "config"),
    }
    moto = Moto(root, env)
    moto.launch()
    servers: list[OxenServer] = []
    try:
        moto.create_bucket("race")
        s3_env = {**env, **S3_CREDENTIALS, "AWS_ENDPOINT_URL": moto.endpoint}
        for i in range(2):
            server = OxenServer(
                f"race-{i}",
                exe.parent / "oxen-server",
                root / f"server-{i}",
                "s3://race/oxen",
                s3_env,
            )
            (root / f"server-{i}").mkdir(parents=True)
            servers.append(server)
        token = servers[0].add_user(root / "user.toml")  # in the bucket: both servers know it
        for server in servers:
            server.launch()
        hosts = [f"127.0.0.1:{s.port}" for s in servers]
        client_env = {**env, "OXEN_AUTH_TOKEN": token, "OXEN_AUTH_HOST": ",".join(hosts)}
        urls = [f"http://{h}/{NS}/race" for h in hosts]

        def oxen(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(exe), *args],
                cwd=cwd,
                env=client_env,
                capture_output=True,
                text=True,
                check=False,
            )

        def must(cwd: Path, *args: str) -> None:
            proc = oxen(cwd, *args)
            if proc.returncode != 0:
                raise RuntimeError(f"oxen {' '.join(args[:2])}: {proc.stderr.strip()[-300:]}")

        must(root, "config", "--name", IDENTITY[0], "--email", IDENTITY[1])
        seed = root / "seed"
        seed.mkdir()
        (seed / "README.md").write_text("# race\n")
        must(seed, "init")
        must(seed, "add", ".")
        must(seed, "commit", "-m", "base")
        must(seed, "create-remote", "--name", f"{NS}/race", "--host", hosts[0])
        must(seed, "config", "--set-remote", "origin", urls[0])
        must(seed, "push")
        clients = []
        for c in range(2):
            d = root / f"client-{c}"
            if mode == "push":
                must(root, "clone", urls[c], str(d))
            else:
                d.mkdir()
            clients.append(d)
        failures: list[str] = []

        def work(c: int) -> None:
            d = clients[c]
            for i in range(per_client):
                rel = f"client-{c}/file-{i:02d}.txt"
                if mode == "push":
                    (d / f"client-{c}").mkdir(exist_ok=True)
                    (d / rel).write_text(f"{c} {i}\n")
                    steps = [("add", rel), ("commit", "-m", f"client {c} file {i}"), ("push",)]
                else:
                    local = d / f"file-{i:02d}.txt"
                    local.write_text(f"{c} {i}\n")
                    steps = [
                        (
                            "upload",
                            urls[c],
                            str(local),
                            "--dst",
                            f"client-{c}",
                            "-m",
                            f"client {c} file {i}",
                        )
                    ]
                for step in steps:
                    proc = oxen(d, *step)
                    if proc.returncode != 0:
                        failures.append(f"client {c} {step[0]}: {proc.stderr.strip()[-200:]}")
                        return

        start = time.perf_counter()
        threads = [threading.Thread(target=work, args=(c,)) for c in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - start
        check = root / "check"
        must(root, "clone", urls[1], str(check))
        files = sorted(p.relative_to(check).as_posix() for p in check.glob("client-*/*.txt"))
        log_out = oxen(check, "log", "--oneline").stdout
        ours = sum(f"client {c} file {i}" in log_out for c in range(2) for i in range(per_client))
        merges = log_out.count("pushed without a pull")
        want = 2 * per_client
        ok = not failures and len(files) == want and ours == want
        note = (
            f"{len(files)}/{want} files, {ours}/{want} commits landed, "
            f"{len(failures)} commands failed"
            + (f", {merges} merges made by pushes" if mode == "push" else "")
            + ("" if ok else f" ({failures[:1]})")
        )
        return (f"race: 2 clients x {per_client} files, 2 servers, {mode}", [seconds], [], [], note)
    finally:
        for server in servers:
            server.stop()
        moto.stop()


def run(quick: bool, runs: int | None) -> str:
    w3_n, per_client, default_runs, w2_bytes = SIZES["quick" if quick else "full"]
    runs = runs or default_runs
    root = WORK / "workspaces"
    discard(root)
    rows: list[Row] = []
    with Bench(root / "one-file") as b:
        log(f"W3: {w3_n} files; one file added, {runs} runs each way")
        rows += _one_file(b, runs, w3_n)
        log(f"W2: {fmt_bytes(w2_bytes)} parquet, v3 uploaded over v1")
        rows.append(_parquet_edit(b, w2_bytes))
    for mode in ("workspaces", "push"):
        log(f"race: {mode}")
        rows.append(_race(root / f"race-{mode}", per_client, mode))
    discard(root)
    return _table(rows, runs, quick)


def _table(rows: list[Row], runs: int, quick: bool) -> str:
    lines = [
        f"# Workspaces and pushes without a pull ({'quick' if quick else 'full'}, "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, median of {runs} for the one-file rows)",
        "",
        "| step | time | sent | received | note |",
        "| --- | ---: | ---: | ---: | --- |",
    ]

    def median_bytes(values: list[int]) -> str:
        return fmt_bytes(int(statistics.median(values))) if values else "-"

    for label, times, ups, downs, note in rows:
        lines.append(
            f"| {label} | {statistics.median(times):.2f} s | {median_bytes(ups)} | "
            f"{median_bytes(downs)} | {note} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.workspaces", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, one run")
    p.add_argument("--runs", type=int, help="runs of each one-file way, median reported")
    args = p.parse_args(argv)
    table = run(args.quick, args.runs)
    print(table)
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"workspaces-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M}.md"
        out.write_text(table)
        log(f"wrote {out}")


if __name__ == "__main__":
    main()
