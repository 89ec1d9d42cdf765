"""The security baseline's controls, against a host described by canned command output.

The same controls run on real hosts through tests/integration/test_baseline.py and playbooks/baseline.yml;
here each control's logic meets the cases it must tell apart.
"""

import pytest
from stockdb import baseline

ACCOUNTS = "FROM mysql.global_priv"
PRIVILEGES = "FROM information_schema.user_privileges"


class FakeHost:
    """Answers the probe's commands: SQL by a fragment of the query, stat and find by path."""

    def __init__(self, sql=None, variables=None, plugins=None, paths=None, finds=None):
        self.sql = dict(sql or {})
        self.sql["SHOW GLOBAL VARIABLES"] = [[k, v] for k, v in (variables or {}).items()]
        self.sql["information_schema.plugins"] = [[k, v] for k, v in (plugins or {}).items()]
        self.paths = paths or {}
        self.finds = finds or {}

    def run(self, argv):
        if argv[0] == "mariadb":
            query = argv[-1]
            for fragment, rows in self.sql.items():
                if fragment in query:
                    return 0, "".join("\t".join("NULL" if v is None else v for v in row) + "\n" for row in rows), ""
            return 0, "", ""
        if argv[0] == "stat":
            found = self.paths.get(argv[-1])
            return (0, found + "\n", "") if found else (1, "", "No such file or directory")
        if argv[0] == "find":
            return 0, "".join(f"{line}\n" for line in self.finds.get(argv[1], [])), ""
        raise AssertionError(f"unexpected command {argv}")


def findings(control_id, **host):
    (control,) = [c for c in baseline.CONTROLS if c.id == control_id]
    return control.check(baseline.Probe(FakeHost(**host).run))


def account(user, host="localhost", plugin="mysql_native_password", auth="*ABC", locked="0", auth_or=None):
    """A row of the accounts query: user, host, plugin, authentication string (a hash), locked, auth_or."""
    return [user, host, plugin, auth, locked, auth_or]


def test_controls_have_unique_ids_titles_and_rationales():
    assert len(set(baseline.IDS)) == len(baseline.IDS)
    assert all(c.title and c.rationale.endswith(".") for c in baseline.CONTROLS)


def test_anonymous_wildcard_and_remote_root_accounts_are_found():
    sql = {ACCOUNTS: [account("root", auth_or='[{}, {"plugin": "unix_socket"}]', auth="invalid"),
                      account(""), account("app", "10.0.%"), account("report", "%"), account("root", "db1")]}
    assert findings("ACC-01", sql=sql) == ["anonymous account ''@'localhost'"]
    assert findings("ACC-02", sql=sql) == ["'report'@'%' accepts logins from any host"]  # a subnet names its hosts
    assert findings("ACC-03", sql=sql) == ["'root'@'db1' exists: root logs in on this host only (localhost)"]


def test_an_account_needs_a_password_a_socket_login_or_a_lock():
    sql = {ACCOUNTS: [account("root", auth="invalid", auth_or='[{}, {"plugin": "unix_socket"}]'),
                      account("mariadb.sys", auth="", locked="1"), account("sock", plugin="unix_socket", auth=""),
                      account("app"), account("open", auth="")]}
    assert findings("ACC-04", sql=sql) == ["'open'@'localhost' logs in without a password (mysql_native_password, not locked)"]


def test_administrative_privileges_only_on_administrative_accounts():
    sql = {PRIVILEGES: [["'root'@'localhost'", "SUPER", "YES"], ["'stockdb_admin'@'localhost'", "FILE", "YES"],
                        ["'stockdb_backup'@'localhost'", "RELOAD", "NO"], ["'stockdb_app'@'localhost'", "FILE", "NO"],
                        ["'stockdb_app'@'localhost'", "SELECT", "YES"]]}
    assert findings("ACC-05", sql=sql) == ["'stockdb_app'@'localhost' holds FILE, GRANT OPTION"]


HASH = "*" + "A" * 40


def test_accounts_use_ed25519_unless_their_clients_cannot():
    sql = {ACCOUNTS: [account("root", auth="invalid", auth_or='[{}, {"plugin": "unix_socket"}]'),  # no usable password
                      account("mariadb.sys", auth="", locked="1"),
                      account("stockdb_app", plugin="ed25519", auth="uFpdmt7LSzZj80IIM5nXEEWqK1yKv6A43SVqzewQOLM"),
                      account("stockdb_exporter", auth=HASH),  # allowed by default: its Debian 12 exporter lacks ed25519
                      account("stockdb_backup", auth=HASH),
                      account("halfway", plugin="ed25519", auth="x",  # mid-rotation, one way still weak
                              auth_or=f'[{{}}, {{"plugin": "mysql_native_password", "authentication_string": "{HASH}"}}]'),
                      account("ancient", plugin="mysql_old_password", auth="0123456789abcdef")]}
    assert findings("ACC-08", sql=sql) == ["'stockdb_backup'@'localhost' authenticates with mysql_native_password",
                                           "'halfway'@'localhost' authenticates with mysql_native_password",
                                           "'ancient'@'localhost' authenticates with mysql_old_password"]
    strict = baseline.Probe(FakeHost(sql=sql).run, {"native_password_accounts": []})
    (control,) = [c for c in baseline.CONTROLS if c.id == "ACC-08"]
    assert "'stockdb_exporter'@'localhost' authenticates with mysql_native_password" in control.check(strict)


@pytest.mark.parametrize(("value", "failed"), [("4294967295", True), ("10", False), ("3", False), (None, True)])
def test_lockout_needs_max_password_errors_within_the_limit(value, failed):
    variables = {} if value is None else {"max_password_errors": value}
    assert bool(findings("ACC-06", variables=variables)) is failed


def test_password_policy_needs_an_active_validation_plugin():
    assert findings("ACC-07", plugins={"simple_password_check": "ACTIVE"}) == []
    assert findings("ACC-07", plugins={"simple_password_check": "DISABLED"})


@pytest.mark.parametrize(("value", "path", "failed"), [
    ("", None, "anywhere"),
    ("/var/lib/mysql-files", None, "not a directory"),
    ("/var/lib/mysql-files", "777 mysql mysql directory", "open to everyone"),
    ("/var/lib/mysql-files", "750 mysql mysql directory", None),
])
def test_secure_file_priv_must_be_a_private_directory(value, path, failed):
    found = findings("CFG-02", variables={"secure_file_priv": value}, paths={"/var/lib/mysql-files": path} if path else {})
    assert (failed in found[0]) if failed else found == []


def test_configuration_switches():
    good = {"local_infile": "OFF", "have_symlink": "DISABLED", "skip_name_resolve": "ON", "log_bin": "ON",
            "sync_binlog": "1", "innodb_flush_log_at_trx_commit": "1", "have_ssl": "YES",
            "innodb_encrypt_tables": "FORCE", "encrypt_binlog": "ON", "server_audit_logging": "ON"}
    for control in ("CFG-01", "CFG-03", "CFG-05", "CFG-06", "NET-01", "ENC-01", "ENC-02"):
        assert findings(control, variables=good) == [], control
    bad = dict(good, local_infile="ON", have_symlink="YES", sync_binlog="0", have_ssl="DISABLED")
    assert findings("CFG-01", variables=bad) == ["local_infile = ON"]
    assert findings("CFG-03", variables=bad) == ["have_symlink = YES"]
    assert findings("CFG-06", variables=bad) == ["sync_binlog = 0"]
    assert findings("NET-01", variables=bad) == ["have_ssl = DISABLED"]
    assert findings("AUD-01", variables=good) == ["the server_audit plugin is not active"]
    assert findings("AUD-01", variables=good, plugins={"server_audit": "ACTIVE"}) == []


@pytest.mark.parametrize(("events", "failed"), [
    ("CONNECT,TABLE,QUERY_DDL,QUERY_DCL", None),
    ("CONNECT,QUERY", None),
    ("", None),  # an empty list records every class
    ("QUERY_DDL,QUERY_DCL", "server_audit_events = QUERY_DDL,QUERY_DCL records no CONNECT"),
    ("CONNECT,TABLE", "server_audit_events = CONNECT,TABLE records no DDL, DCL"),
])
def test_the_audit_trail_must_record_logins_ddl_and_grants(events, failed):
    found = findings("AUD-01", variables={"server_audit_logging": "ON", "server_audit_events": events},
                     plugins={"server_audit": "ACTIVE"})
    assert found == ([failed] if failed else [])
    assert findings("AUD-01", variables={"server_audit_logging": "OFF", "server_audit_events": events},
                    plugins={"server_audit": "ACTIVE"})[0] == "server_audit_logging = OFF"


def test_files_datadir_option_files_config_logs_and_backups():
    datadir = {"datadir": "/var/lib/mysql/"}
    assert findings("FS-01", variables=datadir, paths={"/var/lib/mysql": "750 mysql mysql directory"}) == []
    assert "mode 755" in findings("FS-01", variables={"datadir": "/var/lib/mysql/"},
                                  paths={"/var/lib/mysql": "755 mysql mysql directory"})[0]
    etc = {"/etc/stockdb": "750 root stockdb directory"}
    assert findings("FS-02", paths=etc, finds={"/etc/stockdb": ["600 root /etc/stockdb/app.cnf"]}) == []
    assert findings("FS-02", paths=etc, finds={"/etc/stockdb": ["644 root /etc/stockdb/app.cnf"]}) == [
        "/etc/stockdb/app.cnf: mode 644 owner root (a password file must be root's alone, 600)"]
    assert findings("FS-03", paths={"/etc/mysql": "755 root root directory"},
                    finds={"/etc/mysql": ["666 root /etc/mysql/my.cnf"]}) == [
        "/etc/mysql/my.cnf: mode 666 owner root (writable by others than root)"]
    logs = dict(variables={"slow_query_log_file": "/var/log/mysql/slow.log", "log_error": ""},
                paths={"/var/log/mysql": "2750 mysql adm directory"})
    assert findings("FS-04", **logs, finds={"/var/log/mysql": ["644 mysql /var/log/mysql/slow.log"]}) == [
        "/var/log/mysql/slow.log: mode 644 (readable by everyone)"]
    assert findings("FS-05", paths={}) == []  # no backups on this host
    assert findings("FS-05", paths={"/var/backups/stockdb": "755 root root directory"})


def test_evaluate_waives_with_a_reason_reports_errors_and_refuses_unknown_ids():
    host = FakeHost(variables={"local_infile": "ON"})
    results = {r["id"]: r for r in baseline.evaluate(baseline.Probe(host.run), {"CFG-01": "the seed needs it"})}
    assert results["CFG-01"]["status"] == "waived" and results["CFG-01"]["waiver"] == "the seed needs it"
    assert results["ACC-01"]["status"] == "pass"
    assert results["CFG-03"]["status"] == "fail"
    with pytest.raises(ValueError, match="unknown controls: NOPE-1"):
        baseline.evaluate(baseline.Probe(host.run), {"NOPE-1": "x"})

    def down(argv):
        return (1, "", "Can't connect to local server through socket") if argv[0] == "mariadb" else host.run(argv)

    broken = baseline.evaluate(baseline.Probe(down))
    assert {r["status"] for r in broken if r["id"].startswith("ACC")} == {"error"}
    assert "Can't connect" in broken[0]["findings"][0]
    assert baseline.summary(broken)["passed"] is False


def test_accounts_that_log_in_from_the_network_must_require_tls():
    # user, host, ssl_type (0 none, 1 SSL, 2 X509, 3 subject/issuer/cipher), locked
    sql = {"$.ssl_type": [["root", "localhost", "0", "0"], ["stockdb_admin", "127.0.0.1", "0", "0"],
                          ["stockdb_app", "10.0.0.%", "1", "0"], ["stockdb_repl", "10.0.0.12", "2", "0"],
                          ["stockdb_report", "10.0.1.%", "0", "0"], ["old", "10.0.2.%", "0", "1"]]}
    assert findings("NET-02", sql=sql) == ["'stockdb_report'@'10.0.1.%' logs in from the network without TLS (no REQUIRE SSL)"]
    assert findings("NET-02", sql={"$.ssl_type": [["stockdb_app", "localhost", "0", "0"]]}) == []
