#!/usr/bin/env python3
"""N `oxen-server` processes on one S3 bucket behind nginx, on this machine, without
containers: what `compose.yaml` runs, as plain processes.

    python deploy/run-local.py --servers 3 --port 3000

starts, in this order, and stops at the first that fails (with one line on stderr):

1. an S3 endpoint: moto in server mode on a free loopback port with a new bucket, or
   the one given (``--s3-endpoint URL --bucket NAME``: MinIO, Ceph, AWS; credentials
   from the usual AWS variables; the bucket is made if it is missing);
2. ``--servers`` N servers on the consecutive ports after ``--port``, each with its own
   data directory and all on ``s3://BUCKET/PREFIX``, each ready (``/readyz``) before the
   next starts;
3. a user's token (``oxen-server add-user``, written to the bucket, so every server
   knows it);
4. nginx on ``--port``, with ``deploy/nginx.conf`` (its upstream's servers and its
   ``listen`` rewritten to these) inside a whole nginx configuration of its own.

Then it prints the URL, the token and the lines a client needs, and waits.  Ctrl-C or
SIGTERM stops everything: nginx, then each server with SIGTERM (each finishes the
uploads and clones it is running, up to its ``--shutdown-timeout``), then moto; the
working directory (``--dir``, else a temporary one) is removed unless ``--keep`` or
``--dir``.  ``--json`` prints, once everything is ready, one JSON line with the same
facts (``url``, ``token``, ``servers``, ``s3_endpoint``, ``storage``, ``dir``) for
scripts that drive it (the bench step and the tests read it).

Only the standard library, the `oxen-server` of the Python running this script, nginx
(``--nginx PATH``, else found on PATH or in /usr/sbin; Debian: ``apt-get install
nginx-light``), and for moto or making a bucket, moto and boto3.
"""

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
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVER = [sys.executable, "-m", "oxen.server.main"]
READY_SECONDS = 60.0
SHUTDOWN_TIMEOUT = 30.0
# Seconds past a server's --shutdown-timeout before it is killed (as compose's
# stop_grace_period and the systemd unit's TimeoutStopSec give it).
KILL_GRACE = 10.0
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class SetupError(Exception):
    """Something could not start: one line says what and where its log is."""


@dataclass
class Stack:
    """What runs, in the order it started; stopped in the reverse order."""

    workdir: Path
    procs: list[tuple[str, subprocess.Popen[bytes], float]] = field(default_factory=list)

    def started(self, name: str, proc: subprocess.Popen[bytes], grace: float) -> None:
        self.procs.append((name, proc, grace))

    def stop(self) -> None:
        for name, proc, grace in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    print(f"{name} did not stop in {grace:g} s: killed", file=sys.stderr)
                    proc.kill()
                    proc.wait()
        self.procs.clear()


def free_ports(count: int, host: str = "127.0.0.1") -> int:
    """The first of ``count`` consecutive ports free now on ``host``."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind((host, 0))
            base = s.getsockname()[1]
        if base + count <= 65535 and all(port_free(host, base + i) for i in range(count)):
            return base
    raise SetupError(f"found no {count} consecutive free ports")


def port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_ready(url: str, proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
    """Poll ``url`` until it answers 200; the process exiting first is a failure."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SetupError(f"{name} exited with {proc.returncode} at start: see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.1)
    raise SetupError(f"{name} was not ready after {READY_SECONDS:g} s: see {log}")


def spawn(args: Sequence[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        # own process group: a Ctrl-C at the terminal reaches this script only, which
        # then stops each in order
        return subprocess.Popen(
            list(args), stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def start_moto(stack: Stack, host: str) -> str:
    port = free_ports(1, host)
    log = stack.workdir / "moto.log"
    proc = spawn(
        [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)], log, os.environ.copy()
    )
    stack.started("moto", proc, 10.0)
    endpoint = f"http://{host}:{port}"
    wait_ready(f"{endpoint}/moto-api/", proc, "moto", log)
    return endpoint


def make_bucket(endpoint: str, bucket: str, env: dict[str, str]) -> None:
    try:
        import boto3
        from botocore.exceptions import ClientError
    except ImportError:
        raise SetupError("making the bucket needs boto3 (pip install boto3)") from None
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    try:
        client.head_bucket(Bucket=bucket)
        return
    except ClientError:
        pass
    try:
        client.create_bucket(Bucket=bucket)
    except ClientError as e:
        raise SetupError(f"cannot make bucket {bucket!r} at {endpoint}: {e}") from None


def start_servers(
    stack: Stack, count: int, first_port: int, storage: str, env: dict[str, str], timeout: float
) -> list[str]:
    hosts = []
    for i in range(count):
        port = first_port + i
        data = stack.workdir / f"server-{i + 1}"
        data.mkdir(parents=True, exist_ok=True)
        log = stack.workdir / f"server-{i + 1}.log"
        args = [*SERVER, "start", "--host", "127.0.0.1", "--port", str(port)]
        args += ["--storage", storage, "--data-dir", str(data)]
        args += [
            "--shutdown-timeout",
            f"{timeout:g}",
            "--access-log",
            str(stack.workdir / f"access-{i + 1}.log"),
        ]
        proc = spawn(args, log, env)
        stack.started(f"oxen-server {i + 1}", proc, timeout + KILL_GRACE)
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc, f"oxen-server {i + 1}", log)
        hosts.append(f"127.0.0.1:{port}")
    return hosts


def add_user(stack: Stack, storage: str, env: dict[str, str]) -> str:
    out = stack.workdir / "user.toml"
    args = [*SERVER, "add-user", "--email", "you@example.com", "--name", "You"]
    args += ["--output", str(out), "--storage", storage, "--data-dir", str(stack.workdir / "admin")]
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SetupError(f"add-user failed: {proc.stderr.strip()}")
    found = re.search(r'token = "([^"]+)"', out.read_text())
    if not found:
        raise SetupError(f"no token in {out}")
    return found.group(1)


def nginx_config(template: str, upstreams: Sequence[str], listen: str, workdir: Path) -> str:
    """``deploy/nginx.conf`` with these servers and this address, inside a whole
    configuration whose files all live in ``workdir``."""
    servers = "".join(f"    server {h};\n" for h in upstreams)
    snippet, n = re.subn(
        r"(upstream oxen \{\n)(?:    server [^\n]*\n)+", rf"\g<1>{servers}", template
    )
    if n != 1:
        raise SetupError("deploy/nginx.conf has no `upstream oxen { server ...; }` block")
    snippet, n = re.subn(r"listen \d+;", f"listen {listen};", snippet)
    if n != 1:
        raise SetupError("deploy/nginx.conf has no `listen PORT;` line")
    user = ""
    if os.geteuid() == 0:  # nginx's workers would run as nobody, who cannot enter workdir
        import pwd

        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n"
    temp = "\n".join(
        f"    {kind}_temp_path {workdir / ('nginx-' + kind)};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}daemon off;\nworker_processes 2;\npid {workdir / 'nginx.pid'};\n"
        f"error_log {workdir / 'nginx-error.log'} warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"    access_log {workdir / 'nginx-access.log'};\n{temp}\n"
        + "".join(f"    {line}\n" if line else "\n" for line in snippet.splitlines())
        + "}\n"
    )


def find_nginx(given: str | None) -> str:
    path = (
        given
        or shutil.which("nginx")
        or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    )
    if path is None or not Path(path).exists():
        raise SetupError(
            "nginx not found: install it (Debian/Ubuntu: apt-get install -y nginx-light) "
            "or give --nginx PATH"
        )
    return path


def start_nginx(stack: Stack, nginx: str, upstreams: Sequence[str], port: int) -> None:
    config = stack.workdir / "nginx.conf"
    config.write_text(
        nginx_config(
            (HERE / "nginx.conf").read_text(), upstreams, f"127.0.0.1:{port}", stack.workdir
        )
    )
    log = stack.workdir / "nginx-error.log"
    base = [nginx, "-p", str(stack.workdir), "-e", str(log), "-c", str(config)]
    check = subprocess.run([*base, "-t"], capture_output=True, text=True)
    if check.returncode:
        raise SetupError(f"nginx refuses its configuration {config}: {check.stderr.strip()}")
    # SIGTERM is nginx's fast stop; the requests it relays end with the servers' own
    proc = spawn(base, stack.workdir / "nginx.log", os.environ.copy())
    stack.started("nginx", proc, 10.0)
    wait_ready(f"http://127.0.0.1:{port}/api/health", proc, "nginx", log)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="run-local.py", description="N oxen-servers on one S3 bucket behind nginx."
    )
    p.add_argument("--servers", type=int, default=2, metavar="N", help="how many (default 2)")
    p.add_argument(
        "--port",
        type=int,
        default=3000,
        help="nginx's port; the servers take the N after it (0: any free ports; default 3000)",
    )
    p.add_argument(
        "--s3-endpoint", metavar="URL", help="an S3 endpoint to use (default: start moto)"
    )
    p.add_argument("--bucket", help="the bucket (default: a new one; made if missing)")
    p.add_argument(
        "--prefix", default="oxen", help="the servers' prefix in the bucket (default oxen)"
    )
    p.add_argument("--dir", type=Path, help="working directory: data, configs, logs (kept)")
    p.add_argument("--keep", action="store_true", help="keep the temporary working directory")
    p.add_argument("--nginx", metavar="PATH", help="the nginx binary")
    p.add_argument("--shutdown-timeout", type=float, default=SHUTDOWN_TIMEOUT, metavar="SECONDS")
    p.add_argument("--json", action="store_true", help="print one JSON line once ready")
    args = p.parse_args(argv)
    if not 1 <= args.servers <= 64:
        p.error("--servers must be 1 to 64")
    if args.s3_endpoint and not args.bucket:
        p.error("--s3-endpoint needs --bucket")
    return args


def run(args: argparse.Namespace, stop: threading.Event) -> int:
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="oxen-local-"))
    workdir = workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(workdir)
    with ExitStack() as cleanup:
        if args.dir is None and not args.keep:
            cleanup.callback(shutil.rmtree, workdir, True)
        cleanup.callback(stack.stop)
        try:
            nginx = find_nginx(args.nginx)
            port = args.port or free_ports(args.servers + 1)
            for p in range(port, port + args.servers + 1):
                if not port_free("127.0.0.1", p):
                    raise SetupError(
                        f"port {p} is in use (--port picks nginx's; the servers take the next {args.servers})"
                    )
            env = os.environ.copy()
            if args.s3_endpoint:
                endpoint, bucket = args.s3_endpoint, args.bucket
            else:
                env.update(CREDENTIALS)  # moto's; never the caller's real ones
                endpoint = start_moto(stack, "127.0.0.1")
                bucket = args.bucket or f"oxen-{uuid.uuid4().hex[:12]}"
            env["AWS_ENDPOINT_URL"] = endpoint
            make_bucket(endpoint, bucket, env)
            storage = f"s3://{bucket}/{args.prefix}"
            hosts = start_servers(
                stack, args.servers, port + 1, storage, env, args.shutdown_timeout
            )
            token = add_user(stack, storage, env)
            start_nginx(stack, nginx, hosts, port)
        except SetupError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        url = f"http://127.0.0.1:{port}"
        facts = {
            "url": url,
            "token": token,
            "servers": hosts,
            "s3_endpoint": endpoint,
            "storage": storage,
            "dir": str(workdir),
        }
        if args.json:
            print(json.dumps(facts), flush=True)
        else:
            print(
                f"{args.servers} oxen-server(s) on {storage} at {endpoint}, behind nginx at {url}\n"
                f"  servers: {', '.join(hosts)} (logs and data in {workdir})\n"
                f"  export OXEN_AUTH_HOST=127.0.0.1:{port} OXEN_AUTH_TOKEN={token}\n"
                f"  oxen create-remote --name team/data --host 127.0.0.1:{port}\n"
                f"  oxen remote add origin {url}/team/data\n"
                "Ctrl-C stops everything.",
                flush=True,
            )
        while not stop.wait(0.5):
            for name, proc, _ in stack.procs:
                if proc.poll() is not None:
                    print(
                        f"error: {name} exited with {proc.returncode}: see {workdir}",
                        file=sys.stderr,
                    )
                    return 1
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return run(args, stop)


if __name__ == "__main__":
    sys.exit(main())
