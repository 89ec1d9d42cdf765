"""Verification: restore a backup into a scratch server, replay to its checksum point, compare, check invariants.

The scratch directory holds a decrypted copy of the data while it runs: it is made 0750 root:mysql
(the scratch mariadbd runs as mysql) and removed in every case.
"""

import contextlib
import os
import shutil
import time

from . import archive, catalogue, connection, host, integrity, mariabackup, packing, replay, rto, scratch


def verify(settings, name=None):
    """{backup, chain, problems, restore_s, replay_s, replay_bytes, tables, invariants, total_s}; problems empty =
    passed. Its replay's rate goes to the recovery-time estimate (rto.record_replay)."""
    manifest = catalogue.find_backup(settings, name)
    chain = catalogue.chain_of(settings, manifest)
    result = dict(backup=manifest["name"], chain=[m["name"] for m in chain], problems=[])
    result["problems"].extend(packing.chain_problems(settings, chain))
    if result["problems"]:
        return result
    points, files = manifest.get("checksums"), []
    if points:
        files = archive.replay_files(settings, manifest, last_file=points["binlog_file"])
        crossed = gap_problems(settings, manifest, files, points)
        if crossed:  # restored and its invariants checked all the same, without the replay and the checksums
            result["problems"].extend(crossed)
            points, files = None, []
    with workspace(settings, manifest["name"], chain, "verification") as work:
        t0 = time.monotonic()
        prepared = mariabackup.materialize(settings, chain, work)
        how, copy_s = dict(args=[]), 0.0
        if points:
            t1 = time.monotonic()
            how = replay.prepare(settings["replay_parallel_threads"], files, manifest["binlog"]["pos"],
                                 os.path.join(work, "relay"), stop_pos=points["binlog_pos"])
            result["replay"] = replay.summary(how)
            copy_s = time.monotonic() - t1  # the relay-log copies: counted in the replay, not the restore
        with copy_server(settings, prepared, work, how["args"]) as server:
            result["restore_s"] = round(time.monotonic() - t0 - copy_s, 3)
            if points:
                result["replay_s"] = round(copy_s + replay.run(server, how, files, manifest["binlog"]["pos"],
                                                               stop_pos=points["binlog_pos"]), 3)
                result["binlog_files"] = [os.path.basename(f) for f in files]
                result["replay_bytes"] = rto.replayed_bytes(files, manifest["binlog"]["pos"], points["binlog_pos"])
                rto.record_replay(settings, result["replay_bytes"], result["replay_s"], f"verify {manifest['name']}")
                with connection.cursor(settings["admin_defaults_file"], "checksumming the restored copy",
                                       database=settings["database"], unix_socket=server.socket) as cur:
                    actual = integrity.table_checksums(cur, settings["database"])
                result["tables"] = len(actual)
                result["problems"].extend(integrity.compare_checksums(points["tables"], actual))
            checked = integrity.check_restored(settings, server.socket)
            result["invariants"] = checked["checks"]
            result["problems"].extend(f"invariant {line}" for line in checked["failures"])
        result["total_s"] = round(time.monotonic() - t0, 3)
    return result


def gap_problems(settings, manifest, files, points):
    """[the problem] when the replay to the checksum point would cross a recorded gap of the archive (its
    checksums would then be compared with data missing what was lost: a mismatch that names no cause), else []."""
    gap = archive.gap_crossed(settings, manifest, files, stop_pos=points["binlog_pos"])
    if not gap:
        return []
    return [f"the replay to the checksum point ({points['binlog_file']}:{points['binlog_pos']}) would cross a gap of the "
            f"binlog archive of timeline {gap['timeline']}: {gap['lost']} was purged from the server before it was "
            f"archived and archiving resumed at {gap['resumed_at']} (recorded {gap['at']}), so the table checksums "
            "were not compared (the backup was restored and its invariants checked without the replay); take a full "
            "backup (stockdb-ops backup) and verify that one"]


@contextlib.contextmanager
def workspace(settings, name, chain, what):
    """A scratch directory for a decrypted copy of a backup chain: verify_dir/name, 0750 root:mysql (the scratch
    mariadbd runs as mysql), with room for the chain checked first, removed in every case."""
    os.makedirs(settings["verify_dir"], mode=0o750, exist_ok=True)
    shutil.chown(settings["verify_dir"], "root", "mysql")
    os.chmod(settings["verify_dir"], 0o750)  # noqa: S103 - group mysql: the scratch mariadbd; no one else
    work = os.path.join(settings["verify_dir"], name)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, mode=0o750)
    try:
        host.ensure_space(work, int(sum(m["data_bytes"] for m in chain) * 1.2), what)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def copy_server(settings, prepared, work, args=()):
    """The private server (not started) on a prepared copy in work/, with the backup's own settings (the key
    plugin's among them), a bounded buffer pool and no binlog. backup-my.cnf names no authentication plugin:
    ed25519 is loaded so the copy's accounts (the admin's, which checks it) log in as on the server."""
    host.run(["chown", "-R", "mysql:mysql", work])
    return scratch.PrivateServer(prepared, os.path.join(work, "run"),
                                 args=[f"--innodb-buffer-pool-size={int(settings['verify_buffer_pool_mb'])}M",
                                       "--skip-log-bin", "--plugin-load-add=auth_ed25519", *args],
                                 defaults_file=os.path.join(prepared, "backup-my.cnf"))
