"""`python -m bench.web`: the web pages on big repositories (docs/benchmarks.md, "Web pages").

One oxen-server on local disk, with two repositories pushed by the CLI: W2 v1 (a 1 GiB
parquet file) and a folder of 100,000 small files (one commit). Signed in as a browser
is (the session cookie), each page is fetched whole, as a browser fetches its HTML:

- the parquet file's page: its schema and first 100 rows (the rows route's JSON beside
  it, the same read without the page);
- the 100,000-file folder's first page (100 entries with sizes, types and last change),
  a page from its middle, and the tree route's JSON of the first page;
- the commit page of those 100,000 added files (its first 200 changed paths);
- the raw 1 GiB file, whole (streamed from the packs).

"cold" is the first request after the server starts (nothing of the repository in its
memory, its index cache on disk: the first visitor after a restart); "warm" the median
of the next runs. The targets: the first page of each under a second.

`--quick`: 32 MiB and 2,000 files, 3 runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import oxen
from bench import datagen
from bench.measure import log
from bench.partial import NS, Bench
from bench.paths import RESULTS, WORK
from bench.report import fmt_bytes
from bench.trash import discard

SIZES = {  # parquet bytes, files in the folder, warm runs
    "quick": (32 * datagen.MIB, 2_000, 3),
    "full": (1024 * datagen.MIB, 100_000, 10),
}
TARGET_SECONDS = 1.0


@dataclass
class Row:
    label: str
    cold: float
    warm: list[float]
    size: int  # bytes of the answer
    target: bool  # whether the under-a-second target applies

    def cells(self) -> str:
        warm = statistics.median(self.warm) if self.warm else float("nan")
        verdict = ""
        if self.target:
            verdict = "yes" if max(self.cold, warm) < TARGET_SECONDS else "**no**"
        return (
            f"| {self.label} | {self.cold:.3f} s | {warm:.3f} s | {fmt_bytes(self.size)} |"
            f" {verdict} |"
        )


class Client:
    """GETs with the session cookie, timed to the last byte of the answer."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token

    def get(self, path: str, api: bool = False) -> tuple[float, int]:
        headers = (
            {"Authorization": f"Bearer {self.token}", "Oxen-Protocol": "2"}
            if api
            else {"Cookie": f"oxen_token={self.token}"}
        )
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        start = time.perf_counter()
        try:
            conn.request("GET", path, headers=headers)
            answer = conn.getresponse()
            size = 0
            while piece := answer.read(1 << 20):
                size += len(piece)
            seconds = time.perf_counter() - start
        finally:
            conn.close()
        if answer.status != 200:
            raise RuntimeError(f"GET {path}: {answer.status}")
        return seconds, size


def _folder(root: Path, files: int) -> Path:
    """``files`` small files in one folder (random bytes, seeded)."""
    top = root / "folder-src"
    folder = top / "many"
    folder.mkdir(parents=True)
    rng = random.Random(f"web-{files}")
    for i in range(files):
        (folder / f"{i:07d}.txt").write_bytes(rng.randbytes(rng.randint(16, 64)))
    return top


def _measure(b: Bench, runs: int, targets: list[tuple[str, str, bool, bool]]) -> list[Row]:
    """Each of ``targets`` (label, path, api, under-a-second target) fetched once right
    after the server (re)starts, then ``runs`` times more."""
    token = b.env["OXEN_AUTH_TOKEN"]
    b.server.stop()
    b.server.launch()
    client = Client(b.server.port, token)
    cold: dict[str, tuple[float, int]] = {}
    for label, path, api, _ in targets:
        cold[label] = client.get(path, api)
        log(f"cold {label}: {cold[label][0]:.3f} s")
    rows = []
    for label, path, api, target in targets:
        warm = [client.get(path, api)[0] for _ in range(runs)]
        rows.append(Row(label, cold[label][0], warm, cold[label][1], target))
    return rows


def run(quick: bool) -> str:
    parquet_bytes, files, runs = SIZES["quick" if quick else "full"]
    load_before = os.getloadavg()[0]
    root = WORK / "web"
    discard(root)
    with Bench(root) as b:
        log(f"W2 v1: {fmt_bytes(parquet_bytes)} parquet")
        w2 = datagen.w2_parquet(parquet_bytes, 0, False)
        src = root / "w2-src"
        src.mkdir(parents=True)
        (src / "data.parquet").write_bytes(w2.v1.read_bytes())
        b.publish("w2", src)
        log(f"a folder of {files:,} files")
        b.publish("folder", _folder(root, files))
        commit = oxen.Repo(root / "src-folder").log("main")[0].id.hex()
        repo_w2, repo_folder = f"/{NS}/w2", f"/{NS}/folder"
        targets: list[tuple[str, str, bool, bool]] = [
            ("parquet page: schema + first 100 rows", f"{repo_w2}/file/data.parquet", False, True),
            ("rows route (JSON), first 100 rows", f"/api/repos{repo_w2}/rows/data.parquet", True, False),
            (f"folder page: first 100 of {files:,}", f"{repo_folder}/tree/many", False, True),
            (f"folder page: offset {files // 2:,}", f"{repo_folder}/tree/many?offset={files // 2}", False, False),
            ("tree route (JSON), first 100", f"/api/repos{repo_folder}/tree/many", True, False),
            ("repository page (top folder)", repo_folder, False, False),
            (f"commit page: first 200 of {files:,} added paths", f"{repo_folder}/commit/{commit}", False, False),
            (f"raw file, whole ({fmt_bytes(w2.v1.stat().st_size)})", f"{repo_w2}/raw/data.parquet", False, False),
        ]  # fmt: skip
        load_measured = os.getloadavg()[0]
        rows = _measure(b, runs, targets)
    discard(root)
    loads = (load_before, load_measured, os.getloadavg()[0])
    return _table(rows, runs, quick, w2.rows, files, loads)


def _table(
    rows: list[Row],
    runs: int,
    quick: bool,
    parquet_rows: int,
    files: int,
    loads: tuple[float, float, float],
) -> str:
    lines = [
        f"# Web pages on big repositories ({'quick' if quick else 'full'}, "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, warm: median of {runs})",
        "",
        f"W2 v1: {parquet_rows:,} rows in row groups of {datagen.BATCH_ROWS:,}; a folder of "
        f"{files:,} files in one commit. cold: the first request after the server starts. "
        f"1-minute load average at the start {loads[0]:.2f}, when measuring began "
        f"{loads[1]:.2f}, at the end {loads[2]:.2f} (2 cores).",
        "",
        "| page | cold | warm | answer | under 1 s |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    lines += [r.cells() for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, 3 runs")
    args = p.parse_args(argv)
    table = run(args.quick)
    print(table)
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"web-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M}.md"
        out.write_text(table)
        log(f"wrote {out}")


if __name__ == "__main__":
    main()
