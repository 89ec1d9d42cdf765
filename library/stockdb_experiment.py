#!/usr/bin/python
"""Ansible module stockdb_experiment: the plan and the report of a parameter experiment (playbooks/tune_experiment.yml)."""

DOCUMENTATION = r"""
---
module: stockdb_experiment
short_description: Plan a parameter experiment's steps, and turn its runs into a table, JSON and a picture
description:
  - Runs on the controller (C(delegate_to=localhost), C(run_once=true)); the logic is in
    C(module_utils/stockdb/experiment.py) and unit-tested. C(playbooks/tune_experiment.yml) calls it twice.
  - O(action=plan) checks the request and returns the steps of one round - per value its label, the
    configuration it runs on (C(role), the role's my.cnf; C(stock), Debian's with O(stock_settings)) and the
    text of the drop-in file the playbook writes as C(99-stockdb-experiment.cnf). Names must be server
    variable names and values plain my.cnf values (no spaces, quotes or line breaks), so nothing else can go
    into the file.
  - O(action=report) turns O(runs) into figures (throughput, p99, buffer pool hit rate, disk reads and writes,
    MiB written and fsyncs per second, from the workload's result and the C(SHOW GLOBAL STATUS) counters
    around it; mariadbd's CPU ms per transaction and the host's busy share, from the CPU times read around
    it), min / median / max per value, and each round's ratio to the first value of the same round
    (throughput, p99, mariadbd's CPU per transaction);
    writes C(<param>-<workload>.md), C(.json) and C(.png) into O(dest).
options:
  action:
    description: What to do.
    type: str
    choices: [plan, report]
    required: true
  param:
    description:
      - The server variable the values set, or C(config) to compare the role's configuration with stock
        (O(values) C(role) and C(stock)). With values given as mappings it only names the experiment.
    type: str
    required: true
  values:
    description:
      - One to eight values, in the order they run in each round (the first is what the ratios are to). A
        value may be a mapping of several variables set together.
    type: list
    elements: raw
    required: true
  base:
    description: The configuration the values are set on.
    type: str
    choices: [role, stock]
    default: role
  workload:
    description: The simulator's read/write mix, or a sysbench workload.
    type: str
    choices: [mix, oltp_read_only, oltp_read_write, oltp_write_only, oltp_point_select]
    default: mix
  stock_settings:
    description: What a C(stock) step keeps of the role's file (durability, the binlog, the server id).
    type: dict
    default: {}
  runs:
    description:
      - O(action=report) - one dict per run with C(round), C(label), C(result) (the simulator's or
        C(stockdb_bench)'s), C(before) and C(after) (C(SHOW GLOBAL STATUS) rows), C(seconds) between them,
        C(effective) (the step's variables as the server reported them) and, optionally, C(cpu_before) and
        C(cpu_after) (the output of C(getconf CLK_TCK; head -n 1 /proc/stat; cat /proc/<mariadbd>/stat) at the
        same two points).
    type: list
    elements: dict
    default: []
  meta:
    description:
      - O(action=report) - host, clients, duration_s, warmup_s, rounds, started_at, tables, table_size, command;
        data_mb and data_mb_end, the workload's data and indexes in MiB before the first run and after the last.
    type: dict
    default: {}
  dest:
    description: O(action=report) - the directory of the report; created when missing.
    type: path
  picture:
    description: O(action=report) - draw the PNG (needs matplotlib on the controller).
    type: bool
    default: true
author: stockdb
"""

EXAMPLES = r"""
- name: Plan the buffer pool experiment
  stockdb_experiment:
    action: plan
    param: innodb_buffer_pool_size
    values: [128M, 256M, 768M]
  delegate_to: localhost
  run_once: true
  register: plan
"""

RETURN = r"""
steps:
  description: O(action=plan) - per value, C(label), C(base), C(settings) and C(drop_in) (the file's text).
  returned: success
  type: list
  elements: dict
counters:
  description: O(action=plan) - the C(SHOW GLOBAL STATUS) counters the report reads from each run's C(before) and C(after).
  returned: success
  type: list
  elements: str
summary:
  description: O(action=report) - per value, the min / median / max of each figure and of the ratios.
  returned: success
  type: list
  elements: dict
files:
  description: O(action=report) - the files written into O(dest).
  returned: success
  type: list
  elements: str
table:
  description: O(action=report) - the Markdown report.
  returned: success
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import experiment


def plan(p):
    steps = experiment.plan(p["param"], p["values"], p["base"], p["workload"])
    experiment_name = f"{p['param']} ({p['workload']})"
    return dict(changed=False, steps=[dict(s, drop_in=experiment.drop_in(s, p["stock_settings"], experiment_name))
                                      for s in steps], counters=list(experiment.COUNTERS))


def report(module, p):
    steps = experiment.plan(p["param"], p["values"], p["base"], p["workload"])
    if not p["dest"]:
        raise experiment.ExperimentError("dest is required with action=report")
    if not p["runs"]:
        raise experiment.ExperimentError("runs is empty: no run was measured")
    runs = []
    for i, run in enumerate(p["runs"]):
        try:
            figures = experiment.figures(p["workload"], run["result"], experiment.status(run["before"]),
                                         experiment.status(run["after"]), float(run["seconds"]),
                                         run.get("cpu_before"), run.get("cpu_after"))
            runs.append(dict(round=int(run["round"]), label=str(run["label"]), figures=figures,
                             effective=run.get("effective") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise experiment.ExperimentError(f"run {i} lacks or has a bad {exc}") from None
        except experiment.ExperimentError as exc:
            raise experiment.ExperimentError(f"run {i} ({run.get('label')}, round {run.get('round')}): {exc}") from None
    meta = dict(p["meta"], param=p["param"], workload=p["workload"])
    for key in ("host", "clients", "duration_s", "warmup_s", "rounds"):
        meta.setdefault(key, "?")
    summary = experiment.summarize(steps, runs)
    files = experiment.render(meta, summary, runs, picture=p["picture"])
    written = [] if module.check_mode else experiment.write(p["dest"], files)
    return dict(changed=not module.check_mode, summary=summary, files=written,
                table=files[experiment.file_stem(p["param"], p["workload"]) + ".md"].decode())


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", required=True, choices=["plan", "report"]),
            param=dict(type="str", required=True),
            values=dict(type="list", elements="raw", required=True),
            base=dict(type="str", default="role", choices=["role", "stock"]),
            workload=dict(type="str", default="mix", choices=list(experiment.WORKLOADS)),
            stock_settings=dict(type="dict", default={}),
            runs=dict(type="list", elements="dict", default=[]),
            meta=dict(type="dict", default={}),
            dest=dict(type="path"),
            picture=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        module.exit_json(**(plan(p) if p["action"] == "plan" else report(module, p)))
    except experiment.ExperimentError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"cannot write the report into {p['dest']}: {exc}")


if __name__ == "__main__":
    main()
