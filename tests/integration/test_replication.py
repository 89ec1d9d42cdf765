"""Behaviour of a replication set (docs/replication.md), asked of every database host of it.

Run against the cluster lab (`make lab-cluster-verify`: pytest --hosts=ansible://mariadb with the
cluster's inventory). On a standalone server every test is skipped.
"""

import json
import shlex

import pytest
from conftest import select, sql


def status(host):
    """SHOW SLAVE STATUS of the host as a dict ({} when it replicates from no host)."""
    out = host.run("mariadb --batch -e 'SHOW SLAVE STATUS'")
    assert out.rc == 0, out.stderr
    lines = out.stdout.splitlines()
    return dict(zip(lines[0].split("\t"), lines[1].split("\t"))) if len(lines) > 1 else {}


@pytest.fixture(scope="module")
def role(host):
    if select(host, "@@global.read_only") == "0" and not status(host):
        if select(host, "@@global.rpl_semi_sync_master_enabled") == "0":
            pytest.skip("a standalone server: no replication set here")
        return "primary"
    return "replica"


def test_a_replica_replicates_over_tls_by_gtid_read_only_and_acknowledging(host, role):
    """An ordinary replica acknowledges; a delayed one (mariadb_replication_delay) applies late and never does."""
    if role != "replica":
        pytest.skip("the primary")
    s = status(host)
    assert s["Slave_IO_Running"] == "Yes" and s["Slave_SQL_Running"] == "Yes", s
    assert s["Master_SSL_Allowed"] == "Yes" and s["Master_SSL_Verify_Server_Cert"] == "Yes"
    assert s["Using_Gtid"] == "Slave_Pos"
    assert select(host, "@@global.read_only") == "1"
    assert select(host, "@@global.rpl_semi_sync_master_enabled") == "0"
    delay = host.ansible.get_variables().get("mariadb_replication_delay", 0)
    assert int(s["SQL_Delay"]) == int(delay)
    out = sql(host, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_slave_status'")
    assert out.stdout.split() == ["Rpl_semi_sync_slave_status", "OFF" if int(delay) > 0 else "ON"]


def test_the_primary_takes_writes_acknowledged_by_a_replica(host, role):
    if role != "primary":
        pytest.skip("a replica")
    out = sql(host, "SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_master_clients')")
    figures = dict(line.split("\t") for line in out.stdout.splitlines())
    assert figures["Rpl_semi_sync_master_status"] == "ON"
    assert int(figures["Rpl_semi_sync_master_clients"]) >= 1


def test_the_writer_check_answers_200_only_where_writes_are_taken(host, role):
    script = ("import urllib.request, urllib.error\n"
              "try:\n    print(urllib.request.urlopen('http://127.0.0.1:9200/', timeout=5).status)\n"
              "except urllib.error.HTTPError as e:\n    print(e.code)\n")
    answer = host.check_output(f"python3 -c {shlex.quote(script)}")
    assert answer == ("200" if role == "primary" else "503")


def test_the_application_cannot_write_on_a_replica(host, role):
    if role != "replica":
        pytest.skip("the primary")
    out = sql(host, "UPDATE stockdb.stocks SET name = name WHERE stock_id = 0", defaults_file="/etc/stockdb/app.cnf")
    assert out.rc != 0 and "read-only" in out.stderr.lower(), out.stderr


def test_the_replication_account_may_only_replicate_and_only_over_tls(host, role):
    grants = sql(host, "SELECT CONCAT(user, '@', host) FROM mysql.user WHERE user = 'stockdb_repl'").stdout.split()
    assert grants, "no replication account"
    for account in grants:
        user, address = account.split("@")
        shown = sql(host, f"SHOW GRANTS FOR '{user}'@'{address}'").stdout
        assert "GRANT REPLICATION SLAVE ON *.*" in shown and "REQUIRE SSL" in shown, shown
        assert "ALL PRIVILEGES" not in shown and "SUPER" not in shown, shown


def test_the_application_logs_in_from_the_network_over_tls_only(host, role):
    """The application's network account is REQUIRE SSL (mariadb_remote_require_tls): from a replica, the primary
    refuses the application's password in plain text and takes it over TLS, the server verified by the authority."""
    if role != "replica":
        pytest.skip("asked from a replica of the primary")
    if host.ansible.get_variables().get("mariadb_app_host", "localhost") == "localhost":
        pytest.skip("no application account at a network address here (mariadb_app_host)")
    s = status(host)
    login = (f"mariadb --defaults-extra-file=/etc/stockdb/app.cnf -h {shlex.quote(s['Master_Host'])} "
             f"-P {int(s['Master_Port'])} --batch --skip-column-names")
    plain = host.run(f"{login} --skip-ssl -e 'SELECT 1'")
    assert plain.rc != 0 and "Access denied" in plain.stderr, (plain.stdout, plain.stderr)
    secure = host.run(f"{login} --ssl --ssl-verify-server-cert --ssl-ca=/etc/mysql/tls/ca.pem "
                      "-e \"SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_version'\"")
    assert secure.rc == 0 and secure.stdout.strip() in ("TLSv1.2", "TLSv1.3"), (secure.stdout, secure.stderr)


def test_backups_are_taken_and_verified_only_on_the_primary(host, role):
    """backup_source=primary (the default): a scheduled backup or verification on a replica changes nothing and
    says why, and the replica is not held to the recovery-time target; the health check exports which host is
    the source. (The primary's backups: the side effect's backup.yml runs, before and after the switchover.)"""
    health = host.run("stockdb-ops health")
    assert health.rc == 0, health.stdout + health.stderr
    source = host.file("/var/lib/prometheus/node-exporter/stockdb_backup_source.prom").content_string
    if role == "primary":
        assert "stockdb_backup_source 1" in source.splitlines()
        return
    assert "stockdb_backup_source 0" in source.splitlines()
    assert "rto: " not in health.stdout  # not breached for want of a backup: it keeps none
    backups_before = host.check_output("stockdb-ops list")
    backup = host.run("stockdb-ops backup --type full")
    assert backup.rc == 0, backup.stderr
    taken = json.loads(backup.stdout)
    assert taken["backup"] is None and "replicates from" in taken["skipped"], taken
    assert host.check_output("stockdb-ops list") == backups_before
    verify = host.run("stockdb-ops verify")
    assert verify.rc == 0 and json.loads(verify.stdout)["skipped"], verify.stdout
    last = host.file("/var/log/stockdb/backup.log").content_string.splitlines()[-1]
    assert last.split(" ", 1)[1].startswith("SKIPPED type=full: this host replicates from"), last
