"""Long-running processes W4 needs: moto's S3 server and oxen-server, on 127.0.0.1.

Each is a subprocess in its own session (so a Ctrl-C in the terminal reaches the runner,
whose cleanup stops them in order) with stdout/stderr in bench/.work/logs/w4/services/,
and dies with the runner even if the runner is killed (PR_SET_PDEATHSIG, see LAUNCH). Ports are
picked free by the kernel; a server that cannot bind its port is retried on another.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.paths import LOGS, ROOT
from bench.trash import discard

S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
SERVICE_LOGS = LOGS / "w4" / "services"


class ServiceError(Exception):
    """A service would not start; the message is what the table shows."""


def venv_python() -> str:
    py = ROOT / ".venv" / "bin" / "python"
    return str(py) if py.exists() else sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Run as `python -I -S -c LAUNCH RUNNER_PID PROGRAM ARGS...`: ask for SIGTERM when the
# runner dies, then exec the program (same pid, so /proc/PID is the service's). Done in a
# fresh interpreter rather than a preexec_fn, which is unsafe once the proxies' threads run.
LAUNCH = """
import ctypes, os, signal, sys
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)  # the runner is already gone
os.execv(sys.argv[2], sys.argv[2:])
"""


class Service:
    """A subprocess with logs, readiness by HTTP, and a stop that always happens."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], cwd: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        SERVICE_LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = SERVICE_LOGS / f"{name}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, health_url: str, timeout: float = 60.0) -> None:
        self.cwd.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as logf:
            logf.write(f"$ {' '.join(self.argv)}\n".encode())
            logf.flush()
            launcher = [sys.executable, "-I", "-S", "-c", LAUNCH, str(os.getpid())]
            self.proc = subprocess.Popen(
                [*launcher, *self.argv],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited {self.proc.returncode} at start: {self.last_line()}"
                )
            try:
                with urllib.request.urlopen(health_url, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers: up
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise ServiceError(f"{self.name} not ready after {timeout:.0f} s: {self.last_line()}")

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue

    def last_line(self) -> str:
        try:
            lines = [ln.strip() for ln in self.log_path.read_text(errors="replace").splitlines()]
        except OSError:
            return "no log"
        lines = [ln for ln in lines if ln and not ln.startswith("$ ")]
        return lines[-1][:160] if lines else "no output"

    # -- memory (Linux /proc) -------------------------------------------------
    def reset_peak_rss(self) -> bool:
        """Reset the process's VmHWM to its current RSS (clear_refs 5, Linux >= 4.0)."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def rss_kib(self) -> tuple[int, int] | None:
        """(current RSS, peak RSS since start or the last reset) in KiB."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        vals = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M))
        if "VmRSS" not in vals or "VmHWM" not in vals:
            return None
        return int(vals["VmRSS"]), int(vals["VmHWM"])


class Moto(Service):
    """moto's S3 in server mode, from the project venv (moto[server])."""

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.port = free_port()
        super().__init__(
            "moto",
            [venv_python(), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env,
            workdir,
        )
        self._client = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> None:
        self.start(self.endpoint + "/")

    def s3(self) -> Any:  # boto3 is imported lazily: only W4 needs it
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
            )
        return self._client

    def create_bucket(self, bucket: str) -> None:
        self.s3().create_bucket(Bucket=bucket)

    def prefix_size(self, bucket: str, prefix: str) -> tuple[int, int]:
        """(bytes, objects) under prefix, by list_objects_v2 (straight to moto, not counted)."""
        total = count = 0
        for page in (
            self.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        ):
            for obj in page.get("Contents", []):
                total += obj["Size"]
                count += 1
        return total, count


class OxenServer(Service):
    """`oxen-server start` on a local data dir, its objects on disk or on S3."""

    def __init__(
        self,
        name: str,
        exe: Path,
        data_dir: Path,
        storage: str | None,
        env: Mapping[str, str],
    ) -> None:
        self.exe = exe
        self.data_dir = data_dir
        self.storage = storage
        self.port = 0
        super().__init__(name, [], env, data_dir.parent)

    def _args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        return [*args, "--storage", self.storage] if self.storage else args

    def add_user(self, out: Path, env: Mapping[str, str] | None = None) -> str:
        """Issue a token (`oxen-server add-user`) and return it."""
        argv = [
            str(self.exe), "add-user", "--email", "b@example.com", "--name", "bench",
            "--output", str(out), *self._args(),
        ]  # fmt: skip
        proc = subprocess.run(
            argv, env=dict(env or self.env), capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout or f"exit {proc.returncode}").strip().splitlines()
            raise ServiceError(f"`oxen-server add-user` failed: {lines[-1][:160]}")
        m = re.search(r'^token\s*=\s*"([^"]+)"', out.read_text(), re.M)
        if not m:
            raise ServiceError(f"no token in {out}")
        return m.group(1)

    def launch(self, tries: int = 3) -> None:
        for attempt in range(tries):
            self.port = free_port()
            self.argv = [
                str(self.exe), "start", "--host", "127.0.0.1", "--port", str(self.port),
                *self._args(),
            ]  # fmt: skip
            try:
                self.start(f"http://127.0.0.1:{self.port}/api/health")
                return
            except ServiceError:
                if attempt == tries - 1 or "address already in use" not in self.last_line().lower():
                    raise

    @property
    def local_store(self) -> Path:
        """Where the objects live when --storage is not given (the server's default)."""
        return self.data_dir / "store"

    def cache_size(self, namespace: str, name: str) -> int:
        from bench.measure import dir_size

        return dir_size(self.data_dir / "cache" / namespace / name)

    def remove_data(self) -> None:
        discard(self.data_dir)
