"""module_utils/stockdb/accounts.py (the plan of stockdb_accounts): which of the server's accounts go, and
requests refused before anything is read. The module itself runs against the lab's MariaDB in Molecule's
converge and idempotence (changed=0 on the rerun) and tests/integration/test_stack.py checks the accounts."""

import pytest
from stockdb import accounts

APP = {"user": "stockdb_app", "host": "localhost"}
APP_REMOTE = {"user": "stockdb_app", "host": "10.0.1.%"}
ROOT = {"user": "root", "host": "localhost"}

# What Debian's package and an older run of the role leave on a server.
SERVER = [("root", "localhost"), ("root", "127.0.0.1"), ("root", "::1"), ("root", "db1"), ("", "localhost"),
          ("", "db1"), ("mariadb.sys", "localhost"), ("mysql", "localhost"), ("stockdb_app", "localhost"),
          ("stockdb_app", "10.0.0.%"), ("stockdb_chaos", "localhost"), ("stockdb_admin", "localhost")]


def test_owned_users_keep_only_the_hosts_wanted_and_kept_and_the_absent_go():
    remove = accounts.plan(SERVER, [APP, APP_REMOTE, {"user": "stockdb_admin", "host": "localhost"}],
                           absent=[{"user": "stockdb_chaos", "host": "localhost"},
                                   {"user": "stockdb_report", "host": "localhost"}],
                           owned=["root", "", "stockdb_app", "stockdb_report"], keep=[ROOT])
    assert remove == [("root", "127.0.0.1"), ("root", "::1"), ("root", "db1"), ("", "localhost"), ("", "db1"),
                      ("stockdb_app", "10.0.0.%"),  # the application host changed to 10.0.1.%
                      ("stockdb_chaos", "localhost")]  # turned off; stockdb_report@localhost does not exist: nothing to do
    # the server's own accounts, and users nobody owns, are never touched
    assert not {("mariadb.sys", "localhost"), ("mysql", "localhost"), ("root", "localhost")} & set(remove)


def test_a_wanted_host_differs_only_in_case_and_is_kept():
    assert accounts.plan([("stockdb_app", "DB1.example")], [{"user": "stockdb_app", "host": "db1.example"}],
                         owned=["stockdb_app"]) == []


def test_nothing_owned_nothing_absent_removes_nothing():
    assert accounts.plan(SERVER, [APP]) == []


@pytest.mark.parametrize(("wanted", "absent", "message"), [
    ([APP, dict(APP)], [], "accounts names 'stockdb_app'@'localhost' more than once"),
    ([APP, {"user": "stockdb_app", "host": "LOCALHOST"}], [], "more than once"),
    ([], [APP, APP], "absent names 'stockdb_app'@'localhost' more than once"),
    ([APP], [APP], "'stockdb_app'@'localhost' is both in accounts and in absent"),
])
def test_a_request_that_contradicts_itself_is_refused_with_the_account_named(wanted, absent, message):
    with pytest.raises(accounts.AccountsError, match=message):  # before connecting, and in the plan
        accounts.check(wanted, absent)
    with pytest.raises(accounts.AccountsError, match=message):
        accounts.plan(SERVER, wanted, absent=absent)
