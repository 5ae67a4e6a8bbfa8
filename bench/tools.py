"""The tools under test: how each is installed, configured and driven.

Every tool runs as whole processes with cwd = the repository directory, its own HOME
(bench/.work/home/<tool>) and, for the Python peers, its own venv in bench/.peers, so
nothing of theirs can reach the project's venv (oxenai imports as `oxen`!).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.paths import HOMES, INSTALL_LOG, PEERS, ROOT

Argv = list[str]
ALL_TOOLS = ("ours", "oxenai", "git-lfs", "dvc")
IDENTITY = ("bench", "bench@example.com")

# oxenai 0.65 installs no `oxen` command, only Python bindings (oxen.Repo): these are
# the scripts its venv's python runs, one process per user-level command.
OXENAI_SETUP = "from oxen import user; user.config_user('bench', 'bench@example.com')"
OXENAI_INIT = "import oxen; oxen.Repo('.').init()"
OXENAI_ADD_COMMIT = "import sys, oxen; r = oxen.Repo('.'); r.add('.'); r.commit(sys.argv[1])"
OXENAI_STATUS = "import oxen; print(oxen.Repo('.').status())"
OXENAI_IMPORT = "import oxen"


class InstallError(Exception):
    pass


def _log_run(argv: Sequence[str], env: dict[str, str] | None = None) -> None:
    """Run an install step with its output appended to the install log (not the table)."""
    INSTALL_LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(INSTALL_LOG, "a") as logf:
        logf.write(f"\n$ {' '.join(argv)}\n")
        logf.flush()
        proc = subprocess.run(
            list(argv), stdout=logf, stderr=subprocess.STDOUT, env=env, check=False
        )
    if proc.returncode != 0:
        raise InstallError(
            f"`{' '.join(argv[:4])}` exited {proc.returncode} (see bench/.peers/install.log)"
        )


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OXEN_", "GIT_", "DVC_"))}
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
        env.pop(key, None)
    return env


@dataclass
class Tool:
    name: str
    marker: str  # created by init
    store: str  # the directory whose growth is the tool's storage cost
    how: str = ""  # one line for the docs/tables: how the tool is driven

    # -- environment -------------------------------------------------------
    @property
    def home(self) -> Path:
        return HOMES / self.name

    def env(self) -> dict[str, str]:
        env = _clean_env()
        env["HOME"] = str(self.home)
        env["XDG_CONFIG_HOME"] = str(self.home / ".config")
        env["XDG_CACHE_HOME"] = str(self.home / ".cache")
        return env

    def store_dir(self, repo: Path) -> Path:
        return repo / self.store

    # -- lifecycle -----------------------------------------------------------
    def ensure_installed(self, allow_install: bool, force: bool) -> None:
        """Raise InstallError with a short reason if the tool cannot be used."""

    def setup_cmds(self) -> list[Argv]:
        """One-time configuration (user identity), run in a fresh HOME."""
        return []

    def init_cmds(self, lfs_patterns: Sequence[str]) -> list[Argv]:
        raise NotImplementedError

    def add_commit_cmds(self, toplevel: Sequence[str], message: str) -> list[Argv]:
        raise NotImplementedError

    def status_cmds(self) -> list[Argv]:
        raise NotImplementedError

    def version(self) -> str:
        return "?"

    def _first_line(self, argv: Argv) -> str:
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, env=self.env(), timeout=120, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        lines = (proc.stdout or proc.stderr).strip().splitlines()
        return lines[0].strip() if proc.returncode == 0 and lines else "?"


class VenvPeer(Tool):
    """A Python peer installed from PyPI into its own venv under bench/.peers."""

    packages: tuple[str, ...] = ()

    @property
    def venv(self) -> Path:
        return PEERS / self.name

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def ensure_installed(self, allow_install: bool, force: bool) -> None:
        marker = self.venv / ".bench-installed"
        spec = " ".join(self.packages)
        if not force and marker.exists() and marker.read_text().strip() == spec:
            return
        if not allow_install:
            raise InstallError(
                f"not installed (run `python -m bench --install-peers --tools {self.name}`)"
            )
        if not (self.bin / "python").exists():
            _log_run([sys.executable, "-m", "venv", str(self.venv)])
        _log_run(
            [
                str(self.bin / "python"),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                *self.packages,
            ]
        )
        marker.write_text(spec + "\n")


class Ours(Tool):
    def __init__(self) -> None:
        super().__init__(
            "ours",
            ".oxen",
            ".oxen",
            "`oxen init`, `oxen add .` + `oxen commit -m MSG`, `oxen status` (the project's CLI)",
        )

    @property
    def exe(self) -> Path:
        override = os.environ.get("BENCH_OXEN")  # e.g. another build of our CLI
        if override:
            return Path(override)
        for candidate in (ROOT / ".venv" / "bin" / "oxen", Path(sys.executable).parent / "oxen"):
            if candidate.exists():
                return candidate
        return ROOT / ".venv" / "bin" / "oxen"

    def env(self) -> dict[str, str]:
        env = super().env()
        env["OXEN_CONFIG_DIR"] = str(self.home / "oxen-config")
        return env

    def ensure_installed(self, allow_install: bool, force: bool) -> None:
        if not self.exe.exists():
            raise InstallError("no .venv/bin/oxen (run `make .venv/.installed`)")
        # An editable install has no bytecode until a run writes it (and none is written
        # where PYTHONDONTWRITEBYTECODE is set); an installed wheel has it, as the peers do.
        import compileall

        for package in ("oxen", "storage", "cli", "server"):
            compileall.compile_dir(ROOT / package, quiet=1)

    def setup_cmds(self) -> list[Argv]:
        return [[str(self.exe), "config", "--name", IDENTITY[0], "--email", IDENTITY[1]]]

    def init_cmds(self, lfs_patterns: Sequence[str]) -> list[Argv]:
        return [[str(self.exe), "init"]]

    def add_commit_cmds(self, toplevel: Sequence[str], message: str) -> list[Argv]:
        return [[str(self.exe), "add", "."], [str(self.exe), "commit", "-m", message]]

    def status_cmds(self) -> list[Argv]:
        return [[str(self.exe), "status"]]

    def version(self) -> str:
        line = self._first_line([str(self.exe), "--version"])
        if line != "?":
            return line
        py = self.exe.parent / "python"
        return "oxen-vcs " + self._first_line(
            [str(py), "-c", "import importlib.metadata as m; print(m.version('oxen-vcs'))"]
        )


class OxenAI(VenvPeer):
    packages = ("oxenai",)

    def __init__(self) -> None:
        super().__init__(
            "oxenai",
            ".oxen",
            ".oxen",
            "Python bindings from `pip install oxenai` (no CLI script): `python -c` scripts "
            "calling `oxen.Repo('.').init()`, `.add('.')` + `.commit(msg)` (one process), `.status()`",
        )

    @property
    def py(self) -> str:
        return str(self.bin / "python")

    def env(self) -> dict[str, str]:
        env = super().env()
        env["OXEN_CONFIG_DIR"] = str(self.home / "oxen-config")
        return env

    def setup_cmds(self) -> list[Argv]:
        return [[self.py, "-c", OXENAI_SETUP]]

    def init_cmds(self, lfs_patterns: Sequence[str]) -> list[Argv]:
        return [[self.py, "-c", OXENAI_INIT]]

    def add_commit_cmds(self, toplevel: Sequence[str], message: str) -> list[Argv]:
        return [[self.py, "-c", OXENAI_ADD_COMMIT, message]]

    def status_cmds(self) -> list[Argv]:
        return [[self.py, "-c", OXENAI_STATUS]]

    def import_cmd(self) -> Argv:
        return [self.py, "-c", OXENAI_IMPORT]

    def version(self) -> str:
        return "oxenai " + self._first_line(
            [self.py, "-c", "import importlib.metadata as m; print(m.version('oxenai'))"]
        )


class GitLFS(Tool):
    def __init__(self) -> None:
        super().__init__(
            "git-lfs",
            ".git",
            ".git",
            "`git init`, `git lfs track PATTERN` + `git add .gitattributes`, `git add .` + "
            "`git commit -q -m MSG`, `git status`",
        )

    def env(self) -> dict[str, str]:
        env = super().env()
        env["GIT_CONFIG_NOSYSTEM"] = "1"
        return env

    def ensure_installed(self, allow_install: bool, force: bool) -> None:
        if shutil.which("git") is None:
            raise InstallError("git not found")
        ok = (
            subprocess.run(["git", "lfs", "version"], capture_output=True, check=False).returncode
            == 0
        )
        if ok and not force:
            return
        if not allow_install:
            raise InstallError("git-lfs not installed (apt-get install git-lfs)")
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            raise InstallError("git-lfs not installed and cannot apt-get install it here")
        apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            _log_run(["apt-get", "install", "-y", "-q", "git-lfs"], apt_env)
        except InstallError:
            _log_run(["apt-get", "update", "-q"], apt_env)
            _log_run(["apt-get", "install", "-y", "-q", "git-lfs"], apt_env)

    def setup_cmds(self) -> list[Argv]:
        cfg = ["git", "config", "--global"]
        return [
            [*cfg, "user.name", IDENTITY[0]],
            [*cfg, "user.email", IDENTITY[1]],
            [*cfg, "init.defaultBranch", "main"],
            # No background housekeeping: a detached `git gc --auto` after a large commit
            # would run on during the next measurements (of any tool).
            [*cfg, "gc.auto", "0"],
            [*cfg, "maintenance.auto", "false"],
            ["git", "lfs", "install", "--skip-repo"],
        ]

    def init_cmds(self, lfs_patterns: Sequence[str]) -> list[Argv]:
        return [
            ["git", "init", "-q"],
            ["git", "lfs", "track", *lfs_patterns],
            ["git", "add", ".gitattributes"],
        ]

    def add_commit_cmds(self, toplevel: Sequence[str], message: str) -> list[Argv]:
        return [["git", "add", "."], ["git", "commit", "-q", "-m", message]]

    def status_cmds(self) -> list[Argv]:
        return [["git", "status"]]

    def version(self) -> str:
        git = self._first_line(["git", "--version"]).removeprefix("git version ")
        lfs = self._first_line(["git", "lfs", "version"]).split(" ")[0]
        return f"git {git}, {lfs}"


class DVC(VenvPeer):
    packages = ("dvc", "dvc-s3")

    def __init__(self) -> None:
        super().__init__(
            "dvc",
            ".dvc",
            ".dvc/cache",
            "`dvc init --no-scm`, `dvc add <top-level dirs or file>` (= add+commit without git), "
            "`dvc status`",
        )

    def env(self) -> dict[str, str]:
        env = super().env()
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["DVC_NO_ANALYTICS"] = "1"
        return env

    def init_cmds(self, lfs_patterns: Sequence[str]) -> list[Argv]:
        dvc = str(self.bin / "dvc")
        return [[dvc, "init", "--no-scm", "-q"], [dvc, "config", "core.analytics", "false"]]

    def add_commit_cmds(self, toplevel: Sequence[str], message: str) -> list[Argv]:
        return [[str(self.bin / "dvc"), "add", "-q", *toplevel]]

    def status_cmds(self) -> list[Argv]:
        return [[str(self.bin / "dvc"), "status"]]

    def version(self) -> str:
        return "dvc " + self._first_line([str(self.bin / "dvc"), "--version"])


def make_tools(names: Sequence[str]) -> list[Tool]:
    factories = {"ours": Ours, "oxenai": OxenAI, "git-lfs": GitLFS, "dvc": DVC}
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise SystemExit(
            f"unknown tool(s): {', '.join(unknown)} (choose from {', '.join(ALL_TOOLS)})"
        )
    return [factories[n]() for n in names]
