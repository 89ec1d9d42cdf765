"""Restore over the live datadir: plan, execute, roll back.

Downtime runs from stopping the server to starting it again; the replay happens on a private
instance (no TCP, own socket) so no client sees a half-recovered database. The replaced datadir
is kept aside (<datadir>.replaced-<time>); any failure after the swap puts it back and running,
keeping the failed attempt in <datadir>.failed-restore-<time>. The invariant checks run on the
started server, outside the downtime.
"""

import os
import shutil
import subprocess
import time
from datetime import datetime, timezone

from .. import report
from . import OpsError, archive, catalogue, connection, host, integrity, mariabackup, packing, replay, rto, scratch


def plan(settings, name=None, restore_to=None):
    """What a restore would do, read only: the backup, its chain, the binlogs to replay, whether live data is replaced."""
    target = catalogue.parse_target(restore_to)
    datadir = settings["datadir"].rstrip("/")
    manifest = catalogue.pick_backup(settings, name, target)
    chain = catalogue.chain_of(settings, manifest)
    if manifest["binlog"]["gtid"]:
        catalogue.check_gtid(manifest["binlog"]["gtid"], f"the GTID in the manifest of {manifest['name']}")
    files = archive.replay_files(settings, manifest) if target else []
    _refuse_gap(settings, manifest, files, target)
    live = host.service_active(settings["service"]) or bool(os.path.isdir(datadir) and os.listdir(datadir))
    return dict(backup=manifest["name"], chain=[m["name"] for m in chain], restore_to=restore_to,
                binlog_files=[os.path.basename(f) for f in files], datadir=datadir, replaced_live_datadir=live,
                backup_gtid=manifest["binlog"]["gtid"], _manifest=manifest, _chain=chain, _target=target)


def _refuse_gap(settings, manifest, files, target):
    """OpsError when replaying `files` towards `target` would cross a recorded gap of the archive."""
    gap = archive.gap_crossed(settings, manifest, files,
                              moment=target["moment"].timestamp() if target and target["kind"] == "time" else None)
    if not gap or (target["kind"] == "gtid" and _gtid_before(manifest, files, gap, target)):
        return
    copy = os.path.join(archive.timeline_dir(settings, gap["timeline"]), gap["lost"])
    held = f"{os.path.getsize(copy)} bytes" if os.path.isfile(copy) else "none"
    raise OpsError(f"the binlog archive of timeline {gap['timeline']} has a gap: {gap['lost']} was purged from the server "
                   f"before it was archived (the archive holds {held} of it) and archiving resumed at "
                   f"{gap['resumed_at']} (recorded {gap['at']}); replaying from backup {manifest['name']} "
                   f"({manifest['binlog']['file']}:{manifest['binlog']['pos']}) to restore_to={target['text']} would "
                   "cross it and silently leave out what was lost. Restore to a time or GTID before the gap, restore the backup "
                   "itself (no restore_to), or restore from a backup taken after the gap")


def _gtid_before(manifest, files, gap, target):
    """Whether the binlogs up to the end of the gap's lost file's copy hold every domain of a GTID target: the
    replay stops there, before the gap (archive.gap_crossed() tells times and positions, not GTIDs)."""
    lost = archive.binlog_number(gap["lost"])
    before = [path for path in files if archive.binlog_number(os.path.basename(path)) <= lost]
    reached = {domain: catalogue.gtid_seqs(last)[domain]
               for domain, last in replay.stop_point(before, manifest["binlog"]["pos"])["gtids"].items()}
    return all(reached.get(domain, -1) >= seq for domain, seq in target["seqs"].items())


def restore(settings, name=None, restore_to=None, confirm=False, ack_log=None, ack_until=None, dry_run=False,
            checksums=False):
    """Replace the datadir with a backup replayed to restore_to; returns the plan with what happened (with
    `checksums`, every table's row count and checksum afterwards: how two restores are compared)."""
    with host.lock(settings):
        p = plan(settings, name, restore_to)
        refusal = (f"refusing to replace the live datadir {p['datadir']} (server running or files present) "
                   "without restore_confirm=true; the replaced files would be kept aside")
        if dry_run:
            return dict(_public(p), refused=refusal if p["replaced_live_datadir"] and not confirm else None)
        if p["replaced_live_datadir"] and not confirm:
            raise OpsError(refusal)
        problems = packing.chain_problems(settings, p["_chain"])
        if problems:
            raise OpsError(f"backup {p['backup']} fails its manifest, nothing changed: " + "; ".join(problems))
        result = execute(settings, p)
        t1 = time.monotonic()
        try:
            result["check"] = integrity.check_restored(settings, None, ack_log, ack_until)
        except OpsError as exc:  # the data is replaced whatever the check says: report it, never hide it
            result["check"] = dict(ok=False, failures=[f"the check could not run: {exc}"], ack=None, checks={})
        if checksums:
            with connection.cursor(settings["admin_defaults_file"], "checksumming the restored tables",
                                   database=settings["database"]) as cur:
                result["checksums"] = integrity.table_checksums(cur, settings["database"])
        result["timings"]["check_s"] = round(time.monotonic() - t1, 3)
        result["timings"]["total_s"] = round(result["timings"]["total_s"] + result["timings"]["check_s"], 3)
    report.append_log(settings["log_dir"], "restore",
                      f"OK {p['backup']} restore_to={restore_to or 'backup'} gtid={result['restored_gtid']} "
                      f"downtime={result['timings']['downtime_s']}s total={result['timings']['total_s']}s "
                      f"replaced={result['replaced_datadir']} invariants={'ok' if result['check']['ok'] else 'VIOLATED'}")
    return result


def _public(p):
    return {k: v for k, v in p.items() if not k.startswith("_")}


def _fetch_last_binlogs(settings, timeline):
    """While the server still runs: end writes (read_only; the restore replaces what follows anyway), then fetch
    what the archiver had not streamed yet over the replication protocol, decrypted by the server (an encrypted
    binlog in the datadir is of no use to the replay). execute() allows writes again if this fails."""
    _set_read_only(settings, "ON")
    return archive.fetch_from_server(settings, timeline)


def _set_read_only(settings, value):
    with connection.cursor(settings["admin_defaults_file"], f"setting read_only {value}") as cur:
        cur.execute(f"SET GLOBAL read_only = {'ON' if value == 'ON' else 'OFF'}")


def execute(settings, p):
    """Unpack and prepare while the server runs, then stop, swap, replay privately, start. Rolls back on failure."""
    manifest, datadir = p["_manifest"], p["datadir"]
    result = _public(p)
    stamp = report.utc_now().strftime("%Y%m%dT%H%M%SZ")
    staging = f"{datadir}.restore-{stamp}"
    host.ensure_space(os.path.dirname(datadir), int(sum(m["data_bytes"] for m in p["_chain"]) * 1.1), "the restore")
    timings = {}
    t0 = time.monotonic()
    os.makedirs(staging, mode=0o700)  # it holds decrypted data until the move back: root's only
    try:
        prepared = mariabackup.materialize(settings, p["_chain"], staging, timings)
        old_timeline = archive.current_timeline(settings)
        host.systemctl("stop", settings["archiver_service"])
        fetched = False
        try:
            fetched = host.service_active(settings["service"])
            if fetched:
                result["archived_from_server"] = _fetch_last_binlogs(settings, old_timeline)
            t_down = time.monotonic()
            host.systemctl("stop", settings["service"])
        except BaseException as exc:  # still running: the archiver and writes as they were
            subprocess.run(["systemctl", "start", settings["archiver_service"]], check=False)
            if fetched:
                try:
                    _set_read_only(settings, "OFF")
                except OpsError as again:
                    raise OpsError(f"{exc}; and read_only stays ON: {again}") from exc
            raise
        timings["stop_s"] = round(time.monotonic() - t_down, 3)
        replaced = f"{datadir}.replaced-{stamp}"
        failed = f"{datadir}.failed-restore-{stamp}"
        moved = os.path.isdir(datadir)
        result["replaced_datadir"] = replaced
        swapped = not moved  # until the move aside is done, a roll back puts back only what it moved
        try:
            if moved:
                host.move_contents(datadir, replaced)
                swapped = True
                result["archived_from_datadir"] = archive.complete_archive(settings, old_timeline, replaced,
                                                                           fetched_from_server=fetched)
            t1 = time.monotonic()
            mariabackup.move_back(prepared, datadir, os.path.join(staging, "move-back.log"))
            timings["move_back_s"] = round(time.monotonic() - t1, 3)
            result["timeline"] = archive.start_new_timeline(settings)
            result["restored_gtid"] = _replay_privately(settings, manifest, p["_target"], datadir, timings, result)
            t1 = time.monotonic()
            host.systemctl("start", settings["service"])
            timings["start_s"] = round(time.monotonic() - t1, 3)
            host.systemctl("start", settings["archiver_service"])
            timings["downtime_s"] = round(time.monotonic() - t_down, 3)
        except BaseException as exc:
            try:
                rolled_back = roll_back(settings, datadir, replaced, failed if swapped else None, old_timeline)
            except Exception as again:  # noqa: BLE001 - the operator must learn both, and where the data is
                raise OpsError(f"restore failed: {exc}; and so did putting the previous datadir back: {again}. The "
                               f"replaced datadir is in {replaced}, the failed attempt in {datadir} or {failed}; "
                               "MariaDB and the archiver may be stopped") from exc
            raise OpsError(f"{rolled_back}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    timings["total_s"] = round(time.monotonic() - t0, 3)
    result["timings"] = timings
    return result


# loose-: a server without the plugin ignores the option.
REPLAY_AUDIT = ("--loose-server-audit-events=CONNECT,QUERY_DDL,QUERY_DCL",)


def _replay_privately(settings, manifest, target, datadir, timings, result):
    """On a private mariadbd: binlog reset to the backup's GTID state, replay to the target (in parallel where
    replay.prepare can plan it, its copies inside the datadir); returns the GTID reached."""
    # The server's own configuration, so the restored datadir starts as it will run; but the audit trail
    # (where the role loads server_audit) keeps logins and DDL and leaves out the tables each replayed
    # event writes: a day of binlog would be millions of audit records and a slower replay.
    gtid, start = manifest["binlog"]["gtid"], manifest["binlog"]["pos"]
    files, how = [], dict(args=[])
    relay_dir = os.path.join(datadir, replay.RELAY_BASE)
    if target:
        files = archive.replay_files(settings, manifest)  # again: complete_archive may have added some
        result["binlog_files"] = [os.path.basename(f) for f in files]
        # Fetched from the running server, the archive holds everything up to now: a time after its newest event
        # is a quiet stretch. Without the server (stopped, or its datadir lost) nothing says what came after.
        if (target["kind"] == "time" and "archived_from_server" not in result
                and not archive.reaches_moment(files, start, target["moment"].timestamp())):
            _refuse_time_past_archive(files, target)
        t1 = time.monotonic()
        how = replay.prepare(settings["replay_parallel_threads"], files, start, relay_dir,
                             moment=target["moment"].timestamp() if target["kind"] == "time" else None,
                             gtid_target=target["kind"] == "gtid", log_updates=True)
        result["replay"] = replay.summary(how)
        timings["relay_copy_s"] = round(time.monotonic() - t1, 3)
    server = scratch.PrivateServer(datadir, "/run/stockdb-restore", defaults_file=settings["mysql_config"],
                                   args=REPLAY_AUDIT + tuple(how["args"]))
    t1 = time.monotonic()
    try:
        with server:
            timings["private_start_s"] = round(time.monotonic() - t1, 3)
            server.sql("RESET MASTER")
            if gtid:
                server.sql(f"SET GLOBAL gtid_binlog_state = '{catalogue.check_gtid(gtid, 'the backup GTID')}'")
            if target:
                where = dict(stop_datetime=target["text"]) if target["kind"] == "time" else {}
                if target["kind"] == "gtid":
                    where = dict(start_gtid=gtid, stop_gtid=target["gtid"])
                timings["replay_s"] = round(timings["relay_copy_s"] + replay.run(server, how, files, start, **where), 3)
                result["replay_bytes"] = replayed = _replayed_bytes(files, manifest, target, how)
                if replayed is not None:
                    rto.record_replay(settings, replayed, timings["replay_s"], f"restore {manifest['name']}")
            reached = server.sql("SELECT @@gtid_binlog_pos")
            # As a replica it goes on from what it holds now (rejoin.yml starts from gtid_current_pos, which
            # reads this when the last transaction replayed came from another server, as after a switchover).
            server.sql(f"SET GLOBAL gtid_slave_pos = '{reached}'")
    finally:
        shutil.rmtree(relay_dir, ignore_errors=True)
    if target and target["kind"] == "gtid":
        have = catalogue.gtid_seqs(reached)
        if any(have.get(d, 0) < s for d, s in target["seqs"].items()):
            raise OpsError(f"the binlog archive ends at {reached}, before restore_to={target['gtid']}")
    return reached


def _refuse_time_past_archive(files, target):
    """OpsError: the archive, not brought level with a running server, ends before a time target, so what was
    committed up to it cannot be told (as for a GTID target the archive does not reach)."""
    newest = max((when for _, when, _ in archive.events(files[-1])), default=None)
    last = os.path.basename(files[-1])
    at = (f"its newest event, in {last}, is of {report.utc_stamp(datetime.fromtimestamp(newest, timezone.utc))}"
          if newest is not None else f"it ends with {last}")
    raise OpsError(f"the binlog archive ends before restore_to={target['text']} ({at}) and MariaDB was not running to "
                   "bring it up to date: what was committed after it until then may not be archived. Restore to 'end' "
                   "(everything archived) or to an earlier time")


def _replayed_bytes(files, manifest, target, how):
    """Binlog bytes a replay to target went through; None for a GTID target (no byte count without decoding)."""
    start = manifest["binlog"]["pos"]
    if how["method"] == "parallel":
        return rto.replayed_bytes(files[:how["point"]["file"] + 1], start, stop_pos=how["point"]["offset"])
    if target["kind"] == "end":
        return rto.replayed_bytes(files, start)
    if target["kind"] == "time":
        return archive.bytes_before(files, start, target["moment"].timestamp())
    return None


def roll_back(settings, datadir, replaced, failed, old_timeline):
    """Put the replaced datadir back and start the server; returns what the operator must know. failed: where
    the datadir's contents go first (None: they are what moving it aside left, the previous files)."""
    kept = ""
    if failed and os.path.isdir(datadir):  # no datadir: the restore failed before it moved files into one
        host.move_contents(datadir, failed)
        kept = f"; the failed attempt is kept in {failed}"
    if os.path.isdir(replaced):
        host.move_contents(replaced, datadir)
        os.rmdir(replaced)
    archive.set_timeline(settings, old_timeline)
    for unit in (settings["service"], settings["archiver_service"]):
        subprocess.run(["systemctl", "start", unit], check=False)
    running = "and running" if host.service_active(settings["service"]) else "but MariaDB did not start"
    return f"restore failed, the previous datadir is back in place {running}{kept}"


def replaced_datadirs(settings):
    parent, base = os.path.split(settings["datadir"].rstrip("/"))
    return sorted(os.path.join(parent, e) for e in os.listdir(parent) if e.startswith(base + ".replaced-"))


def drop_replaced(settings, confirm=False, dry_run=False):
    """Delete the datadirs earlier restores kept aside (the only copy of the data they replaced): only with
    `confirm`. Returns their paths (dry_run: what would go)."""
    dropped = replaced_datadirs(settings)
    if dropped and not confirm:
        raise OpsError(f"refusing to delete {', '.join(dropped)} (the datadirs earlier restores replaced, kept aside) "
                       "without confirm=true (restore.yml: -e restore_drop_replaced=true)")
    if not dry_run:
        for path in dropped:
            shutil.rmtree(path)
    return dropped
