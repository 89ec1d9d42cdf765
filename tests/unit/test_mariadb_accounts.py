"""The mariadb role's accounts as its variables make them: which exist, which are removed, what each
may do, and the client option files they get (rendered as the role renders them)."""

import configparser

import pytest

SECRETS = {f"mariadb_{name}_password": f"{name}-secret-0123456789" for name in ("admin", "app", "backup", "exporter")}
CHAOS_ON = {"mariadb_chaos_account": True, "mariadb_chaos_password": "c" * 24}
REPORT_ON = {"mariadb_report_password": "r" * 24}
CLIENT = "roles/mariadb/templates/etc/stockdb/client.cnf.j2"


def accounts(role_vars, **overrides):
    v = role_vars("mariadb", ansible_facts={"hostname": "db1"}, ansible_managed="managed", **{**SECRETS, **overrides})
    present = {(a["user"], a["host"]): a for a in v["_mariadb_present_accounts"]}
    absent = {(a["user"], a["host"]) for a in v["_mariadb_absent_accounts"]}
    return v, present, absent


def option_file(role_vars, account):
    v = role_vars("mariadb", ansible_managed="managed", item=account)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(v.render(CLIENT))
    return dict(parser["client"])


def test_by_default_no_chaos_or_reporting_account_and_an_admin_on_the_extra_port(role_vars):
    _, present, absent = accounts(role_vars)
    assert set(present) == {("stockdb_admin", "localhost"), ("stockdb_app", "localhost"), ("stockdb_backup", "localhost"),
                            ("stockdb_exporter", "localhost"), ("stockdb_admin", "127.0.0.1")}
    # turned off: removed, whatever an earlier run made
    assert absent == {("stockdb_chaos", "localhost"), ("stockdb_report", "localhost")}


def test_the_backup_and_exporter_accounts_select_nothing_of_the_trading_schema(role_vars):
    _, present, _ = accounts(role_vars)
    for user in ("stockdb_backup", "stockdb_exporter"):
        assert "stockdb" not in present[(user, "localhost")]["priv"], present[(user, "localhost")]["priv"]


def test_chaos_account_reads_and_updates_the_schema_without_admin_rights_or_a_connection_limit(role_vars):
    _, present, absent = accounts(role_vars, **CHAOS_ON)
    chaos = present[("stockdb_chaos", "localhost")]
    assert chaos["priv"] == "stockdb.*:SELECT,UPDATE"
    assert chaos["limits"] == {"MAX_USER_CONNECTIONS": 0}  # connection_flood must reach max_connections
    assert ("stockdb_chaos", "localhost") not in absent


def test_reporting_account_exists_only_with_a_password_and_carries_its_limits(role_vars):
    _, present, absent = accounts(role_vars, **REPORT_ON,
                                  mariadb_report_max_statement_time=45, mariadb_report_max_user_connections=2)
    report = present[("stockdb_report", "localhost")]
    assert report["priv"] == "stockdb_report.*:SELECT"  # the masked views, never the tables
    assert {k: int(v) for k, v in report["limits"].items()} == {"MAX_STATEMENT_TIME": 45, "MAX_USER_CONNECTIONS": 2}
    assert not any(user == "stockdb_report" for user, _ in absent)


def test_reporting_tools_elsewhere_get_the_same_limits_and_lose_the_account_with_the_password(role_vars):
    _, present, _ = accounts(role_vars, **REPORT_ON, mariadb_report_host="10.0.1.%")
    assert present[("stockdb_report", "10.0.1.%")]["limits"] == present[("stockdb_report", "localhost")]["limits"]
    _, present, absent = accounts(role_vars, mariadb_report_host="10.0.1.%")
    assert {("stockdb_report", "localhost"), ("stockdb_report", "10.0.1.%")} <= absent
    assert not any(user == "stockdb_report" for user, _ in present)


def test_extra_port_zero_removes_the_admin_over_tcp(role_vars):
    v, present, absent = accounts(role_vars, mariadb_extra_port=0)
    assert ("stockdb_admin", "127.0.0.1") in absent
    assert ("stockdb_admin", "127.0.0.1") not in present
    assert ("stockdb_admin", "localhost") in present and ("stockdb_admin", "localhost") not in absent


def test_option_files_use_the_socket_except_the_extra_port_one(role_vars):
    v, present, _ = accounts(role_vars, **CHAOS_ON, **REPORT_ON, mariadb_extra_port=3399)
    files = {a["name"]: a for a in v["_mariadb_optional_accounts"] if a["present"]}
    assert set(files) == {"report", "chaos", "admin-extra"}
    assert option_file(role_vars, files["chaos"]) == {"user": "stockdb_chaos", "password": "c" * 24,
                                                      "socket": "/run/mysqld/mysqld.sock"}
    assert option_file(role_vars, files["admin-extra"]) == {"user": "stockdb_admin", "password": "admin-secret-0123456789",
                                                            "host": "127.0.0.1", "port": "3399"}


@pytest.mark.parametrize(("extra_port", "rendered"), [(3307, True), (0, False)])
def test_extra_port_is_rendered_only_when_on(role_vars, extra_port, rendered):
    text = role_vars("mariadb", ansible_facts={"memtotal_mb": 2048, "processor_vcpus": 2}, inventory_hostname="db1",
                     ansible_managed="managed", mariadb_extra_port=extra_port,
                     mariadb_extra_max_connections=5).render(
        "roles/mariadb/templates/etc/mysql/mariadb.conf.d/60-stockdb.cnf.j2")
    assert (f"extra_port = {extra_port}\nextra_max_connections = 5\n" in text) is rendered
    assert ("extra_port" in text) is rendered


def test_the_role_owns_every_host_of_the_accounts_whose_host_is_configured(role_vars):
    # the accounts task removes a row of these users whose user@host is not in _mariadb_present_keys
    v, present, _ = accounts(role_vars, **REPORT_ON, mariadb_app_host="10.0.2.%")
    assert v["_mariadb_owned_users"] == ["stockdb_app", "stockdb_report", "stockdb_repl"]
    keys = set(v["_mariadb_present_keys"])
    assert keys == {f"{user}@{host}" for user, host in present}
    assert {"stockdb_app@localhost", "stockdb_app@10.0.2.%"} <= keys
    # the application moved to another network: its old pattern is no longer kept
    v, _, _ = accounts(role_vars, **REPORT_ON, mariadb_app_host="10.0.3.%")
    assert "stockdb_app@10.0.2.%" not in v["_mariadb_present_keys"]
    assert "stockdb_app@10.0.3.%" in v["_mariadb_present_keys"]


def test_accounts_that_log_in_from_the_network_require_tls_unless_turned_off(role_vars):
    _, present, _ = accounts(role_vars, **REPORT_ON, mariadb_app_host="10.0.0.%", mariadb_report_host="10.0.1.%")
    for key in (("stockdb_app", "10.0.0.%"), ("stockdb_report", "10.0.1.%")):
        assert present[key]["tls"] == {"SSL": None}, present[key]  # mysql_user: REQUIRE SSL
    # the tools on the host itself use the socket: no requirement
    assert all("tls" not in present[(user, "localhost")] for user in ("stockdb_app", "stockdb_report"))
    _, present, _ = accounts(role_vars, **REPORT_ON, mariadb_app_host="10.0.0.%", mariadb_report_host="10.0.1.%",
                             mariadb_remote_require_tls=False)
    # an empty requirement, not an omitted one: mysql_user turns an earlier REQUIRE SSL into REQUIRE NONE
    assert present[("stockdb_app", "10.0.0.%")]["tls"] == {} and present[("stockdb_report", "10.0.1.%")]["tls"] == {}
