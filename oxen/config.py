"""Repository and user configuration: TOML files read into validated dataclasses.

The chunker's parameters live in the repository config so that a later change of
defaults cannot silently break deduplication against data already stored.

Why not pydantic here: importing it (and building the models) costs ~0.09 s, paid by every
`oxen` command that opens a repository; these few flat tables need only the checks below.
The server keeps pydantic for what crosses its boundary.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import tomli_w

from oxen.errors import ConfigError
from oxen.formats.version import FORMAT_VERSION, check_format

__all__ = ["CONFIG_NAME", "FORMAT_VERSION"]  # and the loaders below

CONFIG_NAME = "config.toml"  # in the .oxen folder


def _at_least(n: int) -> dict[str, int]:
    return {"ge": n}


@dataclass(frozen=True)
class ChunkingConfig:
    algorithm: Literal["fastcdc-2020"] = "fastcdc-2020"
    min_size: int = field(default=8 * 1024, metadata=_at_least(64))
    avg_size: int = field(default=64 * 1024, metadata=_at_least(256))
    max_size: int = field(default=128 * 1024, metadata=_at_least(1024))
    normalization: Literal[0, 1, 2, 3] = 1

    def __post_init__(self) -> None:
        if not self.min_size < self.avg_size < self.max_size:
            raise ValueError("chunking sizes must satisfy min_size < avg_size < max_size")


@dataclass
class StorageConfig:
    # A store URL; a relative path is taken relative to the .oxen directory.
    url: str = "objects"
    fsync: bool = True
    pack_size: int = field(default=64 * 1024 * 1024, metadata=_at_least(1024 * 1024))


@dataclass
class CoreConfig:
    format: int = FORMAT_VERSION
    vnode_size: int = field(default=10_000, metadata=_at_least(16))


@dataclass
class RepoConfig:
    core: CoreConfig = field(default_factory=CoreConfig)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    remotes: dict[str, str] = field(default_factory=dict)  # name -> URL


@dataclass
class UserConfig:
    name: str | None = None
    email: str | None = None


C = TypeVar("C")


def _check(value: Any, kind: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin is Literal:  # of the same type too: true is not 1, nor 1.0
        if not any(type(value) is type(a) and value == a for a in typing.get_args(kind)):
            raise ValueError(f"{where} must be one of {typing.get_args(kind)}, not {value!r}")
        return value
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in typing.get_args(kind):
            return None
        return _check(value, next(a for a in typing.get_args(kind) if a is not type(None)), where)
    if origin is dict:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ValueError(f"{where} must be a table of strings")
        return dict(value)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be a table")
        return from_dict(kind, value, where + ".")  # type: ignore[arg-type]
    if kind is bool and not isinstance(value, bool):
        raise ValueError(f"{where} must be true or false")
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValueError(f"{where} must be an integer")
    if kind is str and not isinstance(value, str):
        raise ValueError(f"{where} must be a string")
    return value


def from_dict(cls: type[C], data: dict[str, Any], where: str = "") -> C:
    """Build a config dataclass from parsed TOML, rejecting unknown keys and bad values."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - fields.keys()
    if unknown:
        raise ValueError(f"unknown setting {where}{sorted(unknown)[0]}")
    values = {}
    for name, value in data.items():
        checked = _check(value, hints[name], f"{where}{name}")
        if "ge" in fields[name].metadata and checked < fields[name].metadata["ge"]:
            raise ValueError(f"{where}{name} must be at least {fields[name].metadata['ge']}")
        values[name] = checked
    return cls(**values)


def to_dict(config: Any) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(config).items() if v is not None}


def load_repo_config(oxen_dir: Path) -> RepoConfig:
    """The repository's config; FormatError, in one line, for a format this cannot read."""
    config = load_toml_model(oxen_dir / CONFIG_NAME, RepoConfig)
    check_format(config.core.format, oxen_dir.parent)
    return config


def read_toml(path: Path) -> dict[str, Any] | None:
    """A TOML file's tables, None when there is no file; ConfigError when it is not TOML,
    or nests arrays or tables deeper than the parser can recurse."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"invalid config file {path}: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(f"invalid config file {path}: nested too deeply") from None


def load_toml_model(path: Path, model: type[C]) -> C:
    data = read_toml(path)
    if data is None:
        return model()
    try:
        return from_dict(model, data)
    except ValueError as e:
        raise ConfigError(f"invalid config file {path}: {str(e).splitlines()[0]}") from None


def save_toml_model(path: Path, model: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(tomli_w.dumps(to_dict(model)), encoding="utf-8")
    os.replace(tmp, path)


def user_config_dir() -> Path:
    """``$OXEN_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/oxen``, else ``~/.config/oxen``."""
    if env := os.environ.get("OXEN_CONFIG_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "oxen"


def user_config_path() -> Path:
    return user_config_dir() / "user_config.toml"


def load_user_config() -> UserConfig:
    data_path = user_config_path()
    raw = read_toml(data_path)
    if raw is None:
        return UserConfig()
    try:
        # Oxen's own client keeps top-level name/email in this same file; ours a [user]
        # table. Either is read ([user] first), so whichever client wrote last, both work.
        table = raw.get("user", {})
        fields = {k: raw[k] for k in ("name", "email") if isinstance(raw.get(k), str)}
        fields.update({k: v for k, v in table.items() if k in ("name", "email")})
        return from_dict(UserConfig, fields, "user.")
    except (ValueError, AttributeError) as e:
        raise ConfigError(f"invalid config file {data_path}: {e}") from None


def _update_user_toml(change: Callable[[dict[str, Any]], None]) -> Path:
    """Read-modify-replace the user config file (private: it holds tokens)."""
    data_path = user_config_path()
    raw = read_toml(data_path) or {}
    change(raw)
    try:
        text = tomli_w.dumps(raw)
    except RecursionError:  # the writer recurses deeper than the parser
        raise ConfigError(f"invalid config file {data_path}: nested too deeply") from None
    write_private(data_path, text)
    return data_path


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by its owner only from its first byte (the
    file is created 0600 under a temporary name, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_user_config(user: UserConfig) -> Path:
    """Write the identity in both forms (top-level keys for Oxen's client, a [user] table
    for ours), keeping every other key of the file."""

    def change(raw: dict[str, Any]) -> None:
        values = to_dict(user)
        raw.update(values)
        raw["user"] = {**(raw.get("user") if isinstance(raw.get("user"), dict) else {}), **values}

    return _update_user_toml(change)


def load_auth_tokens() -> dict[str, str]:
    """host[:port] -> token, from the ``[auth.hosts]`` table of the user config."""
    raw = read_toml(user_config_path()) or {}
    auth = raw.get("auth", {})
    hosts = auth.get("hosts", {}) if isinstance(auth, dict) else None
    return {str(k): str(v) for k, v in hosts.items()} if isinstance(hosts, dict) else {}


def save_auth_token(host: str, token: str) -> Path:
    def change(raw: dict[str, Any]) -> None:
        hosts = raw.setdefault("auth", {})
        if isinstance(hosts, dict):
            hosts = hosts.setdefault("hosts", {})
        if not isinstance(hosts, dict):
            raise ConfigError(
                f"invalid config file {user_config_path()}: auth and auth.hosts must be tables"
            )
        hosts[host] = token

    return _update_user_toml(change)
