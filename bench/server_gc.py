"""`python -m bench.server_gc`: `oxen-server gc` on a large repository on moto
(docs/benchmarks.md, "Garbage collection on the server").

Untimed setup, one oxen-server on a moto bucket: a repository of main and B branches,
each two commits, each commit adding a folder of small random files (2-20 KiB) and a few
big ones; `keep` starts at the first branch's first commit and adds one more. Every line
is pushed whole (one push each), then every branch but main and keep is deleted on the
server: the first branch's second commit and the other branches are no longer reached,
and the packs pushed with the first branch mix reached and unreached objects (gc copies
the reached ones out). Full: 22,000 small files and 33 of 64 MiB (about 2.3 GiB) in 11
commits, B = 4; `--quick`: 900 small files and 9 of 4 MiB, B = 3.

Then the server is stopped (`--grace 0` is for a store no server is running on) and
each step runs as a whole process, timed with its peak RSS (wait4, bench/_wrap.py):
`oxen-server gc --grace 0 --json` with `--dry-run`, for real, and once more (nothing left
to collect). The packs and bytes stored are listed from moto before and after each. The
server is started again on its old cache; main and keep are cloned through it and every
file is checked against what was committed; `oxen-server fsck` checks the store.
Results go to bench/results/server-gc-YYYYMMDD-HHMM.md (not with `--quick`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import CmdResult, log, run_cmd
from bench.paths import RESULTS, WORK
from bench.report import fmt_bytes, fmt_seconds
from bench.services import S3_CREDENTIALS, Moto, Service, free_port, venv_python
from bench.tools import IDENTITY
from bench.trash import discard, empty_trash

MIB = 1024 * 1024
BUCKET = "oxen-gc"
STORAGE = f"s3://{BUCKET}/oxen"
REPO = "bench/gc"
COMMITS = 2  # per line (main and each branch); keep adds one
TIMEOUT = 3 * 3600.0  # seconds, per timed command


@dataclass(frozen=True)
class Shape:
    branches: int  # besides main and keep; all deleted on the server
    small: int  # small files per commit
    big: int  # big files per commit
    big_bytes: int


SHAPES = {"quick": Shape(3, 100, 1, 4 * MIB), "full": Shape(4, 2000, 3, 64 * MIB)}

Manifest = dict[str, str]  # path -> sha256 of its bytes


@dataclass
class Row:
    step: str
    seconds: float
    peak_kib: int | None = None
    packs: str = "–"
    stored: str = "–"
    freed: str = "–"
    copied: str = "–"
    note: str = ""


class Bench:
    """moto, one oxen-server on it, and the commands the steps run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.moto = Moto(root / "moto", {**os.environ, **S3_CREDENTIALS})
        self.server: Service | None = None
        self.host = ""
        self.server_env: dict[str, str] = {}
        self.env = {
            **os.environ,
            "HOME": str(root / "home"),
            "OXEN_CONFIG_DIR": str(root / "config"),
        }

    def __enter__(self) -> Bench:
        self.root.mkdir(parents=True)
        self.moto.launch()
        self.moto.create_bucket(BUCKET)
        self.server_env = {**os.environ, **S3_CREDENTIALS, "AWS_ENDPOINT_URL": self.moto.endpoint}
        self.start_server()
        out = self.root / "user.toml"
        argv = [*self.server_cmd("add-user"), "--email", "b@example.com", "--name", "B"]
        subprocess.run(
            [*argv, "--output", str(out)], env=self.server_env, check=True, capture_output=True
        )
        self.env["OXEN_AUTH_TOKEN"] = out.read_text().split('token = "')[1].split('"')[0]
        self.oxen(self.root, "config", "--name", IDENTITY[0], "--email", IDENTITY[1])
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_server()
        self.moto.stop()

    def server_cmd(self, command: str) -> list[str]:
        store = ["--storage", STORAGE, "--data-dir", str(self.root / "server")]
        return [venv_python(), "-m", "oxen.server.main", command, *store]

    def start_server(self) -> None:
        """On the same data directory (its cache) every time, on a new port."""
        port = free_port()
        argv = [*self.server_cmd("start"), "--port", str(port), "--access-log", "off"]
        self.server = Service("oxen-server-gc", argv, self.server_env, self.root)
        self.server.start(f"http://127.0.0.1:{port}/api/health")
        self.host = f"127.0.0.1:{port}"
        self.env["OXEN_AUTH_HOST"] = self.host

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def url(self) -> str:
        return f"http://{self.host}/{REPO}"

    def oxen(self, cwd: Path, *args: str) -> str:
        proc = subprocess.run(
            [venv_python(), "-m", "oxen.cli.main", *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"oxen {' '.join(args[:2])}: {proc.stderr.strip()[-300:]}")
        return proc.stdout

    def timed(self, name: str, *args: str) -> CmdResult:
        """An `oxen-server` command as a whole process: wall time and peak RSS."""
        argv = [*self.server_cmd(args[0]), *args[1:]]
        res = run_cmd(argv, self.root, self.server_env, self.root / "logs" / name, TIMEOUT)
        if res.returncode != 0:
            raise RuntimeError(f"oxen-server {' '.join(args)}: {res.first_error_line()}")
        return res

    def stored(self) -> tuple[int, int]:
        """(packs, bytes) of the repository's packs in the bucket."""
        size, count = self.moto.prefix_size(BUCKET, f"oxen/repos/{REPO}/packs/")
        return count, size


def write_commit(root: Path, folder: str, shape: Shape, seed: str, into: Manifest) -> int:
    """A folder of seeded random files (the same on every run); their hashes go into
    ``into``.  Returns the bytes written."""
    rng = random.Random(f"server-gc-{seed}")
    files = [(f"{folder}/s{i:05d}.bin", rng.randint(2048, 20480)) for i in range(shape.small)]
    files += [(f"{folder}/big{i}.bin", shape.big_bytes) for i in range(shape.big)]
    total = 0
    for rel, size in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            for start in range(0, size, 16 * MIB):
                piece = rng.randbytes(min(16 * MIB, size - start))
                digest.update(piece)
                f.write(piece)
        into[rel] = digest.hexdigest()
        total += size
    return total


def manifest_of(root: Path) -> Manifest:
    out: Manifest = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and ".oxen" not in rel.parts:
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while piece := f.read(16 * MIB):
                    digest.update(piece)
            out[str(rel)] = digest.hexdigest()
    return out


@dataclass
class Built:
    manifests: dict[str, Manifest]  # the branches kept, as committed
    files: int
    bytes: int
    commits: int
    unreached_bytes: int  # of the commits only deleted branches reach


def build(bench: Bench, shape: Shape) -> Built:
    """The repository, pushed; then the branches deleted on the server (untimed)."""
    src = bench.root / "src"
    src.mkdir()
    bench.oxen(src, "init")
    bench.oxen(src, "create-remote", "--name", REPO, "--host", bench.host)
    bench.oxen(src, "config", "--set-remote", "origin", bench.url())
    written: dict[str, int] = {}  # commit folder -> bytes
    main: Manifest = {}

    def commit(folder: str, into: Manifest) -> None:
        log(f"  commit {folder}")
        written[folder] = write_commit(src, folder, shape, folder, into)
        bench.oxen(src, "add", ".")
        bench.oxen(src, "commit", "-m", folder)

    for k in range(COMMITS):
        commit(f"main/c{k}", main)
    log("push main")
    bench.oxen(src, "push")
    keep = dict(main)
    for b in range(1, shape.branches + 1):
        if b > 1:
            bench.oxen(src, "checkout", "main")
        bench.oxen(src, "checkout", "-b", f"b{b}")
        for k in range(COMMITS):
            commit(f"b{b}/c{k}", keep if b == 1 and k == 0 else {})
            if b == 1 and k == 0:
                bench.oxen(src, "branch", "keep")
        log(f"push b{b}")
        bench.oxen(src, "push", "origin", f"b{b}")
    bench.oxen(src, "checkout", "keep")
    commit("keep/c0", keep)
    log("push keep")
    bench.oxen(src, "push", "origin", "keep")
    for b in range(1, shape.branches + 1):
        bench.oxen(src, "push", "-d", "origin", f"b{b}")
    discard(src)
    reached = {f for f in written if f.startswith(("main/", "keep/")) or f == "b1/c0"}
    return Built(
        {"main": main, "keep": keep},
        len(written) * (shape.small + shape.big),
        sum(written.values()),
        len(written),
        sum(n for f, n in written.items() if f not in reached),
    )


def report(res: CmdResult) -> dict[str, Any]:
    (only,) = json.loads(res.stdout_path.read_text())
    return only


def gc_row(bench: Bench, step: str, name: str, *flags: str) -> Row:
    before = bench.stored()
    log(step)
    res = bench.timed(name, "gc", "--repo", REPO, "--grace", "0", "--json", *flags)
    after = bench.stored()
    got = report(res)
    row = Row(step, res.seconds, res.maxrss_kib)
    row.packs = f"{before[0]} → {after[0]}"
    row.stored = f"{fmt_bytes(before[1])} → {fmt_bytes(after[1])}"
    reached = f"{got['reached']:,} of {got['objects']:,} objects reached"
    if got["state"] == "dry run":
        row.freed = f"would free {fmt_bytes(got['freed_bytes'])}"
        row.note = f"{got['marked_packs']} packs to collect; {reached}"
    elif got["state"] == "swept":
        row.freed = fmt_bytes(before[1] - after[1])
        row.copied = f"{got['copied']:,}"
        row.note = (
            f"{got['marked_packs']} packs collected, {got['deleted_packs']} deleted; "
            f"report: freed {fmt_bytes(got['freed_bytes'])}; {reached}"
        )
    else:
        row.note = f"{got['state']}; {reached}"
    return row


def clone_row(bench: Bench, branch: str, expected: Manifest) -> Row:
    log(f"clone {branch}")
    dest = bench.root / f"clone-{branch}"
    start = time.perf_counter()
    bench.oxen(bench.root, "clone", "-b", branch, bench.url(), str(dest))
    seconds = time.perf_counter() - start
    got = manifest_of(dest)
    discard(dest)
    if got != expected:
        wrong = sorted(set(got) ^ set(expected)) or [p for p in expected if got[p] != expected[p]]
        raise RuntimeError(f"the clone of {branch} differs from what was pushed: {wrong[:3]}")
    return Row(f"clone {branch} after gc", seconds, note=f"{len(got):,} files, all as committed")


def fsck_row(bench: Bench) -> Row:
    log("fsck")
    res = bench.timed("fsck", "fsck", "--repo", REPO, "--json")
    got = json.loads(res.stdout_path.read_text())
    if got["problems"]:
        raise RuntimeError(f"oxen-server fsck after gc: {got['problems'][:3]}")
    return Row("`oxen-server fsck` after", res.seconds, res.maxrss_kib, note="no problems")


def run(size: str) -> str:
    shape = SHAPES[size]
    root = WORK / "server-gc"
    discard(root)
    load = os.getloadavg()[0]
    with Bench(root) as bench:
        log(f"building the repository ({size})")
        start = time.perf_counter()
        built = build(bench, shape)
        setup = time.perf_counter() - start
        bench.stop_server()  # --grace 0: no server on the store
        rows = [
            gc_row(bench, "`gc --dry-run`", "dry-run", "--dry-run"),
            gc_row(bench, "`gc`", "gc"),
            gc_row(bench, "`gc` again", "gc-again"),
        ]
        bench.start_server()
        rows += [clone_row(bench, b, built.manifests[b]) for b in ("main", "keep")]
        rows.append(fsck_row(bench))
    discard(root)
    empty_trash()
    lines = [
        f"# Server gc ({size}, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"One repository on moto: {built.files:,} files, {fmt_bytes(built.bytes)} of random "
        f"data in {built.commits} commits on {shape.branches + 2} branches (built and pushed "
        f"in {setup:.0f} s, untimed); {shape.branches} branches then deleted, leaving "
        f"{fmt_bytes(built.unreached_bytes)} of file data unreached. Each step is one "
        "process, `--grace 0`, no server running; peak RSS is the process's. "
        f"{os.cpu_count()} cores; 1-minute load average {load:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end.",
        "",
        "| step | wall | peak RSS | packs | stored | freed | objects copied | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        rss = fmt_bytes(r.peak_kib * 1024) if r.peak_kib is not None else "–"
        lines.append(
            f"| {r.step} | {fmt_seconds(r.seconds)} | {rss} | {r.packs} | {r.stored} | "
            f"{r.freed} | {r.copied} | {r.note} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.server_gc", description=__doc__)
    p.add_argument("--quick", action="store_true", help="900 files, 46 MiB: a smoke test")
    args = p.parse_args(argv)
    size = "quick" if args.quick else "full"
    table = run(size)
    print(table)
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"server-gc-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M}.md"
        out.write_text(table)
        log(f"wrote {out}")


if __name__ == "__main__":
    main()
