#!/usr/bin/python
"""Ansible module stockdb_promote: make a caught-up replica the primary, in one connection."""

DOCUMENTATION = r"""
---
module: stockdb_promote
short_description: Promote a replica once it has applied a GTID position - wait, stop replicating, take writes
description:
  - The step of C(playbooks/switchover.yml) and C(failover.yml) that decides how long writes are blocked, done
    in one connection to the replica (no round trip between waiting and promoting).
  - Waits until the replica has applied O(wait_gtid) (C(MASTER_GTID_WAIT), at most O(timeout) seconds). When it
    has not, the module fails and changes nothing; its message and RV(state) say what the server is then (its
    replication threads as the caller left them - C(failover.yml) has stopped the I/O thread before).
  - When the server already is a primary (writable, replicating from no host, semi-sync as O(semi_sync) asks),
    it changes nothing and reports RV(already_primary) (C(changed=false), no RV(promoted_at)).
  - Otherwise it stops replicating and forgets its source (C(STOP ALL SLAVES), C(RESET SLAVE ALL)), switches on
    the primary's side of semi-synchronous replication (O(semi_sync)) and takes writes (C(read_only = OFF)).
  - Returns the server's time of the promotion, so the caller can tell how long writes were blocked by the
    servers' clocks.
options:
  wait_gtid:
    description:
      - The GTID position the replica must have applied first (the old primary's C(gtid_binlog_pos), or what
        the replica received).
    type: str
    required: true
  timeout:
    description: Seconds (1..3600) to wait for it.
    type: int
    default: 10
  semi_sync:
    description: Switch on C(rpl_semi_sync_master_enabled) (the primary waits for a replica's acknowledgement).
    type: bool
    default: true
  login_defaults_file:
    description: MySQL option file of an account with the privileges to stop replication and change read_only.
    type: path
    default: /etc/stockdb/admin.cnf
extends_documentation_fragment:
  - stockdb_connection
author: stockdb
"""

EXAMPLES = r"""
- name: Promote the candidate once it has applied the old primary's last transaction
  stockdb_promote:
    wait_gtid: 0-11-4026
    timeout: 10
"""

RETURN = r"""
promoted_at:
  description: The server's UNIX time (with microseconds) when it took writes; null in check mode and when it already was
    the primary.
  returned: success
  type: float
already_primary:
  description: The server already was the primary (writable, replicating from no host); nothing was changed.
  returned: always
  type: bool
state:
  description: What the server was after the wait (before any change) - C(read_only), C(semi_sync) (the primary's side
    on) and C(replication), one item per replication connection (C(connection), C(source), C(io_running), C(sql_running)).
  returned: except in check mode once the wait succeeded
  type: dict
waited_s:
  description: Seconds it waited for O(wait_gtid).
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import db
from ansible.module_utils.stockdb.replication import GTID_POSITION, promote


def main():
    argument_spec = db.connection_argument_spec()
    argument_spec.update(
        wait_gtid=dict(type="str", required=True),
        timeout=dict(type="int", default=10),
        semi_sync=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    if not GTID_POSITION.match(p["wait_gtid"].strip()):
        module.fail_json(msg=f"wait_gtid={p['wait_gtid']!r} is not a GTID position (domain-server-sequence, ...)")
    if not 1 <= p["timeout"] <= 3600:
        module.fail_json(msg=f"timeout={p['timeout']} is outside 1..3600")
    conn = db.connect_or_fail(module, autocommit=True)
    try:
        with conn.cursor() as cur:
            result, error = promote(cur, p["wait_gtid"].strip(), p["timeout"], p["semi_sync"], module.check_mode)
    finally:
        conn.close()
    if error:
        module.fail_json(msg=error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
