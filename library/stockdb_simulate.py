#!/usr/bin/python
"""Ansible module stockdb_simulate: concurrent trading load with ACID order transactions."""

DOCUMENTATION = r"""
---
module: stockdb_simulate
short_description: Run the stockdb trade simulator against the trading database
description:
  - Starts O(clients) client processes, each with its own connection and its share of the
    accounts, that place limit and market buy and sell orders around the reference prices of the
    O(symbols) most valuable listings (within the buying power and holdings they last read), and
    cancel some of their open orders, for O(duration) seconds or until O(orders) orders in all.
  - Each order is one transaction, one round trip - C(CALL place_order_ref(...); COMMIT) - in which the
    engine's stored procedure locks the symbol, reserves cash or shares, inserts the order with the
    client's reference (C(<run_id>-<client>-<sequence>), column C(orders.client_ref)), matches it by
    price-time priority, inserts the trades and settles both sides (files/sql/0003, 0005).
    Deadlocks and lock-wait timeouts are retried up to 5 times; rejected orders (bad input,
    insufficient funds or shares) are rolled back by the procedure and counted, never half-written.
  - Clients trade through faults until the deadline. Every error is counted by kind. A client whose
    connection is lost (server crashed or restarted, connection killed, refused, too many connections)
    connects again after a wait that doubles up to O(max_backoff) seconds, with jitter, and trades on.
  - A request whose connection was lost during the call that commits it is in doubt. It is never
    acknowledged on the spot; on the client's next connection the order is looked up by its
    reference (a cancel by its order's status), acknowledged if it is there and counted as not
    placed if not.
  - Writes every committed order, cancel and trade with its commit time to O(ack_log) (JSON lines);
    order and cancel lines also carry the request's latency in milliseconds (C(latency_ms)), so
    orders/s and latency percentiles per second can be computed from the log alone.
  - The clients use the C client library mysqlclient when it is installed (the mariadb role installs
    python3-mysqldb), which leaves more of the CPU to the server; PyMySQL otherwise.
  - Between orders, clients read as a brokerage front end does, O(read_share) of their requests (70 % by
    default; in TPC-E, the brokerage benchmark, about three quarters of the transactions are read-only) - the
    account's positions valued at last prices, its recent and open orders, its orders in one symbol, its
    trades of the last day, a market watch of 10 symbols, a symbol's order book (best 5 levels each side) -
    and each client runs the daily report (volume and VWAP per stock) every 30 seconds. Each read is one
    statement in its own transaction through the same account (C(module_utils/stockdb/reads.py) names
    them); read latency is reported apart from the orders' (RV(reads)). O(read_share=0) trades only, as the
    benchmarks and drills do to measure the write path.
  - Reports changed when it placed orders. Works under C(async). In check mode it places no orders and
    reports changed (a run would always place some).
options:
  clients:
    description: Concurrent client processes (1..256).
    type: int
    default: 8
  duration:
    description: Seconds to run (1..86400).
    type: int
    default: 60
  orders:
    description: Stop after about this many orders in all (split evenly over the clients). Default is no limit.
    type: int
  symbols:
    description: How many of the most valuable priced listings the clients trade (1..961).
    type: int
    default: 20
  seed:
    description: Seed of the clients' random streams (client n uses seed*1000+n).
    type: int
    default: 42
  ack_log:
    description: File on the host that every committed order, cancel and trade is appended to. Empty disables it.
    type: path
    default: /var/lib/stockdb/ack.log
  invalid_share:
    description: Share (0..1) of orders sent malformed on purpose (zero quantity, unknown account or symbol, bad price).
    type: float
    default: 0.02
  cancel_share:
    description: Share (0..1) of requests that cancel one of the client's open orders.
    type: float
    default: 0.15
  market_share:
    description: Share (0..1) of new orders that are market orders (immediate-or-cancel).
    type: float
    default: 0.2
  stop_file:
    description:
      - Stop early when this file exists on the host (each client looks for it four times a second), for a
        load run in the background (C(async)) that a drill ends when it has what it needs. O(duration) still
        bounds the run. Requests still in doubt are then looked up for at most 10 more seconds.
      - A file that exists at the start ends the run at once; remove it first.
    type: path
  reconnect:
    description:
      - Connect again after a lost connection and keep trading until the deadline.
      - When false, a client whose connection is lost stops, and the module fails naming it.
    type: bool
    default: true
  read_share:
    description: Share (0..0.95) of a client's requests that are read transactions instead of orders and cancels.
    type: float
    default: 0.7
  max_backoff:
    description:
      - Longest wait in seconds (0.05..60) between two connection attempts. The wait starts at 0.05 s and
        doubles with each failed attempt up to this; each wait is drawn from the upper half of it (jitter).
    type: float
    default: 2.0
  login_defaults_file:
    description: MySQL option file of the account to trade with (the application account by default).
    type: path
    default: /etc/stockdb/app.cnf
requirements:
  - mysqlclient (python3-mysqldb, installed by the mariadb role) for the clients when present, else PyMySQL
extends_documentation_fragment:
  - stockdb_connection
author: stockdb
"""

EXAMPLES = r"""
- name: Trade for a minute with 8 clients
  stockdb_simulate:
    clients: 8
    duration: 60

- name: Trade in the background during a drill
  stockdb_simulate:
    clients: 4
    duration: 300
    ack_log: /var/lib/stockdb/drills/crash.ack
  async: 420
  poll: 0
  register: load

- name: Wait for the load to end
  ansible.builtin.async_status:
    jid: "{{ load.ansible_job_id }}"
  register: done
  until: done is finished
  retries: 90
  delay: 5

- name: Ensure nothing the clients acknowledged through the fault is missing
  stockdb_check:
    ack_log: /var/lib/stockdb/drills/crash.ack
"""

RETURN = r"""
orders:
  description:
    - Orders by outcome. placed = committed; filled, partially_filled, resting and cancelled are
      among them; rejected ones were rolled back.
  returned: success
  type: dict
  sample: {"placed": 9500, "filled": 4100, "partially_filled": 300, "resting": 2900, "cancelled": 2500, "rejected": 210}
trades:
  description: Trades committed.
  returned: success
  type: int
orders_per_s:
  description: Orders committed per second of wall time.
  returned: success
  type: float
transactions_per_s:
  description: Order and cancel transactions committed per second.
  returned: success
  type: float
latency_ms:
  description:
    - Latency of committed orders and cancels (including retries) in milliseconds, p50, p95, p99 and max.
      An in-doubt request's latency runs until it was found committed. Reads are not counted here.
  returned: success
  type: dict
reads:
  description:
    - The read transactions - C(total), C(per_s), C(latency_ms) (p50, p95, p99, max of all of them) and
      C(by_name) (C(count) and the same latency figures per read, for the reads that ran). A read that failed
      is counted in RV(errors), not here.
  returned: success
  type: dict
  sample: {"total": 21000, "per_s": 350.0, "latency_ms": {"p50": 0.9, "p95": 3.1, "p99": 7.4, "max": 40.2},
           "by_name": {"positions": {"count": 4200, "p50": 0.8, "p95": 1.9, "p99": 3.0, "max": 12.5}}}
rejections:
  description: Rejected requests by reason (non_positive_qty, unknown_account, insufficient_funds, cancel_not_open, ...).
  returned: success
  type: dict
errors:
  description:
    - Every error the clients met, by kind - whether it ended a request, was retried (see RV(retries)) or
      was a failed connection attempt. Kinds - C(lock_wait_timeout), C(deadlock), C(connection_lost),
      C(connection_refused), C(too_many_connections), C(access_denied), C(disk_full), C(table_full),
      C(statement_timeout), C(query_interrupted), C(read_only), C(commit_failed), C(constraint_failed),
      C(commands_out_of_sync); C(other:<error number>) or C(other:<exception type>) for anything else;
      C(ack_log:<errno name>) when the ack log could not be written (that request stays unacknowledged).
  returned: success
  type: dict
  sample: {"connection_lost": 8, "connection_refused": 35, "lock_wait_timeout": 2}
retries:
  description: Deadlock and lock-wait-timeout retries.
  returned: success
  type: int
reconnects:
  description: Connections made again after one was lost.
  returned: success
  type: int
in_doubt:
  description: Orders and cancels whose connection was lost while they were being committed.
  returned: success
  type: int
resolved:
  description:
    - The in-doubt requests looked up afterwards. C(found) - committed, acknowledged then (counted among
      the placed orders or the cancels, with their status and trades at that time); C(not_found) - not
      committed (orders not placed, cancels that did not happen).
  returned: success
  type: dict
  sample: {"found": 3, "not_found": 5}
unresolved:
  description: In-doubt requests still not looked up at the deadline (never acknowledged).
  returned: success
  type: int
stopped_early:
  description: Whether O(stop_file) ended the run before O(duration).
  returned: success
  type: bool
run_id:
  description: This run's id, the first part of every order's client reference (C(orders.client_ref)).
  returned: success
  type: str
  sample: "20261201094512a3f09c"
failures:
  description: Clients that stopped before the deadline, with the cause (the module then fails).
  returned: always
  type: list
  elements: str
duration_s:
  description: Wall time of the run.
  returned: success
  type: float
clients:
  description: Client processes run.
  returned: success
  type: int
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import db, simulator

LIMITS = dict(clients=(1, 256), duration=(1, 86400), symbols=(1, 961), max_backoff=(0.05, 60.0),
              read_share=(0.0, 0.95))
SHARES = ("invalid_share", "cancel_share", "market_share")


def validate(module):
    params = module.params
    for name, (low, high) in LIMITS.items():
        if not low <= params[name] <= high:
            module.fail_json(msg=f"{name}={params[name]} is outside {low}..{high}")
    if params["orders"] is not None and params["orders"] < 1:
        module.fail_json(msg=f"orders={params['orders']} must be at least 1 (or omitted for no limit)")
    for name in SHARES:
        if not 0.0 <= params[name] <= 1.0:
            module.fail_json(msg=f"{name}={params[name]} must be between 0 and 1")
    for name in ("ack_log", "stop_file"):
        if params[name]:
            directory = os.path.dirname(params[name]) or "."
            if not os.path.isdir(directory):
                module.fail_json(msg=f"{name} directory {directory} does not exist")


def main():
    argument_spec = db.connection_argument_spec()
    argument_spec["login_defaults_file"]["default"] = "/etc/stockdb/app.cnf"
    argument_spec.update(
        clients=dict(type="int", default=8),
        duration=dict(type="int", default=60),
        orders=dict(type="int"),
        symbols=dict(type="int", default=20),
        seed=dict(type="int", default=42),
        ack_log=dict(type="path", default="/var/lib/stockdb/ack.log"),
        invalid_share=dict(type="float", default=0.02),
        cancel_share=dict(type="float", default=0.15),
        market_share=dict(type="float", default=0.2),
        stop_file=dict(type="path"),
        reconnect=dict(type="bool", default=True),
        max_backoff=dict(type="float", default=2.0),
        read_share=dict(type="float", default=0.7),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    validate(module)
    db.require_pymysql(module)
    db.require_option_file(module)
    if module.check_mode:
        module.exit_json(changed=True, msg="check mode: no orders placed; a run would place orders")
    try:
        result = simulator.run(module.params)
    except ValueError as exc:
        module.fail_json(msg=f"cannot simulate: {exc}")
    except Exception as exc:  # noqa: BLE001 - the connection or a client failed
        module.fail_json(msg=f"simulation failed: {type(exc).__name__}: {exc}")
    if result["failures"]:
        module.fail_json(msg="simulation clients failed: " + "; ".join(result["failures"]), **result)
    module.exit_json(changed=result["orders"]["placed"] > 0, **result)


if __name__ == "__main__":
    main()
