"""The mariadb role's replication settings as its variables make them: when replication is on, what the
rendered my.cnf says on the primary and on a replica, and the replication account."""

import configparser

from test_mariadb_accounts import SECRETS

TEMPLATE = "roles/mariadb/templates/etc/mysql/mariadb.conf.d/60-stockdb.cnf.j2"
FACTS = {"memtotal_mb": 2048, "processor_vcpus": 2, "processor_count": 2, "hostname": "db1"}
HOSTS = {"db1": {"ansible_host": "10.0.1.11"}, "db2": {"ansible_host": "10.0.1.12"}, "db3": {"ansible_host": "10.0.1.13"}}
CLUSTER = {"groups": {"mariadb": list(HOSTS)}, "hostvars": HOSTS, "mariadb_replication_primary": "db1",
           "mariadb_replication_password": "repl-secret-0123456789"}


def role(role_vars, host, **overrides):
    return role_vars("mariadb", ansible_facts=FACTS, inventory_hostname=host, ansible_managed="managed",
                     mariadb_memory_mb=2048, **{**SECRETS, **overrides})


def mysqld(v):
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(v.render(TEMPLATE))
    return parser["mysqld"]


def test_a_standalone_server_has_no_replication_settings_and_binlogs_account_changes(role_vars):
    for overrides in ({}, {"groups": {"mariadb": ["db1"]}, "mariadb_replication_primary": "db1"}):
        v = role(role_vars, "db1", **overrides)
        assert v["_mariadb_replication"] is False
        cnf = mysqld(v)
        assert "read_only" not in cnf and "rpl_semi_sync_master_enabled" not in cnf
        assert cnf["gtid_strict_mode"] == "ON" and cnf["log_slave_updates"] == "ON"
        assert v["_mariadb_replication_accounts"] == []
        assert v["_mariadb_account_session"] == {}


def test_every_host_of_a_set_starts_read_only_with_the_same_replication_settings(role_vars):
    # moving the primary changes nothing in a host's file, so it restarts no server
    as_primary = role(role_vars, "db1", **CLUSTER).render(TEMPLATE)
    as_replica = role(role_vars, "db1", **{**CLUSTER, "mariadb_replication_primary": "db2"}).render(TEMPLATE)
    assert as_primary == as_replica
    for cnf in (mysqld(role(role_vars, "db1", **CLUSTER)), mysqld(role(role_vars, "db2", **CLUSTER))):
        assert cnf["read_only"] == "ON"  # a server that comes back takes no writes until told
        assert cnf["rpl_semi_sync_master_wait_point"] == "AFTER_SYNC"
        assert cnf["rpl_semi_sync_slave_enabled"] == "ON"
        assert cnf["init_rpl_role"] == "SLAVE"  # crash recovery drops what was never acknowledged
        assert cnf["sync_relay_log"] == "1" and cnf["relay_log_recovery"] == "ON"
        assert cnf["slave_parallel_mode"] == "optimistic" and int(cnf["slave_parallel_threads"]) > 0
        assert cnf["relay_log"] == "/var/lib/mysql/relay-bin"
        assert "rpl_semi_sync_master_enabled" not in cnf  # switched on at run time where the host takes writes


def test_semi_sync_off_leaves_its_settings_out(role_vars):
    cnf = mysqld(role(role_vars, "db1", **CLUSTER, mariadb_semi_sync=False))
    assert cnf["read_only"] == "ON"
    assert not any(key.startswith("rpl_semi_sync") for key in cnf)


def test_the_replication_account_may_only_replicate_over_tls_from_each_replication_host(role_vars):
    v = role(role_vars, "db2", **CLUSTER)
    accounts = [a for a in v["_mariadb_present_accounts"] if a["user"] == "stockdb_repl"]
    assert sorted(a["host"] for a in accounts) == ["10.0.1.11", "10.0.1.12", "10.0.1.13"]
    for account in accounts:
        assert account["priv"] == "*.*:REPLICATION SLAVE"
        assert account["tls"] == {"SSL": None}
        assert account["plugin"] == "ed25519"
    # account changes stay on each host: replicated, they would collide with the replica's own
    assert v["_mariadb_account_session"] == {"sql_log_bin": 0}


def test_given_client_hosts_replace_the_inventory_addresses(role_vars):
    v = role(role_vars, "db1", **CLUSTER, mariadb_replication_client_hosts=["10.0.1.%"])
    assert [a["host"] for a in v["_mariadb_present_accounts"] if a["user"] == "stockdb_repl"] == ["10.0.1.%"]
