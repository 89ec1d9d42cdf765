"""Unit tests of the restore's and the verification's refusals (module_utils/stockdb/ops/restore.py,
verification.py, archive.py): recorded gaps of the binlog archive, time targets past its end, a restore
that fails before or after the server stopped and its roll back, and the datadirs kept aside.
"""

import json
import os
import shutil
from contextlib import nullcontext
from datetime import datetime, timedelta, timezone

import pytest
from stockdb import report
from stockdb.ops import OpsError, archive, catalogue, host, integrity, jobs, mariabackup, restore, verification
from test_ops import archive_files, make_backup
from test_ops_replay import binlog, transaction


def timed_binlog(path, *times):
    """A binlog file of 50-byte events, each with its time (Unix seconds) in bytes 0..3 and its length at 9..12."""
    body = b"".join(when.to_bytes(4, "little") + bytes(5) + (50).to_bytes(4, "little") + bytes(37) for when in times)
    with open(path, "wb") as handle:
        handle.write(b"\xfebin" + body)
    return str(path)


def gapped_archive(settings):
    """Timeline 1: binlog.000002 whole, binlog.000003 cut short (purged from the server before the archiver had it
    all), binlog.000004 where the archiver resumed. Numbers run on: only the recorded gap tells."""
    directory = archive.timeline_dir(settings, 1)
    os.makedirs(directory)
    for number, times in ((2, (1000, 1010)), (3, (1020, 1030)), (4, (1100, 1110))):
        timed_binlog(os.path.join(directory, f"binlog.{number:06d}"), *times)
    archive.record_gap(settings, 1, "binlog.000003", "binlog.000004")


def utc(seconds):
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def test_a_replay_across_a_recorded_gap_of_the_archive_is_refused(settings):
    gapped_archive(settings)
    old = make_backup(settings, "19700101T000000Z-full", "1970-01-01T00:00:01Z", binlog="binlog.000002")
    for target in ("end", "0-1-300", utc(1040), utc(1105)):
        with pytest.raises(OpsError, match=r"timeline 1 has a gap: binlog.000003 was purged from the server before it "
                                           r"was archived \(the archive holds 104 bytes of it\) and archiving resumed at "
                                           r"binlog.000004 .*from backup 19700101T000000Z-full \(binlog.000002:4\)"):
            restore.plan(settings, old["name"], target)
    # a time the archive holds before the gap stops the replay there; the backup itself replays nothing
    assert restore.plan(settings, old["name"], utc(1030))["binlog_files"] == names_of(2, 3, 4)
    assert restore.plan(settings, old["name"])["binlog_files"] == []
    # a newer full backup covers the gap for the metric, not for a replay from the older one; its own replay is whole
    new = make_backup(settings, "19700101T001825Z-full", "1970-01-01T00:18:25Z", binlog="binlog.000004")
    assert restore.plan(settings, new["name"], "end")["binlog_files"] == names_of(4)
    with pytest.raises(OpsError, match="has a gap"):
        restore.plan(settings, old["name"], "end")


def test_a_gtid_the_archive_holds_before_the_gap_is_replayed_to(settings, tmp_path):
    """binlog.000003, the lost file, holds 0-1-11 and 0-1-12 before its copy ends: a GTID target up to there stops
    before the gap; one after it, or in a domain the copy does not reach, is refused."""
    directory = archive.timeline_dir(settings, 1)
    os.makedirs(directory)
    for number, seqs in ((2, (10,)), (3, (11, 12)), (4, (20,))):
        binlog(tmp_path / f"b{number}", *(e for seq in seqs for e in transaction(seq, 1000 + seq)))
        shutil.copy(tmp_path / f"b{number}", os.path.join(directory, f"binlog.{number:06d}"))
    archive.record_gap(settings, 1, "binlog.000003", "binlog.000004")
    old = make_backup(settings, "19700101T000000Z-full", "1970-01-01T00:00:01Z", binlog="binlog.000002")
    for target in ("0-1-10", "0-1-12"):
        assert restore.plan(settings, old["name"], target)["binlog_files"] == names_of(2, 3, 4)
    for target in ("0-1-13", "0-1-20", "0-1-12,1-1-1"):
        with pytest.raises(OpsError, match="has a gap: binlog.000003"):
            restore.plan(settings, old["name"], target)


def names_of(*numbers):
    return [f"binlog.{n:06d}" for n in numbers]


def test_every_gap_of_the_archive_is_kept_and_the_oldest_one_no_full_backup_covers_is_open(settings):
    # the state file of a release that kept one gap holds it alone: it is read as the first gap
    report.save_state(archive.gap_path(settings), dict(timeline=1, lost="binlog.000003", resumed_at="binlog.000004",
                                                       at="2026-11-20T10:00:00Z"))
    later = archive.record_gap(settings, 1, "binlog.000007", "binlog.000008")
    assert archive.record_gap(settings, 1, "binlog.000007", "binlog.000008") == later  # found again: one record
    assert jobs.gap_metric(settings)["lost"] == "binlog.000003"  # the older gap is still open
    assert [g["lost"] for g in archive.recorded_gaps(settings)] == names_of(3, 7)
    between = make_backup(settings, "20261121T030000Z-full", "2026-11-21T03:00:05Z", binlog="binlog.000005")
    assert archive.open_gap(settings, [between]) == later
    after = make_backup(settings, "20261122T030000Z-full", "2026-11-22T03:00:05Z", binlog="binlog.000008")
    assert archive.open_gap(settings, [between, after]) is None


def test_a_replay_meets_the_first_of_the_recorded_gaps_it_crosses(settings):
    gapped_archive(settings)  # binlog.000003 lost, resumed at binlog.000004
    timed_binlog(os.path.join(archive.timeline_dir(settings, 1), "binlog.000005"), 1200, 1210)
    archive.record_gap(settings, 1, "binlog.000004", "binlog.000005")  # binlog.000004 lost too, later
    old = make_backup(settings, "19700101T000000Z-full", "1970-01-01T00:00:01Z", binlog="binlog.000002")
    with pytest.raises(OpsError, match=r"has a gap: binlog.000003 was purged"):
        restore.plan(settings, old["name"], "end")
    middle = make_backup(settings, "19700101T001825Z-full", "1970-01-01T00:18:25Z", binlog="binlog.000004")
    with pytest.raises(OpsError, match=r"has a gap: binlog.000004 was purged"):
        restore.plan(settings, middle["name"], "end")
    assert restore.plan(settings, old["name"], utc(1030))["binlog_files"] == names_of(2, 3, 4, 5)


def test_a_full_backup_covers_a_gap_when_its_binlog_position_is_after_the_resume_whatever_its_second(settings):
    gap = archive.record_gap(settings, 1, "binlog.000003", "binlog.000004")
    # consistent in the very second the gap was recorded, at the file where archiving resumed: it covers it
    same_second = make_backup(settings, "20261121T030000Z-full", gap["at"], binlog="binlog.000004")
    assert archive.open_gap(settings, [same_second]) is None
    # consistent after the gap was recorded, but its binlog position is in the lost file: its copy ended before
    # the purge (consistent_at is taken after the copy), and a replay from it crosses the gap
    later = report.utc_stamp(catalogue.parse_utc(gap["at"]) + timedelta(seconds=5))
    before = make_backup(settings, "20261120T030000Z-full", later, binlog="binlog.000003")
    assert archive.open_gap(settings, [before]) == gap


def backup_with_checksum_point(settings, binlog_file, binlog_pos):
    manifest = make_backup(settings, "19700101T000000Z-full", "1970-01-01T00:00:01Z", binlog="binlog.000002")
    manifest["checksums"] = dict(binlog_file=binlog_file, binlog_pos=binlog_pos, database="stockdb", tables={})
    with open(os.path.join(manifest["path"], "manifest.json"), "w", encoding="utf-8") as handle:
        json.dump({k: v for k, v in manifest.items() if k != "path"}, handle)
    return manifest


@pytest.mark.parametrize("point", [("binlog.000003", 200), ("binlog.000004", 54)])
def test_a_verification_whose_replay_would_cross_a_gap_names_it_instead_of_a_checksum_mismatch(settings, monkeypatch,
                                                                                                point):

    gapped_archive(settings)  # the archive holds 104 bytes of binlog.000003
    manifest = backup_with_checksum_point(settings, *point)
    restored = []
    monkeypatch.setattr(verification, "workspace", lambda *args: nullcontext(str(settings["verify_dir"])))
    monkeypatch.setattr(mariabackup, "materialize", lambda s, chain, work: restored.append(work) or work)
    monkeypatch.setattr(verification, "copy_server", lambda *args: nullcontext(type("Server", (), dict(socket="s"))))
    monkeypatch.setattr(integrity, "check_restored", lambda s, socket: dict(checks={"ok": 1}, failures=[]))
    monkeypatch.setattr(verification.replay, "prepare", lambda *args, **kwargs: pytest.fail("replayed across the gap"))
    result = verification.verify(settings, manifest["name"])
    assert len(result["problems"]) == 1 and result["problems"][0].startswith(
        f"the replay to the checksum point ({point[0]}:{point[1]}) would cross a gap of the binlog archive of timeline 1: "
        "binlog.000003 was purged from the server before it was archived and archiving resumed at binlog.000004")
    assert restored and result["invariants"] == {"ok": 1} and "tables" not in result


def test_a_verification_whose_checksum_point_the_archive_holds_before_a_gap_replays(settings, monkeypatch):

    class Replayed(Exception):
        pass

    def prepare(threads, files, start, relay, stop_pos):
        raise Replayed([os.path.basename(f) for f in files], stop_pos)

    gapped_archive(settings)
    manifest = backup_with_checksum_point(settings, "binlog.000003", 104)  # the whole copy of the lost file
    monkeypatch.setattr(verification, "workspace", lambda *args: nullcontext(str(settings["verify_dir"])))
    monkeypatch.setattr(mariabackup, "materialize", lambda s, chain, work: work)
    monkeypatch.setattr(verification.replay, "prepare", prepare)
    with pytest.raises(Replayed) as replayed:
        verification.verify(settings, manifest["name"])
    assert replayed.value.args == (names_of(2, 3), 104)


def test_a_time_target_after_the_end_of_an_archive_no_running_server_completed_is_refused(settings, monkeypatch):
    directory = archive_files(settings, 1)
    timed_binlog(os.path.join(directory, "binlog.000001"), 1000, 1010)
    timed_binlog(os.path.join(directory, "binlog.000002"), 1020, 1030)
    manifest = make_backup(settings, "19700101T000000Z-full", "1970-01-01T00:00:01Z")

    class Reached(Exception):
        pass

    def prepare(*args, **kwargs):
        raise Reached  # the check passed: the replay would be planned now

    monkeypatch.setattr(restore.replay, "prepare", prepare)
    replay_to = lambda when: restore._replay_privately(settings, manifest, catalogue.parse_target(utc(when)),  # noqa: E731
                                                       settings["datadir"], {}, {})
    with pytest.raises(OpsError, match=r"the binlog archive ends before restore_to=1970-01-01 00:17:11 \(its newest event, "
                                       r"in binlog.000002, is of 1970-01-01T00:17:10Z\) and MariaDB was not running"
                                       r".*Restore to 'end'"):
        replay_to(1031)
    for when in (1030, 1005):
        with pytest.raises(Reached):
            replay_to(when)
    # brought level with the running server first, the archive is whole: a later time is a quiet stretch
    with pytest.raises(Reached):
        restore._replay_privately(settings, manifest, catalogue.parse_target(utc(1031)), settings["datadir"], {},
                                  {"archived_from_server": []})


@pytest.fixture
def live_restore(settings, monkeypatch):
    """execute() on a live server with its tools stood in: records systemctl starts and stops and read_only."""
    with open(os.path.join(settings["datadir"], "ibdata1"), "w", encoding="utf-8") as handle:
        handle.write("live")
    os.makedirs(os.path.join(settings["datadir"], "stockdb"))
    calls = []
    monkeypatch.setattr(mariabackup, "materialize", lambda s, chain, staging, timings: staging)
    monkeypatch.setattr(host, "systemctl", lambda action, unit: calls.append(f"{action} {unit}"))
    monkeypatch.setattr(host, "service_active", lambda unit: True)
    monkeypatch.setattr(restore.subprocess, "run", lambda cmd, check: calls.append(f"{cmd[1]} {cmd[2]}"))
    monkeypatch.setattr(restore, "_set_read_only", lambda s, value: calls.append(f"read_only {value}"))
    monkeypatch.setattr(archive, "fetch_from_server", lambda s, timeline: [])
    monkeypatch.setattr(archive, "complete_archive", lambda *args, **kwargs: [])
    backup_ = make_backup(settings, "20261123T030000Z-full", "2026-11-23T03:00:05Z")
    p = dict(_manifest=backup_, _chain=[backup_], _target=None, datadir=settings["datadir"], backup=backup_["name"])
    return p, calls


@pytest.mark.parametrize("failing", ["read_only", "fetch", "stop"])
def test_a_restore_failing_before_the_server_stopped_leaves_the_archiver_running_and_writes_allowed(settings, live_restore,
                                                                                                    monkeypatch, failing):
    p, calls = live_restore

    def fail(*args):
        raise OpsError(f"{failing} failed")

    if failing == "read_only":
        monkeypatch.setattr(restore, "_set_read_only",
                            lambda s, value: fail() if value == "ON" else calls.append("read_only OFF"))
    elif failing == "fetch":
        monkeypatch.setattr(archive, "fetch_from_server", fail)
    else:
        monkeypatch.setattr(host, "systemctl",
                            lambda action, unit: fail() if unit == "mariadb" else calls.append(f"{action} {unit}"))
    with pytest.raises(OpsError, match=f"^{failing} failed$"):
        restore.execute(settings, p)
    assert calls[-2:] == ["start stockdb-binlog-archiver", "read_only OFF"]
    assert sorted(os.listdir(settings["datadir"])) == ["ibdata1", "stockdb"]


def test_a_datadir_that_cannot_be_moved_aside_is_put_back_whole_and_running(settings, live_restore, monkeypatch):
    p, calls = live_restore
    move_contents = host.move_contents

    def half_a_move(source, target):  # the first entry goes, then the disk fails
        os.makedirs(target)
        first = sorted(os.listdir(source))[0]
        os.rename(os.path.join(source, first), os.path.join(target, first))
        monkeypatch.setattr(host, "move_contents", move_contents)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(host, "move_contents", half_a_move)
    with pytest.raises(OpsError, match=r"^restore failed, the previous datadir is back in place and running: "
                                       r"\[Errno 28\] No space left on device$"):
        restore.execute(settings, p)
    assert sorted(os.listdir(settings["datadir"])) == ["ibdata1", "stockdb"]
    assert not [e for e in os.listdir(os.path.dirname(settings["datadir"])) if ".replaced-" in e or ".failed-" in e]
    assert calls[-2:] == ["start mariadb", "start stockdb-binlog-archiver"]


def test_a_restore_into_a_missing_datadir_that_fails_says_so_without_a_traceback(settings, live_restore, monkeypatch):
    p, calls = live_restore
    shutil.rmtree(settings["datadir"])

    def move_back(prepared, datadir, log_file):
        raise OpsError("mariabackup --move-back exited 1")

    monkeypatch.setattr(mariabackup, "move_back", move_back)
    with pytest.raises(OpsError, match=r"^restore failed, the previous datadir is back in place .*: mariabackup --move-back"):
        restore.execute(settings, p)
    assert calls[-2:] == ["start mariadb", "start stockdb-binlog-archiver"]


def test_the_datadirs_kept_aside_are_deleted_only_when_confirmed(settings):
    kept = settings["datadir"] + ".replaced-20261123T030000Z"
    os.makedirs(kept)
    with pytest.raises(OpsError, match=r"refusing to delete .*mysql.replaced-20261123T030000Z .*without confirm=true"):
        restore.drop_replaced(settings)
    assert restore.drop_replaced(settings, confirm=True, dry_run=True) == [kept] and os.path.isdir(kept)
    assert restore.drop_replaced(settings, confirm=True) == [kept] and not os.path.exists(kept)
    assert restore.drop_replaced(settings) == []  # nothing left: nothing to confirm
