#!/usr/bin/python
"""Ansible module stockdb_stop_point: where a delayed replica must stop, just before a bad statement."""

DOCUMENTATION = r"""
---
module: stockdb_stop_point
short_description: Find the GTID a delayed replica must stop at to hold the data of just before a bad statement
description:
  - Runs on the primary. Reads its binlog through its server (C(mariadb-binlog --read-from-remote-server) as root
    over the unix socket, so encrypted binlogs read as plain), from the file that holds O(applied_pos) on, and
    finds the bad transaction - by its GTID (O(before_gtid)), or as the first transaction at or after a time
    (O(before_time)) - and the transaction just before it.
  - C(START SLAVE UNTIL master_gtid_pos) on MariaDB 10.11 stops only on an exact GTID (domain, server id and
    sequence number); the result's C(stop_gtid) is that GTID. Used by C(playbooks/delayed_recover.yml).
  - Fails, naming why, when the delayed replica already applied the bad transaction (it holds the damage too),
    when the GTID is not in the binlog after O(applied_pos), when the binlogs it would need were purged, or when
    transactions of another GTID domain wait too. Reads only; never changes anything.
options:
  applied_pos:
    description: The delayed replica's C(@@gtid_slave_pos) (what it has applied), read after its SQL thread stopped.
    type: str
    required: true
  before_gtid:
    description: GTID of the bad transaction (C(domain-server_id-sequence)), e.g. from C(mariadb-binlog) or the audit log.
    type: str
  before_time:
    description:
      - Time of the bad statement, ISO 8601 with its UTC offset (C(2026-12-04T15:00:00+09:00)). Binlog times are
        whole seconds, so a fraction of a second is dropped, and the stop is before the first transaction logged in that
        second or later.
    type: str
  login_unix_socket:
    description: The primary's server socket (root connects through it).
    type: path
    default: /run/mysqld/mysqld.sock
notes:
  - Exactly one of O(before_gtid) and O(before_time).
author: stockdb
"""

EXAMPLES = r"""
- name: Find where the delayed replica must stop
  stockdb_stop_point:
    applied_pos: 0-11-4026
    before_gtid: 0-11-5210
"""

RETURN = r"""
bad_gtid:
  description: GTID of the bad transaction.
  returned: success
  type: str
  sample: 0-11-5210
bad_at:
  description: Its time in the binlog (UTC, whole seconds).
  returned: success
  type: str
  sample: "2026-12-04T06:00:02Z"
stop_gtid:
  description: GTID of the last transaction to apply (the one just before the bad one).
  returned: success
  type: str
  sample: 0-11-5209
transactions:
  description: Transactions the delayed replica applies to get there (0 - it stands just before it already).
  returned: success
  type: int
binlogs_read:
  description: The primary's binlog files read.
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb.delayed import DelayedError, find_stop


def main():
    module = AnsibleModule(
        argument_spec=dict(
            applied_pos=dict(type="str", required=True),
            before_gtid=dict(type="str"),
            before_time=dict(type="str"),
            login_unix_socket=dict(type="path", default="/run/mysqld/mysqld.sock"),
        ),
        mutually_exclusive=[("before_gtid", "before_time")],
        required_one_of=[("before_gtid", "before_time")],
        supports_check_mode=True,
    )
    p = module.params
    try:
        result = find_stop(p["login_unix_socket"], p["applied_pos"], before_gtid=p["before_gtid"],
                           before_time=p["before_time"])
    except DelayedError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
