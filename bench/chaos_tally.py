"""What the chaos runner (``bench/chaos.py``) does in a round and what its rounds add up
to: the plan of a round, drawn from the seed; a command's outcome; the tally and its table.
"""

from __future__ import annotations

import random
import signal
from collections import Counter
from dataclasses import dataclass, field

OPS = ("add", "commit", "push", "pull", "clone")
TARGETS = ("client", "server", "both")
COPIES = ("a", "b")
# What a command may answer without anything being wrong: it would have, unkilled.
REFUSALS = (
    "nothing to commit",  # commit: the killed run committed, or nothing was staged
    "then push again",  # push: the other copy pushed first
    "has moved on the server",  # push: racing the other copy's
    "merge refused: uncommitted changes",  # pull: staged or changed files
    "destination exists and is not empty",  # clone: the killed one had finished
)


@dataclass(frozen=True)
class Plan:
    """One round, drawn from the seed and the round's number alone (so a run replays)."""

    round: int
    op: str
    copy: str
    target: str  # what is killed: client, server or both
    fraction: float  # of the operation's expected duration, when the kill comes
    data_seed: int  # the edits an add makes

    @classmethod
    def draw(cls, seed: int, round_no: int) -> Plan:
        rng = random.Random(f"{seed}/{round_no}")
        return cls(
            round_no,
            rng.choice(OPS),
            rng.choice(COPIES),
            rng.choice(TARGETS),
            rng.random(),
            rng.getrandbits(64),
        )


@dataclass
class Outcome:
    argv: list[str]
    rc: int
    seconds: float
    stderr: str
    killed_client: bool = False
    killed_server: bool = False

    @property
    def refused(self) -> bool:
        return self.rc not in (0, -signal.SIGKILL) and any(r in self.stderr for r in REFUSALS)


@dataclass
class Failure:
    round: int
    what: str
    argv: list[str]
    rc: int
    stderr: str


@dataclass
class Tally:
    rounds: int = 0
    kills_client: int = 0
    kills_server: int = 0
    runs: Counter[str] = field(default_factory=Counter)
    killed: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    reruns: Counter[str] = field(default_factory=Counter)
    fsck_problems: int = 0
    stray: int = 0  # files in a working copy no command left there on purpose
    acknowledged: set[str] = field(default_factory=set)
    lost: set[str] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.fsck_problems or self.stray or self.lost or self.failures)


def table(t: Tally, seed: int) -> str:
    rows = [
        ("seed", str(seed)),
        ("rounds", str(t.rounds)),
        ("kills of the client", str(t.kills_client)),
        ("kills of the server", str(t.kills_server)),
    ]
    lines = [f"{k:<34}{v}" for k, v in rows]
    lines.append("")
    lines.append(f"{'operation':<10}{'runs':>6}{'killed':>8}{'run again':>11}{'refused':>9}")
    for op in OPS:
        lines.append(
            f"{op:<10}{t.runs[op]:>6}{t.killed[op]:>8}{t.reruns[op]:>11}{t.refused[op]:>9}"
        )
    lines.append("")
    rows = [
        ("fsck problems (clients and server)", str(t.fsck_problems)),
        ("stray files in working copies", str(t.stray)),
        ("acknowledged commits", str(len(t.acknowledged))),
        ("acknowledged commits lost", str(len(t.lost))),
        ("unexpected failures", str(len(t.failures))),
    ]
    lines += [f"{k:<38}{v}" for k, v in rows]
    for f in t.failures:
        ran = f" exited {f.rc}: {' '.join(f.argv[2:])}" if f.argv else ""
        lines.append(f"\nround {f.round}: {f.what}{ran}")
        lines += [f"    {x}" for x in f.stderr.splitlines()]
    for c in sorted(t.lost):
        lines.append(f"lost: commit {c}")
    return "\n".join(lines)
