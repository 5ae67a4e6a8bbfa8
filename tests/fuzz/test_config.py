"""Config files, generated as TOML and near-TOML text: each load gives a config whose
every field has its declared type and bounds, or a ConfigError (a FormatError for a
repository of another format); from_dict on parsed tables raises only ValueError."""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import example, given
from hypothesis import strategies as st

from oxen.config import (
    CONFIG_NAME,
    ChunkingConfig,
    CoreConfig,
    RepoConfig,
    StorageConfig,
    UserConfig,
    from_dict,
    load_auth_tokens,
    load_repo_config,
    load_toml_model,
    load_user_config,
    save_auth_token,
    save_toml_model,
    user_config_path,
)
from oxen.errors import ConfigError, FormatError
from tests.fuzz.conftest import fuzz_settings, tried
from tests.fuzz.strategies import byte_mutations, pick

# -- TOML values and tables shaped like the config files ------------------------------------

TOML_SCALARS = st.one_of(
    st.sampled_from([0, 1, 2, 3, -1, 16, 64, 255, 256, 1023, 1024, 8192, 65536, 131072]),
    st.sampled_from([2**20, 2**26, 2**31, 2**63 - 1, -(2**63)]),
    st.sampled_from([True, False, 1.0, 0.5, float("inf"), float("nan")]),
    st.sampled_from(["", "fastcdc-2020", "objects", "s3://b/p", "http://h/ns/r", "\u00e9", "a\nb"]),
    st.sampled_from([tomllib.loads("d = 1979-05-27T07:32:00Z")["d"]]),
)
TOML_VALUES = st.one_of(
    TOML_SCALARS,
    st.lists(TOML_SCALARS, max_size=3),
    st.dictionaries(st.sampled_from(["a", "url", "min_size"]), TOML_SCALARS, max_size=2),
)
KEYS = {
    "core": ["format", "vnode_size"],
    "chunking": ["algorithm", "min_size", "avg_size", "max_size", "normalization"],
    "storage": ["url", "fsync", "pack_size"],
    "remotes": ["origin", "backup", "a b"],
    "user": ["name", "email"],
    "auth": ["hosts"],
}
GOOD = {
    "format": 2,
    "vnode_size": 10_000,
    "algorithm": "fastcdc-2020",
    "min_size": 8192,
    "avg_size": 65536,
    "max_size": 131072,
    "normalization": 1,
    "url": "objects",
    "fsync": True,
    "pack_size": 2**26,
    "origin": "http://h/ns/r",
    "backup": "http://h/ns/b",
    "a b": "x",
    "name": "Ada",
    "email": "ada@example.com",
    "hosts": {"localhost:3000": "oxn_token"},
}


@st.composite
def config_tables(draw: st.DrawFn) -> dict[str, Any]:
    """Tables of the repository and user config, most values right, some not."""
    out: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from([*KEYS, "unknown"]), max_size=4, unique=True)):
        if section == "unknown" or draw(st.integers(0, 9)) == 0:
            out[section] = draw(TOML_VALUES)
            continue
        table = {}
        for key in draw(st.lists(st.sampled_from([*KEYS[section], "bogus"]), unique=True)):
            right = key in GOOD and draw(st.integers(0, 2)) > 0
            table[key] = GOOD[key] if right else draw(TOML_VALUES)
        out[section] = table
    return out


def toml_text(tables: dict[str, Any]) -> bytes:
    return tomli_w.dumps(tables).encode()


RAW_LINES = [
    b"[core]",
    b"[chunking]",
    b"[storage]",
    b"[remotes]",
    b"[user]",
    b"[auth.hosts]",
    b"[[core]]",
    b"format = 2",
    b"format = 1",
    b"format = 3",
    b"format = '2'",
    b"min_size = 1e3",
    b"normalization = true",
    b"normalization = 1.0",
    b'url = "\\u0000"',
    b"auth = 5",
    b"user = 'x'",
    b"hosts = []",
    b"x = ",
    b"= 1",
    b"a.b.c = 1",
    b"\xff\xfe",
    b"\x00",
    b"a = [" * 3,
]
DEEP = st.integers(1, 3000).map(lambda n: b"a = " + b"[" * n + b"]" * n)
DEEP_TABLES = st.integers(1, 3000).map(lambda n: b"a = " + b"{b = " * n + b"1" + b"}" * n)


@st.composite
def config_files(draw: st.DrawFn) -> bytes:
    kind = pick(draw, ["tables", "tables", "lines", "deep", "deep tables"])
    if kind == "tables":
        text = toml_text(draw(config_tables()))
    elif kind == "lines":
        text = b"\n".join(draw(st.lists(st.sampled_from(RAW_LINES), max_size=6)))
    elif kind == "deep":
        text = draw(DEEP)
    else:
        text = draw(DEEP_TABLES)
    return draw(byte_mutations(text))


# -- what a loaded config must be ------------------------------------------------------------


def check_fields(config: Any) -> None:
    """Every field of a config dataclass has its declared type and bound."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, kind = getattr(config, f.name), hints[f.name]
        if dataclasses.is_dataclass(kind):
            check_fields(value)
        elif typing.get_origin(kind) is typing.Literal:
            assert any(type(value) is type(a) and value == a for a in typing.get_args(kind))
        elif typing.get_origin(kind) is dict:
            assert all(type(k) is str and type(v) is str for k, v in value.items())
        elif kind in (int, bool, str):
            assert type(value) is kind, (f.name, value)
        else:  # str | None
            assert value is None or type(value) is str
        if "ge" in f.metadata:
            assert value >= f.metadata["ge"]
    if isinstance(config, ChunkingConfig):
        assert config.min_size < config.avg_size < config.max_size


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path


@fuzz_settings(400)
@given(config_files())
@example(b"[chunking]\nnormalization = true")
@example(b"[chunking]\nnormalization = 1.0")
@example(b"a = " + b"[" * 2000 + b"]" * 2000)
def test_repository_config(config_dir: Path, text: bytes) -> None:
    tried("repository config")
    oxen_dir = config_dir / ".oxen"
    oxen_dir.mkdir(exist_ok=True)
    (oxen_dir / CONFIG_NAME).write_bytes(text)
    try:
        config = load_repo_config(oxen_dir)
    except FormatError:
        config = load_toml_model(oxen_dir / CONFIG_NAME, RepoConfig)  # readable, other format
    except ConfigError:
        return
    check_fields(config)
    save_toml_model(config_dir / "again.toml", config)  # what `oxen` writes back
    assert load_toml_model(config_dir / "again.toml", RepoConfig) == config


@fuzz_settings(150)
@given(config_files())
@example(b"auth = 5")
@example(b"[auth]\nhosts = 'x'")
def test_user_config(text: bytes) -> None:
    tried("user config")
    user_config_path().write_bytes(text)
    try:
        user = load_user_config()
    except ConfigError:
        pass
    else:
        check_fields(user)
    try:
        tokens = load_auth_tokens()
    except ConfigError:
        return
    assert all(type(k) is str and type(v) is str for k, v in tokens.items())
    try:
        save_auth_token("localhost:3000", "oxn_fuzz")  # `oxen config --auth`
    except ConfigError:
        assert user_config_path().read_bytes() == text  # left as it was
        return
    assert load_auth_tokens() == {**tokens, "localhost:3000": "oxn_fuzz"}


@fuzz_settings(200)
@given(config_tables(), st.sampled_from([RepoConfig, CoreConfig, ChunkingConfig, StorageConfig]))
def test_from_dict(tables: dict[str, Any], model: type) -> None:
    tried("config from_dict")
    data = tables if model is RepoConfig else tables.get(model.__name__[:-6].lower(), tables)
    if not isinstance(data, dict):
        return
    try:
        config = from_dict(model, data)
    except ValueError:
        return
    check_fields(config)
    assert from_dict(model, tomllib.loads(tomli_w.dumps(dataclasses.asdict(config)))) == config


@fuzz_settings(100)
@given(st.sampled_from([UserConfig]), config_tables())
def test_user_from_dict(model: type, tables: dict[str, Any]) -> None:
    tried("config from_dict")
    data = tables.get("user", {})
    if not isinstance(data, dict):
        return
    try:
        config = from_dict(model, data)
    except ValueError:
        return
    check_fields(config)
