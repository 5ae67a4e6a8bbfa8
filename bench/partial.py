"""`python -m bench.partial`: partial clones, data on demand and one-file downloads, timed
against the full clone they spare (docs/benchmarks.md, "Working with data you do not hold").

One oxen-server on local disk behind a counting proxy (bytes on the wire, both ways, the
same way W4 counts them). Per run, fresh clones of:
- W3 (100,000 small files): a default clone against `clone --no-data`;
- W1 (20,000 files in train/ and test/): a default clone against `clone --subtree train`;
- W1 with a second commit that rewrites 5% of the files: a default clone, then
  `checkout HEAD~1`: the bytes it fetched against the bytes of the files that differ;
- W2 (a 1 GiB parquet file): `oxen download` of it against a clone of its repository.
Medians over the runs; `--quick` uses small sizes and one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from bench import datagen
from bench.measure import log
from bench.netproxy import CountingProxy
from bench.paths import RESULTS, WORK
from bench.report import fmt_bytes
from bench.services import OxenServer
from bench.tools import IDENTITY, Ours
from bench.trash import discard

SIZES = {
    "quick": (1_000, 2_000, 32 * datagen.MIB, 1),
    "full": (20_000, 100_000, 1024 * datagen.MIB, 3),
}
NS = "bench"


class Bench:
    """The server, its proxy, and commands run against it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.exe = str(Ours().exe)
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(root / "home"),
            "OXEN_CONFIG_DIR": str(root / "config"),
        }
        self.server = OxenServer(
            "partial-server", Path(self.exe).parent / "oxen-server", root / "server", None, self.env
        )
        self.proxy: CountingProxy | None = None

    def __enter__(self) -> Bench:
        self.root.mkdir(parents=True, exist_ok=True)
        self.server.launch()  # which makes the store the token goes to
        token = self.server.add_user(self.root / "user.toml")
        self.proxy = CountingProxy("oxen", self.server.port).start()
        host = self.proxy.url.removeprefix("http://")
        self.env |= {"OXEN_AUTH_TOKEN": token, "OXEN_AUTH_HOST": host}
        self.oxen(self.root, "config", "--name", IDENTITY[0], "--email", IDENTITY[1])
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proxy is not None:
            self.proxy.close()
        self.server.stop()

    def url(self, name: str) -> str:
        assert self.proxy is not None
        return f"{self.proxy.url}/{NS}/{name}"

    def oxen(self, cwd: Path, *args: str) -> str:
        proc = subprocess.run(
            [self.exe, *args], cwd=cwd, env=self.env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"oxen {' '.join(args)}: {proc.stderr.strip()[-300:]}")
        return proc.stdout

    def timed(self, cwd: Path, *args: str) -> tuple[float, int]:
        """Seconds and bytes received of one command."""
        assert self.proxy is not None
        _, down = self.proxy.settle()
        start = time.perf_counter()
        self.oxen(cwd, *args)
        seconds = time.perf_counter() - start
        return seconds, self.proxy.settle()[1] - down

    def publish(
        self, name: str, files: Path | None, commits: Sequence[Sequence[tuple[str, bytes]]] = ()
    ) -> Path:
        """A repository of ``files`` (copied), committed and pushed; then each of
        ``commits`` (path -> new content) committed and pushed on top."""
        repo = self.root / f"src-{name}"
        discard(repo)
        if files is not None:
            shutil.copytree(files, repo)
        else:
            repo.mkdir(parents=True)
        self.oxen(repo, "init")
        self.oxen(repo, "add", ".")
        self.oxen(repo, "commit", "-m", f"{name} v1")
        for i, changes in enumerate(commits):
            for rel, data in changes:
                (repo / rel).write_bytes(data)
            self.oxen(repo, "add", ".")
            self.oxen(repo, "commit", "-m", f"{name} v{i + 2}")
        host = self.url("").split("/")[2]
        self.oxen(repo, "create-remote", "--name", f"{NS}/{name}", "--host", host)
        self.oxen(repo, "config", "--set-remote", "origin", self.url(name))
        self.oxen(repo, "push")
        return repo


Row = tuple[str, list[float], list[int], str]


def _clones(b: Bench, name: str, modes: dict[str, list[str]], runs: int) -> dict[str, Row]:
    out: dict[str, Row] = {}
    for label, extra in modes.items():
        times, sizes = [], []
        for r in range(runs):
            dest = b.root / f"clone-{name}-{r}"
            discard(dest)
            t, n = b.timed(b.root, "clone", *extra, b.url(name), str(dest))
            times.append(t)
            sizes.append(n)
            discard(dest)
        out[label] = (label, times, sizes, "")
    return out


def run(quick: bool, runs: int | None) -> str:
    w1_n, w3_n, w2_bytes, default_runs = SIZES["quick" if quick else "full"]
    runs = runs or default_runs
    root = WORK / "partial"
    discard(root)
    rows: list[Row] = []
    with Bench(root) as b:
        log(f"W3: {w3_n} files")
        w3 = datagen.w3_files(w3_n, 0)
        b.publish("w3", w3.path)
        got = _clones(b, "w3", {"W3 clone": [], "W3 clone --no-data": ["--no-data"]}, runs)
        share = statistics.median(got["W3 clone --no-data"][2]) / w3.total_bytes
        rows += [
            got["W3 clone"],
            (
                *got["W3 clone --no-data"][:3],
                f"{share:.1%} of the data's {fmt_bytes(w3.total_bytes)}",
            ),
        ]

        log(f"W1: {w1_n} files, then 5% rewritten")
        w1 = datagen.w1_files(w1_n, 0)
        changed = datagen.w1_changed_files(w1, 0, count=max(1, w1_n // 20))
        old_bytes = sum((w1.path / rel).stat().st_size for rel, _ in changed)
        b.publish("w1", w1.path, [changed])
        got = _clones(
            b, "w1", {"W1 clone": [], "W1 clone --subtree train": ["--subtree", "train"]}, runs
        )
        half = statistics.median(got["W1 clone --subtree train"][2]) / statistics.median(
            got["W1 clone"][2]
        )
        rows += [
            got["W1 clone"],
            (*got["W1 clone --subtree train"][:3], f"{half:.0%} of a full clone's bytes"),
        ]

        times, sizes = [], []
        for r in range(runs):
            dest = root / f"older-{r}"
            discard(dest)
            b.oxen(root, "clone", b.url("w1"), str(dest))
            t, n = b.timed(dest, "checkout", "HEAD~1")
            times.append(t)
            sizes.append(n)
            discard(dest)
        ratio = statistics.median(sizes) / old_bytes
        rows.append(
            ("W1 clone, then checkout HEAD~1", times, sizes,
             f"{ratio:.2f}x the {fmt_bytes(old_bytes)} of the {len(changed)} files that differ")
        )  # fmt: skip

        log(f"W2: {fmt_bytes(w2_bytes)} parquet")
        w2 = datagen.w2_parquet(w2_bytes, 0, False)
        src = root / "w2-files"
        src.mkdir()
        shutil.copyfile(w2.v1, src / "data.parquet")
        b.publish("w2", src)
        got = _clones(b, "w2", {"W2 clone": []}, runs)
        rows.append(got["W2 clone"])
        times, sizes = [], []
        try:
            for r in range(runs):
                out = root / f"download-{r}.parquet"
                out.unlink(missing_ok=True)
                t, n = b.timed(root, "download", b.url("w2"), "data.parquet", "-o", str(out))
                times.append(t)
                sizes.append(n)
                out.unlink()
        except RuntimeError as e:
            rows.append(("W2 download data.parquet", [0.0], [0], f"failed: {e}"))
        else:
            clone_t = statistics.median(got["W2 clone"][1])
            rows.append(
                ("W2 download data.parquet", times, sizes,
                 f"{statistics.median(times) / clone_t:.2f}x the clone's time")
            )  # fmt: skip
    discard(root)
    return _table(rows, runs, quick)


def _table(rows: list[Row], runs: int, quick: bool) -> str:
    lines = [
        f"# Partial clones and downloads ({'quick' if quick else 'full'}, "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, median of {runs})",
        "",
        "| step | time | received | note |",
        "| --- | ---: | ---: | --- |",
    ]
    for label, times, sizes, note in rows:
        lines.append(
            f"| {label} | {statistics.median(times):.2f} s | "
            f"{fmt_bytes(int(statistics.median(sizes)))} | {note} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.partial", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, one run")
    p.add_argument("--runs", type=int, help="runs per step, median reported")
    args = p.parse_args(argv)
    table = run(args.quick, args.runs)
    print(table)
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"partial-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M}.md"
        out.write_text(table)
        log(f"wrote {out}")


if __name__ == "__main__":
    main()
