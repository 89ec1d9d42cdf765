#!/usr/bin/python
"""Ansible module stockdb_tune: one index before and after, on one read of the simulator, built online."""

DOCUMENTATION = r"""
---
module: stockdb_tune
short_description: Measure one read without an index and with it, building the index online while trading runs
description:
  - Times O(read) (one of the simulator's reads, C(module_utils/stockdb/reads.py)) O(runs) times without the
    index O(index) on O(table) and O(runs) times with it - p50, p99, mean, and the rows each run read (the
    session's C(Handler_read_*) counters, the slow log's C(Rows_examined)) - with the same arguments, drawn
    from O(seed), both times.
  - The index is built online (C(ALGORITHM=INPLACE, LOCK=NONE) - the table stays readable and writable)
    and the build timed. When it exists at the start it is dropped first (online too), so the figures
    before are without it whatever the schema's migrations did.
  - What it costs the writes - orders/s from the orders table's newest id over O(window_s) seconds without
    the index, during its build, and with it, one after the other. Run it while trading runs (the simulator
    with C(async)); with no orders in the first window the write figures are C(null).
  - Returns the plans before and after (the indexes each reads through) and whether the read uses the
    new index. O(keep) decides whether the index stays; C(playbooks/index_compare.yml) runs it for each
    index of C(docs/tuning.md) and writes the table.
options:
  read:
    description: The read to time - a name of C(reads.READS) (positions, recent_orders, open_orders, symbol_orders,
      trade_history, market_watch, order_book, daily_report).
    type: str
    required: true
  table:
    description: The table the index is on.
    type: str
    required: true
  index:
    description: The index's name.
    type: str
    required: true
  columns:
    description: The index's columns, in order.
    type: list
    elements: str
    required: true
  runs:
    description: Runs of the read without the index and again with it (5..5000).
    type: int
    default: 50
  seed:
    description: Random seed of the reads' arguments (accounts, symbols).
    type: int
    default: 42
  symbols:
    description: How many of the most valuable listings the arguments draw from (the simulator's C(symbols)).
    type: int
    default: 20
  window_s:
    description: Seconds of each orders/s window, without and with the index (0 leaves the write figures out; 0..600).
    type: float
    default: 10
  keep:
    description: Leave the index in place at the end (false drops it again).
    type: bool
    default: true
  lock_wait_timeout:
    description: Seconds an ALTER waits for the table's metadata lock before it fails (1..3600).
    type: int
    default: 30
extends_documentation_fragment:
  - stockdb_connection
notes:
  - Changes the schema - an index added (and dropped first, when it exists); it refuses names that are not
    plain identifiers. Check mode reports what would be done.
  - Needs the admin account (C(/etc/stockdb/admin.cnf)).
author: stockdb
"""

EXAMPLES = r"""
- name: The open orders of an account with and without an index on (account_id, status, created_at)
  stockdb_tune:
    read: open_orders
    table: orders
    index: ix_orders_account_status
    columns: [account_id, status, created_at]
    runs: 100
  register: tuned
"""

RETURN = r"""
before:
  description: The read without the index - runs, p50_ms, p99_ms, mean_ms, rows_per_run.
  returned: success, not in check mode
  type: dict
  sample: {"runs": 50, "p50_ms": 98.2, "p99_ms": 140.1, "mean_ms": 101.0, "rows_per_run": 5521}
after:
  description: The same with the index.
  returned: success, not in check mode
  type: dict
comparison:
  description: p50_speedup and p99_speedup (before / after) and rows_ratio (rows before / after).
  returned: success, not in check mode
  type: dict
build:
  description: The index's build - seconds, started and ended (UTC), the statement, and whether it was dropped first.
  returned: success, not in check mode
  type: dict
writes:
  description:
    - Orders/s without the index, during the build and with the index, and the ratios during_build_ratio and
      with_index_ratio; null figures when no orders were written in the first window.
  returned: success, not in check mode
  type: dict
plans:
  description: The indexes the read's plan reads through, before and after, and uses_index (the new one is among them).
  returned: success, not in check mode
  type: dict
statements:
  description: The DDL run (or, in check mode, that would run).
  returned: always
  type: list
  elements: str
"""

import random
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import db, digest, reads, simulator, tune
from ansible.module_utils.stockdb.report import utc_stamp

EXISTS = ("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
          "AND INDEX_NAME = %s")


def scalar(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0]


def execute(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)


def plan_keys(conn, name, args):
    with conn.cursor() as cur:
        cur.execute("EXPLAIN FORMAT=JSON " + reads.READS[name][1], args)
        return tune.keys_used(digest.plan_summary(cur.fetchone()[0]))


def orders_window(conn, seconds):
    first = scalar(conn, tune.NEWEST_ORDER)
    time.sleep(seconds)
    return tune.rate(first, scalar(conn, tune.NEWEST_ORDER), seconds)


def main():
    spec = db.connection_argument_spec()
    spec.update(
        read=dict(type="str", required=True, choices=list(reads.KINDS)),
        table=dict(type="str", required=True),
        index=dict(type="str", required=True),
        columns=dict(type="list", elements="str", required=True),
        runs=dict(type="int", default=50),
        seed=dict(type="int", default=42),
        symbols=dict(type="int", default=20),
        window_s=dict(type="float", default=10),
        keep=dict(type="bool", default=True),
        lock_wait_timeout=dict(type="int", default=30),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    bad = tune.check_names(p["table"], p["index"], p["columns"])
    for name, low, high in (("runs", 5, 5000), ("window_s", 0, 600), ("lock_wait_timeout", 1, 3600), ("symbols", 1, 1000)):
        if not low <= p[name] <= high:
            bad.append(f"{name}={p[name]} is outside {low}..{high}")
    if bad:
        module.fail_json(msg="; ".join(bad))

    conn = db.connect_or_fail(module, autocommit=True)
    execute(conn, f"SET SESSION lock_wait_timeout = {int(p['lock_wait_timeout'])}")
    existed = bool(scalar(conn, EXISTS, (p["table"], p["index"])))
    add = tune.add_index_sql(p["table"], p["index"], p["columns"])
    drop = tune.drop_index_sql(p["table"], p["index"])
    statements = ([drop] if existed else []) + [add] + ([] if p["keep"] else [drop])
    if module.check_mode:
        module.exit_json(changed=True, statements=statements, existed=existed)

    try:
        universe = simulator.Universe.load(conn, p["symbols"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    rng = random.Random(p["seed"])
    stock_ids = [s for s, _ in universe.symbols]
    arguments = [reads.arguments(rng, universe.account_ids, stock_ids) for _ in range(p["runs"])]
    measurer = tune.Measurer(conn, lambda c, args: reads.run(c, p["read"], args))
    try:
        if existed:
            execute(conn, drop)
        before = measurer.measure(arguments)
        keys_before = plan_keys(conn, p["read"], arguments[0])
        without = orders_window(conn, p["window_s"]) if p["window_s"] else None
        first_id, started_at, started = scalar(conn, tune.NEWEST_ORDER), utc_stamp(), time.monotonic()
        execute(conn, add)
        build_s = time.monotonic() - started
        during = tune.rate(first_id, scalar(conn, tune.NEWEST_ORDER), build_s) if p["window_s"] else None
        ended_at = utc_stamp()
        with_index = orders_window(conn, p["window_s"]) if p["window_s"] else None
        after = measurer.measure(arguments)
        keys_after = plan_keys(conn, p["read"], arguments[0])
        if not p["keep"]:
            execute(conn, drop)
    except Exception as exc:  # noqa: BLE001 - any failure is reported with the state the index was left in
        present = bool(scalar(conn, EXISTS, (p["table"], p["index"])))
        module.fail_json(msg=f"{p['read']} / {p['index']}: {exc} (the index is {'present' if present else 'absent'} now; "
                             f"it was {'present' if existed else 'absent'} at the start)", statements=statements)
    finally:
        conn.close()

    writes = dict(without_index=without, during_build=during, with_index=with_index)
    writes.update(tune.write_cost(without, during, with_index) if without else
                  dict(during_build_ratio=None, with_index_ratio=None))
    module.exit_json(changed=True, statements=statements, existed=existed, before=before, after=after,
                     comparison=tune.compare(before, after),
                     build=dict(seconds=round(build_s, 3), started=started_at, ended=ended_at, statement=add,
                                dropped_first=existed),
                     writes=writes,
                     plans=dict(before=keys_before, after=keys_after, uses_index=p["index"] in keys_after))


if __name__ == "__main__":
    main()
