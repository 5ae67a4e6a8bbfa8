"""Long-running processes W4 needs: moto's S3 server and oxen-server, on 127.0.0.1, and
`Services`, which starts them (with the counting proxies in front) for one W4 run.

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
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import dir_size, log
from bench.netproxy import CountingProxy
from bench.paths import LOGS, ROOT
from bench.tools import DVC, Ours, Tool
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


def _auth_env(token: str, url: str) -> dict[str, str]:
    """The token for the server at ``url`` (and no other)."""
    return {"OXEN_AUTH_TOKEN": token, "OXEN_AUTH_HOST": url.split("://", 1)[1]}


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

    def cpu_seconds(self) -> float:
        """User + system CPU time the service has used so far (0 once it is gone)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

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
        options: list[str] | None = None,
    ) -> None:
        self.exe = exe
        self.data_dir = data_dir
        self.storage = storage
        self.options = options or []  # more options of `oxen-server start`
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
                *self._args(), *self.options,
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


# ---------------------------------------------------------------------------- one W4 run

BUCKET = "bench-w4"
NS = "bench"  # the server namespace of every pushed repository
OURS_DISK, OURS_S3, DVC_S3 = "ours (disk)", "ours (s3)", "dvc (s3)"


@dataclass
class Target:
    """One place a tool pushes to, with the proxies that see its traffic."""

    label: str
    tool: Tool
    env: dict[str, str]
    wire: CountingProxy  # what the client talks to
    s3wire: CountingProxy | None  # what talks to moto (dvc: the same proxy as wire)
    server: OxenServer | None = None
    base_url: str = ""  # ours: http://127.0.0.1:PROXY
    remote: str = ""  # ours: the remote's name in the local repository
    stored: Callable[[str], int] = lambda name: 0  # repository name -> bytes stored

    def repo_url(self, name: str) -> str:
        return f"{self.base_url}/{NS}/{name}"


@dataclass
class Run:
    """The services of one run and the targets they make."""

    root: Path
    ours: Ours | None
    dvc: DVC | None
    targets: list[Target] = field(default_factory=list)
    moto: Moto | None = None

    @property
    def ours_targets(self) -> list[Target]:
        return [t for t in self.targets if t.label.startswith("ours")]

    @property
    def dvc_target(self) -> Target | None:
        return next((t for t in self.targets if t.label == DVC_S3), None)


class Services:
    """Start moto, the proxies and the oxen servers for one run; stop all of them on exit."""

    def __init__(self, root: Path, ours: Ours | None, dvc: DVC | None, tag: str) -> None:
        self.run = Run(root, ours, dvc)
        self.tag = tag
        self.stack = ExitStack()

    def __enter__(self) -> Run:
        try:
            self._start()
        except BaseException:
            self.stack.close()
            raise
        return self.run

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def _start(self) -> None:
        run, stack = self.run, self.stack
        discard(run.root)
        run.root.mkdir(parents=True)
        stack.callback(discard, run.root)
        base_env = _service_env()
        moto = Moto(run.root / "moto", base_env)
        stack.callback(moto.stop)
        log(f"[W4] starting moto ({self.tag})")
        moto.launch()
        moto.create_bucket(BUCKET)
        run.moto = moto

        if run.ours is not None:
            server_exe = run.ours.exe.parent / "oxen-server"
            # oxen-server on local disk
            disk = OxenServer(
                f"oxen-disk-{self.tag}", server_exe, run.root / "disk", None, base_env
            )
            stack.callback(disk.stop)
            disk.launch()  # which makes the store the token goes to
            disk_token = disk.add_user(run.root / "disk-user.toml")
            disk_proxy = self._proxy("oxen-disk", disk.port)
            run.targets.append(
                Target(
                    OURS_DISK, run.ours, {**run.ours.env(), **_auth_env(disk_token, disk_proxy.url)},
                    disk_proxy, None, disk, disk_proxy.url, "disk",
                    lambda name, d=disk: dir_size(d.local_store / "repos" / NS / name),
                )
            )  # fmt: skip
            # oxen-server on moto, talking to it through a proxy
            moto_oxen = self._proxy("moto-oxen", moto.port)
            s3_env = {**base_env, **S3_CREDENTIALS, "AWS_ENDPOINT_URL": moto_oxen.url}
            s3 = OxenServer(
                f"oxen-s3-{self.tag}", server_exe, run.root / "s3", f"s3://{BUCKET}/oxen", s3_env
            )
            stack.callback(s3.stop)
            # the token goes straight to moto: setup traffic is not what is measured
            s3_token = s3.add_user(
                run.root / "s3-user.toml", {**s3_env, "AWS_ENDPOINT_URL": moto.endpoint}
            )
            s3.launch()
            s3_proxy = self._proxy("oxen-s3", s3.port)
            run.targets.append(
                Target(
                    OURS_S3, run.ours, {**run.ours.env(), **_auth_env(s3_token, s3_proxy.url)},
                    s3_proxy, moto_oxen, s3, s3_proxy.url, "s3",
                    lambda name: moto.prefix_size(BUCKET, f"oxen/repos/{NS}/{name}/")[0],
                )
            )  # fmt: skip

        if run.dvc is not None:
            moto_dvc = self._proxy("moto-dvc", moto.port)
            run.targets.append(
                Target(
                    DVC_S3, run.dvc, {**run.dvc.env(), **S3_CREDENTIALS}, moto_dvc, moto_dvc,
                    base_url=moto_dvc.url,
                    stored=lambda name: moto.prefix_size(BUCKET, f"dvc/{name}/")[0],
                )
            )  # fmt: skip

    def _proxy(self, name: str, port: int) -> CountingProxy:
        proxy = CountingProxy(name, port).start()
        self.stack.callback(proxy.close)
        return proxy


def _service_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OXEN_", "AWS_", "DVC_", "GIT_"))
        and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env
