"""The chaos runner (``bench/chaos.py``) cannot rot: its pieces, and one real round."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

from bench.chaos_tally import OPS, TARGETS, Failure, Outcome, Plan, Tally, table
from bench.chaos_workload import Shape, Workload


def test_a_round_is_drawn_from_the_seed_and_its_number_only() -> None:
    assert Plan.draw(7, 3) == Plan.draw(7, 3)
    assert Plan.draw(7, 3) != Plan.draw(8, 3)
    plans = [Plan.draw(1, n) for n in range(1, 200)]
    assert {p.op for p in plans} == set(OPS) and {p.target for p in plans} == set(TARGETS)
    assert all(0 <= p.fraction < 1 for p in plans)


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_the_workload_is_seeded_and_changes_a_little(tmp_path: Path) -> None:
    shape = Shape(small_files=30, big_files=1, big_size=300_000)
    copies = [Workload(tmp_path / str(i), "a", shape) for i in range(2)]
    for w in copies:
        w.create(random.Random(1))
    before = files(tmp_path / "0")
    for w in copies:
        w.mutate(random.Random(2))
    after = files(tmp_path / "0")
    assert after == files(tmp_path / "1")
    assert len(after) == len(before) + 1  # three new, two deleted
    changed = [k for k in after if k in before and after[k] != before[k]]
    assert 2 <= len(changed) <= 4  # two small files and the big one


def test_what_counts_as_a_refusal() -> None:
    def outcome(rc: int, stderr: str) -> Outcome:
        return Outcome(["oxen"], rc, 0.1, stderr)

    assert outcome(1, "error: nothing to commit (use oxen add to stage changes)").refused
    assert outcome(1, "error: ... oxen pull origin main, then push again").refused
    assert not outcome(1, "error: internal error (KeyError: 'x')").refused
    assert not outcome(-9, "nothing to commit").refused


def test_the_table_names_each_failure_with_its_stderr() -> None:
    tally = Tally(rounds=2, kills_client=1)
    tally.runs["push"] = 2
    tally.failures.append(Failure(2, "push run again", ["py", "-m", "oxen", "push"], 1, "boom"))
    text = table(tally, seed=4)
    assert "unexpected failures                   1" in text
    assert "round 2: push run again exited 1: oxen push\n    boom" in text
    assert not tally.clean


def test_one_real_round(tmp_path: Path) -> None:
    """Setup (a server, two working copies), one round with its kill and every check."""
    argv = [sys.executable, "-m", "bench.chaos", "--rounds", "1", "--seed", "3"]
    argv += ["--small-files", "10", "--big-files", "1", "--big-mib", "0.2"]
    argv += ["--dir", str(tmp_path / "chaos")]
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "round    1  " in proc.stdout
    assert "acknowledged commits lost             0" in proc.stdout
    assert not (tmp_path / "chaos").exists()  # removed when all is well
