"""Connection handling shared by the stockdb modules.

Credentials reach PyMySQL through a MySQL option file (`login_defaults_file`, written by the
mariadb role, mode 0600), never through the command line.
"""

import os
import re
import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    import pymysql
    from pymysql.constants import CLIENT

    MULTI_STATEMENTS = CLIENT.MULTI_STATEMENTS
    PYMYSQL_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - depends on the host
    pymysql = None
    MULTI_STATEMENTS = 0
    PYMYSQL_IMPORT_ERROR = traceback.format_exc()

# MariaDB error numbers the modules react to.
ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213
ER_CONSTRAINT_FAILED = 4025
RETRYABLE_ERRORS = (ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK)

# Readable kinds of the server's and the client library's error numbers (server 1000-1999 and
# 4000-, client library 2000-2999). Anything else is `other:<number>`, or `other:<exception type>`
# for an exception without one.
ERROR_KINDS = {
    ER_LOCK_WAIT_TIMEOUT: "lock_wait_timeout",
    ER_LOCK_DEADLOCK: "deadlock",
    ER_CONSTRAINT_FAILED: "constraint_failed",
    # The connection broke: killed, server gone, shut down, or timed out by either side.
    1053: "connection_lost",   # ER_SERVER_SHUTDOWN
    1077: "connection_lost",   # ER_NORMAL_SHUTDOWN
    1152: "connection_lost",   # ER_ABORTING_CONNECTION
    1158: "connection_lost",   # ER_NET_READ_ERROR
    1159: "connection_lost",   # ER_NET_READ_INTERRUPTED
    1160: "connection_lost",   # ER_NET_ERROR_ON_WRITE
    1161: "connection_lost",   # ER_NET_WRITE_INTERRUPTED
    1927: "connection_lost",   # ER_CONNECTION_KILLED
    4031: "connection_lost",   # ER_CLIENT_INTERACTION_TIMEOUT
    2006: "connection_lost",   # CR_SERVER_GONE_ERROR
    2013: "connection_lost",   # CR_SERVER_LOST
    2055: "connection_lost",   # CR_SERVER_LOST_EXTENDED
    2014: "commands_out_of_sync",
    # No connection could be made.
    2002: "connection_refused",  # CR_CONNECTION_ERROR (socket)
    2003: "connection_refused",  # CR_CONN_HOST_ERROR (TCP)
    2012: "connection_refused",  # CR_SERVER_HANDSHAKE_ERR
    1040: "too_many_connections",  # ER_CON_COUNT_ERROR: max_connections
    1203: "too_many_connections",  # ER_TOO_MANY_USER_CONNECTIONS: max_user_connections
    1045: "access_denied",
    # The server refused the statement.
    1021: "disk_full",         # ER_DISK_FULL
    1114: "table_full",        # ER_RECORD_FILE_FULL
    1969: "statement_timeout",  # ER_STATEMENT_TIMEOUT: max_statement_time
    1317: "query_interrupted",  # ER_QUERY_INTERRUPTED: KILL QUERY
    1290: "read_only",         # ER_OPTION_PREVENTS_STATEMENT
    1180: "commit_failed",     # ER_ERROR_DURING_COMMIT
}
# Kinds after which the connection is unusable: the client must connect again.
CONNECTION_KINDS = frozenset(("connection_lost", "commands_out_of_sync", "connection_refused", "too_many_connections",
                              "access_denied"))
# Write errors whose message names errno 28 (ENOSPC) are a full disk too.
_DISK_FULL_CODES = (1026, 1030)  # ER_ERROR_ON_WRITE, ER_GET_ERRNO
_ENOSPC = re.compile(r"No space left|\b(?:errcode|error|errno):? 28\b", re.IGNORECASE)


def connection_argument_spec():
    """Options every stockdb module takes to reach the server."""
    return dict(
        login_defaults_file=dict(type="path", default="/etc/stockdb/admin.cnf"),
        login_unix_socket=dict(type="path"),
        login_host=dict(type="str"),
        login_port=dict(type="int"),
        login_user=dict(type="str"),
        login_password=dict(type="str", no_log=True),
        database=dict(type="str", default="stockdb"),
        connect_timeout=dict(type="int", default=10),
    )


def require_pymysql(module):
    if pymysql is None:
        module.fail_json(msg=missing_required_lib("PyMySQL (Debian/Ubuntu package python3-pymysql)"),
                         exception=PYMYSQL_IMPORT_ERROR)


def require_option_file(module):
    """Fail naming the option file when it is missing (PyMySQL would silently ignore it)."""
    option_file = module.params.get("login_defaults_file")
    if option_file and not os.access(option_file, os.R_OK):
        module.fail_json(msg=f"login_defaults_file {option_file} does not exist or is not readable "
                             "(the mariadb role writes /etc/stockdb/*.cnf; run site.yml first)")


def connect_kwargs(params, autocommit=False):
    """PyMySQL keyword arguments from module parameters (option file first, explicit options win)."""
    kwargs = dict(
        database=params["database"],
        charset="utf8mb4",
        autocommit=autocommit,
        connect_timeout=params.get("connect_timeout") or 10,
    )
    if params.get("login_defaults_file"):
        kwargs["read_default_file"] = params["login_defaults_file"]
        kwargs["read_default_group"] = "client"
    for option, key in (("login_unix_socket", "unix_socket"), ("login_host", "host"), ("login_port", "port"),
                        ("login_user", "user"), ("login_password", "password")):
        if params.get(option) is not None:
            kwargs[key] = params[option]
    return kwargs


def connect(params, autocommit=False, **extra):
    """Open a connection; raises pymysql errors to the caller."""
    kwargs = connect_kwargs(params, autocommit=autocommit)
    kwargs.update(extra)
    return pymysql.connect(**kwargs)


def connect_fast(params, autocommit=False, multi_statements=False, **extra):
    """A connection for the hot path: mysqlclient (C, python3-mysqldb) when installed, else PyMySQL.

    Both speak DB-API with the same paramstyle and error arguments (errno, message), and take the
    same `extra` keywords used here (connect_timeout, read_timeout, write_timeout; whole seconds).
    """
    try:
        import MySQLdb
        from MySQLdb.constants import CLIENT as MYSQLDB_CLIENT
    except ImportError:
        return connect(params, autocommit=autocommit, client_flag=MULTI_STATEMENTS if multi_statements else 0,
                       **extra)
    kwargs = connect_kwargs(params, autocommit=autocommit)
    kwargs["db"] = kwargs.pop("database")
    if "password" in kwargs:
        kwargs["passwd"] = kwargs.pop("password")
    if multi_statements:
        kwargs["client_flag"] = MYSQLDB_CLIENT.MULTI_STATEMENTS
    kwargs.update(extra)
    return MySQLdb.connect(**kwargs)


def connect_or_fail(module, autocommit=False, **extra):
    """Open a connection or fail the module with a message naming the server and the cause."""
    require_pymysql(module)
    require_option_file(module)
    try:
        return connect(module.params, autocommit=autocommit, **extra)
    except Exception as exc:  # noqa: BLE001 - any connection failure ends the module
        where = module.params.get("login_defaults_file") or module.params.get("login_host") or "the server"
        module.fail_json(msg=f"cannot connect to database {module.params['database']!r} using {where}: {exc}")


def require_tables(module, cur, tables):
    """Fail the module naming the tables of `tables` missing from the connection's database: the trading
    schema is not applied (a fresh `make lab` provisions the server; playbooks/schema.yml makes the schema)."""
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
    present = {row[0] for row in cur.fetchall()}
    missing = sorted(set(tables) - present)
    if missing:
        module.fail_json(msg=f"database {module.params['database']!r} has no table {', '.join(missing)}: the trading "
                             "schema is not applied. Run playbooks/schema.yml (and playbooks/seed.yml for its data) first.")


def error_code(exc):
    """The MariaDB error number of a PyMySQL exception, or None."""
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def error_kind(exc):
    """A short readable name for what an exception of the driver (or of the network) means.

    A kind of ERROR_KINDS, `disk_full` for a write error of errno 28, `connection_lost` for a closed
    connection (number 0) or a socket error, else `other:<number>` or `other:<exception type>`.
    """
    if isinstance(exc, (OSError, EOFError)):  # socket errors, timeouts, a reset: what the drivers let through
        return "connection_lost"
    code = error_code(exc)
    if code is not None:
        if code in ERROR_KINDS:
            return ERROR_KINDS[code]
        if code == 1226 and "connections" in str(exc):  # ER_USER_LIMIT_REACHED: the account's MAX_USER_CONNECTIONS
            return "too_many_connections"
        if code in _DISK_FULL_CODES and _ENOSPC.search(str(exc)):
            return "disk_full"
        if code == 0:  # the driver's "(0, '')": the connection is closed
            return "connection_lost"
        return f"other:{code}"
    return f"other:{type(exc).__name__}"
