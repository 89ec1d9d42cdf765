"""The host side of the jobs: running tools, the job lock, CPU/IO priorities, systemd units, disk space."""

import fcntl
import os
import shutil
import subprocess
import time
from contextlib import contextmanager

from .. import report
from . import OpsError

TAIL = 1500


def run(cmd, log_file=None, stdout=None):
    """Run a tool; raise OpsError naming it with the tail of its error output when it fails.

    stdout goes to the open file `stdout` (e.g. a dump), else to `log_file`, else is captured
    (proc.stdout). stderr goes to `log_file` when given (appended), else is captured: never into the
    stdout file, so a tool's warnings cannot end up inside the data it writes.
    """
    log = open(log_file, "ab") if log_file else None
    try:
        proc = subprocess.run(cmd, stdout=stdout or log or subprocess.PIPE, stderr=log or subprocess.PIPE, check=False)
    finally:
        if log:
            log.close()
    if proc.returncode != 0:
        if log_file:
            with open(log_file, "rb") as handle:
                handle.seek(max(0, os.path.getsize(log_file) - TAIL))
                tail = handle.read()
        else:
            tail = (proc.stderr or b"")[-TAIL:] or (proc.stdout or b"")[-TAIL:]
        raise OpsError(f"{os.path.basename(cmd[0])} exited {proc.returncode}: "
                       f"{tail.decode(errors='replace').strip() or '(no output)'}")
    return proc


def tool_version(cmd):
    """First line of a tool's version output, or 'unavailable'."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unavailable"


@contextmanager
def lock(settings):
    """One backup, verify, restore or prune at a time on a host (flock on <backup_dir>/.lock)."""
    os.makedirs(settings["backup_dir"], mode=0o750, exist_ok=True)
    path = os.path.join(settings["backup_dir"], ".lock")
    with open(path, "a+", encoding="utf-8") as handle:
        deadline = time.monotonic() + int(settings["lock_timeout"])
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.seek(0)
                    raise OpsError(f"another stockdb-ops job holds {path} ({handle.read().strip()}); "
                                   f"waited {settings['lock_timeout']} s") from None
                time.sleep(1)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {report.utc_stamp()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


AUTOGROUP = "/proc/self/autogroup"


def autogroup_nice():
    """The nice value of this process's autogroup (sched(7)), or None without autogroups."""
    try:
        with open(AUTOGROUP, encoding="ascii") as handle:
            return int(handle.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def set_autogroup_nice(value):
    """Rank this process's autogroup (its session's) at nice `value`, when the process leads its session.

    sched(7): where the kernel groups each session's threads (autogroups, kernel.sched_autogroup_enabled
    = 1), a thread's nice value ranks it only against its own group, and each group gets an equal share
    of a busy CPU, whatever its threads' nice values. That is the case of the systemd services while the
    root cgroup has no cpu controller (systemd turns it on only for a unit that needs it: CPUWeight=,
    CPUQuota=, or one it delegates it to): a job at nice 10 in its own unit then gets as much of a busy
    CPU as the whole of MariaDB (docs/benchmarks.md#autogroups). The group's own nice value ranks it
    against the others. Only a session leader (as systemd starts every unit) does this, so a job run
    from a shell never lowers the shell's session. Returns whether the group is at `value` now.
    """
    current = autogroup_nice()
    if os.getsid(0) != os.getpid() or current is None:
        return False
    if current == int(value):
        return True
    for attempt in range(3):
        try:
            # os.write: the kernel's EAGAIN comes back from this write, not from a buffer's flush
            handle = os.open(AUTOGROUP, os.O_WRONLY)
            try:
                os.write(handle, f"{int(value)}\n".encode("ascii"))
            finally:
                os.close(handle)
            return True
        except BlockingIOError:  # EAGAIN: without CAP_SYS_ADMIN, one change per 100 ms host-wide
            if attempt < 2:
                time.sleep(0.11)
        except OSError:  # not allowed here: the job runs at its own nice value only
            return False
    return False


def lower_priority():
    """Trading first, for this process and the tools it starts: nice 10 (its autogroup's too, when it
    leads its session as a systemd unit does: set_autogroup_nice), best-effort I/O priority 7,
    and first in line for the OOM killer, so a job that runs the host out of memory (mariabackup's
    copy and prepare, the scratch server) is killed and alerted on instead of MariaDB."""
    current = os.nice(0)
    if current < 10:
        os.nice(10 - current)
    set_autogroup_nice(10)
    subprocess.run(["ionice", "-c", "2", "-n", "7", "-p", str(os.getpid())], capture_output=True, check=False)
    try:
        with open("/proc/self/oom_score_adj", "w", encoding="ascii") as handle:
            handle.write("1000\n")
    except OSError:  # not Linux, or not allowed: the job still runs
        pass


@contextmanager
def cpu_idle():
    """Run the block, and every tool it starts, only on CPU time nothing else wants (SCHED_IDLE).

    For work without a deadline next to a trading server: nice 10 still takes a core that a
    commit waking from its fsync then waits for (docs/benchmarks.md). On a host saturated for
    hours such work waits that long. In a job leading its session, its autogroup goes to nice 19 too
    (set_autogroup_nice). The previous policy and group nice are restored afterwards.
    """
    before, lowered, group_before = None, False, autogroup_nice()
    try:
        try:
            before = (os.sched_getscheduler(0), os.sched_getparam(0))
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except (AttributeError, OSError):  # not Linux, or not allowed: run at the current priority
            before = None
        # the idle policy ranks threads within their autogroup only; the group itself goes to the lowest rank
        lowered = set_autogroup_nice(19)
        yield
    finally:
        # the policy first: a stop (SIGTERM) while the group is restored must not leave the cleanup idle
        if before:
            try:
                os.sched_setscheduler(0, *before)
            except OSError:
                pass
        if lowered:  # so there was a group to read before
            set_autogroup_nice(group_before)


def service_active(unit):
    try:
        return subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False).returncode == 0
    except FileNotFoundError:  # no systemd here: nothing runs as a unit
        return False


def systemctl(action, unit):
    run(["systemctl", action, unit])


def ensure_space(path, needed, what):
    free = shutil.disk_usage(path).free
    if free < needed:
        raise OpsError(f"{what} needs {needed // 2**20} MiB on the filesystem of {path}, which has {free // 2**20} MiB free")


def dir_size(root):
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(root) for n in names)


def move_contents(source, target):
    """Move every entry of source into target (a rename on one filesystem); source itself stays.

    Across filesystems shutil.move copies, and the copies would be root's: each entry (a directory with all it
    holds) gets its owner back, or a datadir moved back after a failed restore is one MariaDB cannot open."""
    os.makedirs(target, mode=0o750, exist_ok=True)
    same_filesystem = os.stat(source).st_dev == os.stat(target).st_dev
    for entry in os.listdir(source):
        st = os.lstat(os.path.join(source, entry))
        shutil.move(os.path.join(source, entry), os.path.join(target, entry))
        if not same_filesystem:
            run(["chown", "-R", "--no-dereference", f"{st.st_uid}:{st.st_gid}", os.path.join(target, entry)])
