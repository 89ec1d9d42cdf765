"""Behaviour of a host provisioned by site.yml: services, tuning, accounts, monitoring, alerting.

The alert test stops MariaDB on purpose and starts it again; it runs last in this file.
"""

import configparser
import json
import re
import shlex

import pytest
from conftest import DASHBOARDS, http_get_json, prom_query, sql, wait_for

SERVICES = [
    "mariadb",
    "prometheus-node-exporter",
    "prometheus-mysqld-exporter",
    "prometheus",
    "prometheus-alertmanager",
    "stockdb-alertlog",
]
CONFIG = "/etc/mysql/mariadb.conf.d/60-stockdb.cnf"
ALERT_LOG = "/var/log/stockdb/alerts.log"
TEXTFILES = "/var/lib/prometheus/node-exporter"
SIZE = re.compile(r"^(\d+)([KMG])$", re.IGNORECASE)
# have_symlink reports symbolic_links as YES / DISABLED.
BOOLEAN = {"ON": "ON", "1": "ON", "TRUE": "ON", "YES": "ON", "OFF": "OFF", "0": "OFF", "FALSE": "OFF", "DISABLED": "OFF"}
# Options that SHOW GLOBAL VARIABLES reports under another name.
VARIABLE_OF_OPTION = {"log_bin": "log_bin_basename", "transaction_isolation": "tx_isolation", "symbolic_links": "have_symlink"}
# Options that load a plugin rather than set a variable (tests/integration/test_security.py checks the plugins).
PLUGIN_OPTIONS = {"plugin_load_add", "server_audit", "simple_password_check", "password_reuse_check"}


def normalise(value):
    value = value.strip()
    if value.startswith("/") and len(value) > 1:
        value = value.rstrip("/")  # secure_file_priv: the server adds a trailing slash
    size = SIZE.match(value)
    if size:
        value = str(int(size.group(1)) * 1024 ** ("KMG".index(size.group(2).upper()) + 1))
    if value.upper() in BOOLEAN:
        return BOOLEAN[value.upper()]
    try:
        return repr(float(value))
    except ValueError:
        return value


@pytest.mark.parametrize("service", SERVICES)
def test_service_is_active_and_enabled(host, service):
    unit = host.service(service)
    assert unit.is_running, f"{service} is not active"
    assert unit.is_enabled, f"{service} is not enabled"


def test_server_runs_the_rendered_configuration(host):
    """Every option in the rendered file is what the running server reports."""
    parser = configparser.ConfigParser(allow_no_value=True, interpolation=None, strict=False)
    parser.read_string(host.file(CONFIG).content_string)
    intent = dict(parser["mysqld"])
    assert len(intent) > 30, f"suspiciously few options in {CONFIG}: {sorted(intent)}"
    rows = sql(host, "SHOW GLOBAL VARIABLES")
    assert rows.rc == 0, rows.stderr
    actual = dict(line.split("\t", 1) for line in rows.stdout.splitlines() if "\t" in line)
    mismatches = {}
    for option, wanted in intent.items():
        name = option.replace("-", "_")
        if name in PLUGIN_OPTIONS:
            continue
        name = VARIABLE_OF_OPTION.get(name, name)
        assert name in actual, f"{option} from {CONFIG} is not a server variable"
        if normalise(actual[name]) != normalise(wanted):
            mismatches[option] = (wanted, actual[name])
    assert not mismatches, f"running values differ from {CONFIG}: {mismatches}"


def test_durability_settings_for_a_trading_database(host):
    rows = sql(host, "SELECT @@innodb_flush_log_at_trx_commit, @@sync_binlog, @@binlog_format, @@log_bin, "
                     "@@gtid_strict_mode, @@slow_query_log, @@performance_schema")
    assert rows.stdout.split() == ["1", "1", "ROW", "1", "1", "1", "1"]


def test_server_allocates_with_jemalloc(host):
    """mariadb_malloc=jemalloc (the default): the running server has the library mapped, through the drop-in."""
    pid = host.run("pidof mariadbd").stdout.strip()
    assert pid.isdigit(), f"no single mariadbd: {pid!r}"
    maps = host.file(f"/proc/{pid}/maps").content_string
    assert "/libjemalloc.so.2" in maps, "mariadbd does not map libjemalloc.so.2"
    assert "LD_PRELOAD=" in host.file("/etc/systemd/system/mariadb.service.d/stockdb-malloc.conf").content_string


def test_buffer_pool_is_tuned_for_the_memory_given_not_the_machine(host):
    """The lab and Molecule plan MariaDB for 1536 MiB of their 2 GiB: 50% of it, whatever the machine has."""
    pool = int(sql(host, "SELECT @@innodb_buffer_pool_size").stdout)
    assert pool == 768 * 1024 * 1024


def test_remote_root_login_is_refused(host):
    accounts = sql(host, "SELECT host FROM mysql.user WHERE user = 'root'").stdout.split()
    assert accounts == ["localhost"], f"root exists for hosts {accounts}"
    for password in ("", "-pwhatever"):
        attempt = host.run(f"mariadb --protocol=TCP -h 127.0.0.1 -u root {password} -e 'SELECT 1'")
        assert attempt.rc != 0, "root logged in over TCP"
        assert "Access denied" in attempt.stderr or "is not allowed to connect" in attempt.stderr, attempt.stderr


def test_mariadb_listens_on_its_bind_address_only_without_socket_activation(host):
    # the package's mariadb.socket would listen on every address and start the server on demand
    assert host.run("systemctl is-enabled mariadb.socket").stdout.strip() == "masked"
    listeners = host.check_output("ss -H -ltn 'sport = :3306'").splitlines()
    assert [line.split()[3] for line in listeners] == ["127.0.0.1:3306"], listeners


def test_no_anonymous_accounts_or_test_database(host):
    assert sql(host, "SELECT COUNT(*) FROM mysql.user WHERE user = ''").stdout.strip() == "0"
    assert "test" not in sql(host, "SHOW DATABASES").stdout.split()


def test_exporter_account_cannot_read_trading_tables(host):
    probe = "stockdb.zz_privilege_probe"
    created = sql(host, f"CREATE TABLE {probe} (id INT PRIMARY KEY); INSERT INTO {probe} VALUES (1)")
    assert created.rc == 0, created.stderr
    try:
        denied = sql(host, f"SELECT id FROM {probe}", defaults_file="/etc/prometheus/mysqld-exporter.cnf")
        assert denied.rc != 0 and "denied" in denied.stderr, f"exporter read {probe}: {denied.stdout}"
        allowed = sql(host, "SELECT COUNT(*) FROM performance_schema.events_statements_summary_global_by_event_name",
                      defaults_file="/etc/prometheus/mysqld-exporter.cnf")
        assert allowed.rc == 0, allowed.stderr
        app = sql(host, f"SELECT id FROM {probe}", defaults_file="/etc/stockdb/app.cnf")
        assert app.rc == 0 and app.stdout.strip() == "1", app.stderr
        app_ddl = sql(host, f"DROP TABLE {probe}", defaults_file="/etc/stockdb/app.cnf")
        assert app_ddl.rc != 0 and "denied" in app_ddl.stderr, "the application account may drop tables"
    finally:
        sql(host, f"DROP TABLE IF EXISTS {probe}")


def test_credential_files_are_private(host):
    exporter = host.file("/etc/prometheus/mysqld-exporter.cnf")
    assert (exporter.user, exporter.mode) == ("prometheus", 0o600)
    for name in ("admin", "app", "backup", "exporter"):
        f = host.file(f"/etc/stockdb/{name}.cnf")
        assert (f.user, f.mode) == ("root", 0o600), f"/etc/stockdb/{name}.cnf"


def test_mysqld_exporter_reports_the_server_up(scraped):
    result = prom_query(scraped, 'mysql_up{job="mysqld"}')
    assert result and all(r["value"][1] == "1" for r in result), result


def test_the_exporter_swaps_temporary_tables_and_those_on_disk_as_the_query_dashboard_expects(host):
    """mysqld_exporter 0.14 (Debian 12) exports SUM_CREATED_TMP_TABLES as ..._tmp_disk_tables_total and the reverse.

    The query-analysis dashboard reads them swapped back; a fixed exporter fails this test, and the panel must change.
    """
    found = sql(host, "SELECT DIGEST FROM performance_schema.events_statements_summary_by_digest "
                      "WHERE SCHEMA_NAME = 'stockdb' AND SUM_CREATED_TMP_TABLES > 0 AND SUM_CREATED_TMP_DISK_TABLES = 0 "
                      "ORDER BY SUM_CREATED_TMP_TABLES DESC LIMIT 1")
    assert found.rc == 0 and found.stdout.strip(), f"no statement of stockdb made a temporary table: {found.stderr}"
    digest = found.stdout.strip()
    metrics = host.run("python3 -c \"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9104/metrics')"
                       ".read().decode())\"").stdout
    values = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^mysql_perf_schema_events_statements_(tmp_tables|tmp_disk_tables)_total\{digest="' + digest + r'".*\} (\S+)$',
        metrics, re.MULTILINE)}
    assert set(values) == {"tmp_tables", "tmp_disk_tables"}, f"digest {digest} is not exported: {values}"
    assert values["tmp_disk_tables"] > 0 and values["tmp_tables"] == 0, values


def test_every_prometheus_target_is_up(scraped):
    answer = prom_query(scraped, "up")
    jobs = {r["metric"]["job"]: r["value"][1] for r in answer}
    assert {"prometheus", "node", "mysqld"} <= set(jobs), jobs
    down = {job: value for job, value in jobs.items() if value != "1"}
    assert not down, f"targets down: {down}"


def test_every_rule_group_is_loaded_without_errors(scraped):
    groups = http_get_json(scraped, "http://localhost:9090/api/v1/rules")["data"]["groups"]
    names = {g["name"] for g in groups}
    assert {"stockdb-mariadb", "stockdb-host"} <= names, names
    for group in groups:
        for rule in group["rules"]:
            assert rule.get("health") == "ok", f"{group['name']}/{rule['name']}: {rule.get('lastError')}"


def _connects(host, address, port):
    """Whether a TCP connection from inside the host to address:port is accepted."""
    probe = ("import socket, sys\n"
             "try:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5).close()\n"
             "except OSError:\n    sys.exit(1)\n")
    return host.run(f"python3 -c {shlex.quote(probe)} {shlex.quote(address)} {port}").rc == 0


def test_alertmanager_answers_on_loopback_only(host):
    """Nobody but this host can reach Alertmanager's API, which silences alerts."""
    status = http_get_json(host, "http://127.0.0.1:9093/api/v2/status")
    assert status["config"]["original"], status
    listeners = host.check_output("ss -H -ltn 'sport = :9093'").splitlines()
    assert [line.split()[3] for line in listeners] == ["127.0.0.1:9093"], listeners
    addresses = host.check_output("hostname -I").split()
    assert addresses, "the host has no address but loopback"
    for address in addresses:
        assert not _connects(host, address, 9093), f"Alertmanager accepts connections on {address}:9093"


def test_prometheus_sends_alerts_to_the_alertmanager_on_loopback(scraped):
    answer = http_get_json(scraped, "http://localhost:9090/api/v1/alertmanagers")["data"]
    assert [a["url"] for a in answer["activeAlertmanagers"]] == ["http://127.0.0.1:9093/api/v2/alerts"], answer


def test_textfile_metrics_directory_is_writable_by_root_only(host):
    textfiles = host.file(TEXTFILES)
    assert (textfiles.user, textfiles.group, textfiles.mode) == ("root", "root", 0o755)


def test_the_alert_log_belongs_to_the_receiver_and_takes_its_lines(host):
    """Root's jobs (the health check every 5 minutes) append to the alert log too, and may create it first,
    during a converge, before the alertmanager role runs: the role must still hand it to the receiver's
    account, or every Alertmanager notification fails to be written."""
    log = host.file(ALERT_LOG)
    assert (log.user, log.group, log.mode) == ("stockdb", "adm", 0o640)
    assert host.run(f"runuser -u stockdb -- sh -c ': >> {ALERT_LOG}'").rc == 0


@pytest.mark.parametrize("directory", [TEXTFILES, "/var/log/stockdb", "/var/lib/stockdb", "/etc/stockdb"])
def test_the_stockdb_account_cannot_plant_files_where_root_writes(host, directory):
    """The account that runs the alert-log receiver must not forge metrics, or plant a file or symlink
    that root's jobs would write through (job logs, ack log, state, credentials)."""
    planted = f"{directory}/stockdb_planted.prom"
    try:
        attempt = host.run(f"runuser -u stockdb -- sh -c 'echo stockdb_backup_last_status 1 > {planted}'")
        assert attempt.rc != 0, f"the stockdb account wrote {planted}"
        assert not host.file(planted).exists
    finally:
        host.run(f"rm -f {planted}")


def test_grafana_provisioning_matches_the_dashboards(host):
    datasource = host.file("/etc/grafana/provisioning/datasources/stockdb.yml").content_string
    assert "uid: stockdb-prometheus" in datasource and "url: http://localhost:9090" in datasource
    provider = host.file("/etc/grafana/provisioning/dashboards/stockdb.yml").content_string
    assert "path: /var/lib/grafana/dashboards/stockdb" in provider
    assert DASHBOARDS, "no dashboards in files/grafana/dashboards"
    for local in DASHBOARDS:
        remote = host.file(f"/var/lib/grafana/dashboards/stockdb/{local.name}")
        assert json.loads(remote.content_string) == json.loads(local.read_text()), local.name


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_panel_query_returns_data(scraped, dashboard):
    """Each panel query, as Grafana would send it, answers with at least one series."""
    board = json.loads(dashboard.read_text())
    if "replication" in board["tags"] and not prom_query(scraped, "mysql_slave_status_slave_io_running"):
        pytest.skip("no replica is scraped here: the replication dashboard is checked on the cluster lab")
    empty = []
    panels = board["panels"]
    for panel in panels:
        for target in panel["targets"]:
            if not prom_query(scraped, target["expr"]):
                empty.append(f"{panel['title']}: {target['expr']}")
    assert not empty, "queries with no data:\n" + "\n".join(empty)


def test_an_alert_reaches_the_alert_log_firing_and_resolved(host):
    """Stop MariaDB: MariaDBDown must be logged as FIRING, then RESOLVED once it is back.

    Resolution reaches the log after Alertmanager's group_interval (30 s by default, 10 s in
    Molecule), hence the long bound.
    """
    before = host.run(f"wc -l < {ALERT_LOG} 2>/dev/null || echo 0").stdout.strip() or "0"
    start = int(before) + 1

    def new_lines():
        return host.run(f"tail -n +{start} {ALERT_LOG} 2>/dev/null").stdout

    host.run("systemctl stop mariadb")
    try:
        _wait_along_the_alert_path(host, lambda: "FIRING critical MariaDBDown" in new_lines(), 240,
                                   "MariaDBDown FIRING in the alert log", new_lines)
    finally:
        assert host.run("systemctl start mariadb").rc == 0
    _wait_along_the_alert_path(host, lambda: "RESOLVED critical MariaDBDown" in new_lines(), 420,
                               "MariaDBDown RESOLVED in the alert log", new_lines)


def _wait_along_the_alert_path(host, predicate, timeout, what, new_lines):
    """wait_for, and on a timeout say where the alert stopped: the exporter, the rule, Alertmanager, the log."""
    try:
        wait_for(predicate, timeout, 5, what)
    except pytest.fail.Exception as exc:
        def ask(label, fetch):
            try:
                return f"{label}: {fetch()}"
            except Exception as error:  # noqa: BLE001 - a diagnosis must not hide the failure it explains
                return f"{label}: unavailable ({error})"
        state = [
            ask("mysql_up", lambda: prom_query(host, "mysql_up")),
            ask("Prometheus ALERTS", lambda: prom_query(host, 'ALERTS{alertname="MariaDBDown"}')),
            ask("Alertmanager alerts", lambda: [(a["labels"].get("alertname"), a["status"]["state"]) for a in
                                                http_get_json(host, "http://127.0.0.1:9093/api/v2/alerts")]),
            ask("services", lambda: host.run("systemctl is-active mariadb prometheus prometheus-alertmanager "
                                             "stockdb-alertlog prometheus-mysqld-exporter").stdout.split()),
            ask("new alert-log lines", lambda: new_lines()[-1500:]),
        ]
        pytest.fail(f"{exc}\n" + "\n".join(state))
