"""Settings of the operations code: defaults, the JSON file roles/backup renders, validation.

The role renders every key of DEFAULTS into /etc/stockdb/ops.json (a unit test holds the two
equal), so the host never runs on a default the role did not choose.
"""

import json
import os

from .. import health
from . import OpsError

CONFIG = "/etc/stockdb/ops.json"

# Equal to roles/backup/defaults/main.yml (tests/unit/test_ops_settings.py).
DEFAULTS = dict(
    backup_dir="/var/backups/stockdb",
    defaults_file="/etc/stockdb/backup.cnf",
    admin_defaults_file="/etc/stockdb/admin.cnf",
    mysql_config="/etc/mysql/my.cnf",
    datadir="/var/lib/mysql",
    database="stockdb",
    service="mariadb",
    archiver_service="stockdb-binlog-archiver",
    archiver_server_id=4242,
    compress=True,
    compress_level=3,
    encrypt_key_file="",
    logical_dump=False,
    parallel=2,
    throttle=20,
    # mariabackup --log-copy-interval (ms): how often its redo-copying thread reads the log. At the end of the copy
    # it blocks commits (BACKUP STAGE BLOCK_COMMIT) until that thread has read up to the server's LSN, up to one
    # interval; a shorter one costs CPU during the whole copy (docs/benchmarks.md#second-by-second)
    log_copy_interval_ms=1000,
    prepare=True,
    prepare_memory_mb=128,
    table_checksums=True,
    # ...and in the intraday job's backups (stockdb-ops backup --intraday), which run during trading: the read
    # of every trading table inside the server costs trading more than the copy does (docs/benchmarks.md)
    intraday_table_checksums=False,
    # ...and zstd for them: it reads the copy back and writes it again during trading, and saves little on
    # incrementals (docs/benchmarks.md#intraday-incrementals); the night's full is compressed as `compress` says
    intraday_compress=False,
    retention_days=7,
    retention_min_full=2,
    verify_dir="/var/lib/stockdb-verify",
    verify_buffer_pool_mb=256,
    metrics_dir="/var/lib/prometheus/node-exporter",
    log_dir="/var/log/stockdb",
    alert_log="/var/log/stockdb/alerts.log",
    state_dir="/var/lib/stockdb/ops",
    lock_timeout=600,
    # the host that takes the scheduled backups and verifies them: "primary" (whichever host is writable and
    # replicates from no one, asked at each run, so backups follow a switchover) or one host's name
    source="primary",
    # this host's name as source names it (the inventory name; "" = the host name)
    host_name="",
    # the health check's recovery-time target (ops/rto.py), seconds
    rto_target_s=900,
    # threads of the parallel binlog replay of restores and verifications (ops/replay.py); 0 = one stream
    replay_parallel_threads=4,
    # thresholds of the periodic health check (health.py holds their defaults)
    health=dict(health.DEFAULTS),
)


def load(config=None, overrides=None):
    """DEFAULTS, then the JSON file (if given), then explicit overrides (None values ignored); validated."""
    settings = json.loads(json.dumps(DEFAULTS))  # a deep copy: health is a dict
    if config:
        if not os.path.isfile(config):
            raise OpsError(f"config file {config} does not exist (roles/backup writes it; run site.yml)")
        with open(config, encoding="utf-8") as handle:
            try:
                loaded = json.load(handle)
            except ValueError as exc:
                raise OpsError(f"config file {config} is not JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise OpsError(f"config file {config} must hold a JSON object")
        unknown = sorted(set(loaded) - set(DEFAULTS))
        unknown += sorted(f"health.{k}" for k in set(loaded.get("health") or {}) - set(DEFAULTS["health"]))
        if unknown:
            raise OpsError(f"config file {config} has unknown settings {unknown}")
        health = {**settings["health"], **(loaded.pop("health", None) or {})}
        settings.update(loaded, health=health)
    settings.update({k: v for k, v in (overrides or {}).items() if v is not None})
    validate(settings)
    return settings


def validate(s):
    """Raise OpsError listing every setting that is wrong."""
    problems = []
    for key in ("backup_dir", "datadir", "verify_dir", "state_dir", "log_dir"):
        if not isinstance(s[key], str) or not s[key].startswith("/") or s[key].rstrip("/") in ("", "/"):
            problems.append(f"{key}={s[key]!r} must be an absolute path other than /")
    if (isinstance(s["backup_dir"], str) and isinstance(s["datadir"], str)
            and os.path.realpath(s["backup_dir"]).startswith(os.path.realpath(s["datadir"]).rstrip("/") + "/")):
        problems.append(f"backup_dir {s['backup_dir']} must not be inside the datadir {s['datadir']}")
    checks = (
        ("compress_level", 1, 19), ("throttle", 0, None), ("log_copy_interval_ms", 10, 1000), ("parallel", 1, None),
        ("prepare_memory_mb", 32, None), ("verify_buffer_pool_mb", 32, None), ("retention_days", 1, None),
        ("retention_min_full", 1, None), ("lock_timeout", 1, None), ("rto_target_s", 1, None),
        ("replay_parallel_threads", 0, 64), ("archiver_server_id", 1, 4294967295),
    )
    for key, low, high in checks:
        try:
            if isinstance(s[key], (bool, float)):  # int() would take true as 1 and 2.5 as 2
                raise TypeError(key)
            value = int(s[key])
        except (TypeError, ValueError):
            problems.append(f"{key}={s[key]!r} must be an integer")
            continue
        if value < low or (high is not None and value > high):
            problems.append(f"{key}={value} must be {low}..{high}" if high is not None else f"{key}={value} must be >= {low}")
    if not isinstance(s["source"], str) or not s["source"] or any(c.isspace() for c in s["source"]):
        problems.append(f"source={s['source']!r} must be primary or one host's name")
    if s["encrypt_key_file"] and not os.path.isfile(s["encrypt_key_file"]):
        problems.append(f"encrypt_key_file {s['encrypt_key_file']} does not exist")
    if not isinstance(s["health"], dict):
        problems.append("health must be a mapping of health-check thresholds")
    if problems:
        raise OpsError("; ".join(problems))
