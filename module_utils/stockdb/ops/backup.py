"""Taking one backup: plan it, copy, prepare, checksum, dump, pack, write the manifest, move it in place.

A backup is written under backups/.partial-<name>/ and renamed only when its manifest is complete,
so a failure (or a killed job, swept by the jobs) never leaves anything that looks like a backup.
"""

import json
import os
import shutil
import socket
import time
from datetime import timedelta

from .. import replication, report
from . import OpsError, archive, catalogue, connection, host, integrity, mariabackup, packing


def source_check(settings):
    """(True, why) when this host takes the scheduled backups now (settings["source"]), else (False, why).

    source "primary" asks the server: the primary is writable and replicates from no one. A replica, a
    demoted or fenced old primary (read-only) and a host in the middle of a switchover are not; so the
    backups follow the primary through a switchover or failover without a change of configuration.
    Raises OpsError when the server cannot answer.
    """
    source, me = settings["source"], settings["host_name"] or socket.gethostname()
    if source != "primary":
        if me == source:
            return True, f"this host is the backup source {source}"
        return False, f"the backup source is {source}, this host is {me}"
    with connection.cursor(settings["defaults_file"], "asking whether this host is the primary") as cur:
        cur.execute("SELECT @@global.read_only")
        read_only = int(cur.fetchone()[0])
        masters = [c.get("Master_Host") for c in replication.channels(cur)]
    if masters:
        return False, f"this host replicates from {', '.join(map(str, masters))} (a replica; the backup source is the primary)"
    if read_only:
        return False, ("read_only is ON and this host replicates from no one (a demoted or fenced primary, or a "
                       "switchover under way); the backup source is the writable primary")
    return True, "this host is the primary (writable, replicates from no one)"


def resolve_kind(settings, kind):
    """"auto" (the intraday schedule): incremental on the current timeline's newest backup, or full when the
    timeline has none yet (after a restore); any other kind as given."""
    if kind != "auto":
        return kind
    timeline = archive.current_timeline(settings)
    return "incremental" if any(b["timeline"] == timeline for b in catalogue.list_backups(settings)) else "full"


def full_overdue(settings, now=None):
    """Why an incremental backup is taken as a full one, or None: the newest full backup of the current timeline is
    older than retention_days. Retention drops a chain only when all of it is old, so incrementals on it for ever
    (backup_scheduled_type incremental) would keep every backup and archived binlog since; a full starts a new chain
    and the old one ages out. None too when the timeline has no full (plan() refuses the incremental)."""
    timeline = archive.current_timeline(settings)
    fulls = [b for b in catalogue.list_backups(settings) if b["type"] == "full" and b["timeline"] == timeline]
    cutoff = (now or report.utc_now()) - timedelta(days=int(settings["retention_days"]))
    if not fulls or catalogue.parse_utc(fulls[-1]["consistent_at"]) >= cutoff:
        return None
    return (f"the newest full backup of timeline {timeline}, {fulls[-1]['name']}, is older than retention_days="
            f"{settings['retention_days']}: an incremental on it would keep its chain from ever aging out")


def plan(settings, kind, now=None):
    """{name, kind, timeline, parent, work, final} of the next backup; refuses what cannot be taken."""
    if kind not in catalogue.KINDS:
        raise OpsError(f"backup type {kind!r} is not one of {catalogue.KINDS}")
    started = now or report.utc_now()
    name = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{kind}"
    root = catalogue.backups_root(settings)
    final = os.path.join(root, name)
    if os.path.exists(final):
        raise OpsError(f"backup {final} already exists")
    timeline = archive.current_timeline(settings)
    parent = None
    if kind == "incremental":
        candidates = [b for b in catalogue.list_backups(settings) if b["timeline"] == timeline]
        if not candidates:
            raise OpsError(f"an incremental backup needs a full backup in timeline {timeline}; take a full one first")
        parent = candidates[-1]
    return dict(name=name, kind=kind, started=started, timeline=timeline, parent=parent, final=final,
                work=os.path.join(root, catalogue.PARTIAL + name))


def logical_dump(settings, directory):
    """mariadb-dump of the trading database (routines, triggers, GTID position) into directory/<db>.sql, as the
    admin (the backup account reads no table)."""
    os.makedirs(directory)
    with open(os.path.join(directory, settings["database"] + ".sql"), "wb") as out:
        host.run(["mariadb-dump", f"--defaults-extra-file={settings['admin_defaults_file']}", "--single-transaction",
                  "--master-data=2", "--gtid", "--routines", "--triggers", "--hex-blob", "--databases",
                  settings["database"]], stdout=out)


def intraday_settings(settings):
    """The settings of the intraday job's backups, taken during trading: table checksums only with
    intraday_table_checksums, compression only with intraday_compress (docs/benchmarks.md#intraday-incrementals)."""
    return dict(settings, table_checksums=bool(settings["table_checksums"] and settings["intraday_table_checksums"]),
                compress=bool(settings["compress"] and settings["intraday_compress"]))


def take(settings, kind="full", intraday=False):
    """Take one backup; returns its manifest (with its path). `intraday`: the intraday job's, during trading
    (intraday_settings)."""
    if intraday:
        settings = intraday_settings(settings)
    p = plan(settings, kind)
    os.makedirs(os.path.dirname(p["work"]), mode=0o750, exist_ok=True)
    os.makedirs(p["work"], mode=0o750)
    try:
        manifest = _write(settings, p)
        os.rename(p["work"], p["final"])
    except BaseException:
        shutil.rmtree(p["work"], ignore_errors=True)
        raise
    manifest["path"] = p["final"]
    return manifest


def _write(settings, p):
    t0 = time.monotonic()
    work, parent = p["work"], p["parent"]
    data = os.path.join(work, "data")
    log_file = os.path.join(work, "mariabackup.log")
    phases = {}
    host.run(mariabackup.copy_command(settings, data, parent["lsn"]["to_lsn"] if parent else None), log_file=log_file)
    phases["copy_s"] = round(time.monotonic() - t0, 3)
    data_bytes = host.dir_size(data)
    binlog = mariabackup.binlog_info(data)
    lsn = mariabackup.checkpoints(data)
    consistent_at = report.utc_now()
    # A full backup is stored prepared (its redo applied; incrementals still apply on top),
    # so a restore of it only decompresses and moves files back.
    prepared = p["kind"] == "full" and bool(settings["prepare"])
    # The copy had to keep up with the redo log; what follows has no deadline.
    with host.cpu_idle():
        t1 = time.monotonic()
        if prepared:
            host.run(mariabackup.prepare_command(settings, data), log_file=log_file)
        phases["prepare_s"] = round(time.monotonic() - t1, 3)
        t1 = time.monotonic()
        checksums = integrity.snapshot_checksums(settings) if settings["table_checksums"] else None
        phases["checksums_s"] = round(time.monotonic() - t1, 3)
        t1 = time.monotonic()
        if settings["logical_dump"]:
            logical_dump(settings, os.path.join(work, "logical"))
        phases["logical_dump_s"] = round(time.monotonic() - t1, 3)
        t1 = time.monotonic()
        packing.pack(settings, work)
        phases["compress_encrypt_s"] = round(time.monotonic() - t1, 3)
    manifest = dict(
        format=1, name=p["name"], type=p["kind"], host=socket.gethostname(), timeline=p["timeline"],
        parent=parent["name"] if parent else None, chain=(parent["chain"] if parent else []) + [p["name"]],
        started_at=report.utc_stamp(p["started"]), consistent_at=report.utc_stamp(consistent_at),
        finished_at=report.utc_stamp(), duration_s=round(time.monotonic() - t0, 3), phases=phases,
        binlog=binlog, lsn=lsn, prepared=prepared, checksums=checksums, database=settings["database"],
        logical_dump=bool(settings["logical_dump"]), data_bytes=data_bytes,
        tools=dict(mariabackup=host.tool_version(["mariabackup", "--version"]),
                   server=host.tool_version(["mariadbd", "--version"]),
                   zstd=host.tool_version(["zstd", "--version"]) if settings["compress"] else None,
                   openssl=host.tool_version(["openssl", "version"]) if settings["encrypt_key_file"] else None),
        **packing.description(settings),
    )
    manifest["files"] = integrity.file_inventory(work)
    manifest["size_bytes"] = sum(f["size"] for f in manifest["files"].values())
    packing.seal(settings, manifest)
    report.atomic_write(os.path.join(work, "manifest.json"), json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest
