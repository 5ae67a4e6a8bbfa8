"""`deploy/run-local.py`: two servers on one moto bucket behind a real nginx, used as a
client would; everything stops on SIGTERM.  Needs nginx (Debian: `apt-get install
nginx-light`; `.ci/run` installs it): without it this fails, saying so, rather than
skipping, since then the deployment would go untested."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import oxen
from tests.conftest import write
from tests.sync.test_sync_e2e import ok, tree_bytes

ROOT = Path(__file__).resolve().parent.parent
RUN_LOCAL = ROOT / "deploy" / "run-local.py"


def nginx_present() -> bool:
    return bool(shutil.which("nginx")) or Path("/usr/sbin/nginx").exists()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[dict]:
    if not nginx_present():
        pytest.fail("nginx is not installed: apt-get install -y nginx-light (see .ci/run)")
    proc = subprocess.Popen(
        [sys.executable, str(RUN_LOCAL), "--servers", "2", "--port", "0", "--json"]
        + ["--dir", str(tmp_path / "local"), "--shutdown-timeout", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # one JSON line once everything is ready, or EOF
    if not line:
        proc.wait(timeout=60)
        pytest.fail(f"run-local.py exited {proc.returncode}: {proc.stderr.read()}")
    facts = json.loads(line)
    facts["proc"] = proc
    try:
        yield facts
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def refused(host: str) -> bool:
    address, port = host.split(":")
    with socket.socket() as s:
        return s.connect_ex((address, int(port))) != 0


def test_run_local_serves_a_push_and_a_clone_through_nginx(
    tmp_path: Path, deployment: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, token = deployment["url"], deployment["token"]
    host = url.removeprefix("http://")
    monkeypatch.setenv("OXEN_AUTH_HOST", host)
    a = tmp_path / "a"
    a.mkdir()
    ok(a, "init")
    ok(a, "create-remote", "--name", "team/data", "--host", host, token=token)
    ok(a, "config", "--set-remote", "origin", f"{url}/team/data")
    write(a, "data/big.bin", os.urandom(3_000_000))
    write(a, "labels.csv", "id,label\n1,cat\n")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "one")
    ok(a, "push", token=token)

    b = tmp_path / "b"
    ok(tmp_path, "clone", f"{url}/team/data", str(b), token=token)
    assert tree_bytes(b) == tree_bytes(a)
    write(b, "more.txt", "more")
    ok(b, "add", ".")
    ok(b, "commit", "-m", "two")
    ok(b, "push", token=token)
    ok(a, "pull", token=token)
    assert tree_bytes(a) == tree_bytes(b)
    assert oxen.Repo(a).branches() == oxen.Repo(b).branches()

    # nginx spread the requests over both servers; its private routes stay private
    logs = Path(deployment["dir"])
    assert all((logs / f"access-{i}.log").read_text().count("\n") > 0 for i in (1, 2))
    for route in ("metrics", "readyz"):
        proc = subprocess.run(
            [sys.executable, "-c", f"import urllib.request as u; u.urlopen('{url}/{route}')"],
            capture_output=True,
            text=True,
        )
        assert "HTTP Error 404" in proc.stderr

    # SIGTERM stops nginx, both servers and moto, and exits 0
    run_local = deployment["proc"]
    run_local.send_signal(signal.SIGTERM)
    assert run_local.wait(timeout=60) == 0
    assert all(refused(h) for h in [host, *deployment["servers"]])
    assert refused(deployment["s3_endpoint"].removeprefix("http://"))
