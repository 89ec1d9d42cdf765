"""The security baseline of a database host: the controls an auditor checks, each with an id and a rationale.

In the spirit of the dev-sec MySQL baseline and the CIS benchmark for MariaDB, for this project's hosts.
A control looks at the live host through a `Probe` - SQL as root over the unix socket, `stat` and `find`
for files - so the same controls run from the Ansible module `stockdb_baseline` (commands on the host)
and from the testinfra suite tests/integration/test_baseline.py (commands through testinfra). Nothing is
changed on the host.

A control's check returns a list of findings: empty means it passes, each finding says what is wrong.
"""

import json
import re
import shlex
from collections import namedtuple

Control = namedtuple("Control", "id title rationale check")

# Global privileges that administer the server itself or reach outside it (files, other accounts).
ADMIN_PRIVILEGES = ("SUPER", "FILE", "SHUTDOWN", "CREATE USER", "SET USER", "READ_ONLY ADMIN")
# Accounts of the distribution that administer the server (unix socket logins of root and mysql).
SYSTEM_ADMINS = ("root", "mysql")
# Authentication plugins that need no stored secret because the operating system vouches for the user.
SOCKET_PLUGINS = ("unix_socket", "gssapi", "pam")


class ProbeError(Exception):
    """A command the probe ran failed (the server is down, root cannot log in by socket, ...)."""


class Probe:
    """What the controls may ask of a host. `run(argv)` runs a command there and returns (rc, stdout, stderr)."""

    def __init__(self, run, settings=None):
        self._run = run
        self.settings = dict(DEFAULTS, **(settings or {}))
        self._variables = None
        self._plugins = None

    def command(self, argv):
        rc, out, err = self._run(argv)
        if rc != 0:
            raise ProbeError(f"{shlex.join(argv)} failed (rc {rc}): {(err or out).strip()[:300]}")
        return out

    def sql(self, query):
        """Rows of a query as lists of strings (None for NULL), as root over the unix socket."""
        out = self.command(["mariadb", "--batch", "--skip-column-names", "--raw", "-e", query])
        return [[None if v == "NULL" else v for v in line.split("\t")] for line in out.splitlines()]

    def variable(self, name):
        """A global server variable (lower-case name), or None where this server has no such variable."""
        if self._variables is None:
            self._variables = {k.lower(): v for k, v in self.sql("SHOW GLOBAL VARIABLES")}
        return self._variables.get(name)

    def plugin(self, name):
        """The status of a server plugin (ACTIVE, ...), or None when it is not installed."""
        if self._plugins is None:
            rows = self.sql("SELECT plugin_name, plugin_status FROM information_schema.plugins")
            self._plugins = {k.lower(): v for k, v in rows}
        return self._plugins.get(name)

    def stat(self, path):
        """(octal mode, owner, group, kind) of a path, or None when it does not exist."""
        rc, out, _err = self._run(["stat", "-c", "%a %U %G %F", path])
        if rc != 0:
            return None
        mode, owner, group, kind = out.strip().split(" ", 3)
        return int(mode, 8), owner, group, kind

    def find(self, root, *tests):
        """`find ROOT TESTS...` of what exists: (octal mode, owner, path) of each match; nothing when ROOT is absent."""
        if self.stat(root) is None:
            return []
        out = self.command(["find", root, *tests, "-printf", "%m %u %p\n"])
        return [(int(m, 8), u, p) for m, u, p in (line.split(" ", 2) for line in out.splitlines())]


DEFAULTS = dict(
    # Accounts allowed the administrative privileges besides root and mysql (the role's admin account).
    admin_accounts=["stockdb_admin"],
    # Failed logins after which an account must be locked (max_password_errors at most this).
    max_password_errors=10,
    # Directories of client option files that hold passwords (the mariadb role's mariadb_client_config_dir).
    option_file_dirs=["/etc/stockdb"],
    # Where backups are kept (roles/backup: backup_dir).
    backup_dir="/var/backups/stockdb",
    # Accounts whose clients cannot use ed25519 and may keep mysql_native_password (the mariadb role's
    # monitoring and reporting accounts by default: mariadb_exporter_auth_plugin, mariadb_report_auth_plugin).
    native_password_accounts=["stockdb_exporter", "stockdb_report"],
)


def _accounts(p):
    return p.sql("SELECT user, host, JSON_VALUE(priv, '$.plugin'), JSON_VALUE(priv, '$.authentication_string'), "
                 "COALESCE(JSON_VALUE(priv, '$.account_locked'), '0'), JSON_EXTRACT(priv, '$.auth_or') FROM mysql.global_priv")


def anonymous_accounts(p):
    return [f"anonymous account ''@'{host}'" for user, host, *_ in _accounts(p) if user == ""]


def any_host_accounts(p):
    """Accounts whose host is nothing but wildcards ('%', '%.%'); a subnet pattern such as '10.0.0.%' names its hosts."""
    return [f"'{user}'@'{host}' accepts logins from any host" for user, host, *_ in _accounts(p)
            if host and not host.strip("%._")]


def remote_root(p):
    return [f"'root'@'{host}' exists: root logs in on this host only (localhost)" for user, host, *_ in _accounts(p)
            if user == "root" and host != "localhost"]


def accounts_without_credential(p):
    found = []
    for user, host, plugin, secret, locked, auth_or in _accounts(p):
        if locked == "1" or user == "PUBLIC" or plugin in SOCKET_PLUGINS or secret:
            continue
        if auth_or and any(f'"{name}"' in auth_or for name in SOCKET_PLUGINS):
            continue
        found.append(f"'{user}'@'{host}' logs in without a password ({plugin or 'no plugin'}, not locked)")
    return found


# Authentication plugins whose stored string or handshake is enough to attack the password offline
# (one unsalted SHA-1 of a SHA-1; the pre-4.1 scramble), with the form of a string that logs in.
WEAK_PLUGINS = {"mysql_native_password": re.compile(r"\*[0-9A-F]{40}"), "mysql_old_password": re.compile(r"[0-9a-f]{16}")}


def _methods(plugin, secret, auth_or):
    """(plugin, stored string) of each way an account logs in: the top level, or each IDENTIFIED VIA ... OR ... part."""
    if not auth_or:
        return [(plugin, secret)]
    return [(plugin, secret) if not m else (m.get("plugin"), m.get("authentication_string") or "") for m in json.loads(auth_or)]


def weak_authentication(p):
    """Accounts that log in by a weak plugin with a usable password ('invalid', as root's, cannot log in)."""
    allowed = set(p.settings["native_password_accounts"])
    found = []
    for user, host, plugin, secret, locked, auth_or in _accounts(p):
        if locked == "1" or user == "PUBLIC":
            continue
        weak = sorted({name for name, string in _methods(plugin, secret, auth_or)
                       if name in WEAK_PLUGINS and WEAK_PLUGINS[name].fullmatch(string or "")})
        if weak and not (user in allowed and weak == ["mysql_native_password"]):
            found.append(f"'{user}'@'{host}' authenticates with {', '.join(weak)}")
    return found


def admin_privileges(p):
    allowed = set(SYSTEM_ADMINS) | set(p.settings["admin_accounts"])
    found = {}
    rows = p.sql("SELECT grantee, privilege_type, is_grantable FROM information_schema.user_privileges")
    for grantee, privilege, grantable in rows:
        user = grantee.split("@", 1)[0].strip("'")
        if user in allowed:
            continue
        if privilege in ADMIN_PRIVILEGES:
            found.setdefault(grantee, set()).add(privilege)
        if grantable == "YES":
            found.setdefault(grantee, set()).add("GRANT OPTION")
    return [f"{grantee} holds {', '.join(sorted(privs))}" for grantee, privs in sorted(found.items())]


def login_lockout(p):
    value = p.variable("max_password_errors")
    limit = p.settings["max_password_errors"]
    if value is None:
        return ["max_password_errors does not exist on this server (MariaDB 10.4 or later has it)"]
    if int(value) > limit:
        return [f"max_password_errors = {value}: an account is not locked after {limit} failed logins"]
    return []


def password_policy(p):
    active = [name for name in ("simple_password_check", "cracklib_password_check") if p.plugin(name) == "ACTIVE"]
    return [] if active else ["no password validation plugin is active (simple_password_check, cracklib_password_check)"]


def _is(p, name, *wanted):
    value = p.variable(name)
    return [] if value is not None and value.upper() in wanted else [f"{name} = {value}"]


def local_infile(p):
    return _is(p, "local_infile", "OFF", "0")


def secure_file_priv(p):
    value = p.variable("secure_file_priv")
    if not value:
        return [f"secure_file_priv = {value!r}: FILE statements may read and write anywhere the server can"]
    st = p.stat(value)
    if st is None or not st[3].startswith("directory"):
        return [f"secure_file_priv = {value!r} is not a directory"]
    if st[0] & 0o007:
        return [f"secure_file_priv directory {value} is open to everyone (mode {st[0]:o})"]
    return []


def symbolic_links(p):
    return _is(p, "have_symlink", "DISABLED", "NO")


def leftover_test_databases(p):
    rows = p.sql("SELECT schema_name FROM information_schema.schemata WHERE schema_name = 'test' OR schema_name LIKE 'test\\_%'")
    return [f"database {name} exists (anyone may get rights on test databases)" for (name,) in rows]


def name_resolve(p):
    return _is(p, "skip_name_resolve", "ON", "1")


def durability(p):
    return (_is(p, "log_bin", "ON", "1") + _is(p, "sync_binlog", "1")
            + _is(p, "innodb_flush_log_at_trx_commit", "1"))


def tls(p):
    return _is(p, "have_ssl", "YES")


# Where an account's host means "this host": a login over the socket or loopback crosses no network.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def remote_accounts_without_tls(p):
    """Accounts that log in from the network must require TLS (REQUIRE SSL, X509 or a subject, issuer or cipher)."""
    rows = p.sql("SELECT user, host, COALESCE(JSON_VALUE(priv, '$.ssl_type'), '0'), "
                 "COALESCE(JSON_VALUE(priv, '$.account_locked'), '0') FROM mysql.global_priv "
                 "WHERE COALESCE(JSON_VALUE(priv, '$.is_role'), '0') IN ('0', 'false')")
    return [f"'{user}'@'{host}' logs in from the network without TLS (no REQUIRE SSL)"
            for user, host, ssl_type, locked in rows if host not in LOCAL_HOSTS and ssl_type == "0" and locked != "1"]


def audit(p):
    if p.plugin("server_audit") != "ACTIVE":
        return ["the server_audit plugin is not active"]
    found = _is(p, "server_audit_logging", "ON", "1")
    events = {e.strip().upper() for e in (p.variable("server_audit_events") or "").split(",") if e.strip()}
    # An empty list records everything; otherwise logins, DDL and grants must be among the classes.
    missing = [] if not events else [name for name, covered in (
        ("CONNECT", "CONNECT" in events), ("DDL", events & {"QUERY", "QUERY_DDL"}), ("DCL", events & {"QUERY", "QUERY_DCL"}))
        if not covered]
    if missing:
        found.append(f"server_audit_events = {p.variable('server_audit_events')} records no {', '.join(missing)}")
    return found


def table_encryption(p):
    return _is(p, "innodb_encrypt_tables", "ON", "FORCE")


def binlog_encryption(p):
    return _is(p, "encrypt_binlog", "ON", "1")


def datadir(p):
    path = (p.variable("datadir") or "").rstrip("/") or "/var/lib/mysql"
    st = p.stat(path)
    if st is None:
        return [f"datadir {path} does not exist"]
    mode, owner, _group, _kind = st
    found = [f"datadir {path} is owned by {owner}, not mysql"] if owner != "mysql" else []
    if mode & 0o027:
        found.append(f"datadir {path} has mode {mode:o}: others (or its group, writing) reach the data files")
    return found


def option_files(p):
    found = []
    for directory in p.settings["option_file_dirs"]:
        for mode, owner, path in p.find(directory, "-maxdepth", "1", "-name", "*.cnf", "-type", "f"):
            if owner != "root" or mode & 0o077:
                found.append(f"{path}: mode {mode:o} owner {owner} (a password file must be root's alone, 600)")
    st = p.stat("/etc/mysql/debian.cnf")
    if st is not None and (st[1] != "root" or st[0] & 0o077):
        found.append(f"/etc/mysql/debian.cnf: mode {st[0]:o} owner {st[1]}")
    return found


def server_config(p):
    return [f"{path}: mode {mode:o} owner {owner} (writable by others than root)"
            for mode, owner, path in p.find("/etc/mysql", "!", "-type", "l", "(", "-perm", "/022", "-o", "!", "-user", "root",
                                            ")")]


def server_logs(p):
    dirs = sorted({f.rsplit("/", 1)[0] for f in (p.variable("slow_query_log_file"), p.variable("general_log_file"),
                                                p.variable("log_error"), p.variable("server_audit_file_path"))
                   if f and f.startswith("/")})
    return [f"{path}: mode {mode:o} (readable by everyone)" for d in dirs
            for mode, _owner, path in p.find(d, "-maxdepth", "1", "-perm", "/004", "!", "-type", "l")]


def backups(p):
    path = p.settings["backup_dir"]
    st = p.stat(path)
    if st is None:
        return []
    return [f"{path}: mode {st[0]:o} (others can list or read backups)"] if st[0] & 0o007 else []


CONTROLS = (
    Control("ACC-01", "No anonymous account", "An empty user name lets anyone log in.", anonymous_accounts),
    Control("ACC-02", "No account accepts logins from any host",
            "A '%' host lets a stolen password work from anywhere; accounts name the hosts or subnet they serve.",
            any_host_accounts),
    Control("ACC-03", "root logs in on this host only", "root over the network is the first account an attacker tries.",
            remote_root),
    Control("ACC-04", "Every account needs a credential",
            "An account without a password, socket authentication or a lock is open to whoever reaches the port.",
            accounts_without_credential),
    Control("ACC-05", "Only administrative accounts hold administrative privileges",
            "SUPER, FILE, SHUTDOWN, CREATE USER and GRANT OPTION on an application account turn a leak into a takeover.",
            admin_privileges),
    Control("ACC-06", "Accounts lock after repeated failed logins",
            "Without a lockout a password can be guessed at the server's speed (max_password_errors).", login_lockout),
    Control("ACC-07", "A password policy rejects weak passwords",
            "Human accounts choose passwords; a validation plugin refuses the guessable ones.", password_policy),
    Control("ACC-08", "Accounts authenticate with ed25519 where their clients can",
            "mysql_native_password's stored hash and captured handshake can be attacked offline at SHA-1 speed; ed25519 "
            "stores a public key. Only accounts whose clients lack ed25519 (listed) may keep it.", weak_authentication),
    Control("CFG-01", "LOAD DATA LOCAL is off", "local_infile lets a server read files of the client (and a client "
            "feed files into tables): a path for data theft.", local_infile),
    Control("CFG-02", "Server-side file import and export are confined to one private directory",
            "secure_file_priv keeps SELECT ... INTO OUTFILE and LOAD DATA INFILE out of the rest of the file system.",
            secure_file_priv),
    Control("CFG-03", "Symbolic links are off",
            "Table files linked out of the datadir can overwrite or expose files elsewhere.", symbolic_links),
    Control("CFG-04", "No test database", "Test databases grant rights to any account by default.", leftover_test_databases),
    Control("CFG-05", "Logins do not depend on DNS",
            "Accounts are matched by address: a forged or slow reverse lookup neither grants nor stalls a login.",
            name_resolve),
    Control("CFG-06", "Every acknowledged trade is durable",
            "Binary log on, sync_binlog = 1, innodb_flush_log_at_trx_commit = 1: a crash loses no acknowledged trade, "
            "and the binary log is the record of every change.", durability),
    Control("NET-01", "TLS is available to clients",
            "Passwords and customers' data cross the network encrypted when clients are not on this host.", tls),
    Control("NET-02", "Accounts that log in from the network require TLS",
            "A client that may choose plain text will, through a misconfiguration or a downgrade, and send its "
            "password and the trades in the clear.", remote_accounts_without_tls),
    Control("AUD-01", "An audit trail records logins and changes",
            "Who logged in, who changed what and who read personal data must be answerable after the fact.", audit),
    Control("ENC-01", "Tables are encrypted at rest", "A copied disk or datadir must not expose customers' data.",
            table_encryption),
    Control("ENC-02", "Binary logs are encrypted at rest", "Binary logs hold every changed row, personal data included.",
            binlog_encryption),
    Control("FS-01", "The datadir is the server's alone", "Data files readable by other accounts bypass every grant.",
            datadir),
    Control("FS-02", "Option files with passwords are root's alone (mode 600)",
            "A readable option file hands out an account's password.", option_files),
    Control("FS-03", "The server's configuration is writable by root only",
            "Whoever writes my.cnf decides what the server loads and where it writes.", server_config),
    Control("FS-04", "Server logs are not readable by everyone",
            "Slow, general and audit logs hold statement text, customers' data included.", server_logs),
    Control("FS-05", "Backups are not readable by everyone", "A backup is the whole database.", backups),
)
IDS = tuple(c.id for c in CONTROLS)


def evaluate(probe, waivers=None):
    """Run every control; a waived control that fails is reported as waived with its reason.

    Returns the results in control order: id, title, rationale, status (pass, fail, waived or error) and
    findings (what is wrong, or the error), plus `waiver` (the reason) where one was given.
    """
    waivers = waivers or {}
    unknown = sorted(set(waivers) - set(IDS))
    if unknown:
        raise ValueError(f"waivers name unknown controls: {', '.join(unknown)} (controls: {', '.join(IDS)})")
    results = []
    for control in CONTROLS:
        try:
            findings, status = control.check(probe), None
        except (ProbeError, ValueError) as exc:
            findings, status = [str(exc)], "error"
        status = status or ("pass" if not findings else "waived" if control.id in waivers else "fail")
        result = dict(id=control.id, title=control.title, rationale=control.rationale, status=status, findings=findings)
        if control.id in waivers:
            result["waiver"] = waivers[control.id]
        results.append(result)
    return results


def summary(results):
    counts = {s: sum(r["status"] == s for r in results) for s in ("pass", "fail", "waived", "error")}
    return dict(counts, passed=counts["fail"] == 0 and counts["error"] == 0)
