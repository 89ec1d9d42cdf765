"""The health check against a fake MariaDB cursor: every check's ok and breach path, state and outputs."""

from collections import namedtuple
from datetime import datetime, timezone

import pytest
from stockdb import health, report

NOW = datetime(2026, 11, 24, 3, 0, 15, tzinfo=timezone.utc)
Usage = namedtuple("Usage", "total used free")
SLAVE_COLUMNS = ("Connection_name", "Slave_SQL_State", "Slave_IO_State", "Master_Host", "Slave_IO_Running",
                 "Slave_SQL_Running", "Last_Errno", "Seconds_Behind_Master")


class AccessDenied(Exception):
    """Stands in for pymysql.err.OperationalError."""


class FakeCursor:
    """Answers the health check's statements from plain data; fails statements containing a `fail` substring.

    trx: (trx_id, thread_id, state, age seconds, lock wait seconds or None) per open InnoDB transaction.
    slaves: one dict per replication connection (keys of SLAVE_COLUMNS).
    """

    def __init__(self, connected=4, max_connections=100, slow_queries=0, trx=(), slaves=(), fail=()):
        self.status = {"Threads_connected": connected, "Slow_queries": slow_queries}
        self.max_connections = max_connections
        self.trx = trx
        self.slaves = slaves
        self.fail = fail
        self.executed = []
        self.description = None
        self._rows = []

    def execute(self, sql, args=None):
        self.executed.append(sql)
        self.description = None
        for text in self.fail:
            if text in sql or text in str(args):
                raise AccessDenied(f"(1227, 'Access denied; you need (at least one of) the {text} privilege(s)')")
        if sql.startswith("SHOW GLOBAL STATUS LIKE %s"):
            rows = [(args[0], str(self.status[args[0]]))]
        elif "@@max_connections" in sql:
            rows = [(self.max_connections,)]
        elif "INNODB_TRX" in sql and "LOCK WAIT" in sql:
            rows = sorted(((t[0], t[1], t[4]) for t in self.trx if t[2] == "LOCK WAIT" and t[4] > args[0]),
                          key=lambda r: -r[2])
        elif "INNODB_TRX" in sql:
            rows = sorted(((t[0], t[1], t[3]) for t in self.trx if t[3] > args[0]), key=lambda r: -r[2])
        elif sql == "SHOW ALL SLAVES STATUS":
            self.description = [(c, None, None, None, None, None, None) for c in SLAVE_COLUMNS]
            rows = [tuple(s.get(c) for c in SLAVE_COLUMNS) for s in self.slaves]
        else:
            raise AssertionError(f"unexpected statement {sql!r}")
        self._rows = rows
        return len(rows)

    def fetchall(self):
        return tuple(self._rows)

    def fetchone(self):
        return self._rows[0] if self._rows else None


def disks(**used_ratios):
    """A disk_usage answering for the given paths (underscores are slashes), 100 GiB each."""
    table = {"/" + k.replace("_", "/"): Usage(100 * 2**30, int(r * 100 * 2**30), int((1 - r) * 100 * 2**30))
             for k, r in used_ratios.items()}

    def disk_usage(path):
        if path not in table:
            raise FileNotFoundError(2, "No such file or directory", path)
        return table[path]
    return disk_usage


HEALTHY_DISK = disks(var_lib_mysql=0.5)


def slave(name="", io="Yes", sql="Yes", lag=0):
    return {"Connection_name": name, "Slave_IO_Running": io, "Slave_SQL_Running": sql, "Seconds_Behind_Master": lag,
            "Master_Host": "db1", "Last_Errno": 0}


def check(name, cursor=None, settings=None, state=None, disk_usage=HEALTHY_DISK):
    result, _ = health.run(cursor or FakeCursor(), settings or {}, state or {}, NOW, disk_usage)
    return result[name]


def test_healthy_server_passes_every_check_and_first_state():
    result, state = health.run(FakeCursor(slow_queries=500), {}, {}, NOW, HEALTHY_DISK)
    assert list(result) == list(health.CHECK_NAMES)
    assert all(c["ok"] for c in result.values()), result
    assert state == {"slow_queries": 500, "breached": [], "last_run": "2026-11-24T03:00:15Z"}
    assert result["slow_queries"] == {"ok": True, "value": 0, "threshold": 10, "detail": "first run, Slow_queries is 500"}


def test_every_statement_is_read_only():
    cursor = FakeCursor(slaves=[slave()])
    health.run(cursor, {}, {}, NOW, HEALTHY_DISK)
    assert len(cursor.executed) == 6
    assert all(sql.startswith(("SELECT", "SHOW")) for sql in cursor.executed), cursor.executed


def test_connections_ratio_to_max_connections():
    assert check("connections", FakeCursor(connected=80)) == {
        "ok": True, "value": 0.8, "threshold": 0.8, "detail": "80 of max_connections 100 connected"}
    breach = check("connections", FakeCursor(connected=90))
    assert (breach["ok"], breach["value"]) == (False, 0.9)
    assert check("connections", FakeCursor(connected=90), {"connections_max_ratio": 0.95})["ok"]


@pytest.mark.parametrize(("previous", "current", "ok", "delta"), [
    (500, 510, True, 10),
    (500, 511, False, 11),
    (500, 3, True, 3),      # counter reset by a restart: the current counter is the delta
    (500, 20, False, 20),
])
def test_slow_queries_delta_since_previous_run(previous, current, ok, delta):
    result, state = health.run(FakeCursor(slow_queries=current), {}, {"slow_queries": previous}, NOW, HEALTHY_DISK)
    assert (result["slow_queries"]["ok"], result["slow_queries"]["value"]) == (ok, delta)
    assert state["slow_queries"] == current


def test_slow_query_reset_is_named():
    detail = check("slow_queries", FakeCursor(slow_queries=3), state={"slow_queries": 500})["detail"]
    assert detail == "Slow_queries reset (500 -> 3, server restarted?)"


def test_long_transactions_name_the_oldest():
    trx = [(101, 11, "RUNNING", 30, None), (102, 12, "RUNNING", 61, None), (103, 13, "LOCK WAIT", 300, 2)]
    result = check("long_transactions", FakeCursor(trx=trx))
    assert result == {"ok": False, "value": 2, "threshold": 0,
                      "detail": "2 open longer than 60 s, oldest trx 103 thread 13 300 s"}
    assert check("long_transactions", FakeCursor(trx=trx[:1]))["ok"]
    assert check("long_transactions", FakeCursor(trx=trx), {"long_transaction_seconds": 20})["value"] == 3


def test_lock_waits_count_only_waits_longer_than_the_limit():
    short = [(101, 11, "LOCK WAIT", 100, 5), (102, 12, "RUNNING", 100, None)]
    assert check("lock_waits", FakeCursor(trx=short)) == {
        "ok": True, "value": 0, "threshold": 0, "detail": "no transaction waiting for a lock longer than 5 s"}
    long = [*short, (103, 13, "LOCK WAIT", 20, 9), (104, 14, "LOCK WAIT", 20, 6)]
    assert check("lock_waits", FakeCursor(trx=long)) == {
        "ok": False, "value": 2, "threshold": 0, "detail": "2 waiting for a lock longer than 5 s, oldest trx 103 thread 13 9 s"}
    assert check("lock_waits", FakeCursor(trx=long), {"lock_waits_max": 2})["ok"]


def test_disk_worst_existing_path():
    settings = {"disk_paths": ["/var/lib/mysql", "/var/backups/stockdb", "/missing"]}
    ok = check("disk", settings=settings, disk_usage=disks(var_lib_mysql=0.5, var_backups_stockdb=0.6))
    assert (ok["ok"], ok["value"], ok["detail"]) == (True, 0.6, "/var/backups/stockdb 60% used, 40.0 GiB free")
    breach = check("disk", settings=settings, disk_usage=disks(var_lib_mysql=0.9, var_backups_stockdb=0.6))
    assert (breach["ok"], breach["value"], breach["threshold"]) == (False, pytest.approx(0.9), 0.85)
    assert breach["detail"].startswith("/var/lib/mysql 90% used")


def test_disk_without_any_existing_path_is_not_ok():
    result = check("disk", settings={"disk_paths": ["/missing"]})
    assert result == {"ok": False, "value": 0, "threshold": 0.85, "detail": "none of /missing exists"}


def test_replication_not_configured_is_ok():
    assert check("replication") == {"ok": True, "value": 0, "threshold": 60, "detail": "no replication configured"}


def test_replication_running_within_lag():
    result = check("replication", FakeCursor(slaves=[slave(lag=5), slave("dr", lag=60)]))
    assert result == {"ok": True, "value": 60, "threshold": 60, "detail": "2 connection(s) running, max lag 60 s"}


@pytest.mark.parametrize(("connection", "value", "detail"), [
    (slave(lag=120), 120, "'': 120 s behind"),
    (slave("dr", io="Connecting", lag=None), 0, "dr: IO Connecting, SQL Yes"),
    (slave("dr", sql="No", lag=None), 0, "dr: IO Yes, SQL No"),
    (slave("dr", lag=None), 0, "dr: lag unknown"),
])
def test_replication_breaches(connection, value, detail):
    result = check("replication", FakeCursor(slaves=[slave("other", lag=3), connection]))
    assert result == {"ok": False, "value": max(value, 3), "threshold": 60, "detail": detail}


def test_failing_query_is_reported_and_the_run_goes_on():
    cursor = FakeCursor(trx=[(101, 11, "RUNNING", 300, None)], fail=("INNODB_TRX",))
    result, state = health.run(cursor, {}, {"slow_queries": 7}, NOW, HEALTHY_DISK)
    for name in ("long_transactions", "lock_waits"):
        assert result[name]["ok"] is False and result[name]["value"] is None
        assert result[name]["detail"].startswith("failed: (1227, 'Access denied"), result[name]
    assert result["lock_waits"]["threshold"] == 0
    assert all(result[n]["ok"] for n in ("connections", "slow_queries", "disk", "replication"))
    assert state["breached"] == ["long_transactions", "lock_waits"]


def test_unreadable_slow_queries_keeps_the_previous_counter():
    result, state = health.run(FakeCursor(fail=("Slow_queries",)), {}, {"slow_queries": 7}, NOW, HEALTHY_DISK)
    assert (result["slow_queries"]["ok"], result["slow_queries"]["threshold"]) == (False, 10)
    assert state["slow_queries"] == 7


def test_broken_disk_usage_is_reported():
    def disk_usage(path):
        raise PermissionError(13, "Permission denied", path)
    result = check("disk", disk_usage=disk_usage)
    assert result["ok"] is False and "Permission denied" in result["detail"]


def test_alert_transitions_fire_once_and_resolve():
    state = {}
    runs = [FakeCursor(), FakeCursor(connected=95), FakeCursor(connected=96, max_connections=100),
            FakeCursor(connected=10)]
    seen = []
    for cursor in runs:
        result, new_state = health.run(cursor, {}, state, NOW, HEALTHY_DISK)
        seen.append(health.alert_transitions(result, state))
        state = new_state
    assert seen == [
        [],
        [("FIRING", "warning", "StockdbHealthCheckBreach", {"check": "connections"}, "95 of max_connections 100 connected")],
        [],
        [("RESOLVED", "warning", "StockdbHealthCheckBreach", {"check": "connections"}, "10 of max_connections 100 connected")],
    ]
    line = report.alert_line(*seen[1][0], moment=NOW)
    assert line == ("2026-11-24T03:00:15Z FIRING warning StockdbHealthCheckBreach check=connections "
                    ":: 95 of max_connections 100 connected")


def test_metrics_through_format_metrics():
    cursor = FakeCursor(connected=90, slaves=[slave(lag=7)], fail=("INNODB_TRX",))
    result, _ = health.run(cursor, {}, {}, NOW, HEALTHY_DISK)
    text = report.format_metrics(health.metrics(result, NOW))
    lines = text.splitlines()
    assert "# TYPE stockdb_health_check_ok gauge" in lines
    assert 'stockdb_health_check_ok{check="connections"} 0' in lines
    assert 'stockdb_health_check_ok{check="disk"} 1' in lines
    assert 'stockdb_health_check_ok{check="long_transactions"} 0' in lines
    assert 'stockdb_health_check_value{check="connections"} 0.9' in lines
    assert 'stockdb_health_check_value{check="replication"} 7' in lines
    assert 'stockdb_health_check_threshold{check="disk"} 0.85' in lines
    assert 'stockdb_health_check_threshold{check="long_transactions"} 0' in lines
    # a failed check has no value to report
    assert not any(line.startswith('stockdb_health_check_value{check="long_transactions"}') for line in lines)
    assert sum(line.startswith("stockdb_health_check_ok{") for line in lines) == 7
    assert any(line.startswith("stockdb_health_last_run_timestamp_seconds ") for line in lines)


def test_last_run_timestamp_is_exact():
    text = report.format_metrics(health.metrics({}, NOW))
    assert "stockdb_health_last_run_timestamp_seconds 1795489215" in text.splitlines()


def test_log_line_ok():
    result, _ = health.run(FakeCursor(slaves=[slave(lag=2)]), {}, {"slow_queries": 0}, NOW, HEALTHY_DISK)
    assert health.log_line(result, NOW) == ("2026-11-24T03:00:15Z health ok server=0/0 connections=0.04/0.8 slow_queries=0/10 "
                                            "long_transactions=0/0 lock_waits=0/0 disk=0.5/0.85 replication=2/60")


def test_log_line_breach_lists_breached_checks_first():
    cursor = FakeCursor(slow_queries=30, fail=("INNODB_TRX",))
    result, _ = health.run(cursor, {}, {"slow_queries": 0}, NOW, disks(var_lib_mysql=0.9))
    line = health.log_line(result, NOW)
    assert line.startswith("2026-11-24T03:00:15Z health BREACH slow_queries=30/10 long_transactions=error/0 "
                           "lock_waits=error/0 disk=0.9/0.85 server=0/0 connections=0.04/0.8 replication=0/60 :: "
                           "slow_queries: Slow_queries 0 -> 30; long_transactions: failed: (1227"), line
    assert "\n" not in line


def test_an_unreachable_server_is_one_breach_and_the_disk_is_still_checked():
    result, state = health.run(None, {}, {}, NOW, HEALTHY_DISK, unreachable="MariaDB error 2002: no socket")
    assert list(result) == ["server", "disk"]
    assert result["server"] == {"ok": False, "value": 1, "threshold": 0, "detail": "unreachable: MariaDB error 2002: no socket"}
    assert result["disk"]["ok"] is True and state["breached"] == ["server"]
    assert health.alert_transitions(result, {}) == [
        ("FIRING", "warning", "StockdbHealthCheckBreach", {"check": "server"}, "unreachable: MariaDB error 2002: no socket")]


def test_checks_skipped_while_the_server_is_unreachable_keep_their_breach():
    _, state = health.run(None, {}, {"breached": ["long_transactions"]}, NOW, HEALTHY_DISK, unreachable="down")
    assert state["breached"] == ["server", "long_transactions"]


def test_a_check_the_caller_measured_fires_once_resolves_once_and_is_kept_while_the_server_is_down():
    breach = dict(ok=False, value=1200.0, threshold=900, detail="recovery to now: 1200 s")
    fine = dict(ok=True, value=300.0, threshold=900, detail="recovery to now: 300 s")
    state, lines = {}, []
    for cursor, rto, unreachable in ((FakeCursor(), breach, None), (None, breach, "down"), (FakeCursor(), fine, None),
                                     (FakeCursor(), fine, None)):
        result, new_state = health.run(cursor, {}, state, NOW, HEALTHY_DISK, unreachable=unreachable, extra=dict(rto=rto))
        lines.append([(t[0], t[3]["check"]) for t in health.alert_transitions(result, state)])
        state = new_state
    assert lines == [[("FIRING", "rto")], [("FIRING", "server")], [("RESOLVED", "server"), ("RESOLVED", "rto")], []]
    assert state["breached"] == []
