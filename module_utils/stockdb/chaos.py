"""Failure injection for drills (library/stockdb_chaos.py): one bounded fault at a time, each inside a
transient systemd unit on the host, so it ends by itself even when the controller dies.

  request     the faults, the options each takes, and the checks of a request: confirm, the inventory
              group chaos_targets, the duration cap; a refusal lists every problem, nothing is injected
  disk        the filesystem a disk_full may fill: never the root filesystem, never one over the cap
  units       the systemd-run command of each fault (RuntimeMaxSec, what its stop undoes) and its names
  sessions    which server threads are chaos sessions: tagged by the worker, never replication or
              system threads (the listing and what is a system thread live in sessions.py)
  inject      starting a fault and waiting until it is in effect; remove: undoing any fault's leftovers
  worker      what runs inside the unit for the SQL faults and disk_full

This file is also the worker: the module copies its own source to the host's state directory and the
unit runs it with the host's python3 (`python3 worker.py FAULT ...`). It therefore imports only the
standard library at the top (PyMySQL inside the worker's functions) and nothing of the package but
OpsError and the thread listing of sessions.py, which a worker run as a script does without.

Every SQL fault is bounded three times: by the worker's own deadline, by the unit's RuntimeMaxSec,
and on the server by session settings that end it even if the worker is SIGKILLed
(max_statement_time per query, idle_transaction_timeout, wait_timeout).
"""

import argparse
import json
import math
import os
import signal
import stat as statmode
import sys
import threading
import time
from datetime import datetime, timezone

try:
    # the listing of the server's threads is shared with stockdb_sessions; library/stockdb_chaos.py reads it here
    from .ops import OpsError
    from .sessions import PROCESSLIST, PROCESSLIST_PLAIN, is_system  # noqa: F401
except ImportError:  # run as the worker script on a host: no package around this file (nor the listing it does not use)
    OpsError = Exception


class ChaosError(OpsError):
    """A fault was refused or failed; the message names the fault, the object and the cause."""


FAULTS = ("query_storm", "connection_flood", "lock_storm", "disk_full", "crash", "exporter_down", "cpu_hog", "io_hog")
SQL_FAULTS = ("query_storm", "connection_flood", "lock_storm")
WORKER_FAULTS = SQL_FAULTS + ("disk_full",)
TARGET_GROUP = "chaos_targets"
UNIT_PREFIX = "stockdb-chaos-"
# The connection attribute program_name of every chaos session ("stockdb-chaos:<fault>").
TAG = "stockdb-chaos"
FILLER_NAME = "stockdb-chaos.filler"
IO_DIR_NAME = "stockdb-chaos-io"
WORKER_NAME = "worker.py"
GIB = 2**30

MAX_DURATION_DEFAULT = 600
MAX_DURATION_LIMIT = 86400
# Options only some faults read; None when not given. A fault given another fault's option is refused.
OWN_OPTIONS = dict(
    query_storm=("sessions",),
    connection_flood=("sessions",),
    lock_storm=("lock_target", "lock_rows"),
    disk_full=("disk_target", "path", "max_fs_bytes"),
    crash=(),
    exporter_down=(),
    cpu_hog=("workers", "cpu_load"),
    io_hog=("workers", "path", "io_size_mb"),
)
FAULT_DEFAULTS = dict(
    query_storm=dict(sessions=8),
    connection_flood=dict(sessions=5000),
    lock_storm=dict(lock_target="stocks", lock_rows=10),
    disk_full=dict(disk_target="datadir", path=None, max_fs_bytes=GIB),
    cpu_hog=dict(workers=0, cpu_load=100),
    io_hog=dict(workers=2, path="/var/tmp", io_size_mb=128),  # noqa: S108 - a directory on the host's disk, not a temp file
)
# Inclusive ranges of the numeric options (per fault where they differ).
LIMITS = dict(
    max_duration=(1, MAX_DURATION_LIMIT),
    duration=(1, None),
    lock_rows=(1, 1000),
    max_fs_bytes=(2**20, None),
    cpu_load=(1, 100),
    io_size_mb=(1, 4096),
)
FAULT_LIMITS = dict(
    query_storm=dict(sessions=(1, 256)),
    connection_flood=dict(sessions=(1, 5000)),
    cpu_hog=dict(workers=(0, 64)),
    io_hog=dict(workers=(1, 64)),
)
LOCK_TARGETS = ("stocks", "accounts")
DISK_TARGETS = ("datadir", "binlog", "tmpdir")
# MariaDB errors that end the opening of more sessions (connection_flood, query_storm): the server or account is full.
FULL = {1040: "max_connections", 1203: "max_user_connections", 1226: "a resource limit of the account"}


def utc_stamp(moment=None):
    """ISO-8601 UTC to the second, as every stockdb log writes it."""
    return datetime.fromtimestamp(moment if moment is not None else time.time(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- request
def check_request(params, host):
    """The request with each option's default for its fault; ChaosError listing every problem.

    params: the module's parameters (fault, state, confirm, duration, max_duration, the fault options,
    inventory_groups). Injection needs confirm=true and the host in chaos_targets; removal needs neither
    (it only undoes what this module made). Nothing here touches the host.
    """
    fault, state = params.get("fault"), params.get("state", "present")
    problems = []
    if fault is not None and fault not in FAULTS:
        raise ChaosError(f"fault={fault!r} is not one of {', '.join(FAULTS)}; nothing injected")
    if fault is None and state == "present":
        raise ChaosError(f"state=present needs a fault (one of {', '.join(FAULTS)}); nothing injected")
    if fault is not None:
        foreign = sorted(name for name in {n for names in OWN_OPTIONS.values() for n in names}
                         if name not in OWN_OPTIONS[fault] and params.get(name) is not None)
        if foreign:
            problems.append(f"fault={fault} does not take {', '.join(foreign)}")
    options = dict(FAULT_DEFAULTS.get(fault, {}))
    own = OWN_OPTIONS[fault] if fault else {n for names in OWN_OPTIONS.values() for n in names}
    options.update({k: params[k] for k in own if params.get(k) is not None})
    max_duration = params.get("max_duration", MAX_DURATION_DEFAULT)
    duration = params.get("duration")
    limits = dict(LIMITS, **FAULT_LIMITS.get(fault, {}))
    for name, (low, high) in limits.items():
        value = max_duration if name == "max_duration" else duration if name == "duration" else options.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{name}={value!r} must be an integer")
        elif value < low or (high is not None and value > high):
            problems.append(f"{name}={value} is outside {low}..{high}" if high is not None
                            else f"{name}={value} must be >= {low}")
    if isinstance(duration, int) and isinstance(max_duration, int) and duration > max_duration >= 1:
        problems.append(f"duration={duration} is over the cap max_duration={max_duration}")
    if options.get("lock_target") not in (None, *LOCK_TARGETS):
        problems.append(f"lock_target={options['lock_target']!r} is not one of {', '.join(LOCK_TARGETS)}")
    if options.get("disk_target") not in (None, *DISK_TARGETS):
        problems.append(f"disk_target={options['disk_target']!r} is not one of {', '.join(DISK_TARGETS)}")
    path = options.get("path")
    if path is not None and (not str(path).startswith("/") or str(path).rstrip("/") == ""):
        problems.append(f"path={path!r} must be an absolute path other than /")
    if state == "present":
        if params.get("confirm") is not True:
            problems.append(f"confirm=true is required to inject {fault} into {host}")
        groups = params.get("inventory_groups")
        if groups is None:
            problems.append("the inventory groups of the host are unknown: stockdb_chaos runs through its action plugin "
                            "(action_plugins/stockdb_chaos.py), which passes them")
        elif TARGET_GROUP not in groups:
            shown = ", ".join(sorted(groups)) or "none"
            problems.append(f"host {host} is not in the inventory group {TARGET_GROUP} (its groups: {shown}); "
                            f"add it there to allow faults on it")
    if problems:
        raise ChaosError("; ".join(problems) + ("; nothing injected" if state == "present" else ""))
    return dict(fault=fault, state=state, duration=duration, options=options)


# ---------------------------------------------------------------- disk
def mount_point(path, stat=os.stat):
    """The directory where the filesystem holding `path` is mounted (the topmost one on its device)."""
    path = os.path.abspath(path)
    device = stat(path).st_dev
    while path != "/":
        parent = os.path.dirname(path)
        if stat(parent).st_dev != device:
            return path
        path = parent
    return "/"


def fillable(path, max_fs_bytes, what="disk_full", stat=os.stat, statvfs=os.statvfs):
    """The filesystem of `path` if a disk_full may fill it, else ChaosError: never the root filesystem,
    never one larger than max_fs_bytes, so a drill only ever fills a dedicated volume."""
    try:
        info = stat(path)
    except OSError as exc:
        raise ChaosError(f"{what}: cannot use {path}: {exc.strerror}; nothing injected") from exc
    if not statmode.S_ISDIR(info.st_mode):
        raise ChaosError(f"{what}: {path} is not a directory; nothing injected")
    root = stat("/").st_dev
    if info.st_dev == root:
        raise ChaosError(f"{what}: {path} is on the root filesystem (device {root}): refusing to fill it; give it a "
                         f"dedicated volume or name one with path; nothing injected")
    vfs = statvfs(path)
    size, free = vfs.f_blocks * vfs.f_frsize, vfs.f_bfree * vfs.f_frsize
    mount = mount_point(path, stat=stat)
    if size > max_fs_bytes:
        raise ChaosError(f"{what}: the filesystem of {path} (mounted at {mount}) holds {size} bytes, over the cap "
                         f"max_fs_bytes={max_fs_bytes}: refusing to fill it; nothing injected")
    return dict(path=path, mount_point=mount, device=info.st_dev, size_bytes=size, free_bytes=free,
                filler=os.path.join(mount, FILLER_NAME))


def io_space(path, workers, io_size_mb, statvfs=os.statvfs):
    """io_hog writes workers x io_size_mb; refuse unless twice that is free on the filesystem of `path`."""
    if not os.path.isdir(path):
        raise ChaosError(f"io_hog: {path} is not a directory; nothing injected")
    vfs = statvfs(path)
    free, needed = vfs.f_bavail * vfs.f_frsize, 2 * workers * io_size_mb * 2**20
    if free < needed:
        raise ChaosError(f"io_hog: {workers} workers of {io_size_mb} MiB need {needed // 2**20} MiB free on the "
                         f"filesystem of {path}, which has {free // 2**20} MiB; nothing injected")
    return os.path.join(path, IO_DIR_NAME)


# ---------------------------------------------------------------- units
# Seconds the unit outlives its command's own deadline before systemd stops it (RuntimeMaxSec).
STOP_GRACE_S = 5


def unit_name(fault):
    return f"{UNIT_PREFIX}{fault}.service"


def paths(state_dir, fault):
    """The files of a fault in the state directory: the module's record and the worker's status."""
    return dict(record=os.path.join(state_dir, f"{fault}.json"), status=os.path.join(state_dir, f"{fault}.worker.json"),
                worker=os.path.join(state_dir, WORKER_NAME))


def systemd_run(systemd_run_bin, fault, duration, command, properties=()):
    """The transient unit of a fault. Its command ends itself after `duration` seconds (the worker's deadline,
    stress-ng's --timeout, sleep); RuntimeMaxSec stops the unit STOP_GRACE_S later whatever happens to the
    controller or the command, so a normal end is a clean exit, not a unit failed by its time limit. The unit
    is garbage-collected even when it failed (--collect) and its processes are the first the OOM killer takes."""
    return [systemd_run_bin, f"--unit={unit_name(fault)}", f"--description=stockdb chaos: {fault} for {duration} s",
            "--collect", "--property=Type=exec", f"--property=RuntimeMaxSec={int(duration) + STOP_GRACE_S}",
            "--property=TimeoutStopSec=15", "--property=OOMScoreAdjust=1000",
            *(f"--property={p}" for p in properties), "--", *command]


def fault_command(fault, duration, options, tools, state_dir, target=None):
    """(command, unit properties) of a fault that runs in a unit. tools: paths of python, systemctl,
    stress_ng, rm, sleep. target: the filler file (disk_full) or the io directory (io_hog)."""
    files = paths(state_dir, fault)
    duration = int(duration)
    if fault in WORKER_FAULTS:
        command = [tools["python"], files["worker"], fault, "--status", files["status"], "--seconds", str(duration)]
        properties = []
        if fault in SQL_FAULTS:
            command += ["--defaults-file", options["login_defaults_file"], "--database", options["database"]]
        if fault in ("query_storm", "connection_flood"):
            command += ["--sessions", str(options["sessions"])]
        if fault == "connection_flood":
            properties.append(f"LimitNOFILE={options['sessions'] + 256}")
        if fault == "lock_storm":
            command += ["--lock-target", options["lock_target"], "--lock-rows", str(options["lock_rows"])]
        if fault == "disk_full":
            command += ["--file", target]
            properties.append(f"ExecStopPost={tools['rm']} -f {target}")
        return command, properties
    if fault == "cpu_hog":
        return [tools["stress_ng"], "--cpu", str(options["workers"]), "--cpu-load", str(options["cpu_load"]),
                "--timeout", f"{duration}s", "--metrics-brief"], []
    if fault == "io_hog":
        return ([tools["stress_ng"], "--hdd", str(options["workers"]), "--hdd-bytes", f"{options['io_size_mb']}m",
                 "--temp-path", target, "--timeout", f"{duration}s", "--metrics-brief"],
                [f"ExecStopPost={tools['rm']} -rf {target}"])
    if fault == "exporter_down":
        service = options["exporter_service"]
        # the stop is part of the unit and its undoing too: the exporter comes back when the unit ends, however
        return [tools["sleep"], str(duration)], [f"ExecStartPre={tools['systemctl']} stop {service}",
                                                 f"ExecStopPost={tools['systemctl']} start {service}"]
    raise ChaosError(f"{fault} does not run in a unit")


def crash_commands(systemctl, service):
    """(read the main PID, SIGKILL the main process) of the database service; systemd restarts it."""
    return ([systemctl, "show", "--property=MainPID", "--value", service],
            [systemctl, "kill", "--kill-whom=main", "--signal=SIGKILL", service])


# ---------------------------------------------------------------- sessions
def chaos_threads(rows, fault=None, recorded=None):
    """The ids of the server threads that are chaos sessions (of `fault`, or of any fault).

    rows: dicts with ID, USER, COMMAND and TAG (the connection attribute program_name, None when
    performance_schema does not show it). recorded: {"user": ..., "sessions": [ids]} from a worker's
    status file, for servers without performance_schema. System and replication threads never count.
    """
    wanted = f"{TAG}:{fault}" if fault else f"{TAG}:"
    recorded_ids = set((recorded or {}).get("sessions") or ())
    recorded_user = (recorded or {}).get("user")
    chosen = []
    for row in rows:
        if is_system(row):  # threads of the server and of replication (sessions.py)
            continue
        tag = row.get("TAG") or ""
        if tag == wanted or (not fault and tag.startswith(wanted)) or (
                row.get("ID") in recorded_ids and recorded_user and row.get("USER") == recorded_user):
            chosen.append(row["ID"])
    return sorted(chosen)


# ---------------------------------------------------------------- files
def read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_json(path, data, mode=0o600):
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, sort_keys=True)
    os.replace(tmp, path)


def worker_source():
    """This file's source, which the module writes to the host as the worker (also from inside AnsiballZ's zip)."""
    spec = globals().get("__spec__")
    loader = getattr(spec, "loader", None)
    source = loader.get_source(spec.name) if loader is not None and hasattr(loader, "get_source") else None
    if not source:
        with open(__file__, encoding="utf-8") as handle:
            source = handle.read()
    return source


def install_worker(state_dir):
    """Write the worker (this file) into the state directory (root only); returns its path."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    os.chmod(state_dir, 0o700)
    path = os.path.join(state_dir, WORKER_NAME)
    source = worker_source()
    current = None
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            current = handle.read()
    if current != source:
        fd = os.open(f"{path}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(source)
        os.replace(f"{path}.tmp", path)
    return path


# ---------------------------------------------------------------- inject and remove
class Host:
    """What inject() and remove() need of the host. run(argv) -> (rc, stdout, stderr); tools: paths of
    systemd_run, systemctl, journalctl, python, stress_ng, rm, sleep; sql: an object with
    threads(fault) -> rows for chaos_threads, and kill(ids) -> ids killed (None: no server to ask)."""

    def __init__(self, run, tools, state_dir, sql=None, clock=time.time, sleep=time.sleep):
        self.run, self.tools, self.state_dir, self.sql, self.clock, self.sleep = run, tools, state_dir, sql, clock, sleep

    def checked(self, what, argv):
        rc, out, err = self.run(argv)
        if rc != 0:
            tail = (err or out or "").strip()[-1500:] or "(no output)"
            raise ChaosError(f"{what}: {os.path.basename(argv[0])} exited {rc}: {tail}")
        return out

    def active(self, unit):
        _, out, _ = self.run([self.tools["systemctl"], "is-active", unit])
        return (out or "").strip() or "unknown"

    def journal(self, unit, lines=15):
        _, out, _ = self.run([self.tools["journalctl"], "--unit", unit, "--lines", str(lines), "--no-pager", "--output", "cat"])
        return " | ".join(line.strip() for line in (out or "").splitlines() if line.strip())


READY_TIMEOUT_S = 60


def inject(host, fault, duration, options, target=None):
    """Start a fault and return once it is in effect: what it did, injected_at and expires_at (UTC).

    options: the fault's options plus login_defaults_file, database, service, exporter_service.
    target: the filler file (disk_full) or the io directory (io_hog), already checked.
    """
    files = paths(host.state_dir, fault)
    os.makedirs(host.state_dir, mode=0o700, exist_ok=True)
    if fault == "crash":
        return _crash(host, options["service"], files)
    unit = unit_name(fault)
    if fault in WORKER_FAULTS:
        install_worker(host.state_dir)
        if os.path.exists(files["status"]):  # a status of an earlier run must not pass for this one's
            os.unlink(files["status"])
    if fault == "io_hog":
        os.makedirs(target, mode=0o700, exist_ok=True)
    host.run([host.tools["systemctl"], "reset-failed", unit])  # a failed unit of an earlier run would block the name
    command, properties = fault_command(fault, duration, options, host.tools, host.state_dir, target)
    argv = systemd_run(host.tools["systemd_run"], fault, duration, command, properties)
    started = host.clock()
    write_json(files["record"], dict(fault=fault, unit=unit, started_at=utc_stamp(started), target=target,
                                     exporter_service=options.get("exporter_service"), argv=argv))
    try:
        host.checked(f"{fault}: starting the unit {unit}", argv)
        running = host.clock()  # in effect once the unit runs, unless a worker still has to get there
        details = _wait_ready(host, fault, unit, files) if fault in WORKER_FAULTS else _settled(host, fault, unit, options)
    except ChaosError as exc:
        # a fault that did not come up leaves nothing behind
        try:
            remove(host, [fault], options, targets={fault: target})
        except OpsError as cleanup:
            raise ChaosError(f"{exc}; removing what it started failed too: {cleanup} (run state=absent)") from exc
        raise ChaosError(f"{exc}; what it started was removed") from exc
    injected = host.clock() if fault in WORKER_FAULTS else running
    record = dict(fault=fault, unit=unit, injected_at=utc_stamp(injected), expires_at=utc_stamp(started + int(duration)),
                  duration=int(duration), target=target, exporter_service=options.get("exporter_service"), details=details,
                  command=command)
    write_json(files["record"], record)
    return record


def _wait_ready(host, fault, unit, files):
    deadline = host.clock() + READY_TIMEOUT_S
    while True:
        status = read_json(files["status"]) or {}
        if status.get("state") == "ready":
            return {k: v for k, v in status.items() if k not in ("state", "fault", "started_at")}
        if status.get("state") == "failed":
            error = str(status.get("error"))
            raise ChaosError(f"{fault}: the worker failed: {error[len(fault) + 2:] if error.startswith(fault + ': ') else error}")
        state = host.active(unit)
        if state not in ("active", "activating"):
            raise ChaosError(f"{fault}: the unit {unit} is {state} before the fault was in effect: {host.journal(unit)}")
        if host.clock() > deadline:
            raise ChaosError(f"{fault}: not in effect after {READY_TIMEOUT_S} s (unit {unit} {state}): {host.journal(unit)}")
        host.sleep(0.2)


def _settled(host, fault, unit, options):
    host.sleep(1)
    state = host.active(unit)
    if state != "active":
        raise ChaosError(f"{fault}: the unit {unit} is {state} right after its start: {host.journal(unit)}")
    if fault == "exporter_down":
        service = options["exporter_service"]
        exporter = host.active(service)
        if exporter == "active":
            raise ChaosError(f"exporter_down: {service} is still active after the unit stopped it")
        return dict(service=service, service_state=exporter)
    return dict(workers=options.get("workers"))


def _crash(host, service, files):
    show, kill = crash_commands(host.tools["systemctl"], service)
    pid = int((host.checked(f"crash: reading the main PID of {service}", show) or "0").strip() or 0)
    if pid == 0:
        raise ChaosError(f"crash: {service} is not running (MainPID 0); nothing killed")
    host.checked(f"crash: SIGKILL to {service} (PID {pid})", kill)
    deadline = host.clock() + 10
    while os.path.exists(f"/proc/{pid}") and host.clock() < deadline:
        host.sleep(0.05)
    killed = host.clock()
    record = dict(fault="crash", unit=None, injected_at=utc_stamp(killed), expires_at=None, duration=None,
                  details=dict(service=service, killed_pid=pid, gone=not os.path.exists(f"/proc/{pid}")))
    write_json(files["record"], record)
    return record


def leftovers(host, faults, options, targets=None, named=False):
    """What of the faults exists on the host: active units, filler files, io directories, sessions,
    a stopped exporter that an exporter_down record says the module stopped. Changes nothing.

    The server is asked for a SQL fault's sessions when the fault is named (named=True) or has a record
    here; without a record (the records live in /run, so until a reboot) no chaos session can be left."""
    found = []
    targets = targets or {}
    for fault in faults:
        files = paths(host.state_dir, fault)
        record = read_json(files["record"]) or {}
        item = dict(fault=fault, record=record or None)
        if fault != "crash":
            state = host.active(unit_name(fault))
            item["unit"] = state if state in ("active", "activating", "deactivating", "reloading") else None
        target = record.get("target") or targets.get(fault)
        if fault == "disk_full" and target and os.path.exists(target):
            item["filler"] = target
        if fault == "io_hog" and target and os.path.exists(target):
            item["io_dir"] = target
        if fault == "exporter_down" and record:
            service = record.get("exporter_service") or options.get("exporter_service")
            if host.active(service) != "active":
                item["exporter"] = service
        if fault in SQL_FAULTS and host.sql is not None and (named or record or os.path.exists(files["status"])):
            item["ask_server"] = True
            item["sessions"] = host.sql.threads(fault, read_json(files["status"]))
        if fault == "crash":
            item["service_state"] = host.active(options.get("service") or "mariadb")
        found.append(item)
    return found


def remove(host, faults, options, targets=None, check_mode=False, named=False):
    """Undo the faults: stop their units (their stop actions run: filler removed, exporter started), remove
    what is left (filler, io directory), kill the chaos sessions still on the server, start the exporter a
    record says was stopped. Returns (changed, removed: list of what was done, per fault)."""
    found = leftovers(host, faults, options, targets, named=named)
    removed, changed = [], False
    for item in found:
        fault = item["fault"]
        done = _plan(item) if check_mode else _undo(host, fault, item)
        changed = changed or bool(done)
        removed.append(dict(fault=fault, done=done, injected_at=(item.get("record") or {}).get("injected_at"),
                            **({"service_state": item["service_state"]} if "service_state" in item else {})))
    if not check_mode:
        _tidy_state_dir(host)
    return changed, removed


def _plan(item):
    """What _undo would do with what leftovers() found."""
    fault, done = item["fault"], []
    if item.get("unit"):
        done.append(f"stop unit {unit_name(fault)}")
    if item.get("filler"):
        done.append(f"remove filler {item['filler']}")
    if item.get("io_dir"):
        done.append(f"remove {item['io_dir']}")
    if item.get("sessions"):
        done.append(f"kill sessions {item['sessions']}")
    if item.get("exporter"):
        done.append(f"start {item['exporter']}")
    return done


def _undo(host, fault, item):
    """Undo one fault's leftovers; returns what was done."""
    systemctl = host.tools["systemctl"]
    files = paths(host.state_dir, fault)
    done = []
    if item.get("unit"):
        host.checked(f"{fault}: stopping the unit {unit_name(fault)}", [systemctl, "stop", unit_name(fault)])
        done.append(f"stopped unit {unit_name(fault)}")
    host.run([systemctl, "reset-failed", unit_name(fault)])
    if item.get("filler") and os.path.exists(item["filler"]):
        os.unlink(item["filler"])
        done.append(f"removed filler {item['filler']}")
    if item.get("io_dir") and os.path.exists(item["io_dir"]):
        host.checked(f"io_hog: removing {item['io_dir']}", [host.tools["rm"], "-rf", item["io_dir"]])
        done.append(f"removed {item['io_dir']}")
    if item.get("ask_server"):
        # the stopped worker closed its connections; what still runs on the server (a query in flight) is killed
        left = host.sql.threads(fault, read_json(files["status"]))
        killed = host.sql.kill(left) if left else []
        if killed:
            done.append(f"killed sessions {killed}")
    if item.get("exporter") and host.active(item["exporter"]) != "active":
        host.checked(f"exporter_down: starting {item['exporter']}", [systemctl, "start", item["exporter"]])
        done.append(f"started {item['exporter']}")
    for path in (files["record"], files["status"]):
        if os.path.exists(path):
            os.unlink(path)
    return done


def _tidy_state_dir(host):
    """Remove the state directory once nothing of any fault is left in it but the worker."""
    if not os.path.isdir(host.state_dir):
        return
    entries = set(os.listdir(host.state_dir)) - {WORKER_NAME}
    if entries:
        return
    if any(host.active(unit_name(f)) in ("active", "activating", "deactivating") for f in WORKER_FAULTS):
        return
    for name in os.listdir(host.state_dir):
        os.unlink(os.path.join(host.state_dir, name))
    os.rmdir(host.state_dir)


# ---------------------------------------------------------------- worker (runs on the host, inside the unit)
# Runaway reports over orders and trades: each joins without the index its join needs (a block nested
# loop: every row of one table against every row of the other), so it runs for minutes on the lab's data
# and for many seconds even on Molecule's (50,000 orders): each session holds one statement for as long
# as the fault lasts, the way a report that lost its index does. Each runs under max_statement_time =
# the seconds left, so none outlives the fault.
STORM_QUERIES = (
    ("turnover_by_account_unindexed",
     "SELECT o.account_id, COUNT(*) AS fills, SUM(t.qty * t.price) AS turnover "
     "FROM orders o JOIN trades t IGNORE INDEX (ix_trades_buy_order, ix_trades_sell_order) "
     "ON t.buy_order_id = o.order_id OR t.sell_order_id = o.order_id "
     "GROUP BY o.account_id ORDER BY turnover DESC LIMIT 20"),
    ("sector_day_report_unindexed",
     "SELECT s.sector, DATE(t.executed_at) AS day, COUNT(*) AS trades, SUM(t.qty * t.price) AS value, "
     "COUNT(DISTINCT o.account_id) AS buyers FROM trades t IGNORE INDEX (ix_trades_buy_order) "
     "JOIN orders o IGNORE INDEX (PRIMARY) "
     "ON o.order_id = t.buy_order_id JOIN stocks s ON s.stock_id = t.stock_id "
     "GROUP BY s.sector, DATE(t.executed_at) ORDER BY value DESC"),
    ("crossing_orders_unindexed",
     "SELECT b.stock_id, COUNT(*) AS crossings, SUM(LEAST(b.qty, s.qty)) AS crossing_qty "
     "FROM orders b IGNORE INDEX (ix_orders_book) JOIN orders s IGNORE INDEX (ix_orders_book) "
     "ON s.stock_id = b.stock_id AND s.side = 'SELL' AND s.price <= b.price "
     "WHERE b.side = 'BUY' GROUP BY b.stock_id ORDER BY crossings DESC LIMIT 20"),
)
LOCK_SQL = dict(
    stocks=dict(
        hot="SELECT stock_id FROM (SELECT stock_id FROM orders ORDER BY order_id DESC LIMIT 10000) r "
            "GROUP BY stock_id ORDER BY COUNT(*) DESC, stock_id LIMIT %s",
        fallback="SELECT stock_id FROM stocks WHERE ref_price IS NOT NULL ORDER BY stock_id LIMIT %s",
        table="stocks_inventory", key="stock_id", change="traded_qty = traded_qty + 1"),
    # Not the accounts with the most recent orders: with many accounts (the scale seed's 100,000) none has
    # more than a few, trading may not touch them for minutes, and nothing waits. The makers resting nearest
    # the last price of the busiest symbols are what the next takers fill against: the engine updates the
    # maker's cash while it holds the symbol's lock, so that symbol's orders queue behind it.
    # The symbols are given as constants (found first, as for stocks): joined, the book's index is read by
    # symbol alone, every closed order too (5 s on the lab's scale data; 0.1 s this way).
    accounts=dict(
        hot="SELECT o.account_id FROM orders o "
            "JOIN stocks_inventory i ON i.stock_id = o.stock_id JOIN stocks s ON s.stock_id = o.stock_id "
            "WHERE o.stock_id IN ({symbols}) AND o.side IN ('BUY', 'SELL') AND o.is_open = 1 AND o.price IS NOT NULL "
            "GROUP BY o.account_id ORDER BY MIN(ABS(o.price - COALESCE(i.last_price, s.ref_price))), o.account_id "
            "LIMIT %s",
        fallback="SELECT account_id FROM accounts WHERE status = 'ACTIVE' ORDER BY account_id LIMIT %s",
        table="accounts", key="account_id", change="balance = balance + 1"),
)
BUSIEST_SYMBOLS = 5  # whose books' makers a lock storm on accounts locks
# Errors after which a storm session stops: killed (KILL QUERY / KILL), connection gone.
SESSION_ENDED = (1317, 1927, 2006, 2013, 2003, 2055)
STATEMENT_TIMEOUT = 1969


def describe(exc):
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return " ".join(f"MariaDB error {args[0]}: {args[1]}".split())
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def error_code(exc):
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


class Worker:
    """One fault's load on the host until its deadline or SIGTERM (the unit's stop), then its own cleanup."""

    def __init__(self, args):
        self.args = args
        self.deadline = time.monotonic() + args.seconds
        self.stop = threading.Event()
        self.status = dict(fault=args.fault, state="starting", pid=os.getpid(), started_at=utc_stamp())
        self.lock = threading.Lock()

    def left(self):
        return self.deadline - time.monotonic()

    def write(self, **fields):
        with self.lock:
            self.status.update(fields)
            write_json(self.args.status, self.status)

    def hold(self):
        while not self.stop.is_set() and self.left() > 0:
            time.sleep(min(0.5, max(0.01, self.left())))
        self.stop.set()

    def connect(self, autocommit=True):
        import pymysql
        return pymysql.connect(read_default_file=self.args.defaults_file, read_default_group="client",
                               database=self.args.database, charset="utf8mb4", connect_timeout=10, autocommit=autocommit,
                               program_name=f"{TAG}:{self.args.fault}")

    def server_timeout(self):
        """Seconds the server itself lets a session live: the time left and a little."""
        return max(1, math.ceil(self.left())) + 2

    def open_sessions(self, count):
        """Up to `count` connections, fewer when the server or the account allows no more: (conns, why it stopped)."""
        conns, reason = [], f"sessions={self.args.sessions} opened"
        while len(conns) < count and not self.stop.is_set() and self.left() > 0:
            try:
                conns.append(self.connect())
            except Exception as exc:
                code = error_code(exc)
                if code not in FULL:
                    for conn in conns:
                        _close(conn)
                    raise
                reason = f"{FULL[code]} reached ({describe(exc)})"
                break
        return conns, reason

    # -- query_storm
    def query_storm(self):
        control = self.connect()  # first, so the sessions' own account can always KILL QUERY them at the end
        sessions, limit = self.open_sessions(self.args.sessions)
        if not sessions:
            raise ChaosError(f"query_storm: no session could be opened: {limit}")
        counters = dict(queries=0, timed_out=0, ended=0)
        threads = [threading.Thread(target=self._storm_session, args=(conn, STORM_QUERIES[i % len(STORM_QUERIES)], counters),
                                    daemon=True) for i, conn in enumerate(sessions)]
        for thread in threads:
            thread.start()
        self.write(state="ready", user=_current_user(control), sessions=[c.thread_id() for c in sessions] + [control.thread_id()],
                   opened=len(sessions), limit=limit, queries=[name for name, _ in STORM_QUERIES])
        self.hold()
        with control.cursor() as cur:
            for conn in sessions:
                try:
                    cur.execute(f"KILL QUERY {int(conn.thread_id())}")
                except Exception:  # noqa: S112 - the session may be gone already
                    continue
        for thread in threads:
            thread.join(10)
        for conn in sessions + [control]:
            _close(conn)
        self.write(state="ended", ended_at=utc_stamp(), **counters)

    def _storm_session(self, conn, query, counters):
        name, sql = query
        while not self.stop.is_set() and self.left() >= 1:
            try:
                with conn.cursor() as cur:
                    cur.execute(f"SET STATEMENT max_statement_time={int(self.left())} FOR {sql}")
                    cur.fetchall()
                with self.lock:
                    counters["queries"] += 1
            except Exception as exc:
                code = error_code(exc)
                with self.lock:
                    counters["timed_out" if code == STATEMENT_TIMEOUT else "ended"] += 1
                if code != STATEMENT_TIMEOUT:
                    return

    # -- connection_flood
    def connection_flood(self):
        first = self.connect()
        privileged = _admin_privileges(first)
        if privileged:
            _close(first)
            raise ChaosError(f"connection_flood: the account of {self.args.defaults_file} has {privileged} on *.*, which "
                             f"may take the connection MariaDB keeps for administrators; use an account without it")
        user = _current_user(first)
        more, reason = self.open_sessions(self.args.sessions - 1)
        conns = [first] + more
        for conn in conns:
            with conn.cursor() as cur:  # idle: the server closes them by itself at the deadline
                cur.execute(f"SET SESSION wait_timeout = {self.server_timeout()}")
        self.write(state="ready", user=user, opened=len(conns), sessions=[c.thread_id() for c in conns], limit=reason)
        self.hold()
        for conn in conns:
            _close(conn)
        self.write(state="ended", ended_at=utc_stamp())

    # -- lock_storm
    def lock_storm(self):
        sql = LOCK_SQL[self.args.lock_target]
        conn = self.connect(autocommit=False)
        user = _current_user(conn)
        with conn.cursor() as cur:
            # the server rolls the transaction back by itself at the deadline, even if this process is killed
            cur.execute(f"SET SESSION idle_transaction_timeout = {self.server_timeout()}")
            hot, args = sql["hot"], (self.args.lock_rows,)
            if "{symbols}" in hot:  # accounts: the makers in the books of the busiest symbols
                cur.execute(LOCK_SQL["stocks"]["hot"], (BUSIEST_SYMBOLS,))
                symbols = [row[0] for row in cur.fetchall()] or [0]
                hot, args = hot.format(symbols=", ".join(["%s"] * len(symbols))), (*symbols, self.args.lock_rows)
            cur.execute(hot, args)
            ids = [row[0] for row in cur.fetchall()]
            if len(ids) < self.args.lock_rows:
                cur.execute(sql["fallback"], (self.args.lock_rows,))
                ids += [row[0] for row in cur.fetchall() if row[0] not in ids][: self.args.lock_rows - len(ids)]
            conn.rollback()
            if not ids:
                raise ChaosError(f"lock_storm: no {self.args.lock_target} rows to lock in {self.args.database}")
            marks = ", ".join(["%s"] * len(ids))
            statement = f"UPDATE {sql['table']} SET {sql['change']} WHERE {sql['key']} IN ({marks})"  # noqa: S608 - constants
            while True:
                try:
                    cur.execute(f"SET SESSION innodb_lock_wait_timeout = {max(1, min(50, int(self.left())))}")
                    cur.execute("START TRANSACTION")
                    cur.execute(statement, ids)
                    break
                except Exception as exc:
                    conn.rollback()
                    if error_code(exc) != 1205 or self.left() < 2 or self.stop.is_set():
                        raise
        # never committed: the change is undone by the rollback at the end, or by the server when the session dies
        self.write(state="ready", user=user, sessions=[conn.thread_id()],
                   locked=dict(table=sql["table"], key=sql["key"], ids=ids, uncommitted_change=sql["change"]))
        self.hold()
        try:
            conn.rollback()
        finally:
            _close(conn)
        self.write(state="ended", ended_at=utc_stamp(), rolled_back=True)

    # -- disk_full
    def disk_full(self):
        path = self.args.file
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            size, chunk = 0, 64 * 2**20
            while chunk >= 4096 and not self.stop.is_set():
                try:
                    os.posix_fallocate(fd, size, chunk)
                    size += chunk
                except OSError as exc:
                    if exc.errno not in (28, 27):  # ENOSPC, EFBIG
                        raise
                    chunk //= 2
            os.fsync(fd)
            vfs = os.statvfs(path)
            self.write(state="ready", file=path, bytes=size, free_bytes_after=vfs.f_bfree * vfs.f_frsize,
                       available_bytes_after=vfs.f_bavail * vfs.f_frsize)
            self.hold()
        finally:
            os.close(fd)
            if os.path.exists(path):
                os.unlink(path)
        self.write(state="ended", ended_at=utc_stamp(), removed=path)


def _close(conn):
    try:
        conn.close()
    except Exception:  # noqa: S110 - closing a connection the server already dropped
        pass


def _current_user(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)")
        return cur.fetchone()[0]


def _admin_privileges(conn):
    """The privileges of the connection's account on *.* that open the connection kept for administrators."""
    with conn.cursor() as cur:
        cur.execute("SHOW GRANTS")
        grants = " ".join(row[0] for row in cur.fetchall() if " ON *.* " in row[0]).upper()
    return next((p for p in ("ALL PRIVILEGES", "SUPER", "CONNECTION ADMIN") if p in grants), None)


def worker_arguments(argv):
    parser = argparse.ArgumentParser(prog="stockdb-chaos-worker", description="a stockdb_chaos fault inside its unit")
    parser.add_argument("fault", choices=WORKER_FAULTS)
    parser.add_argument("--status", required=True)
    parser.add_argument("--seconds", type=int, required=True)
    parser.add_argument("--defaults-file")
    parser.add_argument("--database", default="stockdb")
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--lock-target", choices=LOCK_TARGETS, default="stocks")
    parser.add_argument("--lock-rows", type=int, default=10)
    parser.add_argument("--file")
    return parser.parse_args(argv)


def worker_main(argv=None):
    args = worker_arguments(sys.argv[1:] if argv is None else argv)
    worker = Worker(args)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop.set())
    try:
        worker.write()
        getattr(worker, args.fault)()
    except Exception as exc:
        worker.write(state="failed", error=describe(exc) if error_code(exc) else str(exc))
        print(f"stockdb-chaos {args.fault}: {worker.status['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(worker_main())
