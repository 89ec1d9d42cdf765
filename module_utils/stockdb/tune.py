"""An index before and after: one read of the simulator (reads.READS) timed and its rows counted without the
index and with it, the index built online while trading runs, and what it costs the writes.
library/stockdb_tune.py wires it to a live server.

  statements  the ALTER TABLEs, online (ALGORITHM=INPLACE, LOCK=NONE: the table stays readable and
              writable while the index is built), from names checked to be plain identifiers
  rows        the rows a statement read, from the session's Handler_read_* counters (what the slow log
              calls Rows_examined), less what reading the counters itself adds
  figures     latency p50/p99/mean over the runs, rows per run, and the before/after ratios
  writes      orders/s from the orders table's newest id over a window: without the index, during its
              build, and with it, windows next to each other so that the drift of a busy machine weighs least

Everything but `Measurer` works on plain values, so it is tested without a server. Standard library only.
"""

import re
import statistics
import time

from .stats import percentile

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
HANDLER_READS = "SHOW SESSION STATUS WHERE Variable_name LIKE 'Handler_read%'"
NEWEST_ORDER = "SELECT COALESCE(MAX(order_id), 0) FROM orders"


class TuneError(Exception):
    """A request the module refuses; the message names what is wrong."""


def check_names(table, index, columns):
    """Every name a plain identifier (they are put into DDL): the problems, empty when none."""
    bad = [f"{what} {name!r} is not a plain identifier (letters, digits, _; at most 64)"
           for what, name in [("table", table), ("index", index)] + [("column", c) for c in columns]
           if not IDENTIFIER.match(name or "")]
    if not columns:
        bad.append("columns is empty")
    elif len(set(columns)) != len(columns):
        bad.append(f"columns {columns} name a column twice")
    return bad


def add_index_sql(table, index, columns):
    return (f"ALTER TABLE `{table}` ADD INDEX `{index}` ({', '.join(f'`{c}`' for c in columns)}), "
            "ALGORITHM=INPLACE, LOCK=NONE")


def drop_index_sql(table, index):
    return f"ALTER TABLE `{table}` DROP INDEX `{index}`, ALGORITHM=INPLACE, LOCK=NONE"


def handler_reads(rows):
    """The sum of a SHOW STATUS listing of Handler_read_* (rows of name, value)."""
    return sum(int(value) for _, value in rows)


def figures(latencies_ms, rows_read):
    """p50/p99/mean of the latencies and the median rows read per run."""
    ordered = sorted(latencies_ms)
    return dict(runs=len(ordered), p50_ms=round(percentile(ordered, 0.50), 3), p99_ms=round(percentile(ordered, 0.99), 3),
                mean_ms=round(statistics.fmean(ordered), 3), rows_per_run=round(statistics.median(rows_read), 1))


def ratio(numerator, denominator, digits=3):
    return round(numerator / denominator, digits) if denominator else None


def compare(before, after):
    """How many times faster (p50, p99) and how many times fewer rows the read is with the index."""
    return dict(p50_speedup=ratio(before["p50_ms"], after["p50_ms"], 1), p99_speedup=ratio(before["p99_ms"], after["p99_ms"], 1),
                rows_ratio=ratio(before["rows_per_run"], after["rows_per_run"], 1))


def rate(first_id, last_id, seconds):
    """Orders per second between two newest order ids."""
    return round((int(last_id) - int(first_id)) / seconds, 1) if seconds > 0 else None


def write_cost(without, during, with_index):
    """The orders/s ratios of the windows: during the build and with the index, against without it."""
    return dict(during_build_ratio=ratio(during, without), with_index_ratio=ratio(with_index, without))


def keys_used(plan):
    """The indexes a plan summary (digest.plan_summary) reads through."""
    return sorted({t["key"] for t in plan["tables"] if t.get("key")})


class Measurer:
    """Runs one read many times on one connection (a DB-API cursor) and counts what each run read."""

    def __init__(self, conn, run_read):
        self.conn = conn
        self.run_read = run_read          # run_read(conn, args) -> rows returned
        self.overhead = None

    def _handlers(self):
        with self.conn.cursor() as cur:
            cur.execute(HANDLER_READS)
            return handler_reads(cur.fetchall())

    def calibrate(self):
        """What reading the counters adds to them (SHOW STATUS reads its own rows)."""
        first = self._handlers()
        self.overhead = self._handlers() - first
        return self.overhead

    def measure(self, arguments):
        if self.overhead is None:
            self.calibrate()
        latencies, rows = [], []
        for args in arguments:
            start_rows = self._handlers()
            started = time.monotonic()
            self.run_read(self.conn, args)
            latencies.append((time.monotonic() - started) * 1000.0)
            rows.append(max(self._handlers() - start_rows - self.overhead, 0))
        return figures(latencies, rows)
