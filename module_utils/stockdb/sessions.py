"""The server's sessions: listing them with what they hold, choosing some by criteria, killing those.
library/stockdb_sessions.py wires it; library/stockdb_chaos.py finds its own sessions with the same listing.

  system      which threads are the server's own or replication's: never listed, never killed
  listing     the processlist with the connection attribute program_name (performance_schema), the
              InnoDB transactions (INNODB_TRX) and who waits for whose locks (INNODB_LOCK_WAITS)
  criteria    the checks of a request: at least one criterion, patterns that compile, times >= 0;
              a refusal names every parameter that is wrong
  selection   the sessions that meet every criterion (AND), never a system thread or our own
  kill        KILL QUERY ID (only the query seen) or KILL CONNECTION (its transaction rolls back),
              then waiting until what was killed has ended

Everything but kill() and wait_ended() works on rows (dicts keyed by column name), so it is tested
without a server. Standard library only; the caller passes a DB-API cursor.
"""

import re
import time

from .ops import OpsError

# Threads of the server itself and of replication (the binlog archiver's mariadb-binlog is a Binlog Dump).
SYSTEM_USERS = ("system user", "event_scheduler", "unauthenticated user", "")
SYSTEM_COMMANDS = ("Binlog Dump", "Binlog Dump GTID", "Slave_IO", "Slave_SQL", "Slave_worker", "Daemon",
                   "Register Slave")

# The server's threads but our own; TAG is the connection attribute program_name (NULL without performance_schema).
PROCESSLIST = ("SELECT p.ID, p.USER, p.HOST, p.DB, p.COMMAND, p.TIME, p.STATE, p.INFO, p.QUERY_ID, a.ATTR_VALUE AS TAG "
               "FROM information_schema.PROCESSLIST p "
               "LEFT JOIN performance_schema.session_connect_attrs a ON a.PROCESSLIST_ID = p.ID AND a.ATTR_NAME = 'program_name' "
               "WHERE p.ID <> CONNECTION_ID()")
PROCESSLIST_PLAIN = ("SELECT p.ID, p.USER, p.HOST, p.DB, p.COMMAND, p.TIME, p.STATE, p.INFO, p.QUERY_ID, NULL AS TAG "
                     "FROM information_schema.PROCESSLIST p WHERE p.ID <> CONNECTION_ID()")
TRANSACTIONS = ("SELECT trx_mysql_thread_id AS THREAD, trx_id AS TRX_ID, trx_state AS TRX_STATE, "
                "CAST(trx_started AS CHAR) AS TRX_STARTED, TIMESTAMPDIFF(SECOND, trx_started, NOW()) AS TRX_AGE, "
                "trx_rows_modified AS TRX_ROWS_MODIFIED, trx_rows_locked AS TRX_ROWS_LOCKED FROM information_schema.INNODB_TRX")
# MariaDB 10.11 still has INNODB_LOCK_WAITS (MySQL 8 moved it to performance_schema.data_lock_waits).
LOCK_WAITS = ("SELECT r.trx_mysql_thread_id AS WAITING, b.trx_mysql_thread_id AS BLOCKING "
              "FROM information_schema.INNODB_LOCK_WAITS w "
              "JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id "
              "JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id")

# Criteria a request must name at least one of; booleans count when true, lists when not empty.
CRITERIA = ("ids", "users", "min_time", "command", "state_pattern", "info_pattern", "program_name_pattern",
            "idle_in_transaction", "min_transaction_time", "blocking")
PATTERNS = ("state_pattern", "info_pattern", "program_name_pattern")
KILL_MODES = ("connection", "query")
MAX_KILLS_DEFAULT = 20
INFO_SHOWN = 300  # characters of a query's text in a report

# Errors of a KILL whose target is gone: unknown thread, unknown query id.
GONE = (1094, 1957)


class SessionsError(OpsError):
    """A request was refused; the message names every parameter that is wrong."""


def is_system(row):
    """A thread of the server or of replication: never a session to list or kill."""
    return (row.get("USER") or "") in SYSTEM_USERS or row.get("COMMAND") in SYSTEM_COMMANDS


# ---------------------------------------------------------------- criteria
def given(params, name):
    """A criterion counts when given: true (booleans), not empty (lists), any number (0 too)."""
    value = params.get(name)
    return value is not None and value is not False and value != []


def check_criteria(params):
    """The request's criteria, patterns compiled; SessionsError naming every parameter that is wrong.

    params: ids, users, min_time, command, state_pattern, info_pattern, program_name_pattern,
    idle_in_transaction, min_transaction_time, blocking, kill_mode, max_kills (missing = not given).
    """
    problems = []
    named = [name for name in CRITERIA if given(params, name)]
    if not named:
        raise SessionsError(f"no criterion given: name at least one of {', '.join(CRITERIA)} "
                            "(sessions are never selected, let alone killed, all at once)")
    criteria = {name: params[name] for name in named}
    for name in ("min_time", "min_transaction_time"):
        value = params.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            problems.append(f"{name}={value!r} must be a number of seconds >= 0")
    for name in PATTERNS:
        if name in criteria:
            try:
                criteria[name] = re.compile(str(params[name]), re.IGNORECASE)
            except re.error as exc:
                problems.append(f"{name}={params[name]!r} is not a valid regular expression: {exc}")
    bad = [v for v in params.get("ids") or () if not isinstance(v, int) or isinstance(v, bool) or v < 1]
    if bad:
        problems.append(f"ids must be thread ids (integers >= 1), not {bad}")
    if "users" in criteria:
        criteria["users"] = {str(u) for u in params["users"]}
    if "command" in criteria:
        criteria["command"] = {str(c).lower() for c in params["command"]}
    max_kills = params.get("max_kills", MAX_KILLS_DEFAULT)
    if not isinstance(max_kills, int) or isinstance(max_kills, bool) or max_kills < 1:
        problems.append(f"max_kills={max_kills!r} must be an integer >= 1")
    mode = params.get("kill_mode", "connection")
    if mode not in KILL_MODES:
        problems.append(f"kill_mode={mode!r} is not one of {', '.join(KILL_MODES)}")
    elif mode == "query" and params.get("idle_in_transaction"):
        problems.append("kill_mode=query cannot end an idle transaction (its session runs no query): "
                        "use kill_mode=connection with idle_in_transaction=true")
    if problems:
        raise SessionsError("; ".join(problems))
    return criteria


# ---------------------------------------------------------------- listing
def describe_sessions(processlist, transactions=(), waits=(), own_id=None):
    """One dict per session the server lists, system threads and our own connection left out.

    processlist: rows of PROCESSLIST (or PROCESSLIST_PLAIN); transactions: rows of TRANSACTIONS;
    waits: rows of LOCK_WAITS (WAITING, BLOCKING thread ids). Each session has its InnoDB transaction
    (trx_* None without one), the sessions it waits for and those waiting for it.
    """
    trx = {row["THREAD"]: row for row in transactions}
    waiting_for, blocked = {}, {}
    for row in waits:
        waiting_for.setdefault(row["WAITING"], set()).add(row["BLOCKING"])
        blocked.setdefault(row["BLOCKING"], set()).add(row["WAITING"])
    found = []
    for row in processlist:
        if is_system(row) or row["ID"] == own_id:
            continue
        thread = row["ID"]
        own = trx.get(thread) or {}
        found.append(dict(
            id=thread, user=row.get("USER"), host=row.get("HOST"), db=row.get("DB"), command=row.get("COMMAND"),
            time=int(row.get("TIME") or 0), state=row.get("STATE") or "", info=row.get("INFO"),
            query_id=row.get("QUERY_ID"), program_name=row.get("TAG"),
            trx_id=str(own["TRX_ID"]) if own else None, trx_state=own.get("TRX_STATE"), trx_started=own.get("TRX_STARTED"),
            trx_age=int(own["TRX_AGE"]) if own.get("TRX_AGE") is not None else None,
            trx_rows_modified=int(own["TRX_ROWS_MODIFIED"]) if own else None,
            trx_rows_locked=int(own["TRX_ROWS_LOCKED"]) if own else None,
            waiting_for=sorted(waiting_for.get(thread, ())), blocked_ids=sorted(blocked.get(thread, ())),
            blocked_sessions=len(blocked.get(thread, ())),
        ))
    return sorted(found, key=lambda s: s["id"])


def read(cur, performance_schema=None):
    """(sessions, performance_schema on) from a cursor of a connection that has PROCESS."""
    cur.execute("SELECT CONNECTION_ID(), @@performance_schema")
    own_id, on = cur.fetchone()
    on = bool(on) if performance_schema is None else performance_schema
    cur.execute(PROCESSLIST if on else PROCESSLIST_PLAIN)
    processlist = _rows(cur)
    cur.execute(TRANSACTIONS)
    transactions = _rows(cur)
    cur.execute(LOCK_WAITS)
    waits = _rows(cur)
    return describe_sessions(processlist, transactions, waits, own_id), on


def _rows(cur):
    names = [d[0].upper() for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


# ---------------------------------------------------------------- selection
def matches(session, criteria):
    """True when the session meets every criterion."""
    c = criteria
    checks = (
        ("ids", lambda: session["id"] in c["ids"]),
        ("users", lambda: session["user"] in c["users"]),
        ("min_time", lambda: session["time"] >= c["min_time"]),
        ("command", lambda: (session["command"] or "").lower() in c["command"]),
        ("state_pattern", lambda: bool(c["state_pattern"].search(session["state"] or ""))),
        ("info_pattern", lambda: bool(c["info_pattern"].search(session["info"] or ""))),
        ("program_name_pattern", lambda: bool(c["program_name_pattern"].search(session["program_name"] or ""))),
        ("idle_in_transaction", lambda: session["command"] == "Sleep" and session["trx_id"] is not None),
        ("min_transaction_time", lambda: session["trx_age"] is not None and session["trx_age"] >= c["min_transaction_time"]),
        ("blocking", lambda: session["blocked_sessions"] > 0),
    )
    return all(test() for name, test in checks if name in c)


def select(sessions, criteria):
    """The sessions (of describe_sessions: no system thread, not our own) that meet every criterion."""
    return [s for s in sessions if matches(s, criteria)]


def shown(session):
    """A session as reported: the query text cut to INFO_SHOWN characters."""
    info = session["info"]
    if info is not None and len(info) > INFO_SHOWN:
        info = info[:INFO_SHOWN] + f"... ({len(session['info'])} characters)"
    return dict(session, info=info)


def over_bound(chosen, max_kills):
    """The refusal when more sessions match than max_kills, else None."""
    if len(chosen) > max_kills:
        return (f"{len(chosen)} sessions match, more than max_kills={max_kills}: nothing killed; narrow the "
                f"criteria or raise max_kills")
    return None


# ---------------------------------------------------------------- kill
def kill_statement(session, mode):
    """The KILL of a session, or None when there is nothing to kill in this mode (no query running)."""
    if mode == "connection":
        return f"KILL CONNECTION {int(session['id'])}"
    if session["command"] == "Sleep" or session["query_id"] is None:
        return None
    # only the query seen when selecting, not one the session started since
    return f"KILL QUERY ID {int(session['query_id'])}"


def kill(cur, chosen, mode, error_code):
    """KILL each chosen session; returns (killed, skipped, failed). error_code(exc) -> MariaDB error number.

    A killed connection's open transaction is rolled back by the server: its trx_rows_modified is
    reported as rolled_back_rows. A session gone meanwhile is skipped; a KILL the server refuses is
    recorded in failed and the others are still killed."""
    killed, skipped, failed = [], [], []
    for session in chosen:
        statement = kill_statement(session, mode)
        if statement is None:
            skipped.append(dict(id=session["id"], user=session["user"],
                                reason="no query running (Sleep): kill_mode=connection ends the session"))
            continue
        try:
            cur.execute(statement)
        except Exception as exc:  # noqa: BLE001 - recorded per session, the caller fails naming them
            if error_code(exc) in GONE:
                skipped.append(dict(id=session["id"], user=session["user"], reason="ended before the kill"))
            else:
                failed.append(dict(id=session["id"], user=session["user"], statement=statement,
                                   error=" ".join(str(exc).split())))
            continue
        rolled_back = session["trx_rows_modified"] if mode == "connection" and session["trx_id"] is not None else None
        killed.append(dict(id=session["id"], user=session["user"], kill_mode=mode, statement=statement,
                           query_id=session["query_id"], trx_id=session["trx_id"], rolled_back_rows=rolled_back,
                           ended=None))
    return killed, skipped, failed


def still_running(cur, killed):
    """Ids of the killed sessions (connection) or queries (query) the server still runs (a rollback in progress)."""
    if not killed:
        return []
    ids = ", ".join(str(int(k["id"])) for k in killed)
    cur.execute(f"SELECT ID, QUERY_ID, COMMAND FROM information_schema.PROCESSLIST WHERE ID IN ({ids})")  # noqa: S608 - integers
    now = {row[0]: (row[1], row[2]) for row in cur.fetchall()}
    running = []
    for k in killed:
        if k["id"] not in now:
            continue
        query_id, command = now[k["id"]]
        if k["kill_mode"] == "connection" or (query_id == k["query_id"] and command not in ("Sleep",)):
            running.append(k["id"])
    return running


def wait_ended(cur, killed, seconds, clock=time.monotonic, sleep=time.sleep):
    """Wait up to `seconds` until nothing killed runs any more; sets each one's `ended`; returns the ids still running."""
    deadline = clock() + max(0, seconds)
    while True:
        running = still_running(cur, killed)
        if not running or clock() >= deadline:
            break
        sleep(0.1)
    for k in killed:
        k["ended"] = k["id"] not in running
    return running
