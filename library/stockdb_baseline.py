#!/usr/bin/python
"""Ansible module stockdb_baseline: check a database host against the project's security baseline."""

DOCUMENTATION = r"""
---
module: stockdb_baseline
short_description: Check a database host against the security baseline (accounts, configuration, encryption, files)
description:
  - Runs every control of the baseline (C(module_utils/stockdb/baseline.py)) against the live host - SQL as
    root over the unix socket, C(stat) and C(find) for files - and returns each control's id, title,
    rationale, status (C(pass), C(fail), C(waived), C(error)) and findings. It changes nothing.
  - The controls, in the spirit of the dev-sec MySQL baseline and the CIS benchmark for MariaDB - accounts
    (ACC-01..08 - no anonymous, wildcard-host or remote root account, a credential on every account,
    administrative privileges only where they belong, a lockout after failed logins, a password policy,
    C(ed25519) authentication where the clients support it),
    configuration (CFG-01..06 - C(local_infile) off, C(secure_file_priv) confined, symbolic links off, no test
    database, no DNS in logins, durable commits), TLS available and required from the network (NET-01..02),
    audit (AUD-01), encryption at rest (ENC-01..02) and files (FS-01..05 - datadir, password option files,
    configuration, logs, backups).
  - A control that fails can be waived with a reason (O(waivers)) - a documented exception an auditor can
    read; the module then reports it as C(waived), not C(fail). It fails only when told (O(fail_on_findings)).
  - C(playbooks/baseline.yml) runs it on every database host and writes the report an auditor gets.
options:
  waivers:
    description: Control id -> the reason it is accepted not to pass (for example C({NET-01 - clients are on this host only})).
    type: dict
    default: {}
  admin_accounts:
    description: Accounts allowed administrative privileges (SUPER, FILE, SHUTDOWN, CREATE USER, ...) besides root and mysql.
    type: list
    elements: str
    default: [stockdb_admin]
  max_password_errors:
    description: The highest C(max_password_errors) the lockout control accepts (1..1000).
    type: int
    default: 10
  option_file_dirs:
    description: Directories whose C(*.cnf) client option files hold passwords (the mariadb role's C(mariadb_client_config_dir)).
    type: list
    elements: path
    default: [/etc/stockdb]
  native_password_accounts:
    description:
      - Accounts that may keep C(mysql_native_password) because their clients lack C(ed25519) (ACC-08); every other
        account with a password must use C(ed25519). The mariadb role's C(mariadb_exporter_auth_plugin) and
        C(mariadb_report_auth_plugin) say which of its accounts these are.
    type: list
    elements: str
    default: [stockdb_exporter, stockdb_report]
  backup_dir:
    description: The backup directory (roles/backup C(backup_dir)); a host without it passes that control.
    type: path
    default: /var/backups/stockdb
  fail_on_findings:
    description: Fail the task when a control fails or cannot be checked (waived controls do not count).
    type: bool
    default: false
notes:
  - Needs root (C(become)) - root logs in over the unix socket and reads the datadir's and option files' modes.
  - Supports check mode (it only reads).
author: stockdb maintainers
"""

EXAMPLES = r"""
- name: Check the host against the baseline, accepting that TLS is not set up yet
  stockdb_baseline:
    waivers:
      NET-01: "clients connect over the unix socket only"
  become: true
  register: baseline
"""

RETURN = r"""
controls:
  description:
    - Every control in order, with C(id), C(title), C(rationale), C(status) (pass, fail, waived, error), C(findings)
      and C(waiver).
  returned: always
  type: list
  elements: dict
  sample: [{"id": "CFG-01", "title": "LOAD DATA LOCAL is off", "status": "fail", "findings": ["local_infile = ON"]}]
counts:
  description: How many controls passed, failed, were waived or could not be checked.
  returned: always
  type: dict
  sample: {"pass": 17, "fail": 0, "waived": 5, "error": 0}
passed:
  description: True when no control failed or was left unchecked (waived ones aside).
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import baseline


def main():
    module = AnsibleModule(
        argument_spec=dict(
            waivers=dict(type="dict", default={}),
            admin_accounts=dict(type="list", elements="str", default=["stockdb_admin"]),
            max_password_errors=dict(type="int", default=10),
            option_file_dirs=dict(type="list", elements="path", default=["/etc/stockdb"]),
            native_password_accounts=dict(type="list", elements="str", default=["stockdb_exporter", "stockdb_report"]),
            backup_dir=dict(type="path", default="/var/backups/stockdb"),
            fail_on_findings=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not 1 <= p["max_password_errors"] <= 1000:
        module.fail_json(msg=f"max_password_errors={p['max_password_errors']} is outside 1..1000")
    empty = sorted(k for k, v in p["waivers"].items() if not str(v or "").strip())
    if empty:
        module.fail_json(msg=f"waivers need a reason: {', '.join(empty)} has none")
    probe = baseline.Probe(lambda argv: module.run_command(argv),
                           {k: p[k] for k in ("admin_accounts", "max_password_errors", "option_file_dirs",
                                                     "native_password_accounts", "backup_dir")})
    try:
        results = baseline.evaluate(probe, {k: str(v) for k, v in p["waivers"].items()})
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    summary = baseline.summary(results)
    out = dict(changed=False, controls=results, counts={k: summary[k] for k in ("pass", "fail", "waived", "error")},
               passed=summary["passed"])
    if p["fail_on_findings"] and not summary["passed"]:
        bad = [f"{r['id']} ({r['status']}): {'; '.join(r['findings'])}" for r in results if r["status"] in ("fail", "error")]
        module.fail_json(msg="baseline not met: " + " | ".join(bad), **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
