#!/usr/bin/python
"""Ansible module stockdb_check: verify the trading invariants (read-only)."""

DOCUMENTATION = r"""
---
module: stockdb_check
short_description: Verify the stockdb trading invariants, and that every acknowledged row is present
description:
  - Runs read-only checks in one consistent snapshot (a REPEATABLE READ transaction), namely
    cash conservation (total cash incl. reservations = deposits - withdrawals), cash and share
    reservations equal to what open orders hold, share conservation per stock (issued = unheld
    inventory + every position), no negative balance or holding, each order's filled quantity =
    the sum of its trades, trade prices within both orders' limits, legal statuses.
  - Given O(ack_log), also checks that every order and trade the simulator acknowledged (up to
    O(ack_until), when set) is in the database, and that every order acknowledged as filled or
    cancelled still is.
  - Fails naming the check and the first violating rows; never changes anything.
options:
  checks:
    description: Run only these checks (names as in the result). Default is all.
    type: list
    elements: str
  ack_log:
    description: Acknowledgement log written by stockdb_simulate, on the host.
    type: path
  ack_until:
    description: Only acknowledgements committed at or before this UTC time (C(YYYY-MM-DD HH:MM:SS[.ffffff])) must be present.
    type: str
  checksums:
    description:
      - Also return the row count and a checksum of every table of the schema, from the values of every column
        (not CHECKSUM TABLE, which hashes the row buffer and differs between identical copies of a table with a
        virtual column), in the same snapshot. Equal on a primary and its caught-up replicas.
    type: bool
    default: false
  login_defaults_file:
    description: MySQL option file of an account that may read the trading schema.
    type: path
    default: /etc/stockdb/admin.cnf
extends_documentation_fragment:
  - stockdb_connection
author: stockdb
"""

EXAMPLES = r"""
- name: Ensure the books balance
  stockdb_check: {}

- name: Ensure nothing the simulator acknowledged was lost
  stockdb_check:
    ack_log: /var/lib/stockdb/ack.log
"""

RETURN = r"""
checks:
  description: Per check, whether it holds, the number of violating rows, and up to 10 of them.
  returned: always
  type: dict
  sample: {"cash_conservation": {"ok": true, "violations": 0, "sample": []}}
totals:
  description: Row counts and money totals at the time of the check.
  returned: always
  type: dict
ack:
  description:
    - With ack_log, lines read, acknowledged orders and trades checked, the missing ids, and the
      orders whose acknowledged final status was lost; C(in_doubt_confirmed) counts the orders and
      cancels the simulator acknowledged only after looking them up (their commit was in doubt).
  returned: when ack_log is set
  type: dict
checksums:
  description: Per table of the schema, C(rows) and C(checksum).
  returned: when checksums is true
  type: dict
  sample: {"orders": {"rows": 3898, "checksum": 8370442127731}}
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import db, invariants
from ansible.module_utils.stockdb.ops import integrity

TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?$")


def totals(cursor):
    cursor.execute(
        "SELECT (SELECT COUNT(*) FROM accounts), (SELECT COUNT(*) FROM orders), (SELECT COUNT(*) FROM trades), "
        "(SELECT COALESCE(SUM(balance + reserved), 0) FROM accounts), (SELECT COALESCE(SUM(amount), 0) FROM cash_movements)")
    accounts, orders, trades, cash, deposited = cursor.fetchone()
    return dict(accounts=accounts, orders=orders, trades=trades, cash_krw=int(cash), deposited_krw=int(deposited))


def main():
    argument_spec = db.connection_argument_spec()
    argument_spec.update(
        checks=dict(type="list", elements="str"),
        ack_log=dict(type="path"),
        ack_until=dict(type="str"),
        checksums=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    known = [name for name, _ in invariants.CHECKS]
    unknown = sorted(set(p["checks"] or ()) - set(known))
    if unknown:
        module.fail_json(msg=f"unknown checks {unknown}; known: {known}")
    if p["ack_until"] and not TIME.match(p["ack_until"]):
        module.fail_json(msg=f"ack_until={p['ack_until']!r} is not 'YYYY-MM-DD HH:MM:SS[.ffffff]'")
    if p["ack_log"] and not os.path.isfile(p["ack_log"]):
        module.fail_json(msg=f"ack_log {p['ack_log']} does not exist")

    conn = db.connect_or_fail(module)
    try:
        with conn.cursor() as cur:
            db.require_tables(module, cur, invariants.TABLES)
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            try:
                results, failures, ack = invariants.check_database(cur, p["checks"], p["ack_log"], p["ack_until"])
            except (ValueError, KeyError) as exc:
                module.fail_json(msg=f"cannot read ack_log: {exc}")
            result = dict(changed=False, checks=results, totals=totals(cur))
            if ack is not None:
                result["ack"] = ack
            if p["checksums"]:
                cur.execute("SELECT DATABASE()")
                result["checksums"] = integrity.table_checksums(cur, cur.fetchone()[0])
            conn.rollback()
    finally:
        conn.close()
    if failures:
        module.fail_json(msg="invariants violated: " + " | ".join(failures), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
