"""The recovery-time estimate (ops/rto.py), its health-check entry, the byte counts of a replay and the
intraday backup type. Backups and archived binlogs are files in temporary directories; the figures
themselves were measured on the lab (docs/benchmarks.md)."""

import json
import os

from stockdb.ops import archive, backup, jobs, rto
from test_ops import archive_files, make_backup
from test_ops_purge import binlog, event

MiB = 1 << 20


def stamp(event_bytes, when):
    """The event with its time (bytes 0..3) set."""
    return when.to_bytes(4, "little") + event_bytes[4:]


def test_the_bytes_of_a_replay_run_from_the_start_position_to_the_stop_position(tmp_path):
    files = [binlog(tmp_path / "binlog.000001", event(996)), binlog(tmp_path / "binlog.000002", event(496))]
    assert rto.replayed_bytes(files, 4) == 1000 - 4 + 500
    assert rto.replayed_bytes(files, 400, stop_pos=300) == 1000 - 400 + 300
    assert rto.replayed_bytes([], 4) == 0


def test_a_replay_to_a_time_counts_the_bytes_before_the_first_event_at_or_after_it(tmp_path):
    first = binlog(tmp_path / "binlog.000001", stamp(event(100), 1000), stamp(event(200), 1010), stamp(event(50), 1020))
    second = binlog(tmp_path / "binlog.000002", stamp(event(100), 1030), stamp(event(100), 1040))
    files = [first, second]
    assert archive.bytes_before(files, 4, 1010) == 100  # stops at the event of 1010, as --stop-datetime does
    assert archive.bytes_before(files, 104, 1020) == 200
    assert archive.bytes_before(files, 4, 1040) == 350 + 100
    assert archive.bytes_before(files, 4, 2000) == 350 + 200  # every event is older: the whole archive


def test_only_replays_big_enough_to_be_a_rate_are_kept_and_only_the_newest_five(settings):
    assert rto.record_replay(settings, MiB - 1, 1.0, "verify x") is None
    assert rto.record_replay(settings, 4 * MiB, 0, "verify x") is None
    for n in range(1, 8):
        rto.record_replay(settings, n * MiB, 1.0, f"restore {n}")
    with open(rto.samples_path(settings), encoding="utf-8") as handle:
        kept = json.load(handle)["samples"]
    assert [s["source"] for s in kept] == [f"restore {n}" for n in range(3, 8)]
    assert kept[0]["bytes_per_s"] == 3 * MiB


def test_without_a_backup_in_the_current_timeline_the_rto_check_is_breached(settings):
    make_backup(settings, "20260101T030000Z-full", "2026-01-01T03:00:05Z", timeline=1)
    archive.set_timeline(settings, 2)  # a restore started timeline 2; no backup of it yet
    check, found = rto.check(settings, dict(restore_s=30.0))
    assert not check["ok"] and check["value"] is None and check["threshold"] == 900
    assert "no backup in binlog timeline 2" in check["detail"]


def test_the_rto_is_unknown_not_breached_until_a_restore_and_a_rate_were_measured(settings):
    make_backup(settings, "20260101T030000Z-full", "2026-01-01T03:00:05Z")
    archive_files(settings, 1, "binlog.000001", size=3 * MiB)
    check, found = rto.check(settings, {})
    assert check["ok"] and check["value"] is None
    assert "a passed verification (its restore time) and a replay of at least 1 MiB (its rate)" in check["detail"]
    assert found["pending_bytes"] == 3 * MiB - 4


def test_the_rto_is_the_restore_plus_the_pending_binlog_at_the_slowest_recent_rate(settings):
    make_backup(settings, "20260101T030000Z-full", "2026-01-01T03:00:05Z")
    archive_files(settings, 1, "binlog.000001", "binlog.000002", size=50 * MiB)
    rto.record_replay(settings, 20 * MiB, 2.0, "verify a")  # 10 MiB/s
    rto.record_replay(settings, 20 * MiB, 4.0, "restore b")  # 5 MiB/s: the worst case counts
    check, found = rto.check(dict(settings, rto_target_s=60), dict(restore_s=40.0))
    assert found["replay_bytes_per_s"] == 5 * MiB
    assert found["rto_s"] == round(40.0 + (100 * MiB - 4) / (5 * MiB), 1) == 60.0
    assert check == dict(ok=True, value=60.0, threshold=60, detail=found["detail"])
    assert "restore 40 s + replay 100.0 MiB at 5.00 MiB/s = 20 s" in found["detail"]
    make_backup(settings, "20260101T100000Z-incremental", "2026-01-01T10:00:05Z", binlog="binlog.000002")
    check, _ = rto.check(dict(settings, rto_target_s=60), dict(restore_s=40.0))
    assert check["value"] == round(40.0 + (50 * MiB - 4) / (5 * MiB), 1)  # a newer backup: less to replay
    check, _ = rto.check(dict(settings, rto_target_s=45), dict(restore_s=40.0))
    assert not check["ok"]


def test_the_health_job_publishes_the_rto_parts_and_breaches_over_the_target(settings):
    make_backup(settings, "20260101T030000Z-full", "2026-01-01T03:00:05Z")
    archive_files(settings, 1, "binlog.000001", size=64 * MiB + 4)
    rto.record_replay(settings, 8 * MiB, 1.0, "verify a")
    os.makedirs(settings["state_dir"], exist_ok=True)
    with open(jobs.state_path(settings, jobs.VERIFY), "w", encoding="utf-8") as handle:
        json.dump(dict(restore_s=12.0), handle)
    check = jobs.recovery_time(dict(settings, rto_target_s=15))
    assert check["value"] == 20.0 and not check["ok"]
    with open(os.path.join(settings["metrics_dir"], "stockdb_backup_rto.prom"), encoding="utf-8") as handle:
        text = handle.read()
    for line in ("stockdb_backup_rto_seconds 20", "stockdb_backup_rto_target_seconds 15",
                 "stockdb_backup_rto_restore_seconds 12", f"stockdb_backup_rto_pending_bytes {64 * MiB}",
                 f"stockdb_backup_rto_replay_bytes_per_second {8 * MiB}"):
        assert line in text.splitlines()


def test_the_intraday_backup_is_incremental_unless_the_timeline_has_no_backup_yet(settings):
    assert backup.resolve_kind(settings, "auto") == "full"
    make_backup(settings, "20260101T030000Z-full", "2026-01-01T03:00:05Z")
    assert backup.resolve_kind(settings, "auto") == "incremental"
    assert backup.resolve_kind(settings, "full") == "full"
    archive.set_timeline(settings, 2)
    assert backup.resolve_kind(settings, "auto") == "full"
