#!/usr/bin/python
"""Ansible module stockdb_chaos: inject one bounded fault into a stockdb host, or remove what faults left."""

DOCUMENTATION = r"""
---
module: stockdb_chaos
short_description: Inject one bounded fault (query storm, connection flood, lock storm, disk full, crash, ...) for a drill
description:
  - O(state=present) injects one O(fault) for O(duration) seconds; O(state=absent) removes what a fault
    left (its unit, filler file, io directory, chaos sessions) and starts the exporter an C(exporter_down)
    stopped. Without O(fault), O(state=absent) removes the leftovers of every fault.
  - Every fault but C(crash) runs inside a transient systemd unit C(stockdb-chaos-<fault>), so it ends by
    itself even when the controller dies. Its command ends itself after O(duration) seconds (the worker's
    deadline, stress-ng's C(--timeout), C(sleep)) and C(RuntimeMaxSec=duration+5) stops the unit at the
    latest 5 s later; what the fault must undo (removing the filler, starting the exporter) is the unit's
    C(ExecStopPost). The SQL faults are also ended by the server at the deadline (C(max_statement_time) per
    query, C(idle_transaction_timeout), C(wait_timeout)), even if their process is killed.
  - C(query_storm) - O(sessions) sessions run heavy analytical reports (full scans, a join without its
    indexes, sorts over orders and trades) one after the other. C(connection_flood) - opens connections
    until the server refuses (C(max_connections)) and holds them idle, so the application's logins are
    refused; the account must not have C(SUPER) or C(CONNECTION ADMIN), so the connection MariaDB keeps for
    administrators stays free. C(lock_storm) - one session updates the O(lock_rows) hottest rows of
    O(lock_target) (symbols - most orders among the last 10000; accounts - the owners of the resting
    orders nearest the last price of the five busiest symbols, whom the next takers fill against) and keeps
    the transaction open, never committing - orders queue and hit lock-wait timeouts; the change is rolled
    back when the session ends or is killed.
  - C(disk_full) - fills the filesystem of the datadir (or of the binlog or tmp directory, O(disk_target),
    or of O(path)) to 100% with the file C(stockdb-chaos.filler) at its mount point. Refuses the root
    filesystem and any filesystem larger than O(max_fs_bytes), so it only ever fills a dedicated volume.
  - C(crash) - SIGKILL to the main process of O(service) (systemd restarts it and crash recovery runs);
    returns once the process is gone. C(exporter_down) - stops O(exporter_service) for the duration.
    C(cpu_hog) and C(io_hog) - a noisy neighbour with stress-ng (C(--timeout) = the duration).
  - Injection refuses without O(confirm=true), on a host outside the inventory group C(chaos_targets), and
    with O(duration) over O(max_duration); a refusal names every problem and injects nothing. The action
    plugin of the same name passes the host's groups from the inventory. Removal needs neither.
  - SQL faults log in with O(login_defaults_file) (credentials never on a command line); their sessions
    carry the connection attribute C(program_name=stockdb-chaos:<fault>) and O(state=absent) kills exactly
    those (or, without performance_schema, the ids the worker recorded), never replication or system threads.
  - A fault already in effect (its unit active) is not injected again (changed=false). In check mode nothing
    is started or removed; C(changed) says whether a real run would.
options:
  fault:
    description: The fault. Required with O(state=present).
    type: str
    choices: [query_storm, connection_flood, lock_storm, disk_full, crash, exporter_down, cpu_hog, io_hog]
  state:
    description: C(present) injects the fault; C(absent) removes what it (or, without O(fault), any fault) left.
    type: str
    choices: [present, absent]
    default: present
  confirm:
    description: Must be true to inject anything.
    type: bool
    default: false
  duration:
    description: Seconds the fault lasts (1..O(max_duration)); its unit stops then whatever happens.
    type: int
    default: 60
  max_duration:
    description: The cap on O(duration) (1..86400).
    type: int
    default: 600
  sessions:
    description:
      - C(query_storm) - sessions running reports (1..256, default 8).
      - C(connection_flood) - the most connections to open (1..5000, default 5000); it stops earlier when the server is full.
    type: int
  lock_target:
    description: C(lock_storm) - lock the hottest rows of C(stocks_inventory) (C(stocks)) or of C(accounts). Default C(stocks).
    type: str
    choices: [stocks, accounts]
  lock_rows:
    description: C(lock_storm) - how many rows to lock (1..1000, default 10).
    type: int
  disk_target:
    description: C(disk_full) - fill the filesystem of the server's datadir, binlog directory or first tmpdir. Default C(datadir).
    type: str
    choices: [datadir, binlog, tmpdir]
  path:
    description:
      - C(disk_full) - a directory on the filesystem to fill, instead of asking the server (O(disk_target)).
      - C(io_hog) - the directory stress-ng writes under (in C(stockdb-chaos-io)); default C(/var/tmp).
    type: path
  max_fs_bytes:
    description: C(disk_full) - refuse a filesystem larger than this many bytes (default 1073741824, 1 GiB).
    type: int
  workers:
    description: C(cpu_hog) - stress-ng CPU workers (0..64, default 0 = one per CPU); C(io_hog) - hdd workers (1..64, default 2).
    type: int
  cpu_load:
    description: C(cpu_hog) - percent load of each CPU worker (1..100, default 100).
    type: int
  io_size_mb:
    description: C(io_hog) - MiB each worker writes (1..4096, default 128); twice the total must be free.
    type: int
  service:
    description: The database's systemd unit (C(crash)).
    type: str
    default: mariadb
  exporter_service:
    description: The mysqld exporter's systemd unit (C(exporter_down)).
    type: str
    default: prometheus-mysqld-exporter
  login_defaults_file:
    description:
      - Option file ([client] group) of the account the SQL faults log in with. It needs SELECT on O(database),
        and UPDATE on C(stocks_inventory) and C(accounts) for C(lock_storm); no SUPER or CONNECTION ADMIN.
    type: path
    default: /etc/stockdb/chaos.cnf
  admin_defaults_file:
    description: Option file of the admin account, which finds and kills chaos sessions and reads the server's directories.
    type: path
    default: /etc/stockdb/admin.cnf
  database:
    description: The trading database.
    type: str
    default: stockdb
  state_dir:
    description: Directory on the host for the worker and the records of the faults (removed when nothing is left).
    type: path
    default: /run/stockdb-chaos
  inventory_groups:
    description: The host's inventory groups. Set by the action plugin from the inventory; a task that sets it is refused.
    type: list
    elements: str
  inventory_hostname:
    description: The host's inventory name, for messages. Set by the action plugin.
    type: str
requirements:
  - systemd on the host; PyMySQL (python3-pymysql) for the SQL faults; stress-ng for C(cpu_hog) and C(io_hog)
author: stockdb
"""

EXAMPLES = r"""
- name: A runaway report for two minutes
  stockdb_chaos:
    fault: query_storm
    sessions: 8
    duration: 120
    confirm: true
  register: injected

- name: Fill the binlog volume (a dedicated filesystem of at most 1 GiB)
  stockdb_chaos:
    fault: disk_full
    disk_target: binlog
    duration: 60
    confirm: true

- name: Remove what any fault left on the host
  stockdb_chaos:
    state: absent
"""

RETURN = r"""
fault:
  description: The fault (null for O(state=absent) without O(fault)).
  returned: always
  type: str
unit:
  description: The transient systemd unit of the fault (null for C(crash)).
  returned: when state is present
  type: str
injected_at:
  description: UTC time (C(YYYY-MM-DDTHH:MM:SSZ)) the fault was in effect (the process killed, the sessions open, the disk full).
  returned: when state is present and not in check mode
  type: str
  sample: "2026-12-02T10:15:03Z"
expires_at:
  description: UTC time the unit ends by itself (null for C(crash)).
  returned: when state is present and not in check mode
  type: str
removed_at:
  description: UTC time the removal finished.
  returned: when state is absent and not in check mode
  type: str
details:
  description:
    - What the fault did. SQL faults - C(user), C(sessions) (thread ids), and C(opened) and C(limit)
      (connection_flood), C(locked) (lock_storm - table, key, ids, the uncommitted change), C(queries)
      (query_storm). disk_full - C(file), C(bytes), C(available_bytes_after). crash - C(killed_pid).
      exporter_down - C(service), C(service_state).
  returned: when state is present and not in check mode
  type: dict
command:
  description: The command the unit runs.
  returned: when state is present
  type: list
  elements: str
removed:
  description: Per fault, what was done (C(done), empty when nothing was left) and when it had been injected.
  returned: when state is absent
  type: list
  elements: dict
already_active:
  description: The fault's unit was active already; nothing was injected.
  returned: when state is present
  type: bool
"""

import os
import sys

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import chaos
from ansible.module_utils.stockdb.ops import OpsError, connection

SERVER_GONE = (2002, 2003, 2006, 2013)


class Sql:
    """The admin connection of the module: the server's directories, the chaos sessions, KILL."""

    def __init__(self, defaults_file):
        self.defaults_file = defaults_file

    def _connect(self):
        try:
            return connection.connect(self.defaults_file)
        except OpsError as exc:
            if _code(exc.__cause__) in SERVER_GONE:
                return None  # no server running: no sessions on it
            raise

    def directories(self):
        conn = self._connect()
        if conn is None:
            raise OpsError(f"cannot ask the server for its directories with {self.defaults_file}: it is not running")
        try:
            with connection.driver_errors("reading @@datadir, @@log_bin_basename, @@tmpdir"), conn.cursor() as cur:
                cur.execute("SELECT @@datadir, @@log_bin_basename, @@tmpdir")
                datadir, binlog, tmpdir = cur.fetchone()
        finally:
            conn.close()
        return dict(datadir=datadir, binlog=os.path.dirname(binlog) if binlog else None,
                    tmpdir=(tmpdir or "").split(":")[0] or None)

    def threads(self, fault, recorded):
        conn = self._connect()
        if conn is None:
            return []
        try:
            with connection.driver_errors("listing the server's threads"), conn.cursor() as cur:
                try:
                    cur.execute(chaos.PROCESSLIST)
                except connection.DriverError:  # performance_schema not there: the ids the worker recorded
                    cur.execute(chaos.PROCESSLIST_PLAIN)
                names = [d[0] for d in cur.description]
                rows = [dict(zip(names, row)) for row in cur.fetchall()]
        finally:
            conn.close()
        return chaos.chaos_threads(rows, fault, recorded)

    def kill(self, ids):
        conn = self._connect()
        if conn is None:
            return []
        killed = []
        try:
            with conn.cursor() as cur:
                for thread in ids:
                    try:
                        cur.execute(f"KILL CONNECTION {int(thread)}")
                        killed.append(thread)
                    except connection.DriverError as exc:
                        if _code(exc) != 1094:  # unknown thread: it ended meanwhile
                            raise OpsError(f"killing chaos session {thread}: {connection.describe(exc)}") from exc
        finally:
            conn.close()
        return killed


def _code(exc):
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def tools(module, fault, state):
    """Paths of the host tools; stress-ng only where it is needed, failing with the package's name."""
    found = dict(python=sys.executable)
    for name, binary in (("systemd_run", "systemd-run"), ("systemctl", "systemctl"), ("journalctl", "journalctl"),
                         ("rm", "rm"), ("sleep", "sleep")):
        found[name] = module.get_bin_path(binary, required=True)
    found["stress_ng"] = module.get_bin_path("stress-ng")
    if state == "present" and fault in ("cpu_hog", "io_hog") and not found["stress_ng"]:
        module.fail_json(msg=f"{fault} needs stress-ng on the host (Debian/Ubuntu package stress-ng); nothing injected")
    return found


def disk_directory(p, sql):
    """The directory whose filesystem disk_full fills: O(path), else the server's directory of O(disk_target)."""
    if p["options"].get("path"):
        return p["options"]["path"]
    target = p["options"]["disk_target"]
    directory = sql.directories()[target]
    if not directory:
        raise OpsError(f"disk_full: the server has no {target} directory (disk_target={target}); nothing injected")
    return directory


def targets_for_removal(p, sql):
    """Where disk_full's filler and io_hog's directory would be, when no record says it (best effort)."""
    found = {}
    opts = p["options"]
    try:
        if p["fault"] in (None, "disk_full"):
            directory = opts.get("path") or sql.directories()[opts.get("disk_target") or "datadir"]
            if directory and os.path.isdir(directory):
                found["disk_full"] = os.path.join(chaos.mount_point(directory), chaos.FILLER_NAME)
    except (OpsError, KeyError):
        pass
    io_path = opts.get("path") if p["fault"] == "io_hog" else chaos.FAULT_DEFAULTS["io_hog"]["path"]
    found["io_hog"] = os.path.join(io_path, chaos.IO_DIR_NAME)
    return found


def present(module, p, host, sql):
    fault, options = p["fault"], p["options"]
    unit = chaos.unit_name(fault)
    if fault != "crash" and host.active(unit) in ("active", "activating"):
        record = chaos.read_json(chaos.paths(host.state_dir, fault)["record"]) or {}
        module.exit_json(changed=False, already_active=True, fault=fault, unit=unit, msg=f"{fault} is in effect already ({unit})",
                         **{k: record.get(k) for k in ("injected_at", "expires_at", "details", "command")})
    target = None
    if fault in chaos.SQL_FAULTS:
        if connection.pymysql is None:
            module.fail_json(msg=f"{fault} needs PyMySQL on the host (Debian/Ubuntu package python3-pymysql); nothing injected")
        if not os.access(options["login_defaults_file"], os.R_OK):
            module.fail_json(msg=f"{fault}: login_defaults_file {options['login_defaults_file']} does not exist or is not "
                                 f"readable (the account the fault logs in with); nothing injected")
    if fault == "disk_full":
        target = chaos.fillable(disk_directory(p, sql), options["max_fs_bytes"])["filler"]
    if fault == "io_hog":
        target = chaos.io_space(options["path"], options["workers"], options["io_size_mb"])
    if fault == "exporter_down" and host.active(options["exporter_service"]) != "active":
        module.fail_json(msg=f"exporter_down: {options['exporter_service']} is not active; nothing to stop, nothing injected")
    if fault == "crash":
        show, _ = chaos.crash_commands(host.tools["systemctl"], options["service"])
        pid = (host.checked(f"crash: reading the main PID of {options['service']}", show) or "0").strip()
        if pid in ("", "0"):
            module.fail_json(msg=f"crash: {options['service']} is not running (MainPID 0); nothing killed")
    if module.check_mode:
        command = None
        if fault != "crash":
            command, _ = chaos.fault_command(fault, p["duration"], options, host.tools, host.state_dir, target)
        module.exit_json(changed=True, fault=fault, unit=None if fault == "crash" else unit, command=command,
                         already_active=False, msg=f"check mode: {fault} not injected")
    record = chaos.inject(host, fault, p["duration"], options, target)
    module.exit_json(changed=True, already_active=False, **{k: record.get(k) for k in (
        "fault", "unit", "injected_at", "expires_at", "details", "command")})


def absent(module, p, host):
    faults = [p["fault"]] if p["fault"] else list(chaos.FAULTS)
    changed, removed = chaos.remove(host, faults, p["options"], targets_for_removal(p, host.sql), check_mode=module.check_mode,
                                    named=bool(p["fault"]))
    result = dict(changed=changed, fault=p["fault"], removed=removed)
    if not module.check_mode:
        result["removed_at"] = chaos.utc_stamp()
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            fault=dict(type="str", choices=list(chaos.FAULTS)),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            confirm=dict(type="bool", default=False),
            duration=dict(type="int", default=60),
            max_duration=dict(type="int", default=chaos.MAX_DURATION_DEFAULT),
            sessions=dict(type="int"),
            lock_target=dict(type="str", choices=list(chaos.LOCK_TARGETS)),
            lock_rows=dict(type="int"),
            disk_target=dict(type="str", choices=list(chaos.DISK_TARGETS)),
            path=dict(type="path"),
            max_fs_bytes=dict(type="int"),
            workers=dict(type="int"),
            cpu_load=dict(type="int"),
            io_size_mb=dict(type="int"),
            service=dict(type="str", default="mariadb"),
            exporter_service=dict(type="str", default="prometheus-mysqld-exporter"),
            login_defaults_file=dict(type="path", default="/etc/stockdb/chaos.cnf"),
            admin_defaults_file=dict(type="path", default="/etc/stockdb/admin.cnf"),
            database=dict(type="str", default="stockdb"),
            state_dir=dict(type="path", default="/run/stockdb-chaos"),
            inventory_groups=dict(type="list", elements="str"),
            inventory_hostname=dict(type="str"),
        ),
        required_if=[("state", "present", ("fault",))],
        supports_check_mode=True,
    )
    p = dict(module.params)
    try:
        request = chaos.check_request(p, p["inventory_hostname"] or "this host")
    except chaos.ChaosError as exc:
        module.fail_json(msg=str(exc))
    request["options"].update({k: p[k] for k in ("service", "exporter_service", "login_defaults_file", "database")})
    sql = Sql(p["admin_defaults_file"])
    host = chaos.Host(module.run_command, tools(module, p["fault"], p["state"]), p["state_dir"], sql=sql)
    try:
        if p["state"] == "present":
            present(module, request, host, sql)
        else:
            absent(module, request, host)
    except OpsError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
