#!/usr/bin/python
"""Ansible module stockdb_backup: physical hot backups with a manifest, their verification, and masked dumps."""

DOCUMENTATION = r"""
---
module: stockdb_backup
short_description: Take, list or verify stockdb backups (mariabackup, manifest, binlog archive), or dump one masked
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
  - O(action=dump) writes a logical dump (mariadb-dump) of the trading database as of a backup (or O(backup))
    to O(dest) on the host, for test environments. The backup's seal and files are checked, it is restored
    into a scratch mariadbd, customers' names and e-mail addresses are masked there (O(mask)), and the dump is
    written (mode 0600) and renamed into place only when complete. The live server is not touched; the
    scratch copy is removed in every case. Refuses a O(dest) that exists.
  - O(action=list) returns the manifests of the kept backups. Nothing changes.
  - O(action=backup) and O(action=verify) run only on the backup source (the role's C(backup_source) - the
    writable primary by default, asked at each run, or one named host); elsewhere they change nothing and
    return RV(skipped_reason), unless O(here).
  - The same code runs from the systemd timers (C(stockdb-ops), installed by the backup role).
options:
  action:
    description: What to do.
    type: str
    choices: [backup, verify, dump, list]
    default: backup
  type:
    description: Backup type for O(action=backup).
    type: str
    choices: [full, incremental]
    default: full
  backup:
    description: Backup name to verify or dump (C(YYYYMMDDTHHMMSSZ-full)); default the newest.
    type: str
  dest:
    description: The dump file on the host for O(action=dump) (an absolute path that does not exist yet).
    type: path
  mask:
    description:
      - Mask the personal data in the dump of O(action=dump) (C(users.name), C(users.email)), with the masks of
        the reporting views. C(false) keeps them - never for a test environment.
    type: bool
    default: true
  logical_dump:
    description: Also write a logical dump (mariadb-dump) of the trading database; default from O(config).
    type: bool
  here:
    description:
      - Back up or verify on this host even when it is not the backup source (a replica, or a restored host
        whose new binlog timeline needs a full backup of its own).
    type: bool
    default: false
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

- name: A dump of the newest backup for a test environment, customers' data masked
  stockdb_backup:
    action: dump
    dest: /var/lib/stockdb/dumps/stockdb-masked.sql
"""

RETURN = r"""
backup:
  description: The manifest of the backup taken (O(action=backup)), without the per-file checksums.
  returned: when action is backup and this host is the backup source (or O(here))
  type: dict
skipped_reason:
  description: Why nothing was backed up or verified - this host is not the backup source.
  returned: when action is backup or verify and this host is not the backup source
  type: str
pruned:
  description: Backups and archived binlogs removed by retention.
  returned: when action is backup and a backup was taken
  type: dict
verify:
  description: Backup, chain, restore and replay seconds, tables compared, invariants, problems (empty = passed).
  returned: when action is verify
  type: dict
dump:
  description: Backup dumped, its consistent_at, output path, bytes, tables, and the columns masked per table.
  returned: when action is dump
  type: dict
backups:
  description: Kept backups, oldest first (name, type, timeline, consistent_at, size_bytes, binlog, chain).
  returned: always
  type: list
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb.ops import OpsError, catalogue, dump, jobs, settings

SUMMARY = ("name", "type", "timeline", "consistent_at", "size_bytes", "binlog", "chain")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", choices=["backup", "verify", "dump", "list"], default="backup"),
            type=dict(type="str", choices=list(catalogue.KINDS), default="full"),
            backup=dict(type="str"),
            logical_dump=dict(type="bool"),
            dest=dict(type="path"),
            mask=dict(type="bool", default=True),
            here=dict(type="bool", default=False),
            config=dict(type="path", default=settings.CONFIG),
            backup_dir=dict(type="path"),
            encrypt_key_file=dict(type="path", no_log=False),
        ),
        supports_check_mode=True,
        required_if=[("action", "dump", ("dest",))],
    )
    p = module.params
    if p["backup"] and not catalogue.BACKUP_NAME.match(p["backup"]):
        module.fail_json(msg=f"backup={p['backup']!r} is not a backup name like 20261124T030000Z-full")
    try:
        s = settings.load(p["config"], dict(backup_dir=p["backup_dir"], encrypt_key_file=p["encrypt_key_file"],
                                            logical_dump=p["logical_dump"]))
        # check mode: a backup would always add one; a verification changes no data
        result = dict(changed=p["action"] in ("backup", "dump"))
        if p["action"] == "backup" and not module.check_mode:
            taken = jobs.backup_job(s, p["type"], here=p["here"])
            if taken["skipped"]:
                result.update(changed=False, skipped_reason=taken["skipped"])
            else:
                result.update(backup={k: v for k, v in taken["manifest"].items() if k != "files"}, pruned=taken["pruned"])
        elif p["action"] == "verify" and not module.check_mode:
            result["verify"] = jobs.verify_job(s, p["backup"], here=p["here"])
            if result["verify"].get("skipped"):
                result["skipped_reason"] = result["verify"]["skipped"]
        elif p["action"] == "dump" and not module.check_mode:
            result["dump"] = dump.dump(s, p["dest"], p["backup"], mask=p["mask"])
        result["backups"] = [{k: b[k] for k in SUMMARY} for b in catalogue.list_backups(s)]
    except OpsError as exc:
        module.fail_json(msg=str(exc))
    if result.get("verify", {}).get("problems"):
        problems = "; ".join(result["verify"]["problems"])
        module.fail_json(msg=f"backup {result['verify']['backup']} failed verification: {problems}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
