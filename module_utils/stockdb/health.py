"""The periodic health check (성능 상태 점검) of a MariaDB server: reachability and six read-only checks.

Pure standard library and no Ansible imports: the stockdb-ops command started by a systemd timer runs it
as well as Ansible. One run needs an account with PROCESS (INNODB_TRX) and SLAVE MONITOR (SHOW ALL SLAVES
STATUS). Each check returns {"ok", "value", "threshold", "detail"}; a check breaches when value > threshold.
  server             1 when the server cannot be reached (then only the disk check runs besides)
  connections        Threads_connected / @@max_connections
  slow_queries       new slow queries since the previous run (Slow_queries delta; first run 0)
  long_transactions  InnoDB transactions open longer than long_transaction_seconds (allowed: 0)
  lock_waits         transactions in LOCK WAIT longer than lock_wait_seconds
  disk               worst used ratio (as df shows it) of the disk_paths that exist
  replication        worst Seconds_Behind_Master; also breached by a stopped thread or a NULL lag
A check whose query fails is not ok, with value None and the error as detail; the other checks still run.
The host's health job (ops/jobs.py) adds `rto`, the estimated recovery time (ops/rto.py), to the same result.
"""

import shutil
from datetime import datetime, timezone

from . import replication

DEFAULTS = dict(
    connections_max_ratio=0.8,
    slow_queries_max=10,
    long_transaction_seconds=60,
    lock_waits_max=0,
    lock_wait_seconds=5,
    disk_max_ratio=0.85,
    disk_paths=["/var/lib/mysql", "/var/backups/stockdb", "/var/log"],
    replication_lag_max_seconds=60,
)

CHECK_NAMES = ("server", "connections", "slow_queries", "long_transactions", "lock_waits", "disk", "replication")


def _check(value, threshold, detail):
    return dict(ok=value <= threshold, value=value, threshold=threshold, detail=detail)


def _status(cursor, name):
    cursor.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
    row = cursor.fetchone()
    if row is None:
        raise LookupError(f"status variable {name} not found")
    return int(row[1])


def check_connections(cursor, settings, state, new_state, disk_usage):
    connected = _status(cursor, "Threads_connected")
    cursor.execute("SELECT @@max_connections")
    maximum = int(cursor.fetchone()[0])
    return _check(connected / maximum, settings["connections_max_ratio"], f"{connected} of max_connections {maximum} connected")


def check_slow_queries(cursor, settings, state, new_state, disk_usage):
    current = _status(cursor, "Slow_queries")
    previous = state.get("slow_queries")
    new_state["slow_queries"] = current
    if previous is None:
        delta, detail = 0, f"first run, Slow_queries is {current}"
    elif current < previous:
        delta, detail = current, f"Slow_queries reset ({previous} -> {current}, server restarted?)"
    else:
        delta, detail = current - previous, f"Slow_queries {previous} -> {current}"
    return _check(delta, settings["slow_queries_max"], detail)


def _transactions_over(cursor, since_column, condition, seconds, allowed, what):
    """Count INNODB_TRX rows whose `since_column` is older than `seconds`; detail names the oldest."""
    cursor.execute(f"SELECT trx_id, trx_mysql_thread_id, TIMESTAMPDIFF(SECOND, {since_column}, NOW()) AS age "  # noqa: S608
                   f"FROM information_schema.INNODB_TRX WHERE {condition} "
                   f"TIMESTAMPDIFF(SECOND, {since_column}, NOW()) > %s ORDER BY age DESC", (seconds,))
    rows = cursor.fetchall()
    if not rows:
        return _check(0, allowed, f"no transaction {what} longer than {seconds} s")
    trx_id, thread_id, age = rows[0]
    return _check(len(rows), allowed,
                  f"{len(rows)} {what} longer than {seconds} s, oldest trx {trx_id} thread {thread_id} {age} s")


def check_long_transactions(cursor, settings, state, new_state, disk_usage):
    return _transactions_over(cursor, "trx_started", "", settings["long_transaction_seconds"], 0, "open")


def check_lock_waits(cursor, settings, state, new_state, disk_usage):
    return _transactions_over(cursor, "trx_wait_started", "trx_state = 'LOCK WAIT' AND", settings["lock_wait_seconds"],
                              settings["lock_waits_max"], "waiting for a lock")


def check_disk(cursor, settings, state, new_state, disk_usage):
    paths = settings["disk_paths"]
    paths = [paths] if isinstance(paths, str) else list(paths)
    worst = None
    for path in paths:
        try:
            usage = disk_usage(path)
        except FileNotFoundError:
            continue
        # As df reports it: blocks reserved for root are not available to mariadbd.
        ratio = usage.used / (usage.used + usage.free) if usage.used + usage.free else 0.0
        if worst is None or ratio > worst[0]:
            worst = (ratio, path, usage.free)
    if worst is None:
        return dict(ok=False, value=0, threshold=settings["disk_max_ratio"], detail=f"none of {', '.join(paths)} exists")
    ratio, path, free = worst
    return _check(ratio, settings["disk_max_ratio"], f"{path} {ratio:.0%} used, {free / 2**30:.1f} GiB free")


def check_replication(cursor, settings, state, new_state, disk_usage):
    maximum = settings["replication_lag_max_seconds"]
    rows = replication.channels(cursor)
    if not rows:
        return _check(0, maximum, "no replication configured")
    lags, problems = [], []
    for row in rows:
        name = row["Connection_name"] or "''"
        lag = row["Seconds_Behind_Master"]
        if lag is not None:
            lags.append(int(lag))
        if row["Slave_IO_Running"] != "Yes" or row["Slave_SQL_Running"] != "Yes":
            problems.append(f"{name}: IO {row['Slave_IO_Running']}, SQL {row['Slave_SQL_Running']}")
        elif lag is None:
            problems.append(f"{name}: lag unknown")
        elif int(lag) > maximum:
            problems.append(f"{name}: {lag} s behind")
    value = max(lags, default=0)
    detail = "; ".join(problems) or f"{len(rows)} connection(s) running, max lag {value} s"
    return dict(ok=not problems, value=value, threshold=maximum, detail=detail)


CHECKS = (
    ("connections", check_connections, "connections_max_ratio"),
    ("slow_queries", check_slow_queries, "slow_queries_max"),
    ("long_transactions", check_long_transactions, None),
    ("lock_waits", check_lock_waits, "lock_waits_max"),
    ("disk", check_disk, "disk_max_ratio"),
    ("replication", check_replication, "replication_lag_max_seconds"),
)


def run(cursor, settings, state, now=None, disk_usage=shutil.disk_usage, unreachable=None, extra=None):
    """Run every check; returns ({check: {"ok", "value", "threshold", "detail"}}, state for the next run).

    settings override DEFAULTS. The state keeps the Slow_queries counter (kept from the previous run when
    it cannot be read), the breached checks, and the run time. With `unreachable` (why the server could
    not be reached; cursor None) the `server` check breaches and only the disk check runs besides: one
    cause, one alert (the checks that need the server report again once it answers). `extra` checks
    measured by the caller ({name: check}, e.g. the host job's `rto`) join the result and its breaches.
    """
    settings = {**DEFAULTS, **(settings or {})}
    state = state or {}
    now = now or datetime.now(timezone.utc)
    new_state = dict(state)
    result = dict(server=_check(1 if unreachable else 0, 0, f"unreachable: {unreachable}" if unreachable else "answering"))
    for name, function, threshold_key in CHECKS:
        if unreachable and name != "disk":
            continue
        try:
            result[name] = function(cursor, settings, state, new_state, disk_usage)
        except Exception as exc:  # a missing privilege or a lost connection fails one check, not the run
            threshold = settings[threshold_key] if threshold_key else 0
            result[name] = dict(ok=False, value=None, threshold=threshold, detail=f"failed: {_error(exc)}")
    result.update(extra or {})
    new_state["breached"] = [name for name, check in result.items() if not check["ok"]]
    # checks skipped while the server is unreachable keep their breach: no RESOLVED line nobody checked
    new_state["breached"] += [name for name in state.get("breached", ()) if name not in result]
    new_state["last_run"] = _stamp(now)
    return result, new_state


def metrics(result, now):
    """The textfile metrics in report.format_metrics' shape; a failed check has no value sample."""
    return [
        ("stockdb_health_check_ok", "1 when the health check passed, 0 when breached or failed.", "gauge",
         [({"check": name}, 1 if check["ok"] else 0) for name, check in result.items()]),
        ("stockdb_health_check_value", "The value the health check measured.", "gauge",
         [({"check": name}, check["value"]) for name, check in result.items() if check["value"] is not None]),
        ("stockdb_health_check_threshold", "The health check breaches when its value exceeds this.", "gauge",
         [({"check": name}, check["threshold"]) for name, check in result.items()]),
        ("stockdb_health_last_run_timestamp_seconds", "Unix time of the last health check run.", "gauge",
         [({}, int(now.timestamp()))]),
    ]


def log_line(result, now):
    """One log line: '<UTC> health ok name=value/threshold ...'; a breach lists breached checks first and their details."""
    breached = [name for name, check in result.items() if not check["ok"]]
    order = breached + [name for name in result if name not in breached]
    fields = " ".join(f"{name}={_number(result[name]['value'], result[name]['ok'])}/{_number(result[name]['threshold'])}"
                      for name in order)
    line = f"{_stamp(now)} health {'BREACH' if breached else 'ok'} {fields}"
    if breached:
        line += " :: " + "; ".join(f"{name}: {result[name]['detail']}" for name in breached)
    return line.replace("\n", " ")


def alert_transitions(result, previous_state):
    """(status, severity, alertname, labels, summary) for report.append_alert: newly breached FIRING, recovered RESOLVED."""
    before = set((previous_state or {}).get("breached", ()))
    transitions = []
    for name, check in result.items():
        if not check["ok"] and name not in before:
            transitions.append(("FIRING", "warning", "StockdbHealthCheckBreach", {"check": name}, check["detail"]))
        elif check["ok"] and name in before:
            transitions.append(("RESOLVED", "warning", "StockdbHealthCheckBreach", {"check": name}, check["detail"]))
    return transitions


def _stamp(moment):
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value, ok=False):
    if value is None:
        return "unknown" if ok else "error"
    if isinstance(value, float):
        return f"{round(value, 3):g}"
    return str(value)


def _error(exc):
    return " ".join(str(exc).split()) or type(exc).__name__
