"""`python -m bench.multiserver`: throughput of concurrent pushes and clones through nginx
in front of one oxen-server against three, all on one moto bucket (docs/benchmarks.md,
"Several servers on one bucket").

Each setup is what `deploy/run-local.py` starts (moto in server mode, N servers on one
bucket, nginx round-robin in front), run as a subprocess and read from its `--json` line.
Per run, K clients each hold their own repository of random (incompressible, never
deduplicated) files; all K push at once (timed: the wall time from the first start to the
last exit), then K clones of those repositories run at once (timed likewise) and each
clone is checked against what was pushed. Medians over the runs; MB/s is the bytes of
file data moved by all K clients over that wall time. The servers' access logs say how
nginx spread the requests.

Everything runs on this machine: moto, the servers, nginx and the K clients share its
cores, so more servers add processes, not CPU. `--quick`: fewer, smaller clients, one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.measure import log
from bench.paths import RESULTS, ROOT, WORK
from bench.report import fmt_bytes
from bench.tools import IDENTITY
from bench.trash import discard

RUN_LOCAL = ROOT / "deploy" / "run-local.py"
OXEN = [sys.executable, "-m", "oxen.cli.main"]
MIB = 1024 * 1024
SIZES = {
    # clients, files per client, bytes per file, runs
    "quick": (3, 2, 4 * MIB, 1),
    "full": (6, 8, 8 * MIB, 3),
}
SETUPS = (1, 3)  # servers behind nginx


@dataclass(frozen=True)
class Result:
    servers: int
    push_seconds: list[float]
    clone_seconds: list[float]
    data_bytes: int  # per run, all clients together
    requests: list[int]  # per server, over every run


class Deployment:
    """`deploy/run-local.py` as a subprocess: ready once its JSON line is read."""

    def __init__(self, servers: int, workdir: Path) -> None:
        args = [sys.executable, str(RUN_LOCAL), "--servers", str(servers), "--port", "0"]
        args += ["--json", "--dir", str(workdir)]
        self.workdir = workdir
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            self.proc.wait(60)
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"run-local.py exited {self.proc.returncode}: {err.strip()}")
        self.facts = json.loads(line)

    @property
    def host(self) -> str:
        return self.facts["url"].removeprefix("http://")

    def requests(self) -> list[int]:
        """Requests each server answered, from its access log."""
        return [
            (self.workdir / f"access-{i + 1}.log").read_text().count("\n")
            for i in range(len(self.facts["servers"]))
        ]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)


def write_files(root: Path, client: int, files: int, size: int) -> None:
    for f in range(files):
        path = root / "data" / f"{client:02d}-{f:02d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            for _ in range(size // MIB):
                out.write(os.urandom(MIB))


def concurrently(commands: list[tuple[list[str], Path]], env: dict[str, str]) -> float:
    """Start every command at once; the wall time until the last exits. Any failure stops
    the benchmark: a throughput of failed pushes would mean nothing."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for args, cwd in commands
    ]
    outcomes = [(p.wait(), p.communicate()[1]) for p in procs]
    seconds = time.perf_counter() - start
    failed = [err.strip()[-300:] for code, err in outcomes if code]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(procs)} commands failed: {failed[0]}")
    return seconds


def must(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args[-3:])}: {proc.stderr.strip()[-300:]}")


def same_files(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in (a / "data").iterdir())
    return files == sorted(p.relative_to(b) for p in (b / "data").iterdir()) and all(
        (a / f).stat().st_size == (b / f).stat().st_size for f in files
    )


def measure(servers: int, size: str, root: Path) -> Result:
    clients, files, file_bytes, runs = SIZES[size]
    discard(root)
    root.mkdir(parents=True)
    env = {
        **os.environ,
        "OXEN_CONFIG_DIR": str(root / "config"),
        "HOME": str(root / "home"),
    }
    must([*OXEN, "config", "--name", IDENTITY[0], "--email", IDENTITY[1]], root, env)
    deployment = Deployment(servers, root / "deployment")
    try:
        env |= {"OXEN_AUTH_HOST": deployment.host, "OXEN_AUTH_TOKEN": deployment.facts["token"]}
        url = deployment.facts["url"]
        pushes, clones = [], []
        for run in range(runs):
            sources = []
            for c in range(clients):  # untimed: the repositories to push
                src = root / f"run-{run}" / f"src-{c}"
                src.mkdir(parents=True)
                write_files(src, c, files, file_bytes)
                name = f"bench/r{run}-c{c}"
                must([*OXEN, "init"], src, env)
                must([*OXEN, "add", "."], src, env)
                must([*OXEN, "commit", "-m", f"client {c}"], src, env)
                must([*OXEN, "create-remote", "--name", name, "--host", deployment.host], src, env)
                must([*OXEN, "config", "--set-remote", "origin", f"{url}/{name}"], src, env)
                sources.append(src)
            log(f"{servers} server(s), run {run + 1}/{runs}: {clients} pushes at once")
            pushes.append(concurrently([([*OXEN, "push"], s) for s in sources], env))
            log(f"{servers} server(s), run {run + 1}/{runs}: {clients} clones at once")
            dests = [root / f"run-{run}" / f"clone-{c}" for c in range(clients)]
            commands = [
                ([*OXEN, "clone", f"{url}/bench/r{run}-c{c}", str(d)], root)
                for c, d in enumerate(dests)
            ]
            clones.append(concurrently(commands, env))
            if not all(same_files(s, d) for s, d in zip(sources, dests, strict=True)):
                raise RuntimeError("a clone does not hold what was pushed")
            discard(root / f"run-{run}")
        requests = deployment.requests()
    finally:
        deployment.stop()
    discard(root)
    return Result(servers, pushes, clones, clients * files * file_bytes, requests)


def table(results: list[Result], size: str, load: tuple[float, float]) -> str:
    clients, files, file_bytes, runs = SIZES[size]
    lines = [
        f"# Several servers on one bucket ({size}, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"{clients} clients at once, each its own repository of {files} random files of "
        f"{fmt_bytes(file_bytes)} ({fmt_bytes(clients * files * file_bytes)} in all); "
        f"nginx round-robin in front, moto behind; median of {runs} run(s). "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; 1-minute load average "
        f"{load[0]:.2f} at the start, {load[1]:.2f} at the end.",
        "",
        "| servers | push: wall time | push: MB/s | clone: wall time | clone: MB/s | requests per server |",
        "| ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        push, clone = statistics.median(r.push_seconds), statistics.median(r.clone_seconds)
        lines.append(
            f"| {r.servers} | {push:.2f} s | {r.data_bytes / push / 1e6:.0f} | {clone:.2f} s | "
            f"{r.data_bytes / clone / 1e6:.0f} | {', '.join(map(str, r.requests))} |"
        )
    base = results[0]
    for r in results[1:]:
        lines.append("")
        lines.append(
            f"{r.servers} servers against {base.servers}: pushes "
            f"{statistics.median(base.push_seconds) / statistics.median(r.push_seconds):.2f}x, "
            f"clones {statistics.median(base.clone_seconds) / statistics.median(r.clone_seconds):.2f}x "
            "the throughput (above 1: faster)."
        )
    lines.append("")
    lines.append(
        "Runs: "
        + "; ".join(
            f"{r.servers} server(s) push {', '.join(f'{s:.2f}' for s in r.push_seconds)} s, "
            f"clone {', '.join(f'{s:.2f}' for s in r.clone_seconds)} s"
            for r in results
        )
    )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.multiserver", description=__doc__)
    p.add_argument("--quick", action="store_true", help="3 clients of 8 MiB, one run")
    p.add_argument("--no-save", action="store_true", help="print the table, write no file")
    args = p.parse_args(argv)
    size = "quick" if args.quick else "full"
    load_before = os.getloadavg()[0]
    results = [measure(n, size, WORK / "multiserver" / f"{n}-servers") for n in SETUPS]
    text = table(results, size, (load_before, os.getloadavg()[0]))
    print(text)
    if not args.quick and not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"multiserver-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M}.md"
        out.write_text(text)
        log(f"wrote {out}")


if __name__ == "__main__":
    main()
