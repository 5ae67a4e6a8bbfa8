"""`python -m bench.tables`: tabular files, ours against oxenai's bindings side by side
(docs/benchmarks.md, "Tables").

On W2's parquet versions (v1; v2 = +1% rows appended; v3 = 1% of rows given new values
mid-file; the generator knows the exact counts):
- **row diff by key `id`**, v1 -> v3 and v1 -> v2: ours is `oxen diff REV_A REV_B
  data.parquet --keys id --json` in a repository holding both versions (it copies each
  out of the store first); oxenai is `oxen.diff(v1, to=v3, keys=["id"])` on the two files
  (its bindings' tabular diff, a polars frame of changed rows). Time, peak RSS, and
  whether the counts are exactly right.
- **`df --head 10`** of the stored v1 (`--rev HEAD`) and of the working tree's file.
- **`schemas`** of a commit with 1,000 csv files.
Medians of the runs; `--quick`: 32 MiB and one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
from collections.abc import Sequence
from pathlib import Path

from bench import datagen
from bench.measure import log, run_cmd
from bench.paths import LOGS, RESULTS, WORK
from bench.report import fmt_bytes
from bench.tools import IDENTITY, Ours, OxenAI
from bench.trash import discard

OXENAI_DIFF = """
import json, sys, oxen
d = oxen.diff(sys.argv[1], to=sys.argv[2], keys=["id"])
counts = dict(d.tabular.data["_oxen_diff_status"].value_counts().iter_rows())
print(json.dumps({k: counts.get(k, 0) for k in ("added", "removed", "modified")}))
"""


class Runner:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ours = Ours()
        self.env = {**self.ours.env(), "OXEN_CONFIG_DIR": str(root / "config")}
        self.exe = str(self.ours.exe)
        self.n = 0

    def run(
        self, cwd: Path, argv: list[str], env: dict[str, str] | None = None
    ) -> tuple[float, int, str]:
        """(seconds, peak RSS bytes, stdout) of one command; it must succeed."""
        self.n += 1
        res = run_cmd(argv, cwd, env or self.env, LOGS / "tables" / f"{self.n:03d}", 3600)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:4])}: {res.first_error_line()}")
        return res.seconds, res.maxrss_kib * 1024, res.stdout_path.read_text()

    def oxen(self, cwd: Path, *args: str) -> tuple[float, int, str]:
        return self.run(cwd, [self.exe, *args])


Row = tuple[str, str, list[float], list[int], str]


def _diff_rows(r: Runner, repo: Path, w2: datagen.ParquetVersions, runs: int) -> list[Row]:
    oxenai = OxenAI()
    oxenai.ensure_installed(True, False)
    cases = {
        "v1 -> v3 (1% rows changed)": ("HEAD~1", "HEAD", w2.v3, {"added": 0, "removed": 0, "modified": w2.changed_rows}),
        "v1 -> v2 (1% rows appended)": ("HEAD~1", "appended", w2.v2, {"added": w2.appended_rows, "removed": 0, "modified": 0}),
    }  # fmt: skip
    rows: list[Row] = []
    for label, (a, b, file_b, want) in cases.items():
        for tool in ("ours", "oxenai"):
            times, rss, right = [], [], True
            for _ in range(runs):
                if tool == "ours":
                    t, m, out = r.oxen(repo, "diff", a, b, "data.parquet", "--keys", "id", "--json")
                    got = {k: json.loads(out)[k] for k in want}
                else:
                    argv = [oxenai.py, "-c", OXENAI_DIFF, str(w2.v1), str(file_b)]
                    t, m, out = r.run(r.root, argv, oxenai.env())
                    got = json.loads(out.strip().splitlines()[-1])
                times.append(t)
                rss.append(m)
                right = right and got == want
            note = "exact counts" if right else f"WRONG: {got} (want {want})"
            rows.append((f"row diff {label}", tool, times, rss, note))
    return rows


def run(quick: bool, runs: int | None) -> str:
    size = 32 * datagen.MIB if quick else 1024 * datagen.MIB
    runs = runs or (1 if quick else 3)
    root = WORK / "tables"
    discard(root)
    root.mkdir(parents=True)
    r = Runner(root)
    Ours().ensure_installed(False, False)  # with its bytecode, as an installed wheel has
    r.oxen(root, "config", "--name", IDENTITY[0], "--email", IDENTITY[1])
    w2 = datagen.w2_parquet(size, 0, False)
    repo = root / "w2"
    repo.mkdir()
    shutil.copyfile(w2.v1, repo / "data.parquet")
    r.oxen(repo, "init")
    r.oxen(repo, "add", ".")
    r.oxen(repo, "commit", "-m", "v1")
    r.oxen(repo, "branch", "appended")
    shutil.copyfile(w2.v3, repo / "data.parquet")
    r.oxen(repo, "add", ".")
    r.oxen(repo, "commit", "-m", "v3")
    r.oxen(repo, "checkout", "appended")
    shutil.copyfile(w2.v2, repo / "data.parquet")
    r.oxen(repo, "add", ".")
    r.oxen(repo, "commit", "-m", "v2")
    r.oxen(repo, "checkout", "main")
    log(f"W2 {fmt_bytes(size)}: {w2.rows:,} rows")

    rows: list[Row] = []
    for label, args in {
        "df --head 10 (stored, --rev HEAD)": ["--rev", "HEAD"],
        "df --head 10 (working tree)": [],
    }.items():
        samples = [r.oxen(repo, "df", "data.parquet", "--head", "10", *args) for _ in range(runs)]
        rows.append((label, "ours", [s[0] for s in samples], [s[1] for s in samples], ""))
    rows += _diff_rows(r, repo, w2, runs)

    many = root / "csvs"
    for i in range(1000):
        path = many / f"t{i // 100:02d}" / f"table_{i:04d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("id,label,score\n" + "".join(f"{j},l{j},{j / 7:.4f}\n" for j in range(50)))
    r.oxen(many, "init")
    r.oxen(many, "add", ".")
    r.oxen(many, "commit", "-m", "1000 tables")
    samples = [r.oxen(many, "schemas", "--rev", "HEAD", "--json") for _ in range(runs)]
    found = len(json.loads(samples[0][2]))
    rows.append(("schemas of 1,000 csv files", "ours", [s[0] for s in samples], [s[1] for s in samples], f"{found} schemas"))  # fmt: skip
    discard(root)
    return _table(rows, runs, quick, w2)


def _table(rows: list[Row], runs: int, quick: bool, w2: datagen.ParquetVersions) -> str:
    out = [
        f"# Tables ({'quick' if quick else 'full'}, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"median of {runs}; W2 v1 {fmt_bytes(w2.v1.stat().st_size)}, {w2.rows:,} rows)",
        "",
        "| step | tool | time | peak RSS | note |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for label, tool, times, rss, note in rows:
        out.append(
            f"| {label} | {tool} | {statistics.median(times):.2f} s | "
            f"{fmt_bytes(statistics.median(rss))} | {note} |"
        )
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.tables", description=__doc__)
    p.add_argument("--quick", action="store_true", help="32 MiB, one run")
    p.add_argument("--runs", type=int, help="runs per step, median reported")
    args = p.parse_args(argv)
    table = run(args.quick, args.runs)
    print(table)
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"tables-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M}.md"
        out.write_text(table)
        log(f"wrote {out}")


if __name__ == "__main__":
    main()
