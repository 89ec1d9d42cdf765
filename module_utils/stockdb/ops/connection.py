"""MariaDB connections of the operations code. Driver errors become OpsError here.

A job that meets a stopped server, a changed password or a lost connection must report it as a
failure (metrics, log, alert log), not end in a PyMySQL traceback: every connection is opened by
connect() and every statement runs inside driver_errors(), which names the action that failed.
Credentials come from MySQL option files only.
"""

import os
from contextlib import contextmanager

from . import OpsError

try:
    import pymysql
    DriverError = pymysql.err.Error
except ImportError:  # pragma: no cover - depends on the host
    pymysql = None

    class DriverError(Exception):
        """Stands in for pymysql.err.Error where PyMySQL is missing (nothing raises it)."""


def describe(exc):
    """'MariaDB error 2002: Can't connect ...' from a driver error, on one line."""
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        text = f"MariaDB error {args[0]}: {args[1]}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


@contextmanager
def driver_errors(action):
    """Turn a PyMySQL error raised inside the block into OpsError('<action>: MariaDB error N: ...')."""
    try:
        yield
    except DriverError as exc:
        raise OpsError(f"{action}: {describe(exc)}") from exc


def connect(defaults_file, database=None, unix_socket=None, **extra):
    """A PyMySQL connection with the credentials of an option file ([client] group)."""
    if pymysql is None:
        raise OpsError("PyMySQL is missing (Debian/Ubuntu package python3-pymysql)")
    if not os.access(defaults_file, os.R_OK):
        raise OpsError(f"option file {defaults_file} does not exist or is not readable")
    kwargs = dict(read_default_file=defaults_file, read_default_group="client", charset="utf8mb4", connect_timeout=10)
    if database:
        kwargs["database"] = database
    if unix_socket:
        kwargs["unix_socket"] = unix_socket
    kwargs.update(extra)
    where = f"socket {unix_socket}" if unix_socket else f"the account of {defaults_file}"
    with driver_errors(f"cannot connect to MariaDB with {where}"):
        return pymysql.connect(**kwargs)


@contextmanager
def cursor(defaults_file, action, database=None, unix_socket=None, read_timeout=None):
    """A cursor on a new connection, closed afterwards; driver errors name the action. read_timeout: seconds
    to wait for each answer of the server (None: as long as it takes)."""
    extra = dict(read_timeout=read_timeout) if read_timeout else {}
    conn = connect(defaults_file, database=database, unix_socket=unix_socket, **extra)
    try:
        with driver_errors(action), conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def identifier(name):
    """A MariaDB identifier quoted with backticks (a backtick inside is doubled)."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise OpsError(f"{name!r} is not a valid identifier")
    return "`" + name.replace("`", "``") + "`"
