"""The user config file is shared with Oxen's own client: both forms read, nothing dropped."""

from __future__ import annotations

import tomllib

from oxen.config import (
    UserConfig,
    load_auth_tokens,
    load_user_config,
    save_auth_token,
    save_user_config,
    user_config_path,
)


def test_the_form_oxens_client_writes_is_read() -> None:
    user_config_path().write_text('name = "Ada"\nemail = "ada@example.com"\n')
    assert load_user_config() == UserConfig("Ada", "ada@example.com")


def test_our_table_wins_where_both_are_present() -> None:
    user_config_path().write_text('name = "Old"\nemail = "old@example.com"\n[user]\nname = "New"\n')
    assert load_user_config() == UserConfig("New", "old@example.com")


def test_saving_writes_both_forms_and_keeps_other_keys() -> None:
    user_config_path().write_text(
        'name = "Ada"\nemail = "ada@example.com"\ndefault_host = "hub.oxen.ai"\n'
    )
    save_auth_token("127.0.0.1:3000", "oxn_t")
    save_user_config(UserConfig("Grace", "grace@example.com"))
    raw = tomllib.loads(user_config_path().read_text())
    assert raw["name"] == raw["user"]["name"] == "Grace"
    assert raw["email"] == raw["user"]["email"] == "grace@example.com"
    assert raw["default_host"] == "hub.oxen.ai"  # a key of the other client, kept
    assert load_auth_tokens() == {"127.0.0.1:3000": "oxn_t"}
