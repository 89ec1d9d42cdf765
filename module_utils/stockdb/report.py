"""What the operations jobs leave behind: textfile metrics, alert-log lines, JSON state.

Pure standard library, so the same code runs inside Ansible modules and in the stockdb-ops
command that the systemd timers start (roles/backup installs both).

Alert-log lines have the format of the Alertmanager receiver (roles/alertmanager/files/alertlog.py):
  2026-11-24T03:00:15Z FIRING critical StockdbBackupFailed host=db1 type=full :: mariabackup exited 1
so one `tail -f /var/log/stockdb/alerts.log` shows what Prometheus saw and what a job saw itself.
"""

import json
import os
import re
import tempfile
from datetime import datetime, timezone

_LABEL_VALUE_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def utc_now():
    return datetime.now(timezone.utc)


def utc_stamp(moment=None):
    """ISO-8601 UTC to the second, as every stockdb log writes it."""
    return (moment or utc_now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def atomic_write(path, text, mode=0o644):
    """Write text (or bytes) to a temporary file in the same directory, then rename over path."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        with (os.fdopen(fd, "wb") if isinstance(text, bytes) else os.fdopen(fd, "w", encoding="utf-8")) as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _number(value):
    """Exact: integers as integers (timestamps, byte counts), other values as Python's shortest repr."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def format_metrics(metrics):
    """Prometheus text format from [(name, help, type, [(labels dict, value), ...]), ...]."""
    lines = []
    for name, help_text, kind, samples in metrics:
        if not _METRIC_NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            label_text = ",".join(f'{k}="{str(v).translate(_LABEL_VALUE_ESCAPES)}"' for k, v in sorted(labels.items()))
            lines.append(f"{name}{{{label_text}}} {_number(value)}" if label_text else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def write_textfile(directory, name, metrics):
    """Atomically replace <directory>/<name>.prom (node_exporter must never read half a file).

    Skipped silently when the directory does not exist (a host without node_exporter).
    Returns the path written, or None.
    """
    if not directory or not os.path.isdir(directory):
        return None
    path = os.path.join(directory, name + ".prom")
    atomic_write(path, format_metrics(metrics))
    return path


def alert_line(status, severity, name, labels, summary, moment=None):
    label_text = " ".join(f"{k}={v}" for k, v in sorted(labels.items()))
    line = f"{utc_stamp(moment)} {status} {severity} {name} {label_text} :: {summary}"
    return line.replace("\n", " ")


def append_alert(path, status, severity, name, labels, summary):
    """Append one line to the alert log; returns the line. Never raises for a missing log directory."""
    line = alert_line(status, severity, name, labels, summary)
    if path and os.path.isdir(os.path.dirname(path)):
        with open(path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
    return line


def append_log(log_dir, job, line):
    """Append one summary line to <log_dir>/<job>.log (rotated by logrotate); returns the line.

    Skipped when the directory does not exist (a host the backup role has not provisioned).
    """
    text = f"{utc_stamp()} {' | '.join(str(line).splitlines())}"
    if log_dir and os.path.isdir(log_dir):
        with open(os.path.join(log_dir, job + ".log"), "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return text


def load_state(path):
    """JSON state kept between runs (counters, last values); {} when absent or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
        return state if isinstance(state, dict) else {}
    except (OSError, ValueError):
        return {}


def save_state(path, state):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, json.dumps(state, indent=1, sort_keys=True) + "\n", mode=0o600)
