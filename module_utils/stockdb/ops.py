"""Backups, binlog archiving, restores and backup verification for stockdb.

Used by the modules stockdb_backup and stockdb_restore and by the stockdb-ops command the
systemd timers start (roles/backup). Standard library plus PyMySQL; the MariaDB tools do the
heavy lifting: mariabackup (physical hot backups), mariadb-binlog (archiving and replay),
mariadb-dump (optional logical dump), zstd and openssl (optional compression and encryption).

Layout under the backup directory (settings["backup_dir"]):
  backups/<YYYYMMDDTHHMMSSZ>-full/   one backup: manifest.json, data/ (mariabackup), logical/
  backups/.partial-<name>/           a backup being taken; never looks valid, removed on failure
  binlog/CURRENT                     the current timeline (a number); a restore starts a new one
  binlog/<timeline>/binlog.NNNNNN    binlogs streamed by the archiver as the server writes them
A timeline is the binlog history of one lineage of the data: after a restore the server's
binlog restarts, so its files go to a new timeline directory and never overwrite the old ones.

Every consistent point is a binlog position. A backup records where its data ends (file, pos,
GTID, from mariabackup) and, with table_checksums, the row count and checksum of every table
at a second point (a consistent snapshot taken right after the backup). Verification restores
the backup, replays the archived binlogs up to that second point and compares: one check
proves the data files, the prepare, and the binlog archive together.
"""

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

try:
    from ansible.module_utils.stockdb import invariants, report
except ImportError:  # run by the stockdb-ops command outside Ansible
    from stockdb import invariants, report

try:
    import pymysql
except ImportError:  # pragma: no cover - depends on the host
    pymysql = None

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
    throttle=0,
    prepare=True,
    prepare_memory_mb=128,
    table_checksums=True,
    retention_days=7,
    retention_min_full=2,
    verify_dir="/var/lib/stockdb-verify",
    verify_buffer_pool_mb=256,
    metrics_dir="/var/lib/prometheus/node-exporter",
    log_dir="/var/log/stockdb",
    alert_log="/var/log/stockdb/alerts.log",
    state_dir="/var/lib/stockdb/ops",
    lock_timeout=600,
)
KINDS = ("full", "incremental")
# PBKDF2 rounds for openssl's per-file key derivation (the key file is a long random secret).
ENCRYPTION_ITERATIONS = 10000
GTID = re.compile(r"^\d+-\d+-\d+(,\d+-\d+-\d+)*$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
BACKUP_NAME = re.compile(r"^\d{8}T\d{6}Z-(full|incremental)$")
BINLOG_FILE = re.compile(r"^(?P<base>.+)\.(?P<num>\d{6,})$")
# mariabackup's own files in a backup directory; not part of the datadir.
BACKUP_METADATA = ("backup-my.cnf", "xtrabackup_binlog_info", "xtrabackup_checkpoints", "xtrabackup_info")


class OpsError(Exception):
    """An operation refused or failed; the message says what and why."""


# --------------------------------------------------------------------------- settings, logs


def settings_from(config=None, overrides=None):
    """DEFAULTS, then the JSON config file written by roles/backup, then explicit overrides."""
    settings = dict(DEFAULTS)
    if config:
        if not os.path.isfile(config):
            raise OpsError(f"config file {config} does not exist (roles/backup writes it; run site.yml)")
        with open(config, encoding="utf-8") as handle:
            try:
                loaded = json.load(handle)
            except ValueError as exc:
                raise OpsError(f"config file {config} is not JSON: {exc}") from exc
        unknown = sorted(set(loaded) - set(DEFAULTS))
        if unknown:
            raise OpsError(f"config file {config} has unknown settings {unknown}")
        settings.update(loaded)
    settings.update({k: v for k, v in (overrides or {}).items() if v is not None})
    validate_settings(settings)
    return settings


def validate_settings(s):
    problems = []
    for key in ("backup_dir", "datadir", "verify_dir", "state_dir"):
        if not str(s[key]).startswith("/") or s[key].rstrip("/") in ("", "/"):
            problems.append(f"{key}={s[key]!r} must be an absolute path other than /")
    if os.path.realpath(s["backup_dir"]).startswith(os.path.realpath(s["datadir"]).rstrip("/") + "/"):
        problems.append(f"backup_dir {s['backup_dir']} must not be inside the datadir {s['datadir']}")
    if not 1 <= int(s["compress_level"]) <= 19:
        problems.append(f"compress_level={s['compress_level']} must be 1..19")
    if int(s["throttle"]) < 0:
        problems.append(f"throttle={s['throttle']} must be >= 0 (0 = unlimited)")
    if int(s["parallel"]) < 1:
        problems.append(f"parallel={s['parallel']} must be >= 1")
    for key in ("prepare_memory_mb", "verify_buffer_pool_mb"):
        if int(s[key]) < 32:
            problems.append(f"{key}={s[key]} must be >= 32 (MiB)")
    if int(s["retention_days"]) < 1 or int(s["retention_min_full"]) < 1:
        problems.append("retention_days and retention_min_full must be >= 1")
    if s["encrypt_key_file"] and not os.path.isfile(s["encrypt_key_file"]):
        problems.append(f"encrypt_key_file {s['encrypt_key_file']} does not exist")
    if problems:
        raise OpsError("; ".join(problems))


def log(settings, job, line):
    """Append one summary line to /var/log/stockdb/<job>.log (rotated by logrotate)."""
    text = f"{report.utc_stamp()} {' | '.join(str(line).splitlines())}"
    if os.path.isdir(settings["log_dir"]):
        with open(os.path.join(settings["log_dir"], job + ".log"), "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return text


@contextmanager
def ops_lock(settings):
    """One backup, verify, restore or prune at a time on a host."""
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


def run(cmd, log_file=None, stdout=None):
    """Run a command; raise OpsError with the tail of its output when it fails."""
    out = open(log_file, "ab") if log_file else subprocess.PIPE
    try:
        proc = subprocess.run(cmd, stdout=stdout or out, stderr=out if log_file else subprocess.STDOUT, check=False)
    finally:
        if log_file:
            out.close()
    if proc.returncode != 0:
        if log_file:
            with open(log_file, "rb") as handle:
                handle.seek(max(0, os.path.getsize(log_file) - 1500))
                tail = handle.read().decode(errors="replace")
        else:
            tail = (proc.stdout or b"")[-1500:].decode(errors="replace") if stdout is None else ""
        raise OpsError(f"{os.path.basename(cmd[0])} exited {proc.returncode}: {tail.strip()}")
    return proc


def tool_version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=20)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unavailable"


def connect(defaults_file, database=None, unix_socket=None, **extra):
    if pymysql is None:
        raise OpsError("PyMySQL is missing (Debian/Ubuntu package python3-pymysql)")
    if not os.access(defaults_file, os.R_OK):
        raise OpsError(f"option file {defaults_file} does not exist or is not readable")
    kwargs = dict(read_default_file=defaults_file, read_default_group="client", charset="utf8mb4", connect_timeout=10)
    if database:
        kwargs["database"] = database
    if unix_socket:
        kwargs["unix_socket"] = unix_socket
    kwargs.update(extra)
    return pymysql.connect(**kwargs)


# --------------------------------------------------------------------------- catalogue


def backups_root(settings):
    return os.path.join(settings["backup_dir"], "backups")


def binlog_root(settings):
    return os.path.join(settings["backup_dir"], "binlog")


def list_backups(settings):
    """Every complete backup (a directory with a manifest), oldest first."""
    root = backups_root(settings)
    found = []
    if os.path.isdir(root):
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name, "manifest.json")
            if BACKUP_NAME.match(name) and os.path.isfile(path):
                with open(path, encoding="utf-8") as handle:
                    manifest = json.load(handle)
                manifest["path"] = os.path.join(root, name)
                found.append(manifest)
    return found


def find_backup(settings, name=None):
    backups = list_backups(settings)
    if not backups:
        raise OpsError(f"no backups in {backups_root(settings)}")
    if name in (None, "", "latest"):
        return backups[-1]
    for manifest in backups:
        if manifest["name"] == name:
            return manifest
    raise OpsError(f"backup {name!r} not found in {backups_root(settings)}; "
                   f"have {[b['name'] for b in backups][-5:]} (newest last)")


def chain_of(settings, manifest):
    """The manifests to apply, full first: a full backup, then its incrementals up to this one."""
    by_name = {b["name"]: b for b in list_backups(settings)}
    missing = [name for name in manifest["chain"] if name not in by_name]
    if missing:
        raise OpsError(f"backup {manifest['name']} needs {missing}, which are gone")
    return [by_name[name] for name in manifest["chain"]]


def current_timeline(settings, create=True):
    path = os.path.join(binlog_root(settings), "CURRENT")
    try:
        with open(path, encoding="utf-8") as handle:
            return int(handle.read().strip())
    except FileNotFoundError:
        if not create:
            return 1
        os.makedirs(os.path.join(binlog_root(settings), "1"), mode=0o750, exist_ok=True)
        report.atomic_write(path, "1\n")
        return 1


def start_new_timeline(settings):
    timeline = current_timeline(settings) + 1
    os.makedirs(os.path.join(binlog_root(settings), str(timeline)), mode=0o750, exist_ok=True)
    report.atomic_write(os.path.join(binlog_root(settings), "CURRENT"), f"{timeline}\n")
    return timeline


def archived_binlogs(settings, timeline):
    """[(name, number, size)] of the archived binlog files of a timeline, in order."""
    directory = os.path.join(binlog_root(settings), str(timeline))
    files = []
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            match = BINLOG_FILE.match(name)
            if match:
                files.append((name, int(match["num"]), os.path.getsize(os.path.join(directory, name))))
    return sorted(files, key=lambda f: f[1])


def binlog_number(name):
    match = BINLOG_FILE.match(name or "")
    if not match:
        raise OpsError(f"{name!r} is not a binlog file name")
    return int(match["num"])


# --------------------------------------------------------------------------- files and checksums


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_inventory(root, skip=("manifest.json",)):
    """{relative path: {size, sha256}} of every file under root."""
    inventory = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, root)
            if rel in skip:
                continue
            inventory[rel] = dict(size=os.path.getsize(path), sha256=sha256_file(path))
    return inventory


def check_files(manifest):
    """Problems with a backup's files against its manifest: missing, changed or unexpected files."""
    root = manifest["path"]
    problems = []
    expected = manifest["files"]
    for rel, meta in sorted(expected.items()):
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            problems.append(f"{manifest['name']}/{rel}: missing")
        elif os.path.getsize(path) != meta["size"]:
            problems.append(f"{manifest['name']}/{rel}: size {os.path.getsize(path)} != {meta['size']} in the manifest")
        elif sha256_file(path) != meta["sha256"]:
            problems.append(f"{manifest['name']}/{rel}: sha256 differs from the manifest (corrupted)")
    for directory, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(directory, name), root)
            if rel != "manifest.json" and rel not in expected:
                problems.append(f"{manifest['name']}/{rel}: not in the manifest")
    return problems


def dir_size(root):
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(root) for n in names)


# --------------------------------------------------------------------------- table checksums


def table_checksum_sql(cursor, database, table):
    """SQL giving (rows, checksum) of a table, independent of row order and of the storage."""
    cursor.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                   "ORDER BY ordinal_position", (database, table))
    columns = [row[0] for row in cursor.fetchall()]
    parts = ", ".join(f"COALESCE(CAST(`{c}` AS CHAR), '\\\\N')" for c in columns)
    # names come from information_schema, not from a user
    return f"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', {parts}))), 0) FROM `{database}`.`{table}`"  # noqa: S608


def table_checksums(cursor, database):
    # Computed from the values, not with CHECKSUM TABLE (4x faster, but it hashes the row buffer:
    # in the ops drill it gave the restored copy of a backup point a different value than the
    # snapshot of that point had, for the orders table; the cause was not pinned down).
    cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                   "AND table_type = 'BASE TABLE' ORDER BY table_name", (database,))
    tables = [row[0] for row in cursor.fetchall()]
    sums = {}
    for table in tables:
        cursor.execute(table_checksum_sql(cursor, database, table))
        rows, checksum = cursor.fetchone()
        sums[table] = dict(rows=int(rows), checksum=int(checksum))
    return sums


def snapshot_checksums(settings):
    """Table checksums in one consistent snapshot, with the binlog position it corresponds to."""
    conn = connect(settings["defaults_file"])
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
            status = dict(cur.fetchall())
            sums = table_checksums(cur, settings["database"])
            conn.rollback()
    finally:
        conn.close()
    return dict(binlog_file=status["Binlog_snapshot_file"], binlog_pos=int(status["Binlog_snapshot_position"]),
                database=settings["database"], tables=sums)


def compare_checksums(expected, actual):
    problems = []
    for table, want in sorted(expected.items()):
        got = actual.get(table)
        if got is None:
            problems.append(f"table {table}: missing")
        elif got != want:
            problems.append(f"table {table}: {got['rows']} rows checksum {got['checksum']}, "
                            f"manifest {want['rows']} rows checksum {want['checksum']}")
    problems.extend(f"table {t}: not in the manifest" for t in sorted(set(actual) - set(expected)))
    return problems


# --------------------------------------------------------------------------- backup


def _binlog_info(data_dir):
    with open(os.path.join(data_dir, "xtrabackup_binlog_info"), encoding="utf-8") as handle:
        fields = handle.read().split()
    if len(fields) < 2:
        raise OpsError("mariabackup wrote no binlog position (is log_bin enabled?)")
    return dict(file=fields[0], pos=int(fields[1]), gtid=fields[2] if len(fields) > 2 else "")


def _checkpoints(data_dir):
    values = {}
    with open(os.path.join(data_dir, "xtrabackup_checkpoints"), encoding="utf-8") as handle:
        for line in handle:
            if "=" in line:
                key, value = (part.strip() for part in line.split("=", 1))
                values[key] = value
    return dict(type=values.get("backup_type"), from_lsn=int(values["from_lsn"]), to_lsn=int(values["to_lsn"]))


def openssl_files(root, key_file, iterations, decrypt, workers):
    """Encrypt each file under root to <file>.enc, or decrypt each *.enc back; originals removed.

    AES-256-CBC with a PBKDF2-derived key and a random salt per file. The key file holds a long
    random secret (the role requires 32+ characters), so a modest iteration count is safe, and
    it is recorded in the manifest so older backups stay readable if it changes.
    """
    jobs = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            if decrypt and not name.endswith(".enc"):
                continue
            target = path[:-4] if decrypt else path + ".enc"
            jobs.append((path, target))

    def one(job):
        source, target = job
        run(["openssl", "enc", "-d" if decrypt else "-e", "-aes-256-cbc", "-pbkdf2", "-iter", str(iterations), "-salt",
             "-pass", "file:" + key_file, "-in", source, "-out", target])
        os.unlink(source)

    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        list(pool.map(one, jobs))


def _compress_and_encrypt(settings, root):
    if settings["compress"]:
        run(["zstd", "-q", "--rm", "-r", f"-{int(settings['compress_level'])}", "-T0", root])
    if settings["encrypt_key_file"]:
        openssl_files(root, settings["encrypt_key_file"], ENCRYPTION_ITERATIONS, False, settings["parallel"])


def prepare_command(settings, target, incremental=None):
    """mariabackup --prepare of target (applying an incremental to it), in a bounded buffer pool."""
    cmd = ["mariabackup", "--prepare", f"--target-dir={target}", f"--use-memory={int(settings['prepare_memory_mb'])}M"]
    if incremental:
        cmd.append(f"--incremental-dir={incremental}")
    return cmd


def take_backup(settings, kind="full"):
    """Take one backup; returns its manifest. On failure nothing under backups/ looks valid."""
    if kind not in KINDS:
        raise OpsError(f"backup type {kind!r} is not one of {KINDS}")
    started = report.utc_now()
    name = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{kind}"
    root = backups_root(settings)
    os.makedirs(root, mode=0o750, exist_ok=True)
    final = os.path.join(root, name)
    work = os.path.join(root, ".partial-" + name)
    if os.path.exists(final):
        raise OpsError(f"backup {final} already exists")
    timeline = current_timeline(settings)
    parent = None
    if kind == "incremental":
        candidates = [b for b in list_backups(settings) if b["timeline"] == timeline]
        if not candidates:
            raise OpsError(f"an incremental backup needs a full backup in timeline {timeline}; take a full one first")
        parent = candidates[-1]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, mode=0o750)
    t0 = time.monotonic()
    try:
        data = os.path.join(work, "data")
        # the server's my.cnf is read as usual; the backup account's option file on top
        cmd = ["mariabackup", f"--defaults-extra-file={settings['defaults_file']}", "--backup",
               f"--target-dir={data}", f"--parallel={int(settings['parallel'])}"]
        if int(settings["throttle"]):
            cmd.append(f"--throttle={int(settings['throttle'])}")
        if parent:
            cmd.append(f"--incremental-lsn={parent['lsn']['to_lsn']}")
        phases = {}
        run(cmd, log_file=os.path.join(work, "mariabackup.log"))
        phases["copy_s"] = round(time.monotonic() - t0, 3)
        data_bytes = dir_size(data)
        binlog = _binlog_info(data)
        lsn = _checkpoints(data)
        consistent_at = report.utc_now()
        # A full backup is stored prepared (its redo applied; incrementals still apply on top),
        # so a restore of it only decompresses and moves files back.
        prepared = kind == "full" and bool(settings["prepare"])
        # The copy had to keep up with the redo log; what follows has no deadline.
        with cpu_idle():
            t1 = time.monotonic()
            if prepared:
                run(prepare_command(settings, data), log_file=os.path.join(work, "mariabackup.log"))
            phases["prepare_s"] = round(time.monotonic() - t1, 3)
            t1 = time.monotonic()
            checksums = snapshot_checksums(settings) if settings["table_checksums"] else None
            phases["checksums_s"] = round(time.monotonic() - t1, 3)
            t1 = time.monotonic()
            if settings["logical_dump"]:
                logical = os.path.join(work, "logical")
                os.makedirs(logical)
                with open(os.path.join(logical, settings["database"] + ".sql"), "wb") as out:
                    run(["mariadb-dump", f"--defaults-extra-file={settings['defaults_file']}", "--single-transaction",
                         "--master-data=2", "--gtid", "--routines", "--triggers", "--hex-blob", "--databases",
                         settings["database"]], stdout=out)
            phases["logical_dump_s"] = round(time.monotonic() - t1, 3)
            t1 = time.monotonic()
            _compress_and_encrypt(settings, work)
            phases["compress_encrypt_s"] = round(time.monotonic() - t1, 3)
        finished = report.utc_now()
        manifest = dict(
            format=1, name=name, type=kind, host=socket.gethostname(), timeline=timeline,
            parent=parent["name"] if parent else None,
            chain=(parent["chain"] if parent else []) + [name],
            started_at=report.utc_stamp(started), consistent_at=report.utc_stamp(consistent_at),
            finished_at=report.utc_stamp(finished), duration_s=round(time.monotonic() - t0, 3), phases=phases,
            binlog=binlog, lsn=lsn, prepared=prepared, checksums=checksums, database=settings["database"],
            compress=f"zstd-{settings['compress_level']}" if settings["compress"] else None,
            encrypted=bool(settings["encrypt_key_file"]),
            encryption=f"aes-256-cbc pbkdf2 {ENCRYPTION_ITERATIONS}" if settings["encrypt_key_file"] else None,
            key_fingerprint=sha256_file(settings["encrypt_key_file"])[:16] if settings["encrypt_key_file"] else None,
            logical_dump=bool(settings["logical_dump"]), data_bytes=data_bytes,
            tools=dict(mariabackup=tool_version(["mariabackup", "--version"]),
                       server=tool_version(["mariadbd", "--version"]),
                       zstd=tool_version(["zstd", "--version"]) if settings["compress"] else None,
                       openssl=tool_version(["openssl", "version"]) if settings["encrypt_key_file"] else None),
        )
        manifest["files"] = file_inventory(work)
        manifest["size_bytes"] = sum(f["size"] for f in manifest["files"].values())
        report.atomic_write(os.path.join(work, "manifest.json"), json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        os.rename(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    manifest["path"] = final
    return manifest


def lower_priority():
    """Trading first, for this process and the tools it starts: nice 10, best-effort I/O priority 7,
    and first in line for the OOM killer, so a job that runs the host out of memory (mariabackup's
    copy and prepare, the scratch server) is killed and alerted on instead of MariaDB."""
    current = os.nice(0)
    if current < 10:
        os.nice(10 - current)
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
    commit waking from its fsync then waits for (zstd at nice 10 cut the lab's orders/s by a
    quarter; under SCHED_IDLE by a tenth). On a host saturated for hours such work waits that long.
    The previous policy is restored afterwards.
    """
    try:
        before = (os.sched_getscheduler(0), os.sched_getparam(0))
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or not allowed: run at the current priority
        before = None
    try:
        yield
    finally:
        if before:
            try:
                os.sched_setscheduler(0, *before)
            except OSError:
                pass


def backup_job(settings, kind="full"):
    """A scheduled or requested backup: take it, prune, log, metrics, alert-log entry on failure."""
    lower_priority()
    state_path = os.path.join(settings["state_dir"], "backup.json")
    state = report.load_state(state_path)
    labels = dict(host=socket.gethostname(), type=kind)
    try:
        with ops_lock(settings):
            manifest = take_backup(settings, kind)
            pruned = prune(settings)
    except (OpsError, OSError, subprocess.SubprocessError) as exc:
        state["failures_total"] = state.get("failures_total", 0) + 1
        state["last_status"] = 0
        state["last_error"] = str(exc)
        report.save_state(state_path, state)
        publish_backup_metrics(settings, state)
        log(settings, "backup", f"FAILED type={kind}: {exc}")
        report.append_alert(settings["alert_log"], "FIRING", "critical", "StockdbBackupFailed", labels,
                            f"{kind} backup failed, nothing kept: {str(exc)[:400]}")
        raise
    if state.get("last_status") == 0:
        report.append_alert(settings["alert_log"], "RESOLVED", "critical", "StockdbBackupFailed", labels,
                            f"{kind} backup {manifest['name']} succeeded")
    state.update(last_status=1, last_error=None)
    state.setdefault("last", {})[kind] = dict(name=manifest["name"], finished=time.time(),
                                              duration_s=manifest["duration_s"], size_bytes=manifest["size_bytes"])
    report.save_state(state_path, state)
    publish_backup_metrics(settings, state)
    log(settings, "backup", f"OK {manifest['name']} type={kind} size={manifest['size_bytes']} "
                            f"duration={manifest['duration_s']}s binlog={manifest['binlog']['file']}:{manifest['binlog']['pos']} "
                            f"gtid={manifest['binlog']['gtid']} pruned={len(pruned['backups'])}+{len(pruned['binlogs'])}")
    return manifest, pruned


def publish_backup_metrics(settings, state):
    backups = list_backups(settings)
    last = state.get("last", {})

    def per_type(key):
        return [({"type": kind}, value[key]) for kind, value in sorted(last.items())]

    report.write_textfile(settings["metrics_dir"], "stockdb_backup", [
        ("stockdb_backup_last_success_timestamp_seconds", "End of the last successful backup.", "gauge", per_type("finished")),
        ("stockdb_backup_last_duration_seconds", "Duration of the last successful backup.", "gauge", per_type("duration_s")),
        ("stockdb_backup_last_size_bytes", "Stored size of the last successful backup.", "gauge", per_type("size_bytes")),
        ("stockdb_backup_last_status", "1 when the last backup attempt succeeded, 0 when it failed.", "gauge",
         [({}, state.get("last_status", 1))]),
        ("stockdb_backup_failures_total", "Backup attempts that failed.", "counter", [({}, state.get("failures_total", 0))]),
        ("stockdb_backup_count", "Complete backups kept.", "gauge", [({}, len(backups))]),
        ("stockdb_backup_oldest_timestamp_seconds", "Consistent point of the oldest kept backup.", "gauge",
         [({}, parse_utc(backups[0]["consistent_at"]).timestamp())] if backups else []),
    ])


def parse_utc(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


# --------------------------------------------------------------------------- retention


def prune(settings, now=None):
    """Drop backup chains older than retention_days (keeping retention_min_full chains at least),
    then the archived binlogs no kept backup needs: PITR reaches any moment after the oldest kept backup."""
    now = now or report.utc_now()
    backups = list_backups(settings)
    fulls = [b for b in backups if b["type"] == "full"]
    cutoff = now - timedelta(days=int(settings["retention_days"]))
    keep_from = max(0, len(fulls) - int(settings["retention_min_full"]))
    doomed_fulls = {b["name"] for b in fulls[:keep_from] if parse_utc(b["consistent_at"]) < cutoff}
    # a chain goes only when its newest member is old too
    chains = {}
    for b in backups:
        chains.setdefault(b["chain"][0], []).append(b)
    removed = []
    for base in sorted(doomed_fulls):
        members = chains.get(base, [])
        if all(parse_utc(m["consistent_at"]) < cutoff for m in members):
            for member in members:
                shutil.rmtree(member["path"])
                removed.append(member["name"])
    kept = [b for b in backups if b["name"] not in removed]
    removed_binlogs = []
    current = current_timeline(settings)
    root = binlog_root(settings)
    for entry in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        if not entry.isdigit():
            continue
        timeline = int(entry)
        needed = [binlog_number(b["binlog"]["file"]) for b in kept if b["timeline"] == timeline]
        if not needed and timeline != current:
            shutil.rmtree(os.path.join(root, entry))
            removed_binlogs.append(f"timeline {timeline}")
            continue
        if not needed:
            continue
        for name, number, _ in archived_binlogs(settings, timeline):
            if number < min(needed):
                os.unlink(os.path.join(root, entry, name))
                removed_binlogs.append(f"{timeline}/{name}")
    return dict(backups=removed, binlogs=removed_binlogs)


# --------------------------------------------------------------------------- binlog archive


def server_binlogs(settings):
    conn = connect(settings["defaults_file"])
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            return [(row[0], int(row[1])) for row in cur.fetchall()]
    finally:
        conn.close()


def archiver_command(settings):
    """The mariadb-binlog command that streams the server's binlogs into the current timeline.

    Starts again from the newest archived file (re-fetched whole), or from the server's oldest binlog.
    """
    timeline = current_timeline(settings)
    directory = os.path.join(binlog_root(settings), str(timeline))
    os.makedirs(directory, mode=0o750, exist_ok=True)
    on_server = [name for name, _ in server_binlogs(settings)]
    if not on_server:
        raise OpsError("the server lists no binary logs (log_bin is off?)")
    archived = archived_binlogs(settings, timeline)
    start = on_server[0]
    if archived:
        last = archived[-1][0]
        if last in on_server:
            start = last
        else:
            newer = [n for n in on_server if binlog_number(n) > archived[-1][1]]
            start = newer[0] if newer else on_server[-1]
            report.append_alert(settings["alert_log"], "FIRING", "critical", "StockdbBinlogArchiveGap",
                                dict(host=socket.gethostname(), timeline=timeline),
                                f"{last} was purged from the server before it was archived completely; "
                                f"archiving resumes at {start}: take a full backup now")
    return ["mariadb-binlog", f"--defaults-extra-file={settings['defaults_file']}", "--read-from-remote-server",
            "--raw", "--stop-never", f"--stop-never-slave-server-id={int(settings['archiver_server_id'])}",
            f"--result-file={directory}/", start]


def complete_archive(settings, timeline, datadir):
    """Copy binlogs of a stopped server's datadir that the archive lacks or holds shorter.

    The archiver streams with a lag of up to a few events; when the old datadir survived (a bad
    DELETE, not a lost disk), its own binlogs are complete, so nothing committed is left out.
    """
    directory = os.path.join(binlog_root(settings), str(timeline))
    archived = {name: size for name, _, size in archived_binlogs(settings, timeline)}
    if not archived:
        return []
    base = BINLOG_FILE.match(next(iter(archived)))["base"]
    copied = []
    for name in sorted(os.listdir(datadir)):
        match = BINLOG_FILE.match(name)
        if not match or match["base"] != base or int(match["num"]) < min(binlog_number(n) for n in archived):
            continue
        if os.path.getsize(os.path.join(datadir, name)) > archived.get(name, 0):
            shutil.copy2(os.path.join(datadir, name), os.path.join(directory, name))
            copied.append(name)
    return copied


def archive_status(settings):
    """Bytes the server has written that the archive does not have yet, per the current timeline."""
    timeline = current_timeline(settings, create=False)
    archived = {name: size for name, _, size in archived_binlogs(settings, timeline)}
    lag = 0
    for name, size in server_binlogs(settings):
        lag += max(0, size - archived.get(name, 0))
    newest = 0.0
    directory = os.path.join(binlog_root(settings), str(timeline))
    for name in archived:
        newest = max(newest, os.path.getmtime(os.path.join(directory, name)))
    return dict(timeline=timeline, lag_bytes=lag, files=len(archived), bytes=sum(archived.values()),
                last_write=newest)


def publish_archive_metrics(settings, status):
    report.write_textfile(settings["metrics_dir"], "stockdb_binlog_archive", [
        ("stockdb_binlog_archive_lag_bytes", "Binlog bytes on the server not yet in the archive.", "gauge",
         [({}, status["lag_bytes"])]),
        ("stockdb_binlog_archive_files", "Archived binlog files in the current timeline.", "gauge", [({}, status["files"])]),
        ("stockdb_binlog_archive_bytes", "Archived binlog bytes in the current timeline.", "gauge", [({}, status["bytes"])]),
        ("stockdb_binlog_archive_last_write_timestamp_seconds", "Last write to an archived binlog file.", "gauge",
         [({}, status["last_write"])]),
        ("stockdb_binlog_archive_timeline", "Current binlog timeline (a restore starts a new one).", "gauge",
         [({}, status["timeline"])]),
    ])


# --------------------------------------------------------------------------- materialize and prepare


def materialize(settings, chain, staging, timings=None):
    """Copy, decrypt and decompress each backup of the chain under staging/; prepare; return the data dir.

    A full backup stored prepared is not prepared again; incrementals are applied on top of it.
    Records copy_s (copy, decrypt, decompress) and prepare_s (mariabackup --prepare) in `timings`.
    """
    timings = {} if timings is None else timings
    t0 = time.monotonic()
    dirs = []
    for index, manifest in enumerate(chain):
        if manifest["encrypted"] and not settings["encrypt_key_file"]:
            raise OpsError(f"backup {manifest['name']} is encrypted; set encrypt_key_file")
        if manifest["encrypted"] and sha256_file(settings["encrypt_key_file"])[:16] != manifest["key_fingerprint"]:
            raise OpsError(f"encrypt_key_file {settings['encrypt_key_file']} is not the key "
                           f"backup {manifest['name']} was encrypted with")
        source = os.path.join(manifest["path"], "data")
        target = os.path.join(staging, f"{index:02d}-{manifest['type']}")
        if manifest["encrypted"]:
            shutil.copytree(source, target)
            iterations = int(manifest["encryption"].rsplit(" ", 1)[1])
            openssl_files(target, settings["encrypt_key_file"], iterations, True, settings["parallel"])
            if manifest["compress"]:
                run(["zstd", "-q", "-d", "--rm", "-r", "-T0", target])
        elif manifest["compress"]:
            run(["zstd", "-q", "-d", "-r", "-T0", source, "--output-dir-mirror", staging])
            os.rename(os.path.join(staging, os.path.relpath(source, "/")), target)
            shutil.rmtree(os.path.join(staging, os.path.relpath(source, "/").split(os.sep)[0]), ignore_errors=True)
        else:
            shutil.copytree(source, target)
        dirs.append(target)
    timings["copy_s"] = round(time.monotonic() - t0, 3)
    t0 = time.monotonic()
    prepare_log = os.path.join(staging, "prepare.log")
    if not chain[0].get("prepared"):
        run(prepare_command(settings, dirs[0]), log_file=prepare_log)
    for incremental in dirs[1:]:
        run(prepare_command(settings, dirs[0], incremental), log_file=prepare_log)
        shutil.rmtree(incremental)
    timings["prepare_s"] = round(time.monotonic() - t0, 3)
    return dirs[0]


# --------------------------------------------------------------------------- a private server


class PrivateServer:
    """A mariadbd on a datadir, reachable only through its own socket (no TCP), for replay and checks.

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
        os.makedirs(self.rundir, exist_ok=True)
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
        return run(self.client("-e", statement)).stdout.decode().strip()

    def connect(self, defaults_file, database):
        return connect(defaults_file, database=database, unix_socket=self.socket)

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


def replay_files(settings, manifest, last_file=None):
    """Archived binlog paths from the backup's file on, in order; refuses gaps."""
    timeline = manifest["timeline"]
    directory = os.path.join(binlog_root(settings), str(timeline))
    first = binlog_number(manifest["binlog"]["file"])
    last = binlog_number(last_file) if last_file else None
    files = [(name, number) for name, number, _ in archived_binlogs(settings, timeline)
             if number >= first and (last is None or number <= last)]
    if not files or files[0][1] != first:
        raise OpsError(f"the binlog archive of timeline {timeline} ({directory}) lacks {manifest['binlog']['file']}, "
                       f"where backup {manifest['name']} ends")
    for (_, a), (name, b) in zip(files, files[1:]):
        if b != a + 1:
            raise OpsError(f"the binlog archive of timeline {timeline} has a gap before {name}")
    if last is not None and files[-1][1] != last:
        raise OpsError(f"the binlog archive of timeline {timeline} lacks {last_file}")
    return [os.path.join(directory, name) for name, _ in files]


def replay(server, files, start_pos=None, start_gtid=None, stop_datetime=None, stop_pos=None, stop_gtid=None):
    """Pipe mariadb-binlog into the server; returns the seconds it took."""
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
    t0 = time.monotonic()
    env = dict(os.environ, TZ="UTC")
    binlog = subprocess.Popen(cmd + list(files), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    client = subprocess.run(server.client(), stdin=binlog.stdout, capture_output=True, check=False)
    binlog.stdout.close()
    binlog_err = binlog.stderr.read().decode(errors="replace")
    binlog.wait()
    if binlog.returncode != 0:
        raise OpsError(f"mariadb-binlog exited {binlog.returncode}: {binlog_err.strip()[-800:]}")
    if client.returncode != 0:
        raise OpsError(f"replaying binlogs failed: {client.stderr.decode(errors='replace').strip()[-800:]}")
    return time.monotonic() - t0


# --------------------------------------------------------------------------- checks on a restored server


def check_restored(settings, server=None, ack_log=None, ack_until=None):
    """Invariants (and acknowledged rows) in one snapshot, on a private server or (None) the running one."""
    if server:
        conn = server.connect(settings["admin_defaults_file"], settings["database"])
    else:
        conn = connect(settings["admin_defaults_file"], settings["database"])
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            results, failures, ack = invariants.check_database(cur, None, ack_log, ack_until)
            conn.rollback()
    finally:
        conn.close()
    return dict(ok=not failures, failures=failures, ack=ack,
                checks={name: r["ok"] for name, r in results.items()})


def ensure_space(path, needed, what):
    free = shutil.disk_usage(path).free
    if free < needed:
        raise OpsError(f"{what} needs {needed // 2**20} MiB on the filesystem of {path}, which has {free // 2**20} MiB free")


# --------------------------------------------------------------------------- verification


def verify(settings, name=None):
    """Restore a backup into a scratch server, replay to its checksum point, compare, check invariants."""
    manifest = find_backup(settings, name)
    chain = chain_of(settings, manifest)
    result = dict(backup=manifest["name"], chain=[m["name"] for m in chain], problems=[])
    for member in chain:
        result["problems"].extend(check_files(member))
    if result["problems"]:
        return result
    scratch = os.path.join(settings["verify_dir"], manifest["name"])
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch, mode=0o755)
    os.chmod(settings["verify_dir"], 0o755)  # noqa: S103 - the scratch mariadbd runs as mysql
    try:
        ensure_space(scratch, int(sum(m["data_bytes"] for m in chain) * 1.2), "verification")
        t0 = time.monotonic()
        prepared = materialize(settings, chain, scratch)
        run(["chown", "-R", "mysql:mysql", scratch])
        server = PrivateServer(prepared, os.path.join(scratch, "run"),
                               args=[f"--innodb-buffer-pool-size={int(settings['verify_buffer_pool_mb'])}M", "--skip-log-bin"],
                               defaults_file=os.path.join(prepared, "backup-my.cnf"))
        with server:
            result["restore_s"] = round(time.monotonic() - t0, 3)
            points = manifest.get("checksums")
            if points:
                files = replay_files(settings, manifest, last_file=points["binlog_file"])
                result["replay_s"] = round(replay(server, files, start_pos=manifest["binlog"]["pos"],
                                                  stop_pos=points["binlog_pos"]), 3)
                result["binlog_files"] = [os.path.basename(f) for f in files]
                conn = server.connect(settings["admin_defaults_file"], settings["database"])
                try:
                    with conn.cursor() as cur:
                        actual = table_checksums(cur, settings["database"])
                finally:
                    conn.close()
                result["tables"] = len(actual)
                result["problems"].extend(compare_checksums(points["tables"], actual))
            checked = check_restored(settings, server)
            result["invariants"] = checked["checks"]
            result["problems"].extend(f"invariant {line}" for line in checked["failures"])
        result["total_s"] = round(time.monotonic() - t0, 3)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def verify_job(settings, name=None):
    """verify() with the lock, a log line, metrics and an alert-log entry when the backup fails verification."""
    lower_priority()
    state_path = os.path.join(settings["state_dir"], "verify.json")
    state = report.load_state(state_path)
    labels = dict(host=socket.gethostname())
    try:
        with ops_lock(settings), cpu_idle():
            result = verify(settings, name)
    except (OpsError, OSError, subprocess.SubprocessError) as exc:
        result = dict(backup=name or "latest", problems=[f"verification could not run: {exc}"])
    ok = not result["problems"]
    now = time.time()
    previous = state.get("last_status", 1)
    state.update(last_run=now, last_status=int(ok), backup=result["backup"])
    if ok:
        state.update(last_success=now, restore_s=result["restore_s"], total_s=result["total_s"])
    else:
        state["failures_total"] = state.get("failures_total", 0) + 1
    report.save_state(state_path, state)
    report.write_textfile(settings["metrics_dir"], "stockdb_backup_verify", [
        ("stockdb_backup_verify_last_status", "1 when the last verification passed, 0 when it failed.", "gauge",
         [({}, state["last_status"])]),
        ("stockdb_backup_verify_last_run_timestamp_seconds", "Last verification run.", "gauge", [({}, now)]),
        ("stockdb_backup_verify_last_success_timestamp_seconds", "Last verification that passed.", "gauge",
         [({}, state["last_success"])] if "last_success" in state else []),
        ("stockdb_backup_verify_restore_seconds",
         "Restore time (copy, decompress, prepare, start) of the last passed verification.", "gauge",
         [({}, state["restore_s"])] if "restore_s" in state else []),
        ("stockdb_backup_verify_failures_total", "Verifications that failed.", "counter", [({}, state.get("failures_total", 0))]),
    ])
    if ok:
        log(settings, "verify", f"OK {result['backup']} restore={result['restore_s']}s replay={result.get('replay_s', 0)}s "
                                f"tables={result.get('tables', 0)} total={result['total_s']}s")
        if previous == 0:
            report.append_alert(settings["alert_log"], "RESOLVED", "critical", "StockdbBackupVerifyFailed", labels,
                                f"backup {result['backup']} verified")
    else:
        text = "; ".join(result["problems"])
        log(settings, "verify", f"FAILED {result['backup']}: {text}")
        report.append_alert(settings["alert_log"], "FIRING", "critical", "StockdbBackupVerifyFailed", labels,
                            f"backup {result['backup']} failed verification: {text[:400]}")
    return result


# --------------------------------------------------------------------------- restore


def parse_target(restore_to):
    """None (the backup as it is), 'end' (every archived binlog), a GTID list, or a UTC timestamp."""
    if restore_to in (None, ""):
        return None
    if restore_to == "end":
        return dict(kind="end")
    if GTID.match(restore_to):
        return dict(kind="gtid", gtid=restore_to, seqs=_gtid_seqs(restore_to))
    if TIMESTAMP.match(restore_to):
        try:
            moment = datetime.strptime(restore_to, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
        except ValueError as exc:
            raise OpsError(f"restore_to={restore_to!r}: {exc}") from exc
        return dict(kind="time", moment=moment, text=restore_to)
    raise OpsError(f"restore_to={restore_to!r} is neither 'YYYY-MM-DD HH:MM:SS' (UTC), a GTID like 0-1-1234, nor 'end'")


def _gtid_seqs(gtid_list):
    return {int(g.split("-")[0]): int(g.split("-")[2]) for g in gtid_list.split(",") if g}


def pick_backup(settings, name, target):
    """The named backup, or the newest one from which the target can be reached in the current timeline."""
    if name not in (None, "", "latest") or target is None:
        return find_backup(settings, name)
    timeline = current_timeline(settings)
    candidates = [b for b in list_backups(settings) if b["timeline"] == timeline]
    if target["kind"] == "time":
        candidates = [b for b in candidates if parse_utc(b["consistent_at"]) <= target["moment"]]
    elif target["kind"] == "gtid":
        candidates = [b for b in candidates
                      if all(_gtid_seqs(b["binlog"]["gtid"]).get(d, 0) <= s for d, s in target["seqs"].items())]
    if not candidates:
        raise OpsError(f"no backup of the current binlog timeline {timeline} is older than restore_to="
                       f"{target.get('text') or target.get('gtid') or 'end'}; "
                       "a restore starts a new timeline, and point-in-time recovery needs a backup taken in it "
                       "(restore.yml takes one unless restore_backup_after=false); backups kept: "
                       f"{[(b['name'], b['timeline']) for b in list_backups(settings)][-5:]}")
    return candidates[-1]


def service_active(unit):
    return subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False).returncode == 0


def systemctl(action, unit):
    run(["systemctl", action, unit])


def move_contents(source, target):
    """Move every entry of source into target (a rename on one filesystem); source itself stays."""
    os.makedirs(target, mode=0o750, exist_ok=True)
    for entry in os.listdir(source):
        shutil.move(os.path.join(source, entry), os.path.join(target, entry))


def replaced_datadirs(settings):
    parent, base = os.path.split(settings["datadir"].rstrip("/"))
    return sorted(os.path.join(parent, e) for e in os.listdir(parent) if e.startswith(base + ".replaced-"))


def drop_replaced(settings):
    dropped = replaced_datadirs(settings)
    for path in dropped:
        shutil.rmtree(path)
    return dropped


def restore(settings, name=None, restore_to=None, confirm=False, ack_log=None, ack_until=None, dry_run=False):
    """Replace the datadir with a backup, replayed to restore_to; keep the replaced datadir aside.

    Downtime runs from stopping the server to starting it again; the replay happens on a private
    instance (no TCP, own socket) so no client sees a half-recovered database. The invariant
    checks run on the started server, outside the downtime.
    """
    target = parse_target(restore_to)
    datadir = settings["datadir"].rstrip("/")
    with ops_lock(settings):
        manifest = pick_backup(settings, name, target)
        chain = chain_of(settings, manifest)
        files = replay_files(settings, manifest) if target else []
        live = service_active(settings["service"]) or bool(os.path.isdir(datadir) and os.listdir(datadir))
        plan = dict(backup=manifest["name"], chain=[m["name"] for m in chain], restore_to=restore_to,
                    binlog_files=[os.path.basename(f) for f in files], datadir=datadir, replaced_live_datadir=live,
                    backup_gtid=manifest["binlog"]["gtid"])
        refusal = (f"refusing to replace the live datadir {datadir} (server running or files present) "
                   "without restore_confirm=true; the replaced files would be kept aside")
        if dry_run:
            plan["refused"] = refusal if live and not confirm else None
            return plan
        if live and not confirm:
            raise OpsError(refusal)
        problems = [p for m in chain for p in check_files(m)]
        if problems:
            raise OpsError(f"backup {manifest['name']} fails its manifest, nothing changed: " + "; ".join(problems))
        stamp = report.utc_now().strftime("%Y%m%dT%H%M%SZ")
        staging = f"{datadir}.restore-{stamp}"
        ensure_space(os.path.dirname(datadir), int(sum(m["data_bytes"] for m in chain) * 1.1), "the restore")
        timings = {}
        t0 = time.monotonic()
        try:
            prepared = materialize(settings, chain, staging, timings)
            old_timeline = current_timeline(settings)
            t_down = time.monotonic()
            for unit in (settings["archiver_service"], settings["service"]):
                systemctl("stop", unit)
            timings["stop_s"] = round(time.monotonic() - t_down, 3)
            replaced = f"{datadir}.replaced-{stamp}"
            if os.path.isdir(datadir):
                move_contents(datadir, replaced)
                plan["archived_from_datadir"] = complete_archive(settings, old_timeline, replaced)
            plan["replaced_datadir"] = replaced
            try:
                t1 = time.monotonic()
                run(["mariabackup", "--move-back", f"--target-dir={prepared}", f"--datadir={datadir}"],
                    log_file=os.path.join(staging, "move-back.log"))
                run(["chown", "-R", "mysql:mysql", datadir])
                # the decompressed files reach the disk before the server trusts them
                run(["sync", "-f", datadir])
                timings["move_back_s"] = round(time.monotonic() - t1, 3)
                plan["timeline"] = start_new_timeline(settings)
                server = PrivateServer(datadir, "/run/stockdb-restore", defaults_file=settings["mysql_config"])
                t1 = time.monotonic()
                with server:
                    timings["private_start_s"] = round(time.monotonic() - t1, 3)
                    server.sql("RESET MASTER")
                    if manifest["binlog"]["gtid"]:
                        server.sql(f"SET GLOBAL gtid_binlog_state = '{manifest['binlog']['gtid']}'")
                    if target:
                        files = replay_files(settings, manifest)  # again: complete_archive may have added some
                        plan["binlog_files"] = [os.path.basename(f) for f in files]
                        kwargs = dict(start_pos=manifest["binlog"]["pos"])
                        if target["kind"] == "gtid":
                            kwargs = dict(start_gtid=manifest["binlog"]["gtid"], stop_gtid=target["gtid"])
                        elif target["kind"] == "time":
                            kwargs["stop_datetime"] = target["text"]
                        timings["replay_s"] = round(replay(server, files, **kwargs), 3)
                    plan["restored_gtid"] = server.sql("SELECT @@gtid_binlog_pos")
                    if target and target["kind"] == "gtid":
                        reached = _gtid_seqs(plan["restored_gtid"])
                        short = {d: s for d, s in target["seqs"].items() if reached.get(d, 0) < s}
                        if short:
                            raise OpsError(f"the binlog archive ends at {plan['restored_gtid']}, before restore_to={restore_to}")
                t1 = time.monotonic()
                systemctl("start", settings["service"])
                timings["start_s"] = round(time.monotonic() - t1, 3)
                systemctl("start", settings["archiver_service"])
                timings["downtime_s"] = round(time.monotonic() - t_down, 3)
            except BaseException as exc:
                failed = f"{datadir}.failed-restore-{stamp}"
                move_contents(datadir, failed)
                if os.path.isdir(replaced):
                    move_contents(replaced, datadir)
                    os.rmdir(replaced)
                report.atomic_write(os.path.join(binlog_root(settings), "CURRENT"), f"{old_timeline}\n")
                for unit in (settings["service"], settings["archiver_service"]):
                    subprocess.run(["systemctl", "start", unit], check=False)
                running = "and running" if service_active(settings["service"]) else "but MariaDB did not start"
                raise OpsError(f"restore failed, the previous datadir is back in place {running}; "
                               f"the failed attempt is kept in {failed}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        t1 = time.monotonic()
        plan["check"] = check_restored(settings, None, ack_log, ack_until)  # on the running server, after the downtime
        timings["check_s"] = round(time.monotonic() - t1, 3)
        timings["total_s"] = round(time.monotonic() - t0, 3)
        plan["timings"] = timings
        log(settings, "restore", f"OK {manifest['name']} restore_to={restore_to or 'backup'} gtid={plan['restored_gtid']} "
                                 f"downtime={timings['downtime_s']}s total={timings['total_s']}s replaced={replaced} "
                                 f"invariants={'ok' if plan['check']['ok'] else 'VIOLATED'}")
        return plan
