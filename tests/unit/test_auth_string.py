"""filter_plugins/stockdb_auth.py: the strings MariaDB stores for a password, checked against the server's own."""

import importlib.util
import pathlib

import pytest
from ansible.errors import AnsibleFilterError

_spec = importlib.util.spec_from_file_location(
    "stockdb_auth", pathlib.Path(__file__).parents[2] / "filter_plugins" / "stockdb_auth.py")
auth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(auth)


# What MariaDB 10.11 (Debian 12) stored for these passwords: CREATE USER ... IDENTIFIED VIA ed25519
# USING PASSWORD('...') and SELECT PASSWORD('...'), read back from mysql.user on the lab host.
@pytest.mark.parametrize(("password", "plugin", "stored"), [
    ("Secret-pass-123", "ed25519", "uFpdmt7LSzZj80IIM5nXEEWqK1yKv6A43SVqzewQOLM"),
    ("Kospi#200-index", "ed25519", "fwH5VZHYx0wzclriUVlB5QF8HYLDAU3yCBbRYVM7Abw"),
    ("secret", "mysql_native_password", "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7"),
])
def test_the_filter_computes_what_the_server_stores(password, plugin, stored):
    assert auth.stockdb_auth_string(password, plugin) == stored


def test_different_passwords_give_different_ed25519_keys():
    keys = {auth.stockdb_auth_string(f"pw-{i}", "ed25519") for i in range(20)}
    assert len(keys) == 20 and all(len(k) == 43 for k in keys)


@pytest.mark.parametrize(("password", "plugin", "message"), [
    ("x", "caching_sha2_password", "unknown authentication plugin 'caching_sha2_password'"),
    ("", "ed25519", "the password is empty"),
    (None, "ed25519", "the password is empty"),
])
def test_bad_input_is_named(password, plugin, message):
    with pytest.raises(AnsibleFilterError, match=message):
        auth.stockdb_auth_string(password, plugin)


def test_an_account_goes_to_stockdb_accounts_with_the_string_and_never_its_password():
    spec = auth.stockdb_account_spec({"name": "report", "user": "stockdb_report", "host": "10.0.1.%", "password": "secret",
                                      "plugin": "mysql_native_password", "priv": "stockdb_report.*:SELECT",
                                      "limits": {"MAX_USER_CONNECTIONS": 2}, "tls": {"SSL": None}, "present": True})
    assert spec == {"user": "stockdb_report", "host": "10.0.1.%", "plugin": "mysql_native_password",
                    "plugin_hash_string": "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7", "priv": "stockdb_report.*:SELECT",
                    "resource_limits": {"MAX_USER_CONNECTIONS": 2}, "tls_requires": {"SSL": None}}
    bare = auth.stockdb_account_spec({"user": "u", "host": "localhost", "password": "secret", "plugin": "ed25519",
                                      "priv": "*.*:USAGE"})
    assert bare["resource_limits"] is None and bare["tls_requires"] is None  # left as they are on the server


def test_an_account_without_a_password_or_privileges_is_named():
    with pytest.raises(AnsibleFilterError, match="the password is empty"):
        auth.stockdb_account_spec({"user": "u", "host": "localhost", "password": "", "plugin": "ed25519",
                                   "priv": "*.*:USAGE"})
    with pytest.raises(AnsibleFilterError, match="'backup' has no 'priv'"):
        auth.stockdb_account_spec({"name": "backup", "user": "u", "host": "localhost", "password": "p", "plugin": "ed25519"})


def test_ansible_finds_the_filters():
    filters = auth.FilterModule().filters()
    assert filters["stockdb_auth_string"] is auth.stockdb_auth_string
    assert filters["stockdb_account_spec"] is auth.stockdb_account_spec
