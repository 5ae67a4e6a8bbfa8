"""`oxen-server gc` as a real process beside two real `oxen-server`s on one S3 bucket
(moto), while real `oxen push`es through both servers send commits whose files have the
content of a deleted branch's, held only by the packs gc marked.

Whichever way each push meets the marks (told "the server has X" by a server that had not
read them yet and rescued by the sweep, refused as incomplete and landing when run again,
or told to send X), every branch clones back byte for byte through each server, the
deleted branch's own bytes are gone, and `oxen-server fsck` finds the store whole.
Ordering comes from the store (the pushes start once `gc/marks.json` is there), never
from sleeping."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

import oxen
from tests.conftest import OXEN, write
from tests.sync.conftest import SERVER, Server, store_is_whole
from tests.sync.test_sync_e2e import ok, sent_bytes, tree_bytes

pytestmark = pytest.mark.s3

REPO = "ns/gcrace"
# More than the servers' 5 s recheck of repo.json (when they read the marks) plus the
# longest a push takes from its server's check to its ref update: here one request of
# milliseconds (docs/operations.md, "Garbage collection on the server").
GRACE = "8s"
UNIQUE = 2_000_000  # bytes of the deleted branch no push sends again
SLACK = 64 * 1024  # nodes and pack trailers
REFUSALS = 3  # incomplete-push refusals tolerated per push before the test fails


class Bucket:
    """The repository's keys on the servers' bucket, read with boto3 beside them."""

    def __init__(self, server: Server) -> None:
        assert server.storage is not None
        self.name, _, root = server.storage.removeprefix("s3://").partition("/")
        self.prefix = f"{root}/repos/{REPO}/"
        self.client = boto3.client(
            "s3",
            endpoint_url=server.env["AWS_ENDPOINT_URL"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def sizes(self, under: str) -> dict[str, int]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=self.prefix + under
        )
        return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}

    def pack_bytes(self) -> int:
        return sum(self.sizes("packs/").values())

    def has(self, key: str) -> bool:
        return self.prefix + key in self.sizes(key)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=self.prefix + key)["Body"].read()


def commit(root: Path, files: dict[str, bytes], message: str) -> None:
    """Local steps in this process (the API), to keep the test short; what goes to the
    servers goes through the real `oxen`."""
    for rel, data in files.items():
        write(root, rel, data)
    repo = oxen.Repo(root)
    repo.add(root)
    repo.commit(message)


def run_oxen(cwd: Path, token: str, *args: str) -> subprocess.Popen[str]:
    """The real `oxen`, started (not waited for)."""
    env = {**os.environ, "OXEN_AUTH_TOKEN": token}
    return subprocess.Popen(
        [*OXEN, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def start_push(cwd: Path, token: str) -> subprocess.Popen[str]:
    return run_oxen(cwd, token, "push")


def landed(proc: subprocess.Popen[str], cwd: Path, token: str) -> tuple[int, int]:
    """Wait for a running `oxen push`; one refused as incomplete (its server read the marks
    between saying what it has and moving the branch) is run again, and sends what was
    missing.  Returns (bytes the push that landed sent, refusals)."""
    for refused in range(REFUSALS + 1):
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            return sent_bytes(out), refused
        assert "incomplete push" in err, err
        proc = start_push(cwd, token)
    raise AssertionError(f"push in {cwd} refused {REFUSALS + 1} times")


def gc(server: Server, *args: str) -> subprocess.Popen[str]:
    command = [*SERVER, "gc", "--storage", str(server.storage), "--data-dir", str(server.data_dir)]
    return subprocess.Popen(
        [*command, "--repo", REPO, "--json", *args],
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def report(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    (only,) = json.loads(out)
    return only


def wait_for_marks(bucket: Bucket, proc: subprocess.Popen[str]) -> None:
    """Poll the store until gc has published its marks (gc must still be running then:
    it sleeps out the grace period after them)."""
    deadline = time.monotonic() + 60
    while not bucket.has("gc/marks.json"):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "gc published no marks"
        time.sleep(0.05)


@pytest.fixture
def servers(servers_on_a_bucket: Callable[[int], list[Server]]) -> list[Server]:
    return servers_on_a_bucket(2)


def test_pushes_racing_a_gc_through_two_servers_all_land_and_the_deleted_bytes_go(
    tmp_path: Path, servers: list[Server]
) -> None:
    one, two = servers
    token = one.token  # issued into the bucket: both servers know it
    bucket = Bucket(one)
    rng = random.Random(5)
    small = {f"s{i}.txt": rng.randbytes(rng.randint(2000, 6000)) for i in range(8)}  # one chunk
    late = {f"l{i}.txt": rng.randbytes(rng.randint(2000, 6000)) for i in range(4)}
    shared, late_bin = rng.randbytes(400_000), rng.randbytes(300_000)

    # main, then a branch `doomed` pushed and deleted on the server: its packs are what
    # gc marks; a few of its files' contents are pushed again during and after the gc
    a = tmp_path / "a"
    a.mkdir()
    oxen.Repo.init(a).set_remote("origin", one.url(REPO))
    ok(a, "create-remote", "--name", REPO, "--host", one.host, token=token)
    commit(a, {"keep/readme.txt": b"kept\n", "keep/data.bin": rng.randbytes(200_000)}, "main")
    ok(a, "push", token=token)
    oxen.Repo(a).checkout("doomed", create=True)
    doomed = {
        "doomed/unique.bin": rng.randbytes(UNIQUE),
        "doomed/shared.bin": shared,
        "doomed/late.bin": late_bin,
        **{f"doomed/small/{n}": data for n, data in small.items()},
        **{f"doomed/late/{n}": data for n, data in late.items()},
    }
    commit(a, doomed, "doomed")
    ok(a, "push", "origin", "doomed", token=token)
    ok(a, "push", "-d", "origin", "doomed", token=token)

    # the racing commits, made before gc starts: `revived` (through one) holds the very
    # doomed/small folder again; main (through two) the shared file and some small ones
    oxen.Repo(a).checkout("main")
    oxen.Repo(a).checkout("revived", create=True)
    commit(a, {**{f"doomed/small/{n}": d for n, d in small.items()}, "revived.txt": b"r"}, "r")
    b = tmp_path / "b"
    ok(tmp_path, "clone", two.url(REPO), str(b), token=token)
    new = rng.randbytes(100_000)
    mixed = {f"b/{n}": d for n, d in list(small.items())[:4]}
    commit(b, {"b/shared.bin": shared, **mixed, "b/new.bin": new}, "b")
    reused = len(shared) + sum(len(d) for d in small.values())

    before = bucket.pack_bytes()
    collecting = gc(one, "--grace", GRACE)
    wait_for_marks(bucket, collecting)
    racing = [(start_push(a, token), a), (start_push(b, token), b)]
    sent = sum(landed(proc, cwd, token)[0] for proc, cwd in racing)

    # while gc waits out the grace period: the commits pushed after its sweep, through
    # the other server, of the late files (which no push has sent again)
    oxen.Repo(a).set_remote("origin", two.url(REPO))
    oxen.Repo(b).set_remote("origin", one.url(REPO))
    commit(a, {f"late-{n}": d for n, d in late.items()}, "late files")  # each one chunk
    commit(b, {"b/late.bin": late_bin}, "late bin")

    swept = report(collecting)
    assert swept["state"] == "swept", swept
    assert swept["marked_packs"] >= 1 and swept["deleted_packs"] >= 1, swept
    assert swept["freed_bytes"] >= UNIQUE, swept
    assert json.loads(bucket.get("gc/marks.json")).get("swept"), "marks left pending"
    # each reused file may have been sent again by both pushes, or rescued by the sweep
    after = bucket.pack_bytes()
    assert after <= before - UNIQUE + 2 * reused + len(new) + sent + SLACK, (before, after)

    # the late files' contents are gone from the store, so each server must say it lacks
    # them, even one that never read the marks (a file of one chunk is checked against
    # the server's index alone); no marks are pending: nothing is refused
    late_pushes = [(start_push(a, token), a), (start_push(b, token), b)]
    (a_sent, a_refused), (b_sent, b_refused) = [landed(p, cwd, token) for p, cwd in late_pushes]
    assert a_refused == b_refused == 0
    assert a_sent >= sum(len(d) for d in late.values()) and b_sent >= len(late_bin)

    clones = []  # every branch, through each server, as pushed
    for srv in servers:
        for branch, pusher in (("main", b), ("revived", a)):
            out = tmp_path / f"clone-{srv.port}-{branch}"
            args = ("clone", "-b", branch, srv.url(REPO), str(out))
            clones.append((out, pusher, run_oxen(tmp_path, token, *args)))
    for out, pusher, proc in clones:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert tree_bytes(out) == tree_bytes(pusher), out.name
    dry = gc(one, "--dry-run")
    store_is_whole(one)
    left = report(dry)
    assert left["marked_packs"] == 0 and left["objects"] == left["reached"], left
