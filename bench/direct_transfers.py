"""`python -m bench.direct_transfers`: 8 clients push at once to one oxen-server on moto,
then clone back at once, with and without direct transfers (`--direct-uploads`: packs PUT
straight to S3 by presigned URLs; `--direct-downloads`: fetched objects read straight from
S3 by presigned URLs).

Each client is its own repository holding one file of seeded random bytes, committed
beforehand (untimed). Per mode and run: a fresh moto and a fresh server, then all
`oxen push` start together, then all `oxen clone`; wall = first start to last exit, MB/s =
all the data (10^6 bytes) / wall, server peak RSS = its VmHWM during the step (reset in
between), CPU s/GiB = the user + system time the server (and moto) spent in the step per
GiB moved: what would limit a server on a real S3, where moto's share is not ours. Each clone is checked byte-equal to what was pushed. Results go to
bench/results/direct-transfers-YYYYMMDD-HHMM.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import filecmp
import os
import random
import shutil
import statistics
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.measure import log
from bench.paths import RESULTS, WORK
from bench.services import S3_CREDENTIALS, Moto, Service, free_port, venv_python

MIB = 1024 * 1024
CLIENTS = 8
BUCKET = "oxen-direct"


def _oxen(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_python(), "-m", "oxen.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )


def _must(cwd: Path, env: dict[str, str], *args: str) -> str:
    proc = _oxen(cwd, env, *args)
    if proc.returncode != 0:
        raise RuntimeError(f"oxen {' '.join(args)}: {proc.stderr.strip()[-300:]}")
    return proc.stdout


def _random_file(path: Path, size: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for start in range(0, size, 16 * MIB):
            f.write(rng.randbytes(min(16 * MIB, size - start)))


def _clients(root: Path, size: int) -> list[Path]:
    """CLIENTS repositories, each one committed file of ``size`` random bytes (reused
    across runs: made once)."""
    env = {**os.environ, "OXEN_HOME": str(root / "home")}
    repos = []
    for i in range(CLIENTS):
        repo = root / f"client-{i}"
        repos.append(repo)
        if (repo / ".done").exists():
            continue
        shutil.rmtree(repo, ignore_errors=True)
        repo.mkdir(parents=True)
        _must(repo, env, "init")
        _must(repo, env, "config", "--name", "Bench", "--email", "bench@example.com")
        _random_file(repo / "data.bin", size, seed=i)
        _must(repo, env, "add", "data.bin")
        _must(repo, env, "commit", "-m", "data")
        (repo / ".done").write_text("")
    return repos


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _all_at_once(
    server: Service,
    moto: Moto,
    jobs: list[tuple[Path, tuple[str, ...]]],
    env: dict[str, str],
    size: int,
) -> dict:
    """Run every ``oxen`` command of ``jobs`` at once: wall, aggregate MB/s, the server's
    peak RSS, and the CPU seconds per GiB moved of the server and of moto."""
    server.reset_peak_rss()
    cpu = (server.cpu_seconds(), moto.cpu_seconds())
    started = time.perf_counter()
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: _oxen(job[0], env, *job[1]), jobs))
    wall = time.perf_counter() - started
    peak = _peak_kib(server.pid)
    failed = [r.stderr.strip()[-200:] for r in results if r.returncode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(jobs)} failed: {failed[0]}")
    gib = len(jobs) * size / 2**30
    return {
        "wall": wall,
        "mbps": len(jobs) * size / 1e6 / wall,
        "rss_mib": peak / 1024,
        "server_cpu": (server.cpu_seconds() - cpu[0]) / gib,
        "moto_cpu": (moto.cpu_seconds() - cpu[1]) / gib,
    }


def _one_run(root: Path, repos: list[Path], size: int, direct: bool, tag: str) -> dict:
    work = root / tag
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ, **S3_CREDENTIALS}
    moto = Moto(work / "moto", env)
    moto.launch()
    server: Service | None = None
    try:
        moto.create_bucket(BUCKET)
        port = free_port()
        args = ["--direct-uploads", "--direct-downloads"] if direct else []
        server_env = {**env, "AWS_ENDPOINT_URL": moto.endpoint}
        base = [venv_python(), "-m", "oxen.server.main"]
        store = ["--data-dir", str(work / "server"), "--storage", f"s3://{BUCKET}/oxen"]
        server = Service(
            f"oxen-server-{tag}",
            [*base, "start", "--port", str(port), *store, "--access-log", "off", *args],
            server_env,
            work,
        )
        server.start(f"http://127.0.0.1:{port}/api/health")
        out = work / "user.toml"
        subprocess.run(
            [*base, "add-user", "--email", "b@example.com", "--name", "B", "--output", str(out),
             *store],
            env=server_env, check=True, capture_output=True,
        )  # fmt: skip
        token = out.read_text().split('token = "')[1].split('"')[0]
        client_env = {
            **os.environ,
            "OXEN_HOME": str(root / "home"),
            "OXEN_AUTH_TOKEN": token,
            "OXEN_AUTH_HOST": f"127.0.0.1:{port}",
        }
        for i, repo in enumerate(repos):
            name = f"{tag}/c{i}"
            _must(repo, client_env, "create-remote", "--name", name, "--host", f"127.0.0.1:{port}")
            _must(repo, client_env, "config", "--set-remote", "origin",
                  f"http://127.0.0.1:{port}/{name}")  # fmt: skip
        push = _all_at_once(server, moto, [(r, ("push",)) for r in repos], client_env, size)
        clones = work / "clones"
        clones.mkdir()
        jobs = [
            (clones, ("clone", f"http://127.0.0.1:{port}/{tag}/c{i}", f"c{i}"))
            for i in range(len(repos))
        ]
        clone = _all_at_once(server, moto, jobs, client_env, size)
        for i, repo in enumerate(repos):
            if not filecmp.cmp(repo / "data.bin", clones / f"c{i}" / "data.bin", shallow=False):
                raise RuntimeError(f"clone c{i} differs from what was pushed")
        return {"push": push, "clone": clone}
    finally:
        if server is not None:
            server.stop()
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.direct_transfers", description=__doc__)
    p.add_argument("--mib", type=int, default=1024, help="MiB each client pushes (1024)")
    p.add_argument("--runs", type=int, default=3, help="runs of each mode (median shown)")
    a = p.parse_args(argv)
    size = a.mib * MIB
    load = os.getloadavg()
    root = WORK / "direct-uploads" / f"{a.mib}mib"
    log(f"making {CLIENTS} clients of {a.mib} MiB (untimed)")
    repos = _clients(root, size)
    modes = (("through the server", False), ("direct", True))
    rows: dict[str, list[dict]] = {mode: [] for mode, _ in modes}
    for run in range(a.runs):
        for mode, direct in modes:
            log(f"run {run + 1}/{a.runs}: {mode}")
            rows[mode].append(_one_run(root, repos, size, direct, f"r{run}-{int(direct)}"))
            log(f"  {rows[mode][-1]}")
    now = dt.datetime.now()
    lines = [
        f"# Direct transfers: {CLIENTS} clients x {a.mib} MiB, one server on moto",
        "",
        f"{now:%Y-%m-%d %H:%M}; {a.runs} run(s) of each mode, alternating, medians shown;"
        f" {os.cpu_count()} cores; load average at start"
        f" {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}. direct = `--direct-uploads"
        " --direct-downloads`.",
        "",
        "| step | mode | aggregate MB/s | wall s | server peak RSS MiB"
        " | server CPU s/GiB | moto CPU s/GiB | runs (MB/s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for step in ("push", "clone"):
        for mode, got in rows.items():
            each = [r[step] for r in got]
            runs = ", ".join(f"{r['mbps']:.0f}" for r in each)
            lines.append(
                f"| {step} | {mode} | {statistics.median(r['mbps'] for r in each):.0f}"
                f" | {statistics.median(r['wall'] for r in each):.1f}"
                f" | {statistics.median(r['rss_mib'] for r in each):.0f}"
                f" | {statistics.median(r['server_cpu'] for r in each):.1f}"
                f" | {statistics.median(r['moto_cpu'] for r in each):.1f} | {runs} |"
            )
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"direct-transfers-{now:%Y%m%d-%H%M}.md"
    out.write_text(text)
    print(text)
    log(f"wrote {out.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
