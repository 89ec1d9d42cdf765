#!/usr/bin/python
"""Ansible module stockdb_bench: the measurements and figures of the benchmark playbooks."""

DOCUMENTATION = r"""
---
module: stockdb_bench
short_description: Measure with sysbench, back-to-back backups and a cold copy; compute and write the figures
description:
  - The Python behind C(playbooks/benchmark.yml) and C(playbooks/backup_benchmark.yml); the logic is in
    C(module_utils/stockdb/bench.py) and unit-tested.
  - O(action=sysbench) runs a sysbench OLTP workload against the local server's unix socket - prepare,
    run for O(duration) seconds, cleanup (also after a failure) - as O(login_user), whose password goes
    into a private sysbench C(--config-file) (mode 0600, removed whatever happens), never onto a command
    line. Returns the transaction rate and the latency percentiles read from sysbench's report. The
    database and the account are the caller's (community.mysql.mysql_db and mysql_user).
  - O(action=backups) takes full backups back to back with C(stockdb-ops --config CONFIG backup) until
    O(duration) seconds have passed (the backup under way finishes) or O(max_backups); every backup
    must succeed. Give it a copy of the settings with its own backup, state and log directories, so the
    backups under load stay apart from the real ones.
  - O(action=alternate) measures trading during backups while a load runs (start the simulator in the
    background first, with an O(ack_log)) - windows of O(quiet) seconds without a backup and of one
    C(stockdb-ops --config CONFIG backup --type BACKUP_TYPE --intraday) in turn (as the intraday job takes
    them, with table checksums and compression only if the settings' C(intraday_table_checksums) and
    C(intraday_compress) say so), quiet first and last, for O(duration)
    seconds (the time the load still runs); then it counts the orders the simulator acknowledged in each
    window from O(ack_log). Each backup window is compared with the quiet ones on either side, so the
    drift of the rate over a run cancels. Fails when no backup fits or the load ended before the windows.
  - O(action=cold_copy) stops O(services) (in order), copies the data files of O(datadir) with tar into
    the empty directory O(dest), syncs, and starts the services again (in reverse order) whatever
    happens. Returns the copy's size and the seconds of the copy and the sync - what a restore is
    compared with.
  - O(action=result) computes the figures of a benchmark of O(kind) from the results of the tasks that
    measured (O(measured)), writes them as JSON to O(output_dir), and returns them with summary lines.
    Run it on the controller (delegated to localhost).
  - Every action is bounded by O(timeout) seconds. In check mode nothing runs and nothing is written,
    and the module reports changed (a run always changes something).
options:
  action:
    description: What to do.
    type: str
    choices: [sysbench, backups, alternate, cold_copy, result]
    required: true
  duration:
    description:
      - Seconds (1..3600) sysbench runs (O(action=sysbench)), during which backups are started one after
        the other (O(action=backups)), or the windows of O(action=alternate) take (at most the time the load
        still runs).
    type: int
    default: 60
  timeout:
    description:
      - Upper bound in seconds (1..86400) of the whole action; commands still running then are stopped.
      - Default O(duration) + 600 for O(action=sysbench), O(action=backups) and O(action=alternate), 600 for
        O(action=cold_copy).
    type: int
  workload:
    description: The sysbench workload (O(action=sysbench)).
    type: str
    choices: [oltp_read_only, oltp_read_write, oltp_write_only, oltp_point_select, oltp_insert, oltp_update_index,
              oltp_update_non_index, oltp_delete]
    default: oltp_write_only
  login_unix_socket:
    description: Unix socket of the local server (O(action=sysbench)); sysbench connects nowhere else.
    type: path
    default: /run/mysqld/mysqld.sock
  login_user:
    description: Account sysbench uses (O(action=sysbench)); it needs ALL on O(database) only.
    type: str
  login_password:
    description: Its password (O(action=sysbench)); written only into the private config file.
    type: str
  database:
    description: Database of sysbench's tables (O(action=sysbench)); it must exist.
    type: str
    default: sbtest
  phases:
    description:
      - The sysbench phases to run, in the order prepare, run, cleanup (O(action=sysbench)). A run on tables
        prepared once, for example after each restart of a parameter experiment, is C([run]); the figures
        are returned when C(run) is among them. With C(cleanup) the tables go even when the run failed.
    type: list
    elements: str
    choices: [prepare, run, cleanup]
    default: [prepare, run, cleanup]
  tables:
    description: sysbench tables (1..64).
    type: int
    default: 4
  table_size:
    description: Rows per sysbench table (1..10000000).
    type: int
    default: 100000
  threads:
    description: sysbench client threads (1..256).
    type: int
    default: 8
  config:
    description: The stockdb-ops JSON settings the backups under load use (O(action=backups) and O(action=alternate)).
    type: path
  backup_type:
    description:
      - The backups O(action=alternate) takes; C(incremental) needs a full backup in the settings' backup
        directory already (the intraday backups of the backup role are incrementals).
    type: str
    choices: [full, incremental]
    default: incremental
  quiet:
    description: Seconds (1..600) of each window without a backup (O(action=alternate)).
    type: int
    default: 20
  ack_log:
    description: The simulator's ack log whose orders O(action=alternate) counts per window.
    type: path
  max_backups:
    description: At most this many backups (1..1000) for O(action=backups).
    type: int
    default: 100
  datadir:
    description: The server's datadir (O(action=cold_copy)).
    type: path
    default: /var/lib/mysql
  dest:
    description: Where the copy goes (O(action=cold_copy)); absent or empty, outside O(datadir).
    type: path
  exclude:
    description: tar patterns left out of the copy (O(action=cold_copy)); by default the redo log and the binlogs.
    type: list
    elements: str
    default: ["./ib_logfile*", "./binlog.*"]
  services:
    description: systemd units stopped for the copy, in this order, and started in reverse (O(action=cold_copy)).
    type: list
    elements: str
    default: [stockdb-binlog-archiver, mariadb]
  kind:
    description:
      - The benchmark whose figures O(action=result) computes. C(engine) - sysbench against the trade
        simulator (C(playbooks/benchmark.yml)); C(backup) - hot backups, restore and replay
        (C(playbooks/backup_benchmark.yml)).
    type: str
    choices: [engine, backup]
  measured:
    description:
      - The registered results O(action=result) computes from. C(engine) - C(clients), C(duration_s),
        C(tables), C(table_size), C(sysbench), and C(simulator) and C(seed) (null when skipped).
        C(backup) - C(clients), C(duration_s), C(before), C(after), C(loaded), C(replayed)
        (stockdb_simulate), C(backups), C(intraday) (O(action=alternate)) and C(cold_copy) (this module),
        C(base) (stockdb_backup), C(restore) and C(restore_single) (stockdb_restore).
    type: dict
  host:
    description: The host measured; part of the result and of the file name (O(action=result)).
    type: str
  started_at:
    description: When the benchmark started, C(YYYY-MM-DDTHH:MM:SSZ); names the file (default now).
    type: str
  output_dir:
    description: Directory of the JSON file (O(action=result)); created when missing.
    type: path
requirements:
  - sysbench on the host for O(action=sysbench); stockdb-ops (roles/backup) for O(action=backups)
author: stockdb
"""

EXAMPLES = r"""
- name: Run sysbench oltp_write_only for a minute
  stockdb_bench:
    action: sysbench
    login_user: stockdb_bench
    login_password: "{{ bench_password }}"
    threads: 8
    duration: 60
  no_log: true
  register: sysbench

- name: Take full backups back to back for 90 s, into the directories of another settings file
  stockdb_bench:
    action: backups
    config: /etc/stockdb/ops-bench.json
    duration: 90

- name: While the simulator trades in the background, alternate 20 s without and one incremental backup
  stockdb_bench:
    action: alternate
    config: /etc/stockdb/ops-bench.json
    ack_log: /var/lib/stockdb/bench-ack.log
    duration: 285

- name: Copy the datadir with the server stopped
  stockdb_bench:
    action: cold_copy
    dest: /var/backups/stockdb/benchmark/plain-copy

- name: Compute the figures and write them on the controller
  stockdb_bench:
    action: result
    kind: engine
    host: "{{ inventory_hostname }}"
    output_dir: "{{ playbook_dir }}/../out"
    measured:
      clients: 8
      duration_s: 60
      tables: 4
      table_size: 100000
      sysbench: "{{ sysbench }}"
      simulator: "{{ simulator | default(None) }}"
      seed: "{{ seed | default(None) }}"
  delegate_to: localhost
  become: false
"""

RETURN = r"""
transactions:
  description: Transactions sysbench committed (O(action=sysbench)).
  returned: when action is sysbench and run is among the phases
  type: int
tps:
  description: sysbench transactions per second.
  returned: when action is sysbench and run is among the phases
  type: float
p99_ms:
  description: sysbench's 99th percentile latency in milliseconds.
  returned: when action is sysbench and run is among the phases
  type: float
latency_ms:
  description: sysbench's latency min, avg, max and p99 in milliseconds.
  returned: when action is sysbench and run is among the phases
  type: dict
queries_per_s:
  description: sysbench queries per second.
  returned: when action is sysbench and run is among the phases
  type: float
ignored_errors:
  description: Errors sysbench ignored (deadlocks it retried).
  returned: when action is sysbench and run is among the phases
  type: int
report:
  description: sysbench's report of the run.
  returned: when action is sysbench and run is among the phases
  type: str
count:
  description: Backups taken (O(action=backups)).
  returned: when action is backups
  type: int
runs:
  description: Each backup's name, size, duration as stockdb-ops printed them, and its wall time.
  returned: when action is backups
  type: list
elapsed_s:
  description: Wall time of all the backups.
  returned: when action is backups
  type: float
windows:
  description:
    - The windows of O(action=alternate) in order - kind (quiet or backup), start and end (UTC epoch
      seconds), seconds, orders acknowledged, orders/s and the longest order latency (max_latency_ms, ms; null
      when the ack log has no latencies); a backup's also its line from stockdb-ops (run).
  returned: when action is alternate
  type: list
  elements: dict
figures:
  description:
    - What O(action=alternate) measured - each backup window's orders/s divided by the mean of its quiet
      neighbours (ratios, and their mean, min, median, max), the backups' seconds and phases, the longest
      order of each backup window (backup_max_latency_ms) and of all the quiet ones (quiet_max_latency_ms),
      and orders/s over all quiet and all backup windows.
  returned: when action is alternate
  type: dict
bytes:
  description: Size of the cold copy, files and directories as C(du -sb) counts them.
  returned: when action is cold_copy
  type: int
seconds:
  description: Wall time of the cold copy and its sync.
  returned: when action is cold_copy
  type: float
result:
  description: The figures (O(action=result)), as written to RV(file).
  returned: when action is result
  type: dict
  sample: {"host": "stockdb-lab", "clients": 8, "sysbench_tps": 2509.1, "simulator_orders_per_s": 1370.5, "ratio": 0.5462}
summary:
  description: The figures in a few lines, for the play's output.
  returned: when action is result
  type: list
  elements: str
file:
  description: The JSON file written on the host running the module (the controller when delegated).
  returned: when action is result
  type: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import bench

LIMITS = dict(duration=(1, 3600), timeout=(1, 86400), tables=(1, 64), table_size=(1, 10_000_000), threads=(1, 256),
              max_backups=(1, 1000), quiet=(1, 600))
# options without a default that only some actions read
OWN = dict(sysbench=("login_user", "login_password"), backups=("config",), alternate=("config", "ack_log"),
           cold_copy=("dest",), result=("kind", "measured", "host", "started_at", "output_dir"))
GRACE_S = 600
ACK_SETTLE_S = 1


def validate(module):
    p = module.params
    for name, (low, high) in LIMITS.items():
        if p[name] is not None and not low <= p[name] <= high:
            module.fail_json(msg=f"{name}={p[name]} is outside {low}..{high}")
    mine = OWN.get(p["action"], ())
    foreign = sorted({name for names in OWN.values() for name in names if name not in mine and p[name] is not None})
    if foreign:
        module.fail_json(msg=f"action={p['action']} does not take {', '.join(foreign)}")
    if p["action"] in ("backups", "alternate"):
        if not os.path.isfile(p["config"]):
            module.fail_json(msg=f"config {p['config']} does not exist")
        if p["timeout"] is not None and p["timeout"] < p["duration"]:
            module.fail_json(msg=f"timeout={p['timeout']} is shorter than duration={p['duration']}")


def timeout(p):
    if p["timeout"] is not None:
        return p["timeout"]
    return p["duration"] + GRACE_S if p["action"] in ("sysbench", "backups", "alternate") else GRACE_S


def runner(module):
    """run(argv, seconds) -> (rc, stdout, stderr), the command stopped after `seconds`."""
    timeout_bin = module.get_bin_path("timeout", required=True)
    return lambda argv, seconds: module.run_command(bench.bounded(timeout_bin, argv, seconds))


def sysbench(module, run):
    p = module.params
    config_text = bench.sysbench_config(p["login_user"], p["login_password"])
    directory = bench.private_dir()
    try:
        config_file = os.path.join(directory, "sysbench.cfg")
        argv = bench.sysbench_argv(module.get_bin_path("sysbench", required=True), p["workload"], p["login_unix_socket"],
                                   p["database"], p["tables"], p["table_size"], p["threads"], config_file)
        figures = bench.run_sysbench(run, argv, p["duration"], timeout(p), config_text, config_file, phases=p["phases"])
    finally:
        os.rmdir(directory)
    cleanup_error = figures.pop("cleanup_error")
    if cleanup_error:
        module.warn(f"sysbench's tables may be left in {p['database']}: {cleanup_error}")
    return figures


def backups(module, run):
    p = module.params
    ops = module.get_bin_path("stockdb-ops", required=True, opt_dirs=["/usr/local/sbin"])
    return bench.back_to_back(run, [ops, "--config", p["config"], "backup"], p["duration"], p["max_backups"], timeout(p))


def alternate(module, run):
    p = module.params
    ops = module.get_bin_path("stockdb-ops", required=True, opt_dirs=["/usr/local/sbin"])
    argv = [ops, "--config", p["config"], "backup", "--type", p["backup_type"], "--intraday"]  # as the intraday job
    done = bench.alternate(run, argv, p["duration"], p["quiet"], timeout(p))
    time.sleep(ACK_SETTLE_S)  # the orders committed at the last window's end reach the ack log
    try:
        with open(p["ack_log"], encoding="utf-8") as lines:
            windows = bench.count_orders(lines, done["windows"])
    except OSError as exc:
        raise bench.BenchError(f"cannot read the ack log {p['ack_log']}: {exc.strerror}") from None
    return dict(windows=windows, figures=bench.alternating_figures(windows))


def cold_copy(module, run):
    p = module.params

    def units(verb, names):
        systemctl = module.get_bin_path("systemctl", required=True) if names else None
        for name in names:
            argv = [systemctl, verb, name]
            bench.checked(f"{verb} {name}", argv, 120, *run(argv, 120))

    return bench.cold_copy(p["datadir"], p["dest"], p["exclude"], stop=lambda: units("stop", p["services"]),
                           start=lambda: units("start", list(reversed(p["services"]))), timeout=timeout(p),
                           tar=module.get_bin_path("tar", required=True))


def result(module):
    p = module.params
    path = bench.result_path(p["output_dir"], p["kind"], p["host"], p["started_at"])
    _, compute, summarize = bench.KINDS[p["kind"]]
    figures = compute(p["host"], p["measured"], started_at=p["started_at"])
    if not module.check_mode:
        bench.write_result(path, figures)
    return dict(result=figures, summary=summarize(figures) + [f"written to {path}"], file=path)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", required=True, choices=["sysbench", "backups", "alternate", "cold_copy", "result"]),
            duration=dict(type="int", default=60),
            timeout=dict(type="int"),
            workload=dict(type="str", choices=list(bench.SYSBENCH_WORKLOADS), default="oltp_write_only"),
            login_unix_socket=dict(type="path", default="/run/mysqld/mysqld.sock"),
            login_user=dict(type="str"),
            login_password=dict(type="str", no_log=True),
            database=dict(type="str", default="sbtest"),
            phases=dict(type="list", elements="str", choices=list(bench.SYSBENCH_PHASES), default=list(bench.SYSBENCH_PHASES)),
            tables=dict(type="int", default=4),
            table_size=dict(type="int", default=100000),
            threads=dict(type="int", default=8),
            config=dict(type="path"),
            max_backups=dict(type="int", default=100),
            backup_type=dict(type="str", choices=["full", "incremental"], default="incremental"),
            quiet=dict(type="int", default=20),
            ack_log=dict(type="path"),
            datadir=dict(type="path", default="/var/lib/mysql"),
            dest=dict(type="path"),
            exclude=dict(type="list", elements="str", default=["./ib_logfile*", "./binlog.*"]),
            services=dict(type="list", elements="str", default=["stockdb-binlog-archiver", "mariadb"]),
            kind=dict(type="str", choices=list(bench.KINDS)),
            measured=dict(type="dict"),
            host=dict(type="str"),
            started_at=dict(type="str"),
            output_dir=dict(type="path"),
        ),
        required_if=[("action", "sysbench", ("login_user", "login_password")), ("action", "backups", ("config",)),
                     ("action", "alternate", ("config", "ack_log")),
                     ("action", "cold_copy", ("dest",)), ("action", "result", ("kind", "measured", "host", "output_dir"))],
        supports_check_mode=True,
    )
    validate(module)
    action = module.params["action"]
    try:
        if action == "result":
            module.exit_json(changed=True, **result(module))
        if module.check_mode:
            module.exit_json(changed=True, msg=f"check mode: {action} not run; a run always changes something")
        run = runner(module)
        outcome = dict(sysbench=sysbench, backups=backups, alternate=alternate, cold_copy=cold_copy)[action](module, run)
    except bench.BenchError as exc:
        module.fail_json(msg=f"{action}: {exc}")
    module.exit_json(changed=True, **outcome)


if __name__ == "__main__":
    main()
