"""A private mariadbd on a datadir (own socket, no TCP) and binlog replay into it.

Restores replay into one before the real server starts, verifications restore into one.
"""

import os
import shutil
import signal
import subprocess
import time

from . import OpsError, host


class PrivateServer:
    """A mariadbd reachable only through its own socket, for replay and checks.

    It trades durability for replay speed (no fsync per transaction, no doublewrite): a crash of
    this instance means starting the restore or verification over, and its clean shutdown writes
    everything before the real server starts.
    """

    FAST = ("--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0", "--innodb-doublewrite=0")

    def __init__(self, datadir, rundir, args=(), defaults_file=None):
        self.datadir, self.rundir = datadir, rundir
        self.socket = os.path.join(rundir, "mysqld.sock")
        self.defaults = [f"--defaults-file={defaults_file}"] if defaults_file else ["--no-defaults"]
        self.args = list(args)
        self.proc = None

    def start(self, timeout=300):
        os.makedirs(self.rundir, mode=0o750, exist_ok=True)
        shutil.chown(self.rundir, "mysql", "mysql")
        cmd = ["mariadbd", *self.defaults, "--user=mysql", f"--datadir={self.datadir}", f"--socket={self.socket}",
               f"--pid-file={os.path.join(self.rundir, 'mysqld.pid')}", "--skip-networking", "--skip-slave-start",
               "--event-scheduler=OFF", f"--log-error={os.path.join(self.rundir, 'error.log')}", *self.FAST, *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise OpsError(f"mariadbd on {self.datadir} exited {self.proc.returncode}: {self.error_tail()}")
            if os.path.exists(self.socket) and subprocess.run(
                    ["mariadb-admin", f"--socket={self.socket}", "--user=root", "ping"],
                    capture_output=True, check=False).returncode == 0:
                return self
            time.sleep(0.5)
        self.stop()
        raise OpsError(f"mariadbd on {self.datadir} did not answer within {timeout} s: {self.error_tail()}")

    def error_tail(self):
        try:
            with open(os.path.join(self.rundir, "error.log"), encoding="utf-8", errors="replace") as handle:
                return " | ".join(handle.read().strip().splitlines()[-6:])
        except OSError:
            return "(no error log)"

    def client(self, *extra):
        return ["mariadb", f"--socket={self.socket}", "--user=root", "--batch", "--skip-column-names", *extra]

    def sql(self, statement):
        return host.run(self.client("-e", statement)).stdout.decode().strip()

    def stop(self, timeout=300):
        if not self.proc or self.proc.poll() is not None:
            return
        subprocess.run(["mariadb-admin", f"--socket={self.socket}", "--user=root", "shutdown"],
                       capture_output=True, check=False)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def replay_command(files, start_pos=None, start_gtid=None, stop_datetime=None, stop_pos=None, stop_gtid=None):
    cmd = ["mariadb-binlog"]
    if start_gtid:
        cmd.append(f"--start-position={start_gtid}")
    elif start_pos:
        cmd.append(f"--start-position={start_pos}")
    if stop_datetime:
        cmd.append(f"--stop-datetime={stop_datetime}")
    if stop_gtid:
        cmd.append(f"--stop-position={stop_gtid}")
    elif stop_pos:
        cmd.append(f"--stop-position={stop_pos}")
    return cmd + list(files)


def replay(server, files, **where):
    """Pipe mariadb-binlog (start/stop as replay_command takes them) into the server; returns the seconds it took."""
    t0 = time.monotonic()
    env = dict(os.environ, TZ="UTC")
    binlog = subprocess.Popen(replay_command(files, **where), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    client = subprocess.run(server.client(), stdin=binlog.stdout, capture_output=True, check=False)
    binlog.stdout.close()
    binlog_err = binlog.stderr.read().decode(errors="replace")
    binlog.wait()
    if binlog.returncode != 0:
        raise OpsError(f"mariadb-binlog exited {binlog.returncode}: {binlog_err.strip()[-800:]}")
    if client.returncode != 0:
        raise OpsError(f"replaying binlogs failed: {client.stderr.decode(errors='replace').strip()[-800:]}")
    return time.monotonic() - t0
