#!/usr/bin/python
"""Ansible module stockdb_restore: restore a backup, optionally to a point in time."""

DOCUMENTATION = r"""
---
module: stockdb_restore
short_description: Restore a stockdb backup over the datadir, to the backup's end or to a point in time
description:
  - Restores the newest backup, a named one (O(backup)), or - with O(restore_to) - the newest
    backup of the current binlog timeline from which that point can be reached, then replays the
    archived binlogs up to the point, which is a UTC time C(YYYY-MM-DD HH:MM:SS) (every transaction committed
    before it), a GTID (up to and including it; to stop just before a bad transaction 0-1-N give
    0-1-(N-1)), or C(end) (everything archived, the least loss after losing the datadir).
  - Refuses to replace a datadir that is live (server running or files present) unless
    O(confirm=true). Checks every backup file against its manifest before anything changes.
    Decompresses (and applies incrementals, or prepares a backup not stored prepared) in a staging
    directory next to the datadir while the server still runs; then stops
    the binlog archiver and MariaDB, moves the datadir's contents aside to
    C(<datadir>.replaced-<time>) (kept until O(drop_replaced)), moves the prepared files in, starts a
    private mariadbd (own socket, no TCP) that resets the binlog to the backup's GTID state and
    replays; then starts MariaDB and the archiver on a new binlog timeline, and runs the trading
    invariants (with O(ack_log), also that every acknowledged row up to O(ack_until) is there) on
    the started server, outside the downtime; a violation fails the task but keeps the restore.
  - Any failure after the swap puts the previous datadir back and starts it again, keeping the failed
    attempt in C(<datadir>.failed-restore-<time>); the staging directory is always removed.
  - In check mode returns the plan (backup chain, binlog files to replay, and in C(refused) the
    refusal a real run without O(confirm) would meet) and changes nothing.
  - O(drop_replaced=true) with O(confirm=true) removes the datadirs kept aside by earlier restores (and does
    nothing else); without O(confirm) it refuses when there is one.
options:
  backup:
    description: Backup name (C(YYYYMMDDTHHMMSSZ-full)) or C(latest).
    type: str
    default: latest
  restore_to:
    description: Point to recover to - C(YYYY-MM-DD HH:MM:SS) UTC, a GTID list, or C(end). Default is the backup itself.
    type: str
  confirm:
    description: Allow replacing a live datadir; with O(drop_replaced), allow deleting the datadirs kept aside.
    type: bool
    default: false
  drop_replaced:
    description: Remove the datadirs earlier restores kept aside, instead of restoring (needs O(confirm=true)).
    type: bool
    default: false
  ack_log:
    description: Simulator ack log on the host; every acknowledged row (up to O(ack_until)) must be present afterwards.
    type: path
  ack_until:
    description: UTC time C(YYYY-MM-DD HH:MM:SS[.ffffff]) bounding O(ack_log).
    type: str
  checksum_tables:
    description: Also return every table's row count and checksum after the restore (C(restore.checksums)).
    type: bool
    default: false
  replay_parallel_threads:
    description:
      - Threads of MariaDB's parallel replication that replay the archived binlogs from relay-log copies;
        C(0) replays them as one mariadb-binlog stream. Default from O(config) (the backup role's
        backup_replay_parallel_threads). A GTID target, encrypted binlogs or too little disk space for
        the copies use one stream whatever this says; C(restore.replay.why) tells which.
    type: int
extends_documentation_fragment:
  - stockdb_ops
author: stockdb
"""

EXAMPLES = r"""
- name: Recover to just before an accident at 14:02:07 UTC
  stockdb_restore:
    restore_to: "2026-11-24 14:02:07"
    confirm: true

- name: Recover everything archived after losing the datadir
  stockdb_restore:
    restore_to: end
    confirm: true
"""

RETURN = r"""
restore:
  description:
    - The backup and chain used, the binlog files replayed, the replaced datadir, the GTID position
      reached (C(restored_gtid)), how the binlogs were replayed (C(replay.method) parallel or single
      stream, its threads and transactions, or C(replay.why) not in parallel), the binlog bytes replayed,
      timings (prepare, move back, relay-log copies, replay, downtime, total seconds), the new timeline
      and the invariant check (C(check.ok), C(check.failures), C(check.ack)).
  returned: unless drop_replaced
  type: dict
dropped:
  description: Datadirs removed by O(drop_replaced).
  returned: when drop_replaced
  type: list
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb.ops import OpsError, catalogue, restore, settings

ACK_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?$")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            backup=dict(type="str", default="latest"),
            restore_to=dict(type="str"),
            confirm=dict(type="bool", default=False),
            drop_replaced=dict(type="bool", default=False),
            ack_log=dict(type="path"),
            ack_until=dict(type="str"),
            replay_parallel_threads=dict(type="int"),
            checksum_tables=dict(type="bool", default=False),
            config=dict(type="path", default=settings.CONFIG),
            backup_dir=dict(type="path"),
            encrypt_key_file=dict(type="path", no_log=False),
        ),
        mutually_exclusive=[("drop_replaced", "restore_to")],
        supports_check_mode=True,
    )
    p = module.params
    if p["backup"] != "latest" and not catalogue.BACKUP_NAME.match(p["backup"]):
        module.fail_json(msg=f"backup={p['backup']!r} is neither 'latest' nor a backup name like 20261124T030000Z-full")
    if p["ack_until"] and not ACK_TIME.match(p["ack_until"]):
        module.fail_json(msg=f"ack_until={p['ack_until']!r} is not 'YYYY-MM-DD HH:MM:SS[.ffffff]'")
    try:
        catalogue.parse_target(p["restore_to"])
        s = settings.load(p["config"], dict(backup_dir=p["backup_dir"], encrypt_key_file=p["encrypt_key_file"],
                                            replay_parallel_threads=p["replay_parallel_threads"]))
        if p["drop_replaced"]:
            found = restore.drop_replaced(s, p["confirm"], dry_run=module.check_mode)
            module.exit_json(changed=bool(found), dropped=found)
        plan = restore.restore(s, p["backup"], p["restore_to"], p["confirm"], p["ack_log"], p["ack_until"],
                               dry_run=module.check_mode, checksums=p["checksum_tables"])
    except OpsError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:  # a file the restore or its roll back could not move or read: its cause, not a traceback
        module.fail_json(msg=f"{'dropping the kept datadirs' if p['drop_replaced'] else 'the restore'} failed: {exc}")
    if module.check_mode:
        # a restore replaces the datadir whenever it is allowed to run
        module.exit_json(changed=not plan["refused"], restore=plan)
    check = plan["check"]
    if not check["ok"]:
        module.fail_json(msg="restored, and the server runs, but the invariants fail: " + " | ".join(check["failures"]),
                         changed=True, restore=plan)
    module.exit_json(changed=True, restore=plan)


if __name__ == "__main__":
    main()
