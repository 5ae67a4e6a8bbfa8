"""The `oxen-server` process as an operator runs it: what its metrics count of real
clients, its access log, how it starts (and refuses to), and how it stops."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from oxen.formats.ids import hash_bytes
from oxen.formats.packs import Kind
from oxen.server.serve import FINAL_GRACE
from tests.conftest import write
from tests.sync.conftest import SERVER, Server, auth, free_port
from tests.sync.test_server_input import pack_bytes
from tests.sync.test_sync_e2e import new_repo, ok

S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://{server.host}/metrics", timeout=30) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_the_pushes_clones_fetches_and_pulls_of_real_clients(
    tmp_path: Path, server: Server
) -> None:
    a = new_repo(tmp_path, server, "team/data")
    write(a, "one.txt", "one")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "one")
    ok(a, "push", token=server.token)
    b = tmp_path / "b"
    ok(tmp_path, "clone", server.url("team/data"), str(b), token=server.token)
    write(a, "two.txt", "two")
    ok(a, "add", ".")
    ok(a, "commit", "-m", "two")
    ok(a, "push", token=server.token)
    ok(b, "fetch", token=server.token)
    ok(b, "pull", token=server.token)
    ok(b, "push", token=server.token)  # up to date: no branch moves

    found = scrape(server)
    assert found[("oxen_pushes_total", ())] == 2
    for operation in ("clone", "fetch", "pull"):
        assert found[("oxen_fetches_total", (("operation", operation),))] == 1, operation
    packs = (
        ("method", "POST"),
        ("route", "/api/repos/{namespace}/{name}/packs"),
        ("status", "201"),
    )
    assert found[("oxen_http_requests_total", packs)] >= 2
    uploaded = found[("oxen_http_request_bytes_total", (("route", packs[1][1]),))]
    assert uploaded > 0


def get(server: Server, path: str, token: str | None = None) -> int:
    headers = auth(server.token if token is None else token)
    request = urllib.request.Request(f"http://{server.host}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_access_log_names_the_user_and_never_the_token(make_server, tmp_path: Path) -> None:
    log = tmp_path / "access.jsonl"
    server: Server = make_server(args=["--access-log", str(log)])
    assert get(server, "/api/repos/team") == 200
    assert get(server, "/api/repos/team", token="oxn_" + "x" * 43) == 401
    server.stop()  # every line is written once the process has gone
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    listed = [e for e in lines if e["path"] == "/api/repos/team"]
    assert [(e["status"], e["user"]) for e in listed] == [(200, "u@example.com"), (401, None)]
    assert listed[0]["route"] == "/api/repos/{namespace}"
    everything = (
        log.read_text() + (server.data_dir.parent / f"server-{server.port}.log").read_text()
    )
    assert server.token not in everything and "x" * 43 not in everything
    assert "Bearer" not in everything and "uthorization" not in everything


def test_the_access_log_goes_to_stderr_unless_told(make_server) -> None:
    server: Server = make_server()
    assert get(server, "/healthz") == 200
    server.stop()
    output = (server.data_dir.parent / f"server-{server.port}.log").read_text()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert [e["route"] for e in lines if e["route"] == "/healthz"] == ["/healthz"]


# -- shutdown -------------------------------------------------------------------------------


def until(condition: Callable[[], bool], seconds: float = 30) -> None:
    """Poll ``condition`` until it holds (or fail after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def refused(server: Server) -> bool:
    """Whether the server no longer accepts connections: refused, or reset (a connect
    that reached the listening socket's backlog just as the server closed it)."""
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    return False


def in_flight(server: Server) -> float:
    return scrape(server)[("oxen_http_requests_in_flight", ())] - 1  # less the scrape


def upload_begun(server: Server, body: bytes) -> socket.socket:
    """A connection with a pack upload's head and the first half of its body sent, once
    the server is handling it."""
    create = urllib.request.Request(
        f"http://{server.host}/api/repos",
        data=json.dumps({"namespace": "team", "name": "data"}).encode(),
        headers=auth(server.token),
    )
    urllib.request.urlopen(create, timeout=30).close()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    head = [
        "POST /api/repos/team/data/packs HTTP/1.1",
        f"Host: {server.host}",
        *(f"{k}: {v}" for k, v in auth(server.token).items()),
        f"Content-Length: {len(body)}",
    ]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body[: len(body) // 2])
    until(lambda: in_flight(server) == 1)
    return sock


def a_pack(tmp_path: Path) -> bytes:
    chunks = [random.Random(i).randbytes(100_000) for i in range(3)]
    return pack_bytes(tmp_path, [(hash_bytes(c), Kind.CHUNK, c) for c in chunks])


def test_sigterm_lets_an_upload_in_flight_finish_and_refuses_new_connections(
    make_server, tmp_path: Path
) -> None:
    server: Server = make_server(args=["--shutdown-timeout", "30"])
    body = a_pack(tmp_path)
    idle = http.client.HTTPConnection(server.host, timeout=30)  # a keep-alive connection
    idle.request("GET", "/healthz")
    assert idle.getresponse().read() == b'{"ok": true}'
    upload = upload_begun(server, body)

    assert server.proc is not None
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    until(lambda: refused(server))  # no new connection...
    idle.request("GET", "/healthz")  # ...nor a new request on one opened before
    answer = idle.getresponse()
    assert answer.status == 503 and "shutting down" in json.loads(answer.read())["error"]
    assert server.proc.poll() is None  # the upload holds the shutdown

    upload.sendall(body[len(body) // 2 :])  # the rest of the body: read, verified, stored
    response = http.client.HTTPResponse(upload)
    response.begin()
    assert response.status == 201, response.read()
    assert json.loads(response.read()) == {"objects": 3, "bytes": len(body)}
    upload.close()
    assert server.proc.wait(timeout=30) == 0
    assert time.monotonic() - signalled < 30
    server.proc = None
    packs = list((server.data_dir / "store" / "repos" / "team" / "data" / "packs").rglob("*.pack"))
    assert [p.read_bytes() for p in packs] == [body]


def test_sigterm_lets_a_download_in_flight_finish_streaming(make_server, tmp_path: Path) -> None:
    """A read of a file larger than the socket buffers: the server is still writing it
    when the signal comes, and goes on until the client has it all."""
    server: Server = make_server()
    a = new_repo(tmp_path, server, "team/data")
    data = random.Random(7).randbytes(48 * 1024 * 1024)
    write(a, "big.bin", data)
    ok(a, "add", ".")
    ok(a, "commit", "-m", "big")
    ok(a, "push", token=server.token)
    reader = http.client.HTTPConnection(server.host, timeout=60)
    reader.request("GET", "/api/repos/team/data/files/big.bin", headers=auth(server.token))
    answer = reader.getresponse()
    assert answer.status == 200
    head = answer.read(1024)  # and no more for now: the server's writes block
    until(lambda: in_flight(server) == 1)

    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    until(lambda: refused(server))
    assert head + answer.read() == data  # the whole file, after the signal
    assert server.proc.wait(timeout=30) == 0
    server.proc = None


def test_sigterm_cancels_what_still_runs_at_the_deadline_and_exits_0(
    make_server, tmp_path: Path
) -> None:
    server: Server = make_server(args=["--shutdown-timeout", "1"])
    upload = upload_begun(server, a_pack(tmp_path))  # its body's second half never comes
    assert server.proc is not None
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    assert time.monotonic() - signalled < 1 + FINAL_GRACE + 3
    server.proc = None
    assert upload.recv(100) == b""  # closed without an answer
    upload.close()
    cache = server.data_dir / "cache" / "team" / "data"
    assert [p for p in cache.rglob("*") if p.is_file() and p.parent.name == "tmp"] == []
    assert not list((server.data_dir / "store" / "repos" / "team" / "data").rglob("*.pack"))


# -- starting, as a new user would ---------------------------------------------------------


def oxen_server(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SERVER, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_port_in_use_is_one_line_and_nothing_else(server: Server, tmp_path: Path) -> None:
    proc = oxen_server(tmp_path, "start", "--port", str(server.port))
    assert proc.returncode == 1 and proc.stdout == ""  # no banner
    assert proc.stderr.splitlines() == [
        f"error: port {server.port} is in use (another oxen-server?): stop what listens"
        " there, or start on another --port"
    ]
    assert not (tmp_path / "oxen-server-data").exists()


def test_a_port_out_of_range_is_one_line(tmp_path: Path) -> None:
    for port in ("99999", "-1", "http"):
        proc = oxen_server(tmp_path, "start", "--port", port)
        assert proc.returncode == 2 and proc.stdout == "", port
        [line] = proc.stderr.splitlines()
        assert line.startswith("oxen-server start: error: argument --port: "), line
    assert not (tmp_path / "oxen-server-data").exists()


def test_token_commands_refuse_a_folder_without_the_servers_store(
    server: Server, tmp_path: Path
) -> None:
    """Run from elsewhere, they used to make a second store whose tokens the running
    server did not know; now they say where to point them."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    commands = [
        ["add-user", "--email", "b@example.com", "--name", "B", "--output", "b.toml"],
        ["list-tokens"],
        ["revoke-token", "--email", "u@example.com"],
    ]
    for command in commands:
        proc = oxen_server(elsewhere, *command)
        assert proc.returncode == 1 and proc.stdout == "", command
        [line] = proc.stderr.splitlines()
        store = elsewhere / "oxen-server-data" / "store"
        assert line.startswith(f"error: no server store at {store}: give the server's --data-dir")
    assert list(elsewhere.iterdir()) == []  # nothing made
    # pointed at the server's data, they work
    proc = oxen_server(elsewhere, *commands[0], "--data-dir", str(server.data_dir))
    assert proc.returncode == 0, proc.stderr
    token = (elsewhere / "b.toml").read_text().split('token = "')[1].split('"')[0]
    assert get(server, "/api/repos/team", token=token) == 200
    proc = oxen_server(elsewhere, "list-tokens", env={"OXEN_SERVER_DATA": str(server.data_dir)})
    assert proc.returncode == 0 and "b@example.com" in proc.stdout


def test_make_serve_from_a_fresh_checkout_creates_the_store_then_add_user_works(
    tmp_path: Path,
) -> None:
    """README's order: `make serve` (oxen-server start in the checkout), then add-user
    from the same folder."""
    port = free_port()
    proc = subprocess.Popen(
        [*SERVER, "start", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert banner.startswith(f"oxen-server on http://127.0.0.1:{port} ")
        hint = proc.stdout.readline().split("create a token:")[1].split()
        assert hint[:2] == ["oxen-server", "add-user"] and "--data-dir" not in hint
        added = oxen_server(tmp_path, *hint[1:])
        assert added.returncode == 0, added.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


@pytest.mark.s3
def test_the_s3_banner_names_the_endpoint_and_its_command_works_from_anywhere(
    make_server, moto_endpoint: str, make_bucket, tmp_path: Path
) -> None:
    bucket = make_bucket(f"oxen-{uuid.uuid4().hex[:12]}")
    env = {"AWS_ENDPOINT_URL": moto_endpoint, **S3_CREDENTIALS}
    server: Server = make_server(storage=f"s3://{bucket}/oxen", env=env)
    output = (server.data_dir.parent / f"server-{server.port}.log").read_text()
    hint = next(line for line in output.splitlines() if "add-user" in line)
    command = hint.split("create a token:")[1].split()
    assert command[-4:] == ["--storage", f"s3://{bucket}/oxen", "--s3-endpoint", moto_endpoint]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    without_endpoint = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")}
    proc = subprocess.run(
        [*SERVER, *command[1:]],
        cwd=elsewhere,
        env={**without_endpoint, **S3_CREDENTIALS},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    token = (elsewhere / "user.toml").read_text().split('token = "')[1].split('"')[0]
    assert get(server, "/api/repos/team", token=token) == 200


@pytest.mark.s3
def test_start_refuses_a_bucket_that_is_missing_or_unreachable(
    moto_endpoint: str, tmp_path: Path
) -> None:
    env = {**S3_CREDENTIALS}
    missing = oxen_server(
        tmp_path, "start", "--port", "0", "--storage", "s3://no-such-bucket/oxen",
        "--s3-endpoint", moto_endpoint, env=env,
    )  # fmt: skip
    assert missing.returncode == 1 and missing.stdout == ""  # no banner
    assert missing.stderr.splitlines() == [
        "error: the store is not ready: S3 bucket 'no-such-bucket' does not exist at "
        f"{moto_endpoint}"
    ]
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    unreachable = oxen_server(
        tmp_path, "start", "--port", "0", "--storage", "s3://b/oxen", "--s3-endpoint", nobody,
        env=env,
    )  # fmt: skip
    assert unreachable.returncode == 1 and unreachable.stdout == ""
    [line] = unreachable.stderr.splitlines()
    assert line.startswith(f"error: the store is not ready: S3 endpoint {nobody} is unreachable")


def test_a_second_sigterm_ends_the_wait_at_once(make_server, tmp_path: Path) -> None:
    server: Server = make_server(args=["--shutdown-timeout", "600"])
    upload = upload_begun(server, a_pack(tmp_path))  # never finished
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    until(lambda: refused(server))  # the first one was taken: the wait has begun
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0
    assert time.monotonic() - signalled < FINAL_GRACE + 3
    server.proc = None
    upload.close()
