"""W4: push and clone through a server, ours side by side with dvc on the same moto S3.

Per run, fresh: a moto S3 server with bucket `bench-w4`, oxen-server on local disk and
oxen-server on that bucket (`--storage s3://bench-w4/oxen`), and a counting proxy
(bench/netproxy.py) in front of each thing a tool talks to:

    oxen client --proxy--> oxen-server (disk)
    oxen client --proxy--> oxen-server (s3) --proxy--> moto
    dvc         --proxy--> moto

so "bytes on the wire" is measured the same way for every tool. Everything is stopped
and deleted at the end of the run, on failure too. The data are W1's files and W2's
parquet versions (the same cached data sets as W1 and W2). See docs/benchmarks.md.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import signal
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from bench import datagen
from bench.measure import CmdResult, Outcome, Sample, StepFailed, dir_size, log, run_cmd
from bench.netproxy import CountingProxy
from bench.paths import LOGS, RUNS
from bench.report import Extra, Table, fmt_bytes, fmt_seconds
from bench.services import S3_CREDENTIALS, Moto, OxenServer, ServiceError
from bench.tools import DVC, Argv, Ours, Tool
from bench.trash import discard, empty_trash
from bench.workloads import Settings

BUCKET = "bench-w4"
NS = "bench"  # the server namespace of every pushed repository
OURS_DISK, OURS_S3, DVC_S3 = "ours (disk)", "ours (s3)", "dvc (s3)"
MIN_STORED_SHARE = 0.25  # a push that stores less than this share of the data failed
# The targets for the second push of W2 (v2 = v1 + 1% rows) at full size.
V2_WIRE_TARGET = 12e6  # bytes (MB, 10^6)
V2_TIME_TARGET = 1.5  # seconds
V2_NEW_RATIO_TARGET = 2.0  # wire up / bytes of v2's new chunks

MBPS = Extra("mbps", "MB/s", lambda v: f"{v:.0f}")
WIRE_UP = Extra("wire_up", "wire ↑", fmt_bytes)
WIRE_DOWN = Extra("wire_down", "wire ↓", fmt_bytes)
S3_UP = Extra("s3_up", "S3 ↑", fmt_bytes)
S3_DOWN = Extra("s3_down", "S3 ↓", fmt_bytes)
SAID = Extra("said", "tool says", fmt_bytes)
STORED = Extra("stored", "stored", fmt_bytes)
GROWN = Extra("grown", "stored +", fmt_bytes)
PER_NEW = Extra("per_new", "wire ↑ / new chunks", lambda v: f"{v:.2f}x")
SERVER_RSS = Extra("server_rss", "server peak RSS", lambda kib: fmt_bytes(kib * 1024))
SERVER_IDLE = Extra("server_idle", "server RSS before", lambda kib: fmt_bytes(kib * 1024))

COMMON_NOTES = [
    f"{OURS_DISK}: `oxen-server` with its objects on local disk; {OURS_S3}: `oxen-server "
    f"--storage s3://{BUCKET}/oxen` on moto (server mode); {DVC_S3}: `dvc push` / `dvc pull` "
    f"with an S3 remote `s3://{BUCKET}/dvc/...` on the same moto. Fresh servers, bucket and "
    "repositories every run. time vs ours = vs ours (s3), the same S3 as dvc.",
    "wire ↑ / ↓: TCP payload bytes (HTTP headers included) client → server / server → client, "
    "counted by a proxy the client talks to; S3 ↑ / ↓: the same between whoever speaks S3 "
    "(ours: the server; dvc: dvc itself) and moto. tool says: what the tool printed (ours: "
    "`sent N bytes` / `received N bytes`). stored: the repository's objects on the target after "
    "the step (disk: `<data-dir>/store/repos/bench/NAME`; S3: sum of list_objects_v2 sizes under "
    "the repository's prefix); ours' server also keeps a rebuildable SQLite cache per repository "
    "in its data dir, shown in the notes, not counted. server peak RSS: oxen-server's VmHWM "
    "during the step (reset before it via /proc/PID/clear_refs).",
    "clone: ours `oxen clone URL DIR`; dvc: a fresh directory holding what `git clone` of a dvc "
    "repository would bring (the `.dvc` files, `.dvcignore`, `.dvc/config`; copied, untimed), then "
    "`dvc pull`. Every clone and pull is checked against the data (file count, sizes, bytes) "
    "before it counts. Requests in flight: each tool's default (ours `-j 4`; dvc `jobs` = 4 × "
    "cores). The add/commit (ours `oxen add` + `oxen commit`, dvc `dvc add`) before a push is "
    "untimed here (W1/W2 time it).",
]


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


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # run the cleanups (finally / ExitStack) on SIGTERM


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
            disk_token = disk.add_user(run.root / "disk-user.toml")
            disk.launch()
            disk_proxy = self._proxy("oxen-disk", disk.port)
            run.targets.append(
                Target(
                    OURS_DISK, run.ours, {**run.ours.env(), "OXEN_AUTH_TOKEN": disk_token},
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
                    OURS_S3, run.ours, {**run.ours.env(), "OXEN_AUTH_TOKEN": s3_token},
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


# ---------------------------------------------------------------------------- helpers


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _cmd_name(argv: Argv) -> str:
    name = Path(argv[0]).name
    if len(argv) > 1 and not argv[1].startswith("-"):
        name += f" {argv[1]}"
    return f"`{name}`"


def _run(argv: Argv, cwd: Path, env: dict[str, str], stem: str, timeout: float) -> CmdResult:
    res = run_cmd(argv, cwd, env, LOGS / "w4" / stem, timeout)
    if res.returncode != 0:
        raise StepFailed(f"{_cmd_name(argv)}: {res.first_error_line()}")
    return res


def _untimed(cmds: Sequence[Argv], cwd: Path, t: Target | Tool, what: str, timeout: float) -> str:
    """Setup commands (not measured); their failure is reported as `setup ...`."""
    env = t.env if isinstance(t, Target) else t.env()
    label = t.label if isinstance(t, Target) else t.name
    out = []
    for i, argv in enumerate(cmds):
        try:
            res = _run(argv, cwd, env, f"{_slug(label)}/setup-{_slug(what)}-{i}", timeout)
        except StepFailed as exc:
            raise StepFailed(f"setup: {exc}") from None
        out.append(res.stdout_path.read_text(errors="replace"))
    return "".join(out)


def _measure(
    table: Table,
    step: str,
    t: Target,
    cmds: Sequence[Argv],
    cwd: Path,
    timeout: float,
    data_bytes: int | None = None,
) -> str:
    """Run one timed step through the target's proxies; record time, RSS, wire bytes and
    the server's peak RSS under (step, target). Returns the commands' stdout."""
    up0, down0 = t.wire.settle()
    s3_0 = t.s3wire.settle() if t.s3wire is not None and t.s3wire is not t.wire else None
    if t.server is not None:
        t.server.reset_peak_rss()
    sample = Sample()
    out = []
    for i, argv in enumerate(cmds):
        res = _run(
            argv, cwd, t.env, f"{_slug(t.label)}/{_slug(table.key + ' ' + step)}-{i}", timeout
        )
        sample.add(res)
        out.append(res.stdout_path.read_text(errors="replace"))
    up1, down1 = t.wire.settle()
    o = table.outcome(step, t.label)
    o.samples.append(sample)
    o.add_extra("wire_up", up1 - up0)
    o.add_extra("wire_down", down1 - down0)
    if t.s3wire is t.wire:
        o.add_extra("s3_up", up1 - up0)
        o.add_extra("s3_down", down1 - down0)
    elif t.s3wire is not None and s3_0 is not None:
        s3_1 = t.s3wire.settle()
        o.add_extra("s3_up", s3_1[0] - s3_0[0])
        o.add_extra("s3_down", s3_1[1] - s3_0[1])
    if t.server is not None and (rss := t.server.rss_kib()) is not None:
        o.add_extra("server_rss", rss[1])
    if data_bytes:
        o.add_extra("mbps", data_bytes / sample.seconds / 1e6)
    return "".join(out)


def _said(table: Table, step: str, t: Target, stdout: str) -> None:
    """Record what the tool says it moved: ours' byte counts, dvc's file counts."""
    o = table.outcome(step, t.label)
    if m := re.search(r"\b(?:sent|received) (\d+) bytes", stdout):
        o.add_extra("said", int(m.group(1)))
    elif m := re.search(r"(\d+ files? (?:pushed|fetched)[^\n]*)", stdout):
        o.note = f"dvc: {m.group(1).strip()}"
    elif "Everything is up to date" in stdout or "Everything up-to-date" in stdout:
        o.note = "said: up to date"


def _record_stored(table: Table, step: str, t: Target, name: str, data_bytes: int) -> int:
    stored = t.stored(name)
    o = table.outcome(step, t.label)
    o.add_extra("stored", stored)
    if t.server is not None:  # not a column: shown in the notes by _finish_notes
        o.add_extra("server_cache", t.server.cache_size(NS, name))
    if stored < MIN_STORED_SHARE * data_bytes:
        raise StepFailed(
            f"exited 0 but the target holds only {fmt_bytes(stored)} for {fmt_bytes(data_bytes)} of data"
        )
    return stored


def _record_second_push(
    table: Table, step: str, t: Target, before: int, v1_bytes: int, new_bytes: int | None
) -> None:
    """stored + and wire ↑ / new chunks of the second push; it must store v2's new data."""
    grown = _record_stored(table, step, t, "w2", v1_bytes) - before
    o = table.outcome(step, t.label)
    o.add_extra("grown", grown)
    if new_bytes:
        o.add_extra("per_new", o.extras["wire_up"][-1] / new_bytes)
        if grown < new_bytes / 2:
            raise StepFailed(
                f"exited 0 but the target grew by only {fmt_bytes(grown)} "
                f"(v2 has {fmt_bytes(new_bytes)} of new chunks)"
            )


def _check_tree(fs: datagen.FileSet, dst: Path) -> None:
    """A clone must hold W1's files: same count, same total size, sampled bytes equal."""
    rels: list[str] = []
    total = 0
    for top in fs.toplevel:
        for path in (dst / top).rglob("*"):
            if path.is_file():
                rels.append(str(path.relative_to(dst)))
                total += path.stat().st_size
    if len(rels) != fs.n_files or total != fs.total_bytes:
        raise StepFailed(
            f"exited 0 but the clone holds {len(rels):,} files / {fmt_bytes(total)} "
            f"(expected {fs.n_files:,} / {fmt_bytes(fs.total_bytes)})"
        )
    rels.sort()
    for rel in rels[:: max(1, len(rels) // 25)]:
        if not filecmp.cmp(fs.path / rel, dst / rel, shallow=False):
            raise StepFailed(f"exited 0 but {rel} in the clone differs from the original")


def _check_file(src: Path, dst: Path) -> None:
    if not dst.is_file():
        raise StepFailed(f"exited 0 but {dst.name} is missing")
    if not filecmp.cmp(src, dst, shallow=False):
        raise StepFailed(f"exited 0 but {dst.name} differs from the version pushed")


def _attempt(table: Table, label: str, step: str, fn: Callable[[], Any]) -> bool:
    """Run one step of one target unless it is already out; a StepFailed fails the row
    (and marks its later steps `not run`)."""
    if table.outcome(step, label).error:
        return False
    try:
        fn()
        return True
    except (StepFailed, ServiceError) as exc:
        log(f"[{table.key}] {label}: {step} failed: {exc}")
        table.fail(label, step, f"failed: {exc}")
        return False


def _fresh(path: Path) -> Path:
    discard(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _parse_size(text: str) -> int | None:
    """`21.2 MiB` (ours' human_size) -> bytes."""
    m = re.match(r"([\d.]+) (B|KiB|MiB|GiB|TiB)$", text.strip())
    if not m:
        return None
    power = ["B", "KiB", "MiB", "GiB", "TiB"].index(m.group(2))
    return round(float(m.group(1)) * 1024**power)


# ---------------------------------------------------------------------------- ours


def _ours_remote_setup(t: Target, repo: Path, name: str, timeout: float) -> None:
    host = t.base_url.removeprefix("http://")
    exe = str(t.tool.exe)  # type: ignore[attr-defined]
    _untimed(
        [
            [exe, "create-remote", "--name", f"{NS}/{name}", "--host", host],
            [exe, "config", "--set-remote", t.remote, t.repo_url(name)],
        ],
        repo,
        t,
        f"remote {name}",
        timeout,
    )


def _ours_w1(
    run: Run, table: Table, steps: dict[str, str], fs: datagen.FileSet, timeout: float
) -> None:
    ours, targets = run.ours, run.ours_targets
    assert ours is not None
    exe = str(ours.exe)
    repo = _fresh(run.root / "ours-w1")
    try:
        shutil.copytree(fs.path, repo)
        os.sync()
        try:
            _untimed(
                [[exe, "init"], [exe, "add", "."], [exe, "commit", "-m", "w1"]],
                repo,
                ours,
                "w1 commit",
                timeout,
            )
        except StepFailed as exc:
            for t in targets:
                table.fail(t.label, steps["push"], f"failed: {exc}")
            return
        for t in targets:
            clone = run.root / f"clone-{t.remote}"

            def push(t: Target = t) -> None:
                _ours_remote_setup(t, repo, "w1", timeout)
                out = _measure(
                    table,
                    steps["push"],
                    t,
                    [[exe, "push", t.remote]],
                    repo,
                    timeout,
                    fs.total_bytes,
                )
                _said(table, steps["push"], t, out)
                _record_stored(table, steps["push"], t, "w1", fs.total_bytes)

            def clone_(t: Target = t, clone: Path = clone) -> None:
                out = _measure(
                    table, steps["clone"], t, [[exe, "clone", t.repo_url("w1"), str(clone)]],
                    run.root, timeout, fs.total_bytes,
                )  # fmt: skip
                _said(table, steps["clone"], t, out)
                _check_tree(fs, clone)

            _attempt(table, t.label, steps["push"], push)
            _attempt(table, t.label, steps["clone"], clone_)
            discard(clone)
    finally:
        discard(repo)


def _ours_w2(
    run: Run, table: Table, steps: dict[str, str], versions: datagen.ParquetVersions, timeout: float
) -> int | None:
    """Returns the bytes of v2's new chunks (ours' `oxen add` of v2: `stored X new`)."""
    ours, targets = run.ours, run.ours_targets
    assert ours is not None
    exe = str(ours.exe)
    sizes = versions.sizes()
    repo = _fresh(run.root / "ours-w2")
    clones = {t.label: run.root / f"clone-w2-{t.remote}" for t in targets}
    new_bytes: int | None = None
    try:
        repo.mkdir()
        shutil.copyfile(versions.v1, repo / "data.parquet")
        os.sync()
        try:
            _untimed(
                [[exe, "init"], [exe, "add", "."], [exe, "commit", "-m", "w2 v1"]],
                repo,
                ours,
                "w2 v1 commit",
                timeout,
            )
        except StepFailed as exc:
            for t in targets:
                table.fail(t.label, steps["v1 push"], f"failed: {exc}")
            return None
        for t in targets:
            clone = clones[t.label]

            def push(t: Target = t) -> None:
                _ours_remote_setup(t, repo, "w2", timeout)
                out = _measure(
                    table,
                    steps["v1 push"],
                    t,
                    [[exe, "push", t.remote]],
                    repo,
                    timeout,
                    sizes["v1"],
                )
                _said(table, steps["v1 push"], t, out)
                _record_stored(table, steps["v1 push"], t, "w2", sizes["v1"])

            def clone_(t: Target = t, clone: Path = clone) -> None:
                out = _measure(
                    table, steps["v1 clone"], t, [[exe, "clone", t.repo_url("w2"), str(clone)]],
                    run.root, timeout, sizes["v1"],
                )  # fmt: skip
                _said(table, steps["v1 clone"], t, out)
                _check_file(versions.v1, clone / "data.parquet")

            _attempt(table, t.label, steps["v1 push"], push)
            _attempt(table, t.label, steps["v1 clone"], clone_)

        shutil.copyfile(versions.v2, repo / "data.parquet")
        os.sync()
        try:
            out = _untimed(
                [[exe, "add", "."], [exe, "commit", "-m", "w2 v2"]],
                repo,
                ours,
                "w2 v2 commit",
                timeout,
            )
        except StepFailed as exc:
            for t in targets:
                table.fail(t.label, steps["v2 push"], f"failed: {exc}")
            return None
        if m := re.search(r"stored ([\d.]+ \w+) new", out):
            new_bytes = _parse_size(m.group(1))

        for t in targets:
            clone = clones[t.label]

            def push2(t: Target = t) -> None:
                before = t.stored("w2")
                out = _measure(table, steps["v2 push"], t, [[exe, "push", t.remote]], repo, timeout)
                _said(table, steps["v2 push"], t, out)
                _record_second_push(table, steps["v2 push"], t, before, sizes["v1"], new_bytes)

            def pull(t: Target = t, clone: Path = clone) -> None:
                out = _measure(table, steps["v2 pull"], t, [[exe, "pull"]], clone, timeout)
                _said(table, steps["v2 pull"], t, out)
                _check_file(versions.v2, clone / "data.parquet")

            _attempt(table, t.label, steps["v2 push"], push2)
            _attempt(table, t.label, steps["v2 pull"], pull)
    finally:
        discard(repo)
        for clone in clones.values():
            discard(clone)
    return new_bytes


# ---------------------------------------------------------------------------- dvc


def _dvc_prepare(t: Target, repo: Path, targets: Sequence[str], name: str, timeout: float) -> None:
    dvc = str(t.tool.bin / "dvc")  # type: ignore[attr-defined]
    _untimed(
        [
            [dvc, "init", "--no-scm", "-q"],
            [dvc, "config", "core.analytics", "false"],
            [dvc, "add", "-q", *targets],
            [dvc, "remote", "add", "-d", "s3", f"s3://{BUCKET}/dvc/{name}"],
            [dvc, "remote", "modify", "s3", "endpointurl", t.base_url],
        ],
        repo,
        t,
        f"{name} add",
        timeout,
    )


def _dvc_checkout_files(repo: Path, clone: Path) -> None:
    """What `git clone` of a dvc repository brings: the .dvc files, .dvcignore and
    .dvc/config (the cache and tmp dirs are git-ignored)."""
    (clone / ".dvc").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(repo / ".dvc" / "config", clone / ".dvc" / "config")
    for path in repo.iterdir():
        if path.is_file() and (path.suffix == ".dvc" or path.name == ".dvcignore"):
            shutil.copyfile(path, clone / path.name)


def _dvc_w1(
    run: Run, table: Table, steps: dict[str, str], fs: datagen.FileSet, timeout: float
) -> None:
    t = run.dvc_target
    assert t is not None
    dvc = str(t.tool.bin / "dvc")  # type: ignore[attr-defined]
    repo, clone = _fresh(run.root / "dvc-w1"), _fresh(run.root / "clone-dvc-w1")
    try:

        def push() -> None:
            shutil.copytree(fs.path, repo)
            os.sync()
            _dvc_prepare(t, repo, fs.toplevel, "w1", timeout)
            out = _measure(table, steps["push"], t, [[dvc, "push"]], repo, timeout, fs.total_bytes)
            _said(table, steps["push"], t, out)
            _record_stored(table, steps["push"], t, "w1", fs.total_bytes)

        def clone_() -> None:
            _dvc_checkout_files(repo, clone)
            out = _measure(
                table, steps["clone"], t, [[dvc, "pull"]], clone, timeout, fs.total_bytes
            )
            _said(table, steps["clone"], t, out)
            _check_tree(fs, clone)

        _attempt(table, t.label, steps["push"], push)
        _attempt(table, t.label, steps["clone"], clone_)
    finally:
        discard(repo)
        discard(clone)


def _dvc_w2(
    run: Run,
    table: Table,
    steps: dict[str, str],
    versions: datagen.ParquetVersions,
    new_bytes: int | None,
    timeout: float,
) -> None:
    t = run.dvc_target
    assert t is not None
    dvc = str(t.tool.bin / "dvc")  # type: ignore[attr-defined]
    sizes = versions.sizes()
    repo, clone = _fresh(run.root / "dvc-w2"), _fresh(run.root / "clone-dvc-w2")
    try:

        def push() -> None:
            repo.mkdir()
            shutil.copyfile(versions.v1, repo / "data.parquet")
            os.sync()
            _dvc_prepare(t, repo, ["data.parquet"], "w2", timeout)
            out = _measure(table, steps["v1 push"], t, [[dvc, "push"]], repo, timeout, sizes["v1"])
            _said(table, steps["v1 push"], t, out)
            _record_stored(table, steps["v1 push"], t, "w2", sizes["v1"])

        def clone_() -> None:
            _dvc_checkout_files(repo, clone)
            out = _measure(
                table, steps["v1 clone"], t, [[dvc, "pull"]], clone, timeout, sizes["v1"]
            )
            _said(table, steps["v1 clone"], t, out)
            _check_file(versions.v1, clone / "data.parquet")

        def push2() -> None:
            shutil.copyfile(versions.v2, repo / "data.parquet")
            os.sync()
            _untimed([[dvc, "add", "-q", "data.parquet"]], repo, t, "w2 v2 add", timeout)
            before = t.stored("w2")
            out = _measure(table, steps["v2 push"], t, [[dvc, "push"]], repo, timeout)
            _said(table, steps["v2 push"], t, out)
            _record_second_push(table, steps["v2 push"], t, before, sizes["v1"], new_bytes)

        def pull() -> None:
            _dvc_checkout_files(repo, clone)  # what `git pull` brings: the new data.parquet.dvc
            out = _measure(table, steps["v2 pull"], t, [[dvc, "pull"]], clone, timeout)
            _said(table, steps["v2 pull"], t, out)
            _check_file(versions.v2, clone / "data.parquet")

        for step, fn in (
            ("v1 push", push),
            ("v1 clone", clone_),
            ("v2 push", push2),
            ("v2 pull", pull),
        ):
            _attempt(table, t.label, steps[step], fn)
    finally:
        discard(repo)
        discard(clone)


# ---------------------------------------------------------------------------- tables


def _labels(requested: Sequence[str]) -> list[str]:
    """W4's rows: ours twice (disk, s3), dvc once; oxenai and git-lfs have none."""
    labels: list[str] = []
    for name in requested:
        if name == "ours":
            labels += [OURS_DISK, OURS_S3]
        elif name == "dvc":
            labels.append(DVC_S3)
    return labels


NOT_IN_W4 = {
    "oxenai": "oxenai has no rows: there is no server for it here (Oxen.ai's oxen-server is a "
    "separate Rust binary, not in the oxenai wheel).",
    "git-lfs": "git-lfs has no rows: it reaches S3 only through a separate LFS server; the "
    "issue compares against dvc on the same S3.",
}


def _skip_rows(
    table: Table, requested: Sequence[str], active: Sequence[Tool], skipped: dict[str, str]
) -> None:
    names = {t.name for t in active}
    for name in requested:
        if name in NOT_IN_W4:
            table.notes.append(NOT_IN_W4[name])
        elif name not in names:
            why = skipped.get(name, "skipped")
            for label in _labels([name]):
                table.skip_tool(label, why)


def _add_note(o: Outcome, text: str) -> None:
    o.note = f"{o.note}; {text}" if o.note else text


def _finish_notes(table: Table) -> None:
    """Per-run facts that are not columns go into the notes once, as medians."""
    for o in table.outcomes.values():
        cache = o.median_extra("server_cache")
        if cache is not None:
            _add_note(o, f"server cache {fmt_bytes(cache)}")


def _v2_target_notes(table: Table, step: str, full_size: bool) -> None:
    """Say, under ours' rows, whether the second push meets the issue's targets."""
    for label in (OURS_DISK, OURS_S3):
        o = table.outcome(step, label)
        wire, secs, ratio = o.median_extra("wire_up"), o.median_seconds, o.median_extra("per_new")
        if wire is None or secs is None:
            continue
        parts = []
        if ratio is not None:
            ok = "met" if ratio <= V2_NEW_RATIO_TARGET else "MISSED"
            parts.append(f"≤ {V2_NEW_RATIO_TARGET:.0f}x new chunks: {ok}")
        if full_size:
            parts.append(
                f"≤ 12 MB: {'met' if wire <= V2_WIRE_TARGET else 'MISSED'} ({wire / 1e6:.1f} MB)"
            )
            parts.append(f"≤ 1.5 s: {'met' if secs <= V2_TIME_TARGET else 'MISSED'}")
        else:
            parts.append("12 MB / 1.5 s targets apply at full size")
        _add_note(o, "target " + ", ".join(parts))


def run(
    active: Sequence[Tool],
    settings: Settings,
    requested: Sequence[str],
    skipped: dict[str, str],
    w1_files: int,
    w2_bytes: int,
    w2_cdc: bool,
    concurrent_bytes: int | None,
    full_size: bool,
) -> list[Table]:
    """W4's tables: push/clone of W1, of W2 (v1, v2), and optionally the concurrent push."""
    ours = next((t for t in active if isinstance(t, Ours)), None)
    dvc = next((t for t in active if isinstance(t, DVC)), None)
    labels = _labels(requested)
    fs = datagen.w1_files(w1_files, settings.seed)
    versions = datagen.w2_parquet(w2_bytes, settings.seed, w2_cdc)
    sizes = versions.sizes()

    s1 = {"push": f"push ({fs.n_files:,} files)", "clone": "clone"}
    t1 = Table(
        "W4 · W1",
        f"push / clone of {fs.n_files:,} files of 2–20 KiB in two folders ({fmt_bytes(fs.total_bytes)})",
        list(s1.values()),
        labels,
        [MBPS, WIRE_UP, WIRE_DOWN, S3_UP, S3_DOWN, SAID, STORED, SERVER_RSS],
        ["MB/s = W1's bytes (10^6) / wall time.", *COMMON_NOTES],
        baseline=OURS_S3,
    )
    s2 = {
        "v1 push": "v1 push",
        "v1 clone": "v1 clone",
        "v2 push": f"v2 push (+{versions.appended_rows:,} rows)",
        "v2 pull": "v2 pull (into the v1 clone)",
    }
    writer = "use_content_defined_chunking=True" if w2_cdc else "pyarrow defaults"
    t2 = Table(
        "W4 · W2",
        f"push / clone of a parquet file of {fmt_bytes(sizes['v1'])} ({writer}), then v2 "
        f"= +1% rows ({fmt_bytes(sizes['v2'])}) pushed again and pulled",
        list(s2.values()),
        labels,
        [MBPS, WIRE_UP, WIRE_DOWN, S3_UP, S3_DOWN, SAID, STORED, GROWN, PER_NEW, SERVER_RSS],
        [
            "v1 push / v1 clone: `data.parquet` v1 (MB/s = its size / wall time). v2 push: the "
            "second push, after v2 (v1 + 1% rows appended) is committed; stored + = what the "
            "target grew by. v2 pull: ours `oxen pull` in the v1 clone; dvc: the new "
            "`data.parquet.dvc` copied in (what `git pull` would do), then `dvc pull`.",
            "wire ↑ / new chunks = the push's wire ↑ / the bytes of v2's new chunks, as ours' "
            "`oxen add` of v2 reported them (`stored X new`, median "
            "{new}): the data that really changed, at 64 KiB chunk granularity. The issue's "
            "target for ours: ≤ 2x, and at full size (1 GiB) ≤ 12 MB and ≤ 1.5 s.",
            *COMMON_NOTES,
        ],
        baseline=OURS_S3,
    )
    tables = [t1, t2]
    for table in tables:
        _skip_rows(table, requested, active, skipped)

    new_chunks: list[int] = []
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if ours is not None or dvc is not None:
            for r in range(settings.runs):
                log(f"[W4] run {r + 1}/{settings.runs}")
                try:
                    with Services(RUNS / "w4" / f"run{r}", ours, dvc, f"r{r}") as svc:
                        if ours is not None:
                            log("[W4] W1: ours (disk, s3)")
                            _ours_w1(svc, t1, s1, fs, settings.timeout)
                        if dvc is not None:
                            log("[W4] W1: dvc")
                            _dvc_w1(svc, t1, s1, fs, settings.timeout)
                        new_bytes = None
                        if ours is not None:
                            log("[W4] W2: ours (disk, s3)")
                            new_bytes = _ours_w2(svc, t2, s2, versions, settings.timeout)
                            if new_bytes:
                                new_chunks.append(new_bytes)
                        if dvc is not None:
                            log("[W4] W2: dvc")
                            _dvc_w2(svc, t2, s2, versions, new_bytes, settings.timeout)
                except ServiceError as exc:
                    log(f"[W4] services failed: {exc}")
                    for table in tables:
                        for label in table.tools:
                            if not table.failed(label):
                                table.fail(label, table.steps[0], f"failed: {exc}")
                    break
        for table in tables:
            _finish_notes(table)
        _v2_target_notes(t2, s2["v2 push"], full_size)
        new = fmt_bytes(statistics.median(new_chunks)) if new_chunks else "n/a"
        t2.notes[1] = t2.notes[1].replace("{new}", new)
        if concurrent_bytes:
            tables.append(
                _run_concurrent(
                    ours, settings, labels, requested, active, skipped, concurrent_bytes
                )
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
    return tables


# ---------------------------------------------------------------------------- concurrent

CLIENTS = 8
DISK_FACTOR = 4.5  # free disk the concurrent step needs, as a multiple of all clients' data


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _run_concurrent(
    ours: Ours | None,
    settings: Settings,
    labels: list[str],
    requested: Sequence[str],
    active: Sequence[Tool],
    skipped: dict[str, str],
    bytes_each: int,
) -> Table:
    step = f"{CLIENTS} pushes of {fmt_bytes(bytes_each)} at once"
    table = Table(
        "W4 · concurrent",
        f"{CLIENTS} clients push {fmt_bytes(bytes_each)} each (distinct random data) to one server at once",
        [step],
        labels,
        [MBPS, WIRE_UP, S3_UP, STORED, SERVER_IDLE, SERVER_RSS],
        [
            f"Each client is its own repository holding one file of {fmt_bytes(bytes_each)} of "
            "seeded random bytes, committed beforehand (untimed); then all "
            f"{CLIENTS} `oxen push` start together against one fresh server. median wall = from the "
            "first start to the last exit; peak RSS = the largest client; MB/s = all the data "
            "(10^6 bytes) / that wall time. server RSS before = its RSS just before the pushes; "
            "server peak RSS = its VmHWM during them. One round (not repeated per --runs).",
            f"{DVC_S3}: not measured (dvc has no server; its clients write to S3 directly).",
        ],
        baseline=OURS_S3,
    )
    _skip_rows(table, requested, active, skipped)
    if DVC_S3 in labels:
        table.skip_tool(DVC_S3, "n/a: no server")
    if ours is None:
        return table
    total = CLIENTS * bytes_each
    empty_trash()  # untimed, and the step creates few files: see bench/trash.py
    need = DISK_FACTOR * total  # the data, each client's .oxen, the disk server, moto's spill
    free = shutil.disk_usage(RUNS.parent if RUNS.parent.exists() else Path.cwd()).free
    if free < need:
        for label in (OURS_DISK, OURS_S3):
            if label in labels:
                table.skip_tool(
                    label,
                    f"skipped: needs about {fmt_bytes(need)} of free disk, {fmt_bytes(free)} free",
                )
        return table
    log(f"[W4] concurrent: generating {CLIENTS} × {fmt_bytes(bytes_each)} (cached) ...")
    sets = datagen.w4_client_files(CLIENTS, bytes_each, settings.seed)
    exe = str(ours.exe)
    root = RUNS / "w4" / "concurrent"
    try:
        with Services(root, ours, None, "concurrent") as svc:
            repos = [root / f"client_{i:02d}" for i in range(CLIENTS)]
            try:
                for i, (fs, repo) in enumerate(zip(sets, repos, strict=True)):
                    # hard links, not copies: nothing writes to the data, and at full size
                    # this saves 8 GiB of disk
                    shutil.copytree(fs.path, repo, copy_function=_link_or_copy)
                    _untimed(
                        [[exe, "init"], [exe, "add", "."], [exe, "commit", "-m", f"client {i}"]],
                        repo, ours, f"concurrent commit {i}", settings.timeout,
                    )  # fmt: skip
                os.sync()
            except StepFailed as exc:
                for t in svc.ours_targets:
                    table.fail(t.label, step, f"failed: {exc}")
                return table
            for t in svc.ours_targets:
                _attempt(
                    table,
                    t.label,
                    step,
                    lambda t=t: _push_together(table, step, t, repos, bytes_each, settings.timeout),
                )
    except ServiceError as exc:
        for label in (OURS_DISK, OURS_S3):
            if label in labels and not table.failed(label):
                table.fail(label, step, f"failed: {exc}")
    return table


def _push_together(
    table: Table, step: str, t: Target, repos: list[Path], bytes_each: int, timeout: float
) -> None:
    exe = str(t.tool.exe)  # type: ignore[attr-defined]
    names = [f"c{i}" for i in range(len(repos))]
    for repo, name in zip(repos, names, strict=True):
        _ours_remote_setup(t, repo, name, timeout)
    assert t.server is not None
    up0, _ = t.wire.settle()
    s3_0 = t.s3wire.settle() if t.s3wire is not None else None
    idle = t.server.rss_kib()
    t.server.reset_peak_rss()

    def one(i: int) -> CmdResult:
        argv = [exe, "push", t.remote]
        return run_cmd(
            argv, repos[i], t.env, LOGS / "w4" / _slug(t.label) / f"concurrent-{i}", timeout
        )

    start = time.perf_counter()
    with ThreadPoolExecutor(len(repos)) as pool:
        results = list(pool.map(one, range(len(repos))))
    wall = time.perf_counter() - start
    peak = t.server.rss_kib()
    up1, _ = t.wire.settle()
    for i, res in enumerate(results):
        if res.returncode != 0:
            raise StepFailed(f"client {i}: {_cmd_name(list(res.argv))}: {res.first_error_line()}")
    total = bytes_each * len(repos)
    o = table.outcome(step, t.label)
    o.samples.append(Sample(wall, max(r.maxrss_kib for r in results)))
    o.add_extra("mbps", total / wall / 1e6)
    o.add_extra("wire_up", up1 - up0)
    if t.s3wire is not None and s3_0 is not None:
        o.add_extra("s3_up", t.s3wire.settle()[0] - s3_0[0])
    if idle is not None:
        o.add_extra("server_idle", idle[0])
    if peak is not None:
        o.add_extra("server_rss", peak[1])
    stored = sum(t.stored(name) for name in names)
    o.add_extra("stored", stored)
    secs = sorted(r.seconds for r in results)
    o.note = (
        f"per client: median {fmt_seconds(statistics.median(secs))}, "
        f"min {fmt_seconds(secs[0])}, max {fmt_seconds(secs[-1])}"
    )
    if stored < MIN_STORED_SHARE * total:
        raise StepFailed(
            f"exited 0 but the server holds only {fmt_bytes(stored)} for {fmt_bytes(total)}"
        )
