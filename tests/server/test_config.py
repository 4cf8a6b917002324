"""ServerConfig precedence and token sources."""
from __future__ import annotations

import pytest

from ml_dash.server.config import ConfigError, ServerConfig, is_loopback, parse_token_entry


def test_argument_beats_environment_beats_default(monkeypatch):
    """An explicit argument wins over ML_DASH_PORT, which wins over the default."""
    monkeypatch.setenv("ML_DASH_PORT", "9001")
    assert ServerConfig.resolve(port=9002).port == 9002
    assert ServerConfig.resolve().port == 9001
    monkeypatch.delenv("ML_DASH_PORT")
    assert ServerConfig.resolve().port == 8000 and ServerConfig.resolve().host == "127.0.0.1"


def test_tokens_from_flag_file_and_environment(monkeypatch, tmp_path):
    """--token, --tokens-file and ML_DASH_TOKENS all add tokens, with optional namespace limits."""
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text("# team tokens\nfile-token=alice,bob  # two namespaces\n\n")
    monkeypatch.setenv("ML_DASH_TOKENS", "env-token env-limited=carol")
    config = ServerConfig.resolve(tokens=["flag-token"], tokens_file=str(tokens_file))
    assert config.tokens == {"flag-token": None, "file-token": frozenset({"alice", "bob"}), "env-token": None,
                             "env-limited": frozenset({"carol"})}


def test_tokens_may_contain_equals_signs():
    """A base64 token ending in '=' stays whole; the last '=' followed by names limits a token that contains '='."""
    assert parse_token_entry("abc==") == ("abc==", None)
    assert parse_token_entry("abc===alice,bob") == ("abc==", frozenset({"alice", "bob"}))
    assert parse_token_entry("tok=alice") == ("tok", frozenset({"alice"}))


def test_bad_token_entries_and_loopback_detection():
    """Empty tokens or namespace lists are rejected; loopback detection covers IPv4, IPv6 and localhost."""
    with pytest.raises(ConfigError):
        parse_token_entry("=alice")
    with pytest.raises(ConfigError):
        parse_token_entry("  ")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_unsupported_database_urls_are_config_errors(tmp_path):
    """postgresql:// and postgres:// pick PostgreSQL (nothing connects until open); other schemes are rejected."""
    from ml_dash.server.storage.postgres.storage import PostgresStorage
    from ml_dash.server.storage.registry import open_storage

    for url in ("postgresql://localhost/db", "postgres://u:p@h:5432/db?search_path=s"):
        assert isinstance(open_storage(url, str(tmp_path / "x")), PostgresStorage)
    with pytest.raises(ConfigError, match="unsupported"):
        open_storage("mysql://x", str(tmp_path / "x"))


def test_server_subcommand_mounts_on_a_parent_parser(capsys):
    """add_server_subcommand wires `ml-dash server ...` to server_main (here refusing a tokenless public bind)."""
    import argparse

    from ml_dash.server.cli import add_server_subcommand

    parser = argparse.ArgumentParser(prog="ml-dash")
    add_server_subcommand(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["server", "--host", "0.0.0.0", "--port", "8123", "--data", "d", "--token", "a=x,y"])
    assert (args.port, args.data, args.token) == (8123, "d", ["a=x,y"])
    assert args.func(argparse.Namespace(**{**vars(args), "token": None})) == 2
    assert "refusing to bind" in capsys.readouterr().err
