"""Connection handling shared by the stockdb modules.

Credentials reach PyMySQL through a MySQL option file (`login_defaults_file`, written by the
mariadb role, mode 0600), never through the command line.
"""

import os
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


def connect_fast(params, autocommit=False, multi_statements=False):
    """A connection for the hot path: mysqlclient (C, python3-mysqldb) when installed, else PyMySQL.

    Both speak DB-API with the same paramstyle and error arguments (errno, message).
    """
    try:
        import MySQLdb
        from MySQLdb.constants import CLIENT as MYSQLDB_CLIENT
    except ImportError:
        return connect(params, autocommit=autocommit, client_flag=MULTI_STATEMENTS if multi_statements else 0)
    kwargs = connect_kwargs(params, autocommit=autocommit)
    kwargs["db"] = kwargs.pop("database")
    if "password" in kwargs:
        kwargs["passwd"] = kwargs.pop("password")
    if multi_statements:
        kwargs["client_flag"] = MYSQLDB_CLIENT.MULTI_STATEMENTS
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


def error_code(exc):
    """The MariaDB error number of a PyMySQL exception, or None."""
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None
