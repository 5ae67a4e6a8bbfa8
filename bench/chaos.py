"""`python -m bench.chaos`: SIGKILL the client, the server or both in the middle of real
``add``, ``commit``, ``push``, ``pull`` and ``clone`` commands, then check that nothing
acknowledged was lost and that every store is whole (docs/operations.md).

In a scratch directory: a real ``oxen-server`` on local storage and two working copies
(``a`` and ``b``) of one repository, each editing its own folder. Each round draws, from
the seed and the round's number only, an operation, a working copy, what to kill and
when (a fraction of the operation's expected duration: the median of its uninterrupted
runs so far). After the kill (a killed server is restarted at once) it checks:

* ``oxen fsck`` is clean in both working copies (and in the round's clone, if any);
* ``oxen status`` shows nothing but staged or committed changes, and no temporary file of
  a killed checkout or pull is left;
* ``oxen-server fsck`` is clean (run beside the running server);
* every commit whose push exited 0 is on the server: a fresh clone's log holds it;
* the interrupted command, run again, works (or refuses as it would have anyway:
  nothing to commit, a push behind the remote, a pull over uncommitted changes, a clone
  into the place of one killed once it had finished).

It ends with a table; the exit code is 1 if a check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from bench.chaos_tally import COPIES, OPS, Failure, Outcome, Plan, Tally, table
from bench.chaos_workload import MIB, Shape, Workload
from bench.paths import WORK
from bench.services import Service, free_port

REPO = "chaos/data"
# Seconds an operation is assumed to take before one of its kind has run uninterrupted.
FIRST_GUESS = {"add": 2.0, "commit": 1.0, "push": 2.0, "pull": 2.0, "clone": 2.0}
COMMAND_TIMEOUT = 600.0
OXEN = [sys.executable, "-m", "oxen.cli.main"]
SERVER = [sys.executable, "-m", "oxen.server.main"]
COMMIT_LINE = re.compile(r"^commit ([0-9a-f]{64})$", re.M)


class ChaosServer:
    """The ``oxen-server`` under test, on local storage in the scratch directory."""

    def __init__(self, scratch: Path, env: dict[str, str]) -> None:
        self.data_dir = scratch / "server"
        self.port = free_port()
        argv = [*SERVER, "start", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        self.service = Service("oxen-server", argv, env, scratch)
        self.service.log_path = scratch / "server.log"
        self.env = env

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.service.start(f"http://{self.host}/api/health")

    def kill(self) -> None:
        proc = self.service.proc
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        self.service.stop()

    def add_user(self, out: Path) -> str:
        argv = [*SERVER, "add-user", "--email", "chaos@example.com", "--name", "chaos"]
        argv += ["--output", str(out), "--data-dir", str(self.data_dir)]
        subprocess.run(argv, env=self.env, check=True, capture_output=True)
        return out.read_text().split('token = "')[1].split('"')[0]

    def fsck(self) -> subprocess.CompletedProcess[str]:
        argv = [*SERVER, "fsck", "--data-dir", str(self.data_dir)]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True)


class Chaos:
    def __init__(self, scratch: Path, seed: int, shape: Shape, out: TextIO = sys.stdout) -> None:
        self.scratch = scratch
        self.seed = seed
        self.shape = shape
        self.out = out
        self.env = {**os.environ, "OXEN_CONFIG_DIR": str(scratch / "config")}
        self.env.pop("OXEN_CRASH_AT", None)
        self.server = ChaosServer(scratch, self.env)
        self.copies = {c: scratch / c for c in COPIES}
        self.workloads = {c: Workload(self.copies[c], c, shape) for c in COPIES}
        self.durations: dict[str, list[float]] = {op: [] for op in OPS}
        self.tally = Tally()
        self.logs = scratch / "logs"

    # -- commands ------------------------------------------------------------------------
    def oxen(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*OXEN, *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )

    def must(self, cwd: Path, *args: str) -> str:
        proc = self.oxen(cwd, *args)
        if proc.returncode != 0:
            raise RuntimeError(f"oxen {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc.stdout

    def run_killable(
        self, cwd: Path, args: list[str], delay: float | None, target: str, name: str
    ) -> Outcome:
        """Run ``oxen args``; ``delay`` seconds in (None: never), if it still runs, SIGKILL
        ``target`` (a killed server is restarted at once)."""
        self.logs.mkdir(exist_ok=True)
        argv = [*OXEN, *args]
        err_path = self.logs / f"{name}.err"
        started = time.monotonic()
        with open(self.logs / f"{name}.out", "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=self.env, stdout=out, stderr=err, start_new_session=True
            )
            killed_client = killed_server = False
            try:
                if delay is not None:
                    proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                if target in ("client", "both"):
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed_client = True
                if target in ("server", "both"):
                    self.server.kill()
                    killed_server = True
                    self.server.start()
            try:
                rc = proc.wait(timeout=COMMAND_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc = -signal.SIGKILL
                err.write(b"\n(hung: killed after the timeout)\n")
        seconds = time.monotonic() - started
        stderr = err_path.read_text(errors="replace")
        return Outcome(argv, rc, seconds, stderr, killed_client, killed_server)

    def head(self, copy: str) -> str | None:
        found = COMMIT_LINE.search(self.must(self.copies[copy], "log", "-n", "1"))
        return found.group(1) if found else None

    # -- setup ---------------------------------------------------------------------------
    def setup(self) -> None:
        self.scratch.mkdir(parents=True, exist_ok=True)
        (self.scratch / "config").mkdir(exist_ok=True)
        self.server.data_dir.mkdir(exist_ok=True)
        self.server.start()  # which makes the store the token goes to
        self.env["OXEN_AUTH_TOKEN"] = self.server.add_user(self.scratch / "user.toml")
        self.env["OXEN_AUTH_HOST"] = self.server.host  # the token is for that server only
        a = self.copies["a"]
        a.mkdir()
        self.must(self.scratch, "config", "--name", "Chaos", "--email", "chaos@example.com")
        self.must(a, "init")
        self.must(a, "create-remote", "--name", REPO, "--host", self.server.host)
        self.must(a, "config", "--set-remote", "origin", f"http://{self.server.host}/{REPO}")
        self.workloads["a"].create(random.Random(f"{self.seed}/a"))
        self.must(a, "add", ".")
        self.must(a, "commit", "-m", "a: first")
        self.must(a, "push")
        self.tally.acknowledged.add(self.head("a") or "")
        self.must(self.scratch, "clone", f"http://{self.server.host}/{REPO}", "b")
        b = self.copies["b"]
        self.workloads["b"].create(random.Random(f"{self.seed}/b"))
        self.must(b, "add", ".")
        self.must(b, "commit", "-m", "b: first")

    # -- one round -----------------------------------------------------------------------
    def expected(self, op: str) -> float:
        done = self.durations[op][-9:]
        return statistics.median(done) if done else FIRST_GUESS[op]

    def command(self, plan: Plan) -> tuple[Path, list[str]]:
        if plan.op == "add":
            return self.copies[plan.copy], ["add", "."]
        if plan.op == "commit":
            return self.copies[plan.copy], ["commit", "-m", f"{plan.copy}: round {plan.round}"]
        if plan.op == "clone":
            dest = self.scratch / "clones" / f"r{plan.round}"
            dest.parent.mkdir(exist_ok=True)
            return self.scratch, ["clone", f"http://{self.server.host}/{REPO}", str(dest)]
        return self.copies[plan.copy], [plan.op]

    def round(self, plan: Plan) -> str:
        t = self.tally
        t.rounds += 1
        t.runs[plan.op] += 1
        if plan.op == "add":
            self.workloads[plan.copy].mutate(random.Random(plan.data_seed))
        cwd, args = self.command(plan)
        pushed = self.head(plan.copy) if plan.op == "push" else None
        delay = plan.fraction * self.expected(plan.op)
        first = self.run_killable(cwd, args, delay, plan.target, f"r{plan.round}-{plan.op}")
        t.kills_client += first.killed_client
        t.kills_server += first.killed_server
        # a command the server's death made fail is interrupted too; one that refused is not
        failed = first.rc != 0 and not first.refused
        interrupted = first.killed_client or (first.killed_server and failed)
        if first.killed_client or first.killed_server:
            t.killed[plan.op] += 1
        elif first.rc == 0:
            self.durations[plan.op].append(first.seconds)
        note = f"rc={first.rc}"
        acked = first.rc == 0
        refused_again = False
        if first.refused and not interrupted:
            t.refused[plan.op] += 1
        elif first.rc != 0 and not interrupted:
            self.fail(plan, plan.op, first)
        if interrupted:
            again = self.run_killable(cwd, args, None, "none", f"r{plan.round}-{plan.op}-again")
            t.reruns[plan.op] += 1
            note += f" again={again.rc}"
            acked = again.rc == 0
            refused_again = again.refused
            if again.refused:
                t.refused[plan.op] += 1
            elif again.rc != 0:
                self.fail(plan, f"{plan.op} run again", again)
        if plan.op == "push" and acked and pushed:
            t.acknowledged.add(pushed)
        # a clone killed once it had finished is refused when run again: check that one
        clone = Path(args[2]) if plan.op == "clone" and (acked or refused_again) else None
        problems = self.check(plan, clone)
        when = f"{plan.target}@{delay:.2f}s" if first.killed_client or first.killed_server else "-"
        return f"{plan.op}({plan.copy}) kill {when}: {note}; {problems}"

    def fail(self, plan: Plan, what: str, outcome: Outcome) -> None:
        tail = "\n".join(outcome.stderr.strip().splitlines()[-15:])
        self.tally.failures.append(Failure(plan.round, what, outcome.argv, outcome.rc, tail))

    # -- checks --------------------------------------------------------------------------
    def check(self, plan: Plan, clone: Path | None) -> str:
        t = self.tally
        found: list[str] = []
        dirs = [*self.copies.values(), *([clone] if clone else [])]
        for cwd in self.copies.values():  # before fsck: status must not show what it sweeps
            self.stray(plan, cwd, self.status_paths(cwd), "status shows")
        for cwd in dirs:
            proc = self.oxen(cwd, "fsck")
            if proc.returncode != 0:
                lines = [x for x in proc.stderr.splitlines() if x.strip()] or [proc.stdout]
                t.fsck_problems += len(lines)
                found.append(f"fsck {cwd.name}: {len(lines)}")
                self.fail(plan, f"oxen fsck in {cwd.name}", _outcome(proc))
        for cwd in self.copies.values():  # a command has opened it since: nothing left over
            self.stray(plan, cwd, _temporary_files(cwd), "temporary files left")
        if t.stray:
            found.append(f"{t.stray} stray")
        proc = self.server.fsck()
        if proc.returncode != 0:
            lines = [x for x in proc.stderr.splitlines() if x.strip()] or [proc.stdout]
            t.fsck_problems += len(lines)
            found.append(f"server fsck: {len(lines)}")
            self.fail(plan, "oxen-server fsck", _outcome(proc))
        lost = self.lost_commits(plan)
        if lost:
            found.append(f"lost {len(lost)}")
        if clone is not None:
            shutil.rmtree(clone, ignore_errors=True)
        return ", ".join(found) if found else f"ok ({len(t.acknowledged)} acknowledged)"

    def status_paths(self, cwd: Path) -> list[str]:
        """What ``oxen status`` calls untracked, modified or removed: after every round
        (its command run again if killed) the working copy is as its last command left
        it, everything staged or committed."""
        shown = json.loads(self.must(cwd, "status", "--json"))
        return shown["untracked"] + shown["modified"] + shown["removed"]

    def stray(self, plan: Plan, cwd: Path, paths: list[str], what: str) -> None:
        if paths:
            self.tally.stray += len(paths)
            listed = "\n".join(paths[:15])
            self.tally.failures.append(
                Failure(plan.round, f"working copy {cwd.name}: {what}", [], 0, listed)
            )

    def lost_commits(self, plan: Plan) -> set[str]:
        """Acknowledged commits a fresh clone does not hold."""
        dest = self.scratch / "verify"
        shutil.rmtree(dest, ignore_errors=True)
        proc = self.oxen(self.scratch, "clone", f"http://{self.server.host}/{REPO}", str(dest))
        if proc.returncode != 0:
            self.fail(plan, "clone to verify", _outcome(proc))
            return set()
        held = set(COMMIT_LINE.findall(self.must(dest, "log")))
        shutil.rmtree(dest, ignore_errors=True)
        lost = self.tally.acknowledged - held
        self.tally.lost |= lost
        return lost

    # -- the run -------------------------------------------------------------------------
    def run(self, rounds: int) -> Tally:
        self.setup()
        try:
            for n in range(1, rounds + 1):
                plan = Plan.draw(self.seed, n)
                line = self.round(plan)
                print(f"round {n:>4}  {line}", file=self.out, flush=True)
        finally:
            self.server.stop()
        return self.tally


def _temporary_files(cwd: Path) -> list[str]:
    """Files named as checkouts and pulls name what they are writing, outside .oxen."""
    found = [p.relative_to(cwd) for p in cwd.rglob("*.tmp") if ".oxen-" in p.name]
    return sorted(str(p) for p in found if p.parts[0] != ".oxen")


def _outcome(proc: subprocess.CompletedProcess[str]) -> Outcome:
    return Outcome([str(a) for a in proc.args], proc.returncode, 0.0, proc.stderr + proc.stdout)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--seed", type=int, help="replay a run (default: a new seed, printed)")
    p.add_argument("--dir", type=Path, help="scratch directory (default: under bench/.work)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--small-files", type=int, default=Shape.small_files, help="per copy")
    p.add_argument("--big-files", type=int, default=Shape.big_files, help="per copy")
    p.add_argument("--big-mib", type=float, default=Shape.big_size / MIB, help="their size")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    shape = Shape(args.small_files, args.big_files, int(args.big_mib * MIB))
    if args.dir is not None:
        scratch = args.dir
    else:
        (WORK / "chaos").mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"seed-{seed}-", dir=WORK / "chaos"))
    print(f"chaos: seed {seed}, {args.rounds} rounds, in {scratch}", flush=True)
    tally = Chaos(scratch, seed, shape).run(args.rounds)
    print("\n" + table(tally, seed))
    if tally.clean and not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    elif not tally.clean:
        print(
            f"\nkept {scratch}; replay: python -m bench.chaos --rounds {args.rounds} --seed {seed}"
        )
    return 0 if tally.clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
