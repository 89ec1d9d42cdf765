"""Unit tests of module_utils/stockdb/tune.py: the names put into DDL, the online ALTER statements, the figures
and ratios, and the measurer's rows read with a stand-in connection whose counters advance as a server's do.

The module itself (an index dropped, timed, built under load, timed again) runs on a live server in the
default scenario (playbooks/index_compare.yml) and on the lab host (docs/tuning.md).
"""

import pytest
from stockdb import tune


@pytest.mark.parametrize("table, index, columns, problem", [
    ("orders", "ix_a", ["account_id", "status"], None),
    ("orders", "ix_a; DROP TABLE orders", ["account_id"], "index 'ix_a; DROP TABLE orders' is not a plain identifier"),
    ("orders`", "ix_a", ["account_id"], "table 'orders`' is not a plain identifier"),
    ("orders", "ix_a", ["account_id", "1st"], "column '1st' is not a plain identifier"),
    ("orders", "ix_a", [], "columns is empty"),
    ("orders", "ix_a", ["qty", "qty"], "name a column twice"),
    ("orders", "i" * 65, ["qty"], "is not a plain identifier")])
def test_only_plain_identifiers_reach_the_ddl(table, index, columns, problem):
    found = tune.check_names(table, index, columns)
    assert (found == []) if problem is None else any(problem in p for p in found), found


def test_the_index_is_added_and_dropped_online():
    assert tune.add_index_sql("orders", "ix_a", ["account_id", "status"]) == (
        "ALTER TABLE `orders` ADD INDEX `ix_a` (`account_id`, `status`), ALGORITHM=INPLACE, LOCK=NONE")
    assert tune.drop_index_sql("orders", "ix_a") == "ALTER TABLE `orders` DROP INDEX `ix_a`, ALGORITHM=INPLACE, LOCK=NONE"


def test_figures_and_ratios():
    got = tune.figures([float(ms) for ms in range(1, 101)], [10, 30, 20])
    assert got == dict(runs=100, p50_ms=50.0, p99_ms=99.0, mean_ms=50.5, rows_per_run=20)
    assert tune.compare(dict(p50_ms=30.0, p99_ms=60.0, rows_per_run=5000), dict(p50_ms=2.0, p99_ms=4.0, rows_per_run=20)) == dict(
        p50_speedup=15.0, p99_speedup=15.0, rows_ratio=250.0)
    instant = tune.compare(dict(p50_ms=1.0, p99_ms=1.0, rows_per_run=0), dict(p50_ms=0, p99_ms=1.0, rows_per_run=0))
    assert instant["p50_speedup"] is None
    assert tune.rate(1000, 1600, 2.0) == 300.0 and tune.rate(5, 5, 0) is None
    assert tune.write_cost(500.0, 250.0, 450.0) == dict(during_build_ratio=0.5, with_index_ratio=0.9)


def test_keys_used_are_the_indexes_a_plan_reads_through():
    plan = dict(tables=[dict(table="o", key="ix_orders_account"), dict(table="t", key=None), dict(table="s", key="PRIMARY")])
    assert tune.keys_used(plan) == ["PRIMARY", "ix_orders_account"]


class Server:
    """Handler_read_* counters that grow by the rows each statement reads, SHOW STATUS included."""

    def __init__(self, status_rows, rows_per_read):
        self.handlers, self.status_rows, self.rows_per_read = 0, status_rows, rows_per_read

    def cursor(self):
        return Cursor(self)


class Cursor:
    def __init__(self, server):
        self.server = server

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, args=None):
        assert sql == tune.HANDLER_READS
        self.value = self.server.handlers
        self.server.handlers += self.server.status_rows  # counted after the values are read, as MariaDB does

    def fetchall(self):
        return [("Handler_read_first", 0), ("Handler_read_rnd_next", self.value)]


def test_the_measurer_counts_the_rows_of_the_read_alone():
    server = Server(status_rows=13, rows_per_read=[40, 5000, 40])
    reads = iter(server.rows_per_read)

    def run_read(conn, args):
        conn.handlers += next(reads)

    measurer = tune.Measurer(server, run_read)
    got = measurer.measure([{"account_id": 1}, {"account_id": 2}, {"account_id": 3}])
    assert measurer.overhead == 13
    assert (got["runs"], got["rows_per_run"]) == (3, 40)  # 53 if reading the counters were counted
