"""mariabackup: the hot copy, prepare, and applying a chain of backups."""

import os
import shutil
import time

from . import OpsError, host, packing


def copy_command(settings, data, incremental_lsn=None):
    """mariabackup --backup into data/; the server's my.cnf as usual, the backup account's option file on top."""
    cmd = ["mariabackup", f"--defaults-extra-file={settings['defaults_file']}", "--backup",
           f"--target-dir={data}", f"--parallel={int(settings['parallel'])}"]
    if int(settings["throttle"]):
        cmd.append(f"--throttle={int(settings['throttle'])}")
    cmd.append(f"--log-copy-interval={int(settings['log_copy_interval_ms'])}")
    if incremental_lsn is not None:
        cmd.append(f"--incremental-lsn={incremental_lsn}")
    return cmd


def prepare_command(settings, target, incremental=None):
    """mariabackup --prepare of target (applying an incremental to it), in a bounded buffer pool."""
    cmd = ["mariabackup", "--prepare", f"--target-dir={target}", f"--use-memory={int(settings['prepare_memory_mb'])}M"]
    if incremental:
        cmd.append(f"--incremental-dir={incremental}")
    return cmd


def binlog_info(data):
    """{file, pos, gtid} where the copy's data ends (xtrabackup_binlog_info)."""
    with open(os.path.join(data, "xtrabackup_binlog_info"), encoding="utf-8") as handle:
        fields = handle.read().split()
    if len(fields) < 2:
        raise OpsError("mariabackup wrote no binlog position (is log_bin enabled?)")
    return dict(file=fields[0], pos=int(fields[1]), gtid=fields[2] if len(fields) > 2 else "")


def checkpoints(data):
    """{type, from_lsn, to_lsn} of a copy (xtrabackup_checkpoints)."""
    values = {}
    with open(os.path.join(data, "xtrabackup_checkpoints"), encoding="utf-8") as handle:
        for line in handle:
            if "=" in line:
                key, value = (part.strip() for part in line.split("=", 1))
                values[key] = value
    return dict(type=values.get("backup_type"), from_lsn=int(values["from_lsn"]), to_lsn=int(values["to_lsn"]))


def materialize(settings, chain, staging, timings=None):
    """Unpack each backup of the chain under staging/, prepare, apply the incrementals; returns the data dir.

    A full backup stored prepared is not prepared again. Records copy_s (copy, decrypt, decompress)
    and prepare_s (mariabackup --prepare) in `timings`.
    """
    timings = {} if timings is None else timings
    t0 = time.monotonic()
    dirs = [packing.unpack(settings, manifest, os.path.join(staging, f"{index:02d}-{manifest['type']}"), staging)
            for index, manifest in enumerate(chain)]
    timings["copy_s"] = round(time.monotonic() - t0, 3)
    t0 = time.monotonic()
    prepare_log = os.path.join(staging, "prepare.log")
    if not chain[0].get("prepared"):
        host.run(prepare_command(settings, dirs[0]), log_file=prepare_log)
    for incremental in dirs[1:]:
        host.run(prepare_command(settings, dirs[0], incremental), log_file=prepare_log)
        shutil.rmtree(incremental)
    timings["prepare_s"] = round(time.monotonic() - t0, 3)
    return dirs[0]


def move_back(prepared, datadir, log_file):
    """Move a prepared backup into an empty datadir, owned by mysql and synced to disk."""
    host.run(["mariabackup", "--move-back", f"--target-dir={prepared}", f"--datadir={datadir}"], log_file=log_file)
    host.run(["chown", "-R", "mysql:mysql", datadir])
    # the decompressed files reach the disk before the server trusts them
    host.run(["sync", "-f", datadir])
