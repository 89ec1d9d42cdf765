#!/usr/bin/python
"""Ansible module stockdb_backup: physical hot backups with a manifest, and their verification."""

DOCUMENTATION = r"""
---
module: stockdb_backup
short_description: Take, list or verify stockdb backups (mariabackup, manifest, binlog archive)
description:
  - O(action=backup) takes a physical hot backup with mariabackup while the server keeps trading,
    full or incremental (on the newest backup of the current binlog timeline), optionally with a
    logical dump, then compresses (zstd) and encrypts (openssl) each file as configured. It writes
    a manifest (start, consistent and end time, binlog file, position and GTID, LSNs, size,
    SHA-256 of every file, tool versions, duration and, with table checksums on, the row count
    and checksum of every table at a consistent snapshot with its binlog position), then moves the
    backup into place; a failure leaves nothing that looks like a backup, writes the alert log and
    the failure metrics. Then drops what the retention settings no longer keep.
  - O(action=verify) checks every file of the backup (or O(backup)) against its manifest, restores
    it into a scratch mariadbd (own datadir and socket, no TCP), replays the archived binlogs to the
    checksum point, compares every table's checksum, runs the trading invariants, records the
    restore time and writes metrics; it fails naming the corrupted or missing file or the table
    that differs. The scratch instance and files are removed in every case.
  - O(action=list) returns the manifests of the kept backups. Nothing changes.
  - The same code runs from the systemd timers (C(stockdb-ops), installed by the backup role).
options:
  action:
    description: What to do.
    type: str
    choices: [backup, verify, list]
    default: backup
  type:
    description: Backup type for O(action=backup).
    type: str
    choices: [full, incremental]
    default: full
  backup:
    description: Backup name to verify (C(YYYYMMDDTHHMMSSZ-full)); default the newest.
    type: str
  logical_dump:
    description: Also write a logical dump (mariadb-dump) of the trading database; default from O(config).
    type: bool
extends_documentation_fragment:
  - stockdb_ops
author: stockdb
"""

EXAMPLES = r"""
- name: Take a full hot backup
  stockdb_backup:
    type: full

- name: Prove the newest backup restores and matches its manifest
  stockdb_backup:
    action: verify
"""

RETURN = r"""
backup:
  description: The manifest of the backup taken (O(action=backup)), without the per-file checksums.
  returned: when action is backup
  type: dict
pruned:
  description: Backups and archived binlogs removed by retention.
  returned: when action is backup
  type: dict
verify:
  description: Backup, chain, restore and replay seconds, tables compared, invariants, problems (empty = passed).
  returned: when action is verify
  type: dict
backups:
  description: Kept backups, oldest first (name, type, timeline, consistent_at, size_bytes, binlog, chain).
  returned: always
  type: list
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb.ops import OpsError, catalogue, jobs, settings

SUMMARY = ("name", "type", "timeline", "consistent_at", "size_bytes", "binlog", "chain")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", choices=["backup", "verify", "list"], default="backup"),
            type=dict(type="str", choices=list(catalogue.KINDS), default="full"),
            backup=dict(type="str"),
            logical_dump=dict(type="bool"),
            config=dict(type="path", default=settings.CONFIG),
            backup_dir=dict(type="path"),
            encrypt_key_file=dict(type="path", no_log=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["backup"] and not catalogue.BACKUP_NAME.match(p["backup"]):
        module.fail_json(msg=f"backup={p['backup']!r} is not a backup name like 20261124T030000Z-full")
    try:
        s = settings.load(p["config"], dict(backup_dir=p["backup_dir"], encrypt_key_file=p["encrypt_key_file"],
                                            logical_dump=p["logical_dump"]))
        # check mode: a backup would always add one; a verification changes no data
        result = dict(changed=p["action"] == "backup")
        if p["action"] == "backup" and not module.check_mode:
            manifest, pruned = jobs.backup_job(s, p["type"])
            result.update(backup={k: v for k, v in manifest.items() if k != "files"}, pruned=pruned)
        elif p["action"] == "verify" and not module.check_mode:
            result["verify"] = jobs.verify_job(s, p["backup"])
        result["backups"] = [{k: b[k] for k in SUMMARY} for b in catalogue.list_backups(s)]
    except OpsError as exc:
        module.fail_json(msg=str(exc))
    if result.get("verify", {}).get("problems"):
        problems = "; ".join(result["verify"]["problems"])
        module.fail_json(msg=f"backup {result['verify']['backup']} failed verification: {problems}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
