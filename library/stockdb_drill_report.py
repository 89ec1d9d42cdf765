#!/usr/bin/python
"""Ansible module stockdb_drill_report: the report of the fault drills (docs/drills/) from their results."""

DOCUMENTATION = r"""
---
module: stockdb_drill_report
short_description: Write the fault drill report - JSON, a Markdown table of all faults and a timeline picture per fault
description:
  - Turns the results of the drills of C(playbooks/chaos.yml) (O(results), one dict per drill and run) into
    a report in O(dest); the logic is in C(module_utils/stockdb/drill_report.py) and unit-tested. Run it on
    the controller (C(delegate_to=localhost), C(run_once=true)).
  - Every run is checked against its C(budgets) - alert within C(budgets.alert_s) of the injection, recovered
    within C(budgets.recover_s) of the start of the remediation, no acknowledged row lost, the invariants
    hold, nothing left behind. With several runs of a fault its figures are min / median / max over the
    runs, and the fault passes only when every run passes (the worst run meets the budget).
  - Writes C(report.json) (a summary and the results as given, without their time series),
    C(series.json) (each run's C(series), one line per run), C(report.md) (a header, one table of all
    faults, the failed checks, a section per fault linking its picture) and C(<fault>.png) per fault (900x450,
    orders/s and p99 over time, threads running below, marks at injection, alert, remediation start and
    recovery), drawn from the last run of the fault (the highest C(run)).
  - The output depends on O(results), O(title), O(commit) and O(command) only (no clock, PNG metadata
    stripped), so the same results give the same bytes; files whose bytes would not change are not written,
    and a rerun reports changed=false. Each file is written to a temporary file and renamed. C(<fault>.png)
    of a fault not in O(results) is removed, so O(dest) holds the report of these results only.
  - Bad results (a missing key, a wrong type, an unknown fault, the same fault, run and host twice) fail
    naming the drill (its index, fault and run) and the key; nothing is written.
  - In check mode nothing is written or removed; C(changed) says whether a real run would.
options:
  results:
    description:
      - One dict per drill and run, as C(playbooks/chaos.yml) collects them - C(fault), C(run), C(host),
        C(injected_at), C(alerted_at), C(remediation_started_at), C(remediation_finished_at),
        C(recovered_at) (UTC C(YYYY-MM-DDTHH:MM:SS.ffffffZ); all but C(injected_at) may be null), C(alert),
        C(remediation), C(time_to_alert_s), C(time_to_recover_s) (C(from_remediation), C(from_injection)),
        C(orders_per_s) and C(p99_ms) (C(before), C(during), C(after)), C(dip_ratio), C(client_errors)
        (kind to count), C(acknowledged_lost), C(invariants_ok), C(left_behind), C(series) (C(t0),
        C(step_s), C(orders_per_s), C(p99_ms), C(threads_running) as C([unix time, value]) pairs) and
        C(budgets) (C(alert_s), C(recover_s)). Other keys are kept in C(report.json) as they are.
      - A figure the drill could not measure may be null (orders/s, p99, C(dip_ratio), the times) and shows
        as C(none); a null C(acknowledged_lost) means the ack log was not checked, and the run fails.
    type: list
    elements: dict
    required: true
  dest:
    description: Directory of the report (for the repository's copy, C(docs/drills)); created when missing.
    type: path
    required: true
  title:
    description: First heading of C(report.md).
    type: str
    default: Fault drills
  commit:
    description: The commit of the repository the drills ran from, printed in the header for reproducibility.
    type: str
  command:
    description: The command that ran the drills, printed in the header for reproducibility.
    type: str
  broken_off:
    description:
      - Why the drills stopped before the end (a drill that failed outright, so the ones after it did not run),
        as C(playbooks/chaos.yml) collects it. Each is a failed check of the report, listed first.
    type: list
    elements: str
    default: []
requirements:
  - matplotlib (requirements.txt) in the controller's Python
author: stockdb
"""

EXAMPLES = r"""
- name: Write the drill report into the repository
  stockdb_drill_report:
    results: "{{ drill_results }}"
    dest: "{{ playbook_dir }}/../docs/drills"
    commit: "{{ lookup('ansible.builtin.pipe', 'git -C ' ~ playbook_dir ~ ' rev-parse --short HEAD') }}"
    command: ansible-playbook playbooks/chaos.yml -e chaos_fault=all -e chaos_confirm=true -e chaos_repeat=5
  delegate_to: localhost
  run_once: true
  become: false
  register: drill_report

- name: Every run of every fault met every check
  ansible.builtin.assert:
    that: drill_report.passed
    fail_msg: "{{ drill_report.failures }}"
  run_once: true
"""

RETURN = r"""
passed:
  description: Every run of every fault passed every check.
  returned: success
  type: bool
failures:
  description:
    - One line per failed check - the fault, run and host, the check (alert, recover, lost, invariants,
      left_behind) and why.
  returned: success
  type: list
  elements: str
  sample: ["lock_storm run 2 on stockdb-lab: alert: after 71.3 s, over the budget of 60 s"]
files:
  description: Every file of the report in O(dest), written now or already as they should be.
  returned: success
  type: list
  elements: str
written:
  description: The files whose content changed (in check mode, would change).
  returned: success
  type: list
  elements: str
removed:
  description: Pictures of faults not in O(results) that were (in check mode, would be) removed.
  returned: success
  type: list
  elements: str
summary:
  description:
    - The summary written to C(report.json) - C(hosts), C(first_injection), C(last_event), C(drills),
      C(passed), C(failures), and per fault C(runs), C(passed), C(failed_checks) (check to runs), the
      C(min), C(median), C(max) and C(missing) of each figure, and C(timeline) (the picture and its run).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import drill_report


def main():
    module = AnsibleModule(
        argument_spec=dict(
            results=dict(type="list", elements="dict", required=True),
            dest=dict(type="path", required=True),
            title=dict(type="str", default="Fault drills"),
            commit=dict(type="str"),
            command=dict(type="str"),
            broken_off=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        outcome = drill_report.write_report(p["dest"], p["results"], title=p["title"], commit=p["commit"],
                                            command=p["command"], check_mode=module.check_mode,
                                            broken_off=p["broken_off"])
    except drill_report.DrillReportError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"cannot write the report into {p['dest']}: {exc}")
    summary = outcome["summary"]
    module.exit_json(changed=outcome["changed"], passed=summary["passed"], failures=summary["failures"],
                     files=outcome["files"], written=outcome["written"], removed=outcome["removed"], summary=summary)


if __name__ == "__main__":
    main()
