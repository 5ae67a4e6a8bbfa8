"""`python -m bench.server_load`: the server's memory bound under load (docs/benchmarks.md,
"Server memory under load").

One oxen-server on local disk (or, with `--s3`, on moto in server mode). For each step its peak RSS (VmHWM, reset before the step),
the clients' errors, and the step's wall time:
- **concurrent pushes**: N clients (default 8) each push a repository holding one file of
  random bytes (default 1 GiB; each client's differs, so nothing deduplicates), all at
  once. Each file is added, then deleted from the working tree before the pushes start
  (a push reads the store), so the disk holds each GiB twice, not three times;
- **concurrent clones**: M clients (default 100) clone W1 (20,000 files) at once, each
  clone removed as soon as it is done.

`--quick`: 2 pushes of 64 MiB, 10 clones of 1,000 files. `--pushes N --push-mib S
--clones M --w1-files F` override the sizes. `--s3 [--direct]`: the store is a moto
bucket (with `--direct`, the server runs with `--direct-uploads --direct-downloads`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import datagen
from bench.measure import log
from bench.paths import RESULTS, WORK
from bench.report import fmt_bytes
from bench.services import S3_CREDENTIALS, Moto, OxenServer
from bench.tools import IDENTITY, Ours
from bench.trash import discard, empty_trash

NS = "load"
BUCKET = "oxen-load"
MIB = 1024 * 1024


class Load:
    def __init__(self, root: Path, s3: bool = False, direct: bool = False) -> None:
        self.root = root
        self.exe = str(Ours().exe)
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(root / "home"),
            "OXEN_CONFIG_DIR": str(root / "config"),
        }
        self.moto = Moto(root / "moto", {**os.environ, **S3_CREDENTIALS}) if s3 else None
        server_env = dict(self.env)
        storage = None
        if self.moto is not None:
            server_env |= {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": self.moto.endpoint}
            storage = f"s3://{BUCKET}/load"
        self.server = OxenServer(
            "load-server", Path(self.exe).parent / "oxen-server", root / "server", storage,
            server_env,
            ["--direct-uploads", "--direct-downloads"] if direct else [],
        )  # fmt: skip

    def __enter__(self) -> Load:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.moto is not None:
            (self.root / "moto").mkdir(parents=True, exist_ok=True)
            self.moto.launch()
            self.moto.create_bucket(BUCKET)
        self.server.launch()  # which makes the store the token goes to
        token = self.server.add_user(self.root / "user.toml")
        host = f"127.0.0.1:{self.server.port}"
        self.env |= {"OXEN_AUTH_TOKEN": token, "OXEN_AUTH_HOST": host}
        self.host = host
        self.must(self.root, "config", "--name", IDENTITY[0], "--email", IDENTITY[1])
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        if self.moto is not None:
            self.moto.stop()

    def url(self, name: str) -> str:
        return f"http://{self.host}/{NS}/{name}"

    def run(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.exe, *args], cwd=cwd, env=self.env, capture_output=True, text=True, check=False
        )

    def must(self, cwd: Path, *args: str) -> str:
        proc = self.run(cwd, *args)
        if proc.returncode != 0:
            raise RuntimeError(f"oxen {' '.join(args[:2])}: {proc.stderr.strip()[-300:]}")
        return proc.stdout

    def peak(self) -> int:
        """The server's peak RSS in bytes since the last reset."""
        got = self.server.rss_kib()
        return got[1] * 1024 if got else 0


Row = tuple[str, float, int, str]


def _random_file(path: Path, size: int, seed: int) -> None:
    """``size`` random bytes, different for every seed and the same on every run."""
    import random

    rng = random.Random(f"load-{seed}")
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 16 * MIB)
            f.write(rng.randbytes(n))
            left -= n


def _pushes(load: Load, n: int, size: int) -> Row:
    repos = []
    for i in range(n):
        repo = load.root / f"push-{i}"
        repo.mkdir(parents=True)
        _random_file(repo / "data.bin", size, i)
        load.must(repo, "init")
        load.must(repo, "add", ".")
        load.must(repo, "commit", "-m", "data")
        (repo / "data.bin").unlink()  # the push reads the store
        load.must(repo, "create-remote", "--name", f"{NS}/push-{i}", "--host", load.host)
        load.must(repo, "config", "--set-remote", "origin", load.url(f"push-{i}"))
        repos.append(repo)
    load.server.reset_peak_rss()
    start = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(lambda r: load.run(r, "push"), repos))
    seconds = time.perf_counter() - start
    peak = load.peak()
    failed = [r.stderr.strip()[-160:] for r in results if r.returncode != 0]
    for repo in repos:
        discard(repo)
    note = f"{n - len(failed)}/{n} pushes ok; {n * size / seconds / MIB:.0f} MiB/s together"
    if failed:
        note += f"; first error: {failed[0]}"
    return (f"{n} pushes of {fmt_bytes(size)} at once", seconds, peak, note)


def _clones(load: Load, m: int, files: int) -> Row:
    w1 = datagen.w1_files(files, 0)
    src = load.root / "w1"
    shutil.copytree(w1.path, src)
    load.must(src, "init")
    load.must(src, "add", ".")
    load.must(src, "commit", "-m", "w1")
    load.must(src, "create-remote", "--name", f"{NS}/w1", "--host", load.host)
    load.must(src, "config", "--set-remote", "origin", load.url("w1"))
    load.must(src, "push")
    discard(src)

    def clone(i: int) -> subprocess.CompletedProcess[str]:
        dest = load.root / f"clone-{i}"
        try:
            return load.run(load.root, "clone", load.url("w1"), str(dest))
        finally:
            discard(dest)

    load.server.reset_peak_rss()
    start = time.perf_counter()
    with ThreadPoolExecutor(m) as pool:
        results = list(pool.map(clone, range(m)))
    seconds = time.perf_counter() - start
    peak = load.peak()
    failed = [r.stderr.strip()[-160:] for r in results if r.returncode != 0]
    note = f"{m - len(failed)}/{m} clones ok of {fmt_bytes(w1.total_bytes)} each"
    if failed:
        note += f"; first error: {failed[0]}"
    return (f"{m} clones of W1 ({files:,} files) at once", seconds, peak, note)


def run(
    pushes: int,
    push_bytes: int,
    clones: int,
    w1_files: int,
    quick: bool,
    s3: bool = False,
    direct: bool = False,
) -> str:
    root = WORK / "server-load"
    discard(root)
    rows: list[Row] = []
    need = 2 * pushes * push_bytes
    free = shutil.disk_usage(WORK.parent if WORK.exists() else Path.cwd()).free
    if need > free * 0.8:
        raise SystemExit(f"the pushes need about {fmt_bytes(need)} of disk; {fmt_bytes(free)} free")
    with Load(root, s3, direct) as load:
        log(f"{pushes} pushes of {fmt_bytes(push_bytes)}")
        rows.append(_pushes(load, pushes, push_bytes))
        log(f"{clones} clones of W1 ({w1_files} files)")
        rows.append(_clones(load, clones, w1_files))
    discard(root)
    empty_trash()  # a hundred clones of W1 are 21 GiB
    where = "local disk"
    if s3:
        where = "moto, direct transfers" if direct else "moto"
    lines = [
        f"# Server memory under load ({'quick' if quick else 'full'}, {where}, "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores)",
        "",
        "| step | time | server peak RSS | note |",
        "| --- | ---: | ---: | --- |",
    ]
    lines += [
        f"| {label} | {t:.1f} s | {fmt_bytes(peak)} | {note} |" for label, t, peak, note in rows
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.server_load", description=__doc__)
    p.add_argument(
        "--quick", action="store_true", help="2 x 64 MiB pushes, 10 clones of 1,000 files"
    )
    p.add_argument("--pushes", type=int)
    p.add_argument("--push-mib", type=int)
    p.add_argument("--clones", type=int)
    p.add_argument("--w1-files", type=int)
    p.add_argument("--s3", action="store_true", help="the server's store is a moto bucket")
    p.add_argument(
        "--direct", action="store_true", help="with --s3: --direct-uploads --direct-downloads"
    )
    args = p.parse_args(argv)
    pushes, push_mib, clones, files = (2, 64, 10, 1000) if args.quick else (8, 1024, 100, 20_000)
    table = run(
        args.pushes or pushes,
        (args.push_mib or push_mib) * MIB,
        args.clones or clones,
        args.w1_files or files,
        args.quick,
        args.s3,
        args.direct,
    )
    print(table)
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        kind = ("-s3-direct" if args.direct else "-s3") if args.s3 else ""
        out = RESULTS / f"server-load{kind}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M}.md"
        out.write_text(table)
        log(f"wrote {out}")


if __name__ == "__main__":
    main()
