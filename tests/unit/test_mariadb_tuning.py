"""The mariadb role's tuning arithmetic, templated exactly as Ansible does in a play."""

import configparser

import pytest

FACTS = {"memtotal_mb": 24000, "processor_vcpus": 2, "processor_count": 2}
TEMPLATE = "roles/mariadb/templates/etc/mysql/mariadb.conf.d/60-stockdb.cnf.j2"


def tuned(role_vars, memory_mb, **overrides):
    return role_vars("mariadb", ansible_facts=FACTS, inventory_hostname="db1", mariadb_memory_mb=memory_mb,
                     ansible_managed="managed", **overrides)


@pytest.mark.parametrize(
    ("memory_mb", "pool_mb", "redo_mb", "max_connections", "tmp_mb"),
    [
        # 50% below 4 GiB; the floor of 100 connections holds on small hosts.
        (1024, 512, 256, 100, 16),
        (2048, 1024, 256, 100, 32),
        # 65% from 4 GiB: (8192 - 5248 - 512) / 8 = 304 connections.
        (8192, 5248, 1312, 304, 128),
        # 75% from 16 GiB; redo capped at 4 GiB, connections at 1000, tmp tables at 256 MiB.
        (65536, 49152, 4096, 1000, 256),
    ],
)
def test_memory_drives_pool_redo_connections_and_tmp_tables(role_vars, memory_mb, pool_mb, redo_mb,
                                                            max_connections, tmp_mb):
    v = tuned(role_vars, memory_mb)
    assert int(v["_mariadb_buffer_pool_mb"]) == pool_mb
    assert int(v["_mariadb_redo_log_mb"]) == redo_mb
    assert int(v["_mariadb_max_connections"]) == max_connections
    assert int(v["_mariadb_tmp_table_mb"]) == tmp_mb


def test_buffer_pool_is_a_whole_number_of_chunks(role_vars):
    for memory_mb in (1000, 3333, 7777, 20000):
        assert int(tuned(role_vars, memory_mb)["_mariadb_buffer_pool_mb"]) % 128 == 0


def test_explicit_ratio_and_connections_win(role_vars):
    v = tuned(role_vars, 8192, mariadb_innodb_buffer_pool_ratio=0.25, mariadb_max_connections=333)
    assert int(v["_mariadb_buffer_pool_mb"]) == 2048
    assert int(v["_mariadb_max_connections"]) == 333


def test_server_id_is_stable_and_differs_between_hosts(role_vars):
    a = int(role_vars("mariadb", inventory_hostname="db1")["_mariadb_server_id"])
    again = int(role_vars("mariadb", inventory_hostname="db1")["_mariadb_server_id"])
    b = int(role_vars("mariadb", inventory_hostname="db2")["_mariadb_server_id"])
    assert a == again and a != b and 0 < a < 2**32


def _rendered(role_vars, **overrides):
    text = tuned(role_vars, 2048, **overrides).render(TEMPLATE)
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    return text, parser["mysqld"]


def test_rendered_file_carries_the_durability_settings_and_explains_them(role_vars):
    text, mysqld = _rendered(role_vars)
    assert mysqld["innodb_flush_log_at_trx_commit"] == "1"
    assert mysqld["sync_binlog"] == "1"
    assert mysqld["binlog_format"] == "ROW"
    assert mysqld["gtid_strict_mode"] == "ON"
    assert mysqld["innodb_buffer_pool_size"] == "1024M"
    assert mysqld["long_query_time"] == "0.5"
    assert "50% of 2048 MiB" in text
    assert "(2048 - 1024 - 512) / 8" in text


@pytest.mark.parametrize("capacity, capacity_max", [(None, "2000"), (500, "2000"), (4000, "8000")])
def test_io_capacity_max_is_twice_the_capacity_but_at_least_2000_as_the_server_computes_it(role_vars, capacity,
                                                                                            capacity_max):
    _text, mysqld = _rendered(role_vars, **({} if capacity is None else {"mariadb_innodb_io_capacity": capacity}))
    assert mysqld["innodb_io_capacity"] == str(capacity or 200)  # the server's own default (docs/tuning.md)
    assert mysqld["innodb_io_capacity_max"] == capacity_max


def test_extra_settings_are_rendered_last_and_override(role_vars):
    text, mysqld = _rendered(role_vars, mariadb_extra_settings={"max_connections": 42, "wait_timeout": 600})
    assert mysqld["wait_timeout"] == "600"
    assert mysqld["max_connections"] == "42"  # the later value wins, as in mariadbd
    assert text.rindex("max_connections = 42") > text.index("max_connections = 100")


def test_row_lock_waits_fail_fast_and_idle_writers_are_ended(role_vars):
    text, mysqld = _rendered(role_vars)
    assert mysqld["innodb_lock_wait_timeout"] == "3"
    assert mysqld["idle_write_transaction_timeout"] == "120"
    assert "a wait of seconds means a blocker" in text
    assert "holds\n# row locks" in text


def test_idle_write_transaction_timeout_zero_is_said_to_be_off(role_vars):
    text, mysqld = _rendered(role_vars, mariadb_idle_write_transaction_timeout=0)
    assert mysqld["idle_write_transaction_timeout"] == "0"
    assert "is never closed by the server" in text


def test_file_statements_are_confined_and_local_infile_is_off_unless_asked(role_vars):
    _text, mysqld = _rendered(role_vars)
    files = (mysqld["local_infile"], mysqld["secure_file_priv"], mysqld["symbolic_links"])
    assert files == ("OFF", "/var/lib/mysql-files", "OFF")
    assert _rendered(role_vars, mariadb_local_infile=True)[1]["local_infile"] == "ON"


def test_remote_accounts_are_blocked_after_ten_wrong_passwords(role_vars):
    lockout = "max_password_errors"
    assert int(_rendered(role_vars)[1][lockout]) == 10
    assert int(_rendered(role_vars, mariadb_max_password_errors=5)[1][lockout]) == 5


@pytest.mark.parametrize(("memory_mb", "worst_mb"), [
    # 768 + 32 + 8 + 128 + 24 + 100 x 18.9: the floor of 100 connections weighs most on a small host.
    (1536, 2850),
    # 12288 + 32 + 8 + 128 + 256 + 448 x 18.9
    (16384, 21179),
    (65536, 68476)])
def test_the_worst_case_memory_is_computed_and_said_in_the_file(role_vars, memory_mb, worst_mb):
    v = tuned(role_vars, memory_mb)
    assert int(v["_mariadb_worst_case_mb"]) == worst_mb
    text = v.render(TEMPLATE)
    assert f"is {worst_mb} MiB: {round(worst_mb / memory_mb, 1)}x the memory planned" in text
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    assert parser["mysqld"]["max_allowed_packet"] == "16M" and parser["mysqld"]["key_buffer_size"] == "8M"
