"""Repository and user configuration: TOML files validated by pydantic models.

The chunker's parameters live in the repository config so that a later change of
defaults cannot silently break deduplication against data already stored.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal, TypeVar

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oxen.errors import ConfigError

FORMAT_VERSION = 1


class ChunkingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: Literal["fastcdc-2020"] = "fastcdc-2020"
    min_size: int = Field(8 * 1024, ge=64)
    avg_size: int = Field(64 * 1024, ge=256)
    max_size: int = Field(128 * 1024, ge=1024)
    normalization: Literal[0, 1, 2, 3] = 1


class StorageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A store URL; a relative path is taken relative to the .oxen directory.
    url: str = "objects"
    fsync: bool = True
    pack_size: int = Field(64 * 1024 * 1024, ge=1024 * 1024)


class CoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int = FORMAT_VERSION
    vnode_size: int = Field(10_000, ge=16)


class RepoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    core: CoreConfig = CoreConfig()
    chunking: ChunkingConfig = ChunkingConfig()
    storage: StorageConfig = StorageConfig()
    remotes: dict[str, str] = Field(default_factory=dict)  # name -> URL


class UserConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    email: str | None = None


def load_auth_tokens() -> dict[str, str]:
    """host[:port] -> token, from the ``[auth.hosts]`` table of the user config."""
    try:
        raw = tomllib.loads(user_config_path().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"invalid config file {user_config_path()}: {e}") from None
    hosts = raw.get("auth", {}).get("hosts", {})
    return {str(k): str(v) for k, v in hosts.items()} if isinstance(hosts, dict) else {}


def save_auth_token(host: str, token: str) -> Path:
    data_path = user_config_path()
    try:
        raw = tomllib.loads(data_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raw = {}
    raw.setdefault("auth", {}).setdefault("hosts", {})[host] = token
    data_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = data_path.with_name(data_path.name + ".tmp")
    tmp.write_text(tomli_w.dumps(raw), encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, data_path)
    return data_path


M = TypeVar("M", bound=BaseModel)


def load_toml_model(path: Path, model: type[M]) -> M:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return model.model_validate(data)
    except FileNotFoundError:
        return model()
    except (tomllib.TOMLDecodeError, ValidationError, UnicodeDecodeError) as e:
        first = str(e).splitlines()[0]
        raise ConfigError(f"invalid config file {path}: {first}") from None


def save_toml_model(path: Path, model: BaseModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(tomli_w.dumps(model.model_dump(exclude_none=True)), encoding="utf-8")
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
    try:
        raw = tomllib.loads(data_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return UserConfig()
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"invalid config file {data_path}: {e}") from None
    try:
        return UserConfig.model_validate(raw.get("user", {}))
    except ValidationError as e:
        raise ConfigError(f"invalid config file {data_path}: {str(e).splitlines()[0]}") from None


def save_user_config(user: UserConfig) -> Path:
    data_path = user_config_path()
    try:
        raw = tomllib.loads(data_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raw = {}
    raw["user"] = user.model_dump(exclude_none=True)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = data_path.with_name(data_path.name + ".tmp")
    tmp.write_text(tomli_w.dumps(raw), encoding="utf-8")
    os.replace(tmp, data_path)
    return data_path
