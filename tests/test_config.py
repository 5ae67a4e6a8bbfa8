"""Config files that are not what they should be give a ConfigError, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from oxen.config import (
    RepoConfig,
    load_auth_tokens,
    load_toml_model,
    load_user_config,
    save_auth_token,
    user_config_path,
)
from oxen.errors import ConfigError


def test_arrays_nested_too_deeply_are_a_config_error(tmp_path: Path) -> None:
    # was a RecursionError out of the TOML parser
    path = tmp_path / "config.toml"
    path.write_text("a = " + "[" * 2000 + "]" * 2000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_toml_model(path, RepoConfig)
    user_config_path().write_text("x = " + "{a = " * 2000 + "1" + "}" * 2000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_user_config()
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_auth_tokens()
    # read, but too deep to be written back: was a RecursionError out of tomli_w
    user_config_path().write_text("a = " + "[" * 300 + "]" * 300)
    assert load_auth_tokens() == {}
    with pytest.raises(ConfigError, match="nested too deeply"):
        save_auth_token("localhost:3000", "oxn_x")


@pytest.mark.parametrize("value", ["true", "1.0"])
def test_a_choice_of_numbers_takes_integers_only(tmp_path: Path, value: str) -> None:
    # were accepted (true == 1 == 1.0), and the chunker then failed on the float
    path = tmp_path / "config.toml"
    path.write_text(f"[chunking]\nnormalization = {value}\n")
    with pytest.raises(ConfigError, match="normalization must be one of"):
        load_toml_model(path, RepoConfig)
    path.write_text("[chunking]\nnormalization = 2\n")
    assert load_toml_model(path, RepoConfig).chunking.normalization == 2


@pytest.mark.parametrize("text", ["auth = 5", "[auth]\nhosts = 'x'"])
def test_an_auth_entry_that_is_not_a_table(text: str) -> None:
    # `auth = 5` was an AttributeError out of every remote command's token lookup
    user_config_path().write_text(text)
    assert load_auth_tokens() == {}
    with pytest.raises(ConfigError, match="must be tables"):
        save_auth_token("localhost:3000", "oxn_x")
    assert user_config_path().read_text() == text  # left as it was


def test_the_format_is_found_without_parsing_the_config() -> None:
    from oxen.formats.version import FORMAT_VERSION, format_in

    assert format_in("[core]\nformat = 1\nvnode_size = 10000\n\n[chunking]\n") == 1
    assert format_in("[core]\nvnode_size = 9\n  format=3  \n") == 3
    assert format_in("[storage]\nformat = 1\n[core]\nvnode_size = 9\n") == FORMAT_VERSION
    assert format_in("") == FORMAT_VERSION
