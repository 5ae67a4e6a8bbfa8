"""`deploy/run-local.py`: two servers on one moto bucket behind a real nginx, used as a
client would; everything stops on SIGTERM.  Needs nginx (Debian: `apt-get install
nginx-light`; `.ci/run` installs it): without it this fails, saying so, rather than
skipping, since then the deployment would go untested."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import oxen
from oxen.server.main import SHUTDOWN_TIMEOUT, build_parser
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


# -- the files no container engine runs here, checked against the server ------------------
DEPLOY = ROOT / "deploy"


def start_flags() -> set[str]:
    """Every option of `oxen-server start`."""
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices["start"]._option_string_actions)


def server_variables() -> set[str]:
    """The OXEN_SERVER_* variables the server reads."""
    source = "".join(p.read_text() for p in (ROOT / "server").glob("*.py"))
    return set(re.findall(r"environ\.get\(\s*\"(OXEN_SERVER_\w+)\"", source))


def flags_of(command: list[str]) -> set[str]:
    return {word.split("=")[0] for word in command if word.startswith("--")}


def seconds(text: str) -> float:
    value = re.fullmatch(r"(\d+(?:\.\d+)?)(s|min)?", text.strip())
    assert value, text
    return float(value.group(1)) * (60 if value.group(2) == "min" else 1)


def test_the_image_installs_the_whole_package_and_starts_with_real_flags() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    copied = {line.split()[1] for line in text.splitlines() if line.startswith("COPY ")}
    package_dirs = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
            "package-dir"
        ].values()
    )
    assert package_dirs <= copied and "pyproject.toml" in copied
    (cmd,) = (json.loads(line[4:]) for line in text.splitlines() if line.startswith("CMD "))
    assert cmd[0] == "start" and flags_of(cmd) <= start_flags()
    assert set(re.findall(r"\b(OXEN_SERVER_\w+)=", text)) <= server_variables()
    assert "/readyz" in text and "STOPSIGNAL SIGTERM" in text


def test_compose_runs_the_servers_with_real_flags_and_a_long_enough_stop() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    oxen_services = {k: v for k, v in compose["services"].items() if k.startswith("oxen-")}
    assert len(oxen_services) >= 2
    for service in oxen_services.values():
        command = service["command"]
        assert command[0] == "start" and flags_of(command) <= start_flags()
        assert "--storage" in command and command[command.index("--storage") + 1].startswith(
            "s3://"
        )
        env = service["environment"]
        assert {k for k in env if k.startswith("OXEN_SERVER_")} <= server_variables()
        timeout = float(env.get("OXEN_SERVER_SHUTDOWN_TIMEOUT", SHUTDOWN_TIMEOUT))
        assert seconds(service["stop_grace_period"]) > timeout
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
    # nginx's upstream names exactly these replicas, on the port they listen on
    upstream = re.findall(r"server ([\w.-]+):(\d+);", (DEPLOY / "nginx.conf").read_text())
    assert {f"{name}:{port}" for name, port in upstream} == {
        f"{name}:{s['command'][s['command'].index('--port') + 1]}"
        for name, s in oxen_services.items()
    }


def test_the_systemd_unit_stops_gracefully_with_real_flags_and_variables(tmp_path: Path) -> None:
    unit = (DEPLOY / "oxen-server.service").read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
    )
    env_file = DEPLOY / "oxen-server.env"
    env = dict(
        line.split("=", 1)
        for line in env_file.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert {k for k in env if k.startswith("OXEN_SERVER_")} <= server_variables()
    exec_start = settings["ExecStart"].split()
    assert exec_start[0].endswith("/oxen-server") and exec_start[1] == "start"
    assert flags_of(exec_start) <= start_flags()
    for word in exec_start:  # every ${VAR} the command line uses is in the example
        for name in re.findall(r"\$\{(\w+)\}", word):
            assert name in env, name
    assert settings["KillSignal"] == "SIGTERM" and settings["EnvironmentFile"].endswith(".env")
    timeout = float(env.get("OXEN_SERVER_SHUTDOWN_TIMEOUT", SHUTDOWN_TIMEOUT))
    assert seconds(settings["TimeoutStopSec"]) > timeout
    assert settings["NoNewPrivileges"] == "yes" and settings["ProtectSystem"] == "strict"

    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # the static checks above still ran
        return
    local = tmp_path / "oxen-server.service"
    local.write_text(
        unit.replace(exec_start[0], str(Path(sys.executable).parent / "oxen-server")).replace(
            settings["EnvironmentFile"], str(env_file)
        )
    )
    proc = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
