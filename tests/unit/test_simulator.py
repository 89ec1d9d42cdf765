"""The simulator's fault handling: error kinds, reconnection backoff, in-doubt orders, the ack log.

A stand-in connection plays the server: it answers the engine's calls and lookups from a small
table of orders, and fails on cue the way the drivers do (an exception with errno and message).
"""

import json
import os
import random
import time

import pytest
from stockdb import db, invariants, reads, simulator
from stockdb.simulator import Client, ConnectionGone, Universe, backoff


class DriverError(Exception):
    """Shaped like the errors of PyMySQL and mysqlclient: (errno, message)."""


LOST = DriverError(2013, "Lost connection to server during query")
REFUSED = DriverError(2002, "Can't connect to local server through socket '/run/mysqld/mysqld.sock' (111)")


@pytest.mark.parametrize(("exc", "kind"), [
    (DriverError(1205, "Lock wait timeout exceeded; try restarting transaction"), "lock_wait_timeout"),
    (DriverError(1213, "Deadlock found when trying to get lock"), "deadlock"),
    (LOST, "connection_lost"),
    (DriverError(2006, "Server has gone away"), "connection_lost"),
    (DriverError(1927, "Connection was killed"), "connection_lost"),
    (DriverError(0, ""), "connection_lost"),
    (ConnectionResetError(104, "Connection reset by peer"), "connection_lost"),
    (REFUSED, "connection_refused"),
    (DriverError(1040, "Too many connections"), "too_many_connections"),
    (DriverError(1203, "User stockdb_app already has more than 'max_user_connections' active connections"),
     "too_many_connections"),
    (DriverError(1226, "User 'stockdb_app' has exceeded the 'max_user_connections' resource (current value: 4)"),
     "too_many_connections"),
    (DriverError(1226, "User 'r' has exceeded the 'max_queries_per_hour' resource (current value: 10)"), "other:1226"),
    (DriverError(1021, "Disk full (/tmp/#sql_1.MAI); waiting for someone to free some space..."), "disk_full"),
    (DriverError(1026, "Error writing file './binlog.000028' (Errcode: 28 \"No space left on device\")"), "disk_full"),
    (DriverError(1026, "Error writing file './binlog.000028' (Errcode: 5 \"Input/output error\")"), "other:1026"),
    (DriverError(1114, "The table 'orders' is full"), "table_full"),
    (DriverError(1969, "Query execution was interrupted (max_statement_time exceeded)"), "statement_timeout"),
    (DriverError(1317, "Query execution was interrupted"), "query_interrupted"),
    (DriverError(1146, "Table 'stockdb.nope' doesn't exist"), "other:1146"),
    (ValueError("bad row"), "other:ValueError"),
])
def test_errors_have_readable_kinds(exc, kind):
    assert db.error_kind(exc) == kind


def test_only_lost_or_refused_connections_need_a_new_one():
    assert {"connection_lost", "connection_refused", "too_many_connections"} <= db.CONNECTION_KINDS
    assert not {"lock_wait_timeout", "deadlock", "disk_full", "statement_timeout"} & db.CONNECTION_KINDS


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half():
    rng = random.Random(1)
    for attempt in range(40):
        ceiling = min(2.0, simulator.BACKOFF_BASE_S * 2 ** attempt)
        waits = [backoff(attempt, 2.0, rng) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), attempt
        assert len(set(waits)) > 100  # jittered, not one value
    assert backoff(10_000, 2.0, rng) <= 2.0  # no overflow for a long outage
    assert backoff(0, 0.01, rng) <= 0.01  # a cap below the base wins


# --- a stand-in server -------------------------------------------------------------------------------

class Server:
    """The state the stand-in connections share: committed orders and trades, and the faults to play."""

    def __init__(self):
        self.orders = {}          # order_id -> dict(ref, status, filled)
        self.trades = {}          # order_id -> [trade ids]
        self.next_id = 100
        self.faults = []          # what the next engine calls do: "commit_then_lose", "lose", or an exception
        self.refuse = 0           # connection attempts to refuse
        self.opened = 0
        self.statements = []

    def connect(self, _left):
        if self.refuse:
            self.refuse -= 1
            raise REFUSED
        self.opened += 1
        return Conn(self)


class Conn:
    def __init__(self, server):
        self.server = server
        self.closed = False

    def cursor(self):
        return Cursor(self)

    def commit(self):
        pass

    def rollback(self):
        if self.closed:
            raise DriverError(2006, "Server has gone away")

    def close(self):
        self.closed = True


class Cursor:
    def __init__(self, conn):
        self.conn = conn
        self.rows = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, args=()):
        server = self.conn.server
        server.statements.append(sql)
        if self.conn.closed:
            raise DriverError(2006, "Server has gone away")
        if sql.startswith("CALL place_order_ref"):
            fault = server.faults.pop(0) if server.faults else None
            if isinstance(fault, Exception):
                raise fault
            if fault == "lose":  # lost before the server committed anything
                self.conn.closed = True
                raise LOST
            order_id = server.next_id
            server.next_id += 1
            server.orders[order_id] = dict(ref=args[6], status="FILLED", filled=args[5])
            server.trades[order_id] = [order_id * 10]
            if fault == "commit_then_lose":  # committed, but the answer never came back
                self.conn.closed = True
                raise LOST
            self.rows = [(order_id, "FILLED", args[5], str(order_id * 10))]
        elif sql.startswith("CALL cancel_order"):
            fault = server.faults.pop(0) if server.faults else None
            server.orders[args[0]]["status"] = "CANCELLED"
            if fault == "commit_then_lose":
                self.conn.closed = True
                raise LOST
            self.rows = [(args[0], "CANCELLED")]
        elif "FROM stocks_inventory" in sql:
            self.rows = [(args[0],)]
        elif "WHERE client_ref" in sql:
            self.rows = [(oid, o["status"], o["filled"], "BUY") for oid, o in server.orders.items() if o["ref"] == args[0]]
        elif sql.startswith("SELECT trade_id"):
            self.rows = [(t,) for t in server.trades.get(args[0], [])]
        elif sql.startswith("SELECT status FROM orders"):
            self.rows = [(server.orders[args[0]]["status"],)] if args[0] in server.orders else []
        elif "FROM accounts" in sql:
            self.rows = [(a, 10**9) for a in args]
        else:
            self.rows = []

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self):
        return list(self.rows)

    def nextset(self):
        return None


UNIVERSE = Universe([1, 2], [(7, 10_000)])
ORDER = ("order", 1, 7, "BUY", "LIMIT", 10_000, 5)


def client(server, tmp_path=None, deadline_s=30, **options):
    ack_fd = None
    if tmp_path is not None:
        ack_fd = os.open(tmp_path / "ack.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    c = Client(0, UNIVERSE, [1, 2], random.Random(3), ack_fd, time.monotonic() + deadline_s, server.connect,
               run_id="run1", max_backoff=0.01, **options)
    c.next_request = lambda: ORDER
    return c


def ack_lines(tmp_path):
    return [json.loads(line) for line in (tmp_path / "ack.log").read_text().splitlines()]


def test_a_committed_order_is_acknowledged_with_its_reference_and_latency(tmp_path):
    server = Server()
    c = client(server, tmp_path)
    assert c.step() and c.stats["placed"] == 1
    order, trade = ack_lines(tmp_path)
    assert (order["kind"], order["id"], order["status"], order["client_ref"]) == ("order", 100, "FILLED", "run1-0-1")
    assert order["latency_ms"] >= 0 and "in_doubt" not in order and order["client"] == 0
    assert (trade["kind"], trade["id"], trade["order_id"]) == ("trade", 1000, 100)
    assert server.orders[100]["ref"] == "run1-0-1"


def test_an_order_committed_before_the_connection_was_lost_is_acknowledged_once_found(tmp_path):
    server = Server()
    server.faults = ["commit_then_lose"]
    c = client(server, tmp_path)
    assert c.step()  # the call is lost: in doubt, nothing acknowledged, connection dropped
    assert (c.stats["in_doubt"], c.stats["placed"], c.conn, c.stats["errors"]) == (1, 0, None, {"connection_lost": 1})
    assert not (tmp_path / "ack.log").read_text()
    assert c.step()  # reconnects, looks it up, acknowledges it, then places the next order
    assert (c.stats["reconnects"], c.stats["found"], c.stats["not_found"], c.in_doubt) == (1, 1, 0, [])
    assert c.stats["placed"] == 2
    resolved = ack_lines(tmp_path)[0]
    assert (resolved["id"], resolved["client_ref"], resolved["in_doubt"]) == (100, "run1-0-1", True)
    assert any("LOCK IN SHARE MODE" in s for s in server.statements)  # waited for the lost transaction's outcome


def test_an_order_lost_before_its_commit_is_counted_not_placed_and_never_acknowledged(tmp_path):
    server = Server()
    server.faults = ["lose"]
    c = client(server, tmp_path)
    c.step()
    c.step(resolve_only=True)
    assert (c.stats["in_doubt"], c.stats["found"], c.stats["not_found"], c.stats["placed"]) == (1, 0, 1, 0)
    assert not (tmp_path / "ack.log").read_text()


def test_an_in_doubt_cancel_is_acknowledged_only_when_the_order_is_cancelled(tmp_path):
    server = Server()
    server.orders[50] = dict(ref=None, status="NEW", filled=0)
    server.orders[51] = dict(ref=None, status="NEW", filled=0)
    server.faults = ["commit_then_lose"]
    c = client(server, tmp_path)
    c.next_request = lambda: ("cancel", 50, 1)
    c.step()
    c.step(resolve_only=True)
    assert (c.stats["found"], c.stats["cancels"]) == (1, 1)
    assert ack_lines(tmp_path)[0] == dict(ack_lines(tmp_path)[0], kind="cancel", id=50, status="CANCELLED", in_doubt=True)
    # A cancel that never reached the server: the order is open again for the client.
    c.next_request = lambda: ("cancel", 51, 1)
    c.conn.closed = True
    c.step()
    c.step(resolve_only=True)
    assert (c.stats["not_found"], c.open_orders) == (1, [(51, 1)])


def test_the_ack_check_reads_the_simulators_lines(tmp_path):
    server = Server()
    server.faults = ["commit_then_lose"]
    c = client(server, tmp_path)
    c.step()
    c.step()
    ack = invariants.read_ack_log(str(tmp_path / "ack.log"))
    assert (ack["orders"], ack["trades"], ack["in_doubt"]) == ({100, 101}, {1000, 1010}, 1)
    assert ack["terminal"] == {100: "FILLED", 101: "FILLED"}
    # The drill's reader picks order lines by this exact text.
    assert all('"kind": "order"' in line for line in (tmp_path / "ack.log").read_text().splitlines()[::2])


def test_a_refused_server_is_retried_with_backoff_and_counted():
    server = Server()
    server.refuse = 3
    c = client(server)
    assert c.step()
    assert (c.stats["errors"], c.stats["reconnects"], c.stats["placed"]) == ({"connection_refused": 3}, 0, 1)


def test_reconnecting_stops_at_the_deadline():
    server = Server()
    server.refuse = 10**9
    c = client(server, deadline_s=0.3)
    started = time.monotonic()
    assert c.step() is False
    assert time.monotonic() - started < 1.0
    assert c.stats["errors"]["connection_refused"] >= 3


def test_deadlocks_are_retried_and_every_error_is_counted_by_kind():
    server = Server()
    server.faults = [DriverError(1213, "Deadlock"), DriverError(1205, "Lock wait timeout"), None,
                     DriverError(1114, "The table 'orders' is full"), ValueError("a bug")]
    c = client(server)
    c.step()  # deadlock, lock wait timeout, then committed
    assert (c.stats["retries"], c.stats["placed"]) == (2, 1)
    c.step()  # table full: not committed, not in doubt, the connection is kept
    assert (c.stats["in_doubt"], server.opened) == (0, 1)
    c.step()  # an unexpected exception: counted, in doubt (it was not the server saying no), the client goes on
    c.step()
    assert c.stats["errors"] == {"deadlock": 1, "lock_wait_timeout": 1, "table_full": 1, "other:ValueError": 1}
    assert (c.stats["in_doubt"], c.stats["not_found"], c.stats["placed"]) == (1, 1, 2)


def test_without_reconnect_a_lost_connection_stops_the_client():
    server = Server()
    server.faults = ["lose"]
    c = client(server, reconnect=False)
    with pytest.raises(ConnectionGone, match="connection_lost"):
        c.step()
    server = Server()
    server.refuse = 1
    with pytest.raises(ConnectionGone, match="connection_refused"):
        client(server, reconnect=False).step()


def test_merged_counts_add_up_over_clients():
    a = dict(simulator.COUNTERS, rejections={}, errors={"deadlock": 1}, latencies=[2.0])
    b = dict(simulator.COUNTERS, rejections={}, errors={"deadlock": 2, "connection_lost": 1}, latencies=[1.0])
    a["reconnects"], b["reconnects"], b["found"] = 1, 2, 1
    total, latencies = simulator.merge([a, b])
    assert (total["reconnects"], total["found"], total["errors"]) == (3, 1, {"deadlock": 3, "connection_lost": 1})
    assert latencies == [1.0, 2.0]


def test_the_stop_file_ends_the_run_and_what_is_in_doubt_is_still_looked_up(tmp_path):
    server = Server()
    server.faults = ["commit_then_lose"]
    stop = tmp_path / "load.stop"
    c = client(server, tmp_path, stop_file=str(stop))
    assert not c.over()
    c.step()  # in doubt
    stop.touch()
    c.stop_checked = 0.0
    assert c.over() and c.step() is False  # no new connection once stopped
    c.settle(seconds=5)
    assert (c.stats["found"], c.in_doubt, c.stats["placed"]) == (1, [], 1)
    assert c.deadline <= time.monotonic() + 5


def test_settling_never_goes_past_the_deadline():
    server = Server()
    server.faults = ["lose"]
    c = client(server, deadline_s=0.2)
    c.step()
    server.refuse = 10**9
    started = time.monotonic()
    c.settle(seconds=30)
    assert time.monotonic() - started < 1.0 and len(c.in_doubt) == 1


def test_an_ack_log_that_cannot_be_written_is_counted_and_trading_goes_on(tmp_path):
    server = Server()
    c = client(server, tmp_path)
    os.close(c.ack_fd)  # writes now fail with EBADF, as they would with ENOSPC on a full disk
    assert c.step() and c.step()
    assert (c.stats["placed"], c.stats["errors"], c.conn is not None) == (2, {"ack_log:EBADF": 2}, True)


# --- the read transactions -----------------------------------------------------------------------------

def read_statements(server):
    sqls = {" ".join(sql.split()): name for name, (_, sql) in reads.READS.items()}
    return [sqls[" ".join(s.split())] for s in server.statements if " ".join(s.split()) in sqls]


def test_every_read_binds_only_the_arguments_a_client_gives():
    args = reads.arguments(random.Random(1), [1, 2], [7, 8, 9])
    assert set(args) == {"account_id", "stock_id", "watch"} and args["watch"] and len(set(args["watch"])) == 3
    for _, sql in reads.READS.values():
        sql % {key: 1 for key in args}  # pyformat: a name the arguments lack raises KeyError
    assert sum(share for share, _ in reads.READS.values()) == 100 and reads.READS[reads.REPORT][0] == 0


def test_a_client_reads_its_share_of_requests_and_the_writes_are_counted_apart():
    server = Server()
    c = client(server, read_share=0.7)
    for _ in range(1000):
        c.step()
    done = sum(c.stats["reads"].values())
    assert 620 <= done <= 780 and c.writes == 1000 - done and c.stats["placed"] == c.writes
    assert set(c.stats["reads"]) == set(reads.DRAWN)  # every drawn read ran; the report is not due yet
    assert all(len(c.stats["read_latencies"][n]) == count for n, count in c.stats["reads"].items())
    assert len(read_statements(server)) == done and c.stats["errors"] == {}


def test_the_daily_report_runs_when_due_and_not_again_before_its_interval():
    server = Server()
    c = client(server, read_share=0.95)
    c.reported -= reads.REPORT_EVERY_S
    for _ in range(50):
        c.step()
    assert c.stats["reads"][reads.REPORT] == 1 and read_statements(server).count(reads.REPORT) == 1


def test_without_reads_the_client_sends_only_orders():
    server = Server()
    c = client(server, read_share=0.0)
    c.reported -= reads.REPORT_EVERY_S  # a report that would be due is not run either
    for _ in range(50):
        c.step()
    assert c.stats["reads"] == {} and read_statements(server) == [] and c.writes == c.stats["placed"] == 50


def test_a_failed_read_is_counted_by_kind_and_the_connection_is_kept(monkeypatch):
    server = Server()
    c = client(server, read_share=0.95)

    def broken(conn, name, args):
        raise DriverError(1054, "Unknown column")

    monkeypatch.setattr(reads, "run", broken)
    c.step()
    assert c.stats["errors"] == {"other:1054": 1} and c.conn is not None and server.opened == 1


def test_read_figures_give_count_rate_and_latency_per_read():
    a = dict(simulator.COUNTERS, rejections={}, errors={}, latencies=[], reads={"positions": 2},
             read_latencies={"positions": [3.0, 1.0]})
    b = dict(simulator.COUNTERS, rejections={}, errors={}, latencies=[], reads={"positions": 1, "order_book": 1},
             read_latencies={"positions": [2.0], "order_book": [9.0]})
    total, _ = simulator.merge([a, b])
    figures = simulator.read_figures(total, 2.0)
    assert figures["total"] == 4 and figures["per_s"] == 2.0
    assert figures["latency_ms"] == dict(p50=2.0, p95=9.0, p99=9.0, max=9.0)
    assert figures["by_name"] == {"positions": dict(count=3, p50=2.0, p95=3.0, p99=3.0, max=3.0),
                                  "order_book": dict(count=1, p50=9.0, p95=9.0, p99=9.0, max=9.0)}
