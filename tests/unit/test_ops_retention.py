"""Unit tests of retention (module_utils/stockdb/ops/catalogue.py prune()): which chains and archived
binlogs go, the minimum of full backups kept, and scheduled incrementals that start a new chain so the
old one ages out.
"""

import os
from datetime import datetime, timedelta, timezone

from stockdb import report
from stockdb.ops import archive, backup, catalogue, jobs
from test_ops import archive_files, make_backup


def test_retention_keeps_recent_chains_and_the_minimum_of_fulls_and_their_binlogs(settings):
    now = datetime(2026, 11, 24, 4, 0, tzinfo=timezone.utc)
    make_backup(settings, "20261101T030000Z-full", "2026-11-01T03:00:05Z", binlog="binlog.000001")
    make_backup(settings, "20261102T030000Z-full", "2026-11-02T03:00:05Z", binlog="binlog.000002")
    make_backup(settings, "20261103T030000Z-full", "2026-11-03T03:00:05Z", binlog="binlog.000003")
    # an old full whose incremental is recent: the chain stays
    make_backup(settings, "20261110T030000Z-full", "2026-11-10T03:00:05Z", binlog="binlog.000004")
    make_backup(settings, "20261120T030000Z-incremental", "2026-11-20T03:00:05Z", binlog="binlog.000005",
                chain=["20261110T030000Z-full", "20261120T030000Z-incremental"])
    make_backup(settings, "20261123T030000Z-full", "2026-11-23T03:00:05Z", binlog="binlog.000006")
    archive_files(settings, 1, *[f"binlog.{n:06d}" for n in range(1, 8)])
    # an abandoned timeline without backups goes; the current one stays even without backups
    archive_files(settings, 7, "binlog.000001")
    pruned = catalogue.prune(settings, now)
    assert pruned["backups"] == ["20261101T030000Z-full", "20261102T030000Z-full", "20261103T030000Z-full"]
    assert [b["name"] for b in catalogue.list_backups(settings)] == ["20261110T030000Z-full", "20261120T030000Z-incremental",
                                                              "20261123T030000Z-full"]
    assert [n for n, _, _ in archive.archived_binlogs(settings, 1)] == ["binlog.000004", "binlog.000005", "binlog.000006",
                                                                   "binlog.000007"]
    assert "timeline 7" in pruned["binlogs"]


def test_retention_keeps_a_week_of_binlogs_where_no_backup_needs_them_and_always_the_newest(settings):
    """A host that is not the backup source archives its binlogs all the same (it may become the source)."""
    now = datetime(2026, 11, 24, 4, 0, tzinfo=timezone.utc)
    archive_files(settings, 1, *[f"binlog.{n:06d}" for n in range(1, 5)])
    directory = archive.timeline_dir(settings, 1)
    for number, days_old in ((1, 30), (2, 8), (3, 6), (4, 20)):  # the newest file is kept however old
        moment = (now - timedelta(days=days_old)).timestamp()
        os.utime(os.path.join(directory, f"binlog.{number:06d}"), (moment, moment))
    pruned = catalogue.prune(settings, now)
    assert pruned == dict(backups=[], binlogs=["1/binlog.000001", "1/binlog.000002"])
    assert [n for n, _, _ in archive.archived_binlogs(settings, 1)] == ["binlog.000003", "binlog.000004"]


def test_retention_never_drops_below_the_minimum_of_full_backups(settings):
    now = datetime(2026, 11, 24, 4, 0, tzinfo=timezone.utc)
    make_backup(settings, "20260101T030000Z-full", "2026-01-01T03:00:05Z")
    make_backup(settings, "20260102T030000Z-full", "2026-01-02T03:00:05Z")
    assert catalogue.prune(settings, now)["backups"] == []



def test_scheduled_incrementals_take_a_full_once_the_newest_full_is_older_than_retention_so_chains_age_out(
        settings, monkeypatch):
    """backup_scheduled_type incremental: one chain on the first full for ever would never age out (retention drops a
    chain only when all of it is old), and every backup and archived binlog would be kept."""
    start = datetime(2026, 11, 1, 3, 0, tzinfo=timezone.utc)
    clock = dict(now=start)
    monkeypatch.setattr(report, "utc_now", lambda: clock["now"])

    def take(s, kind, intraday=False):  # a backup each day, in the next binlog file
        newest = (catalogue.list_backups(s) or [None])[-1]
        name = f"{clock['now'].strftime('%Y%m%dT%H%M%SZ')}-{kind}"
        day = (clock["now"] - start).days
        return dict(make_backup(s, name, report.utc_stamp(clock["now"]), binlog=f"binlog.{day + 1:06d}",
                                chain=newest["chain"] + [name] if kind == "incremental" else None),
                    size_bytes=1, duration_s=1.0)

    monkeypatch.setattr(backup, "take", take)
    jobs.backup_job(settings, "full", here=True)
    for day in range(1, 31):
        clock["now"] = start + timedelta(days=day)
        jobs.backup_job(settings, "incremental", here=True)
    kept = catalogue.list_backups(settings)
    assert [b["name"] for b in kept if b["type"] == "full"] == ["20261117T030000Z-full", "20261125T030000Z-full"]
    assert kept[0]["name"] == "20261117T030000Z-full" and len(kept) == 15
    log = open(os.path.join(settings["log_dir"], "backup.log"), encoding="utf-8").read()
    assert (" OK 20261109T030000Z-full type=full " in log and "full_instead_of_incremental: the newest full backup of "
            "timeline 1, 20261101T030000Z-full, is older than retention_days=7: an incremental on it would keep its "
            "chain from ever aging out\n" in log)
    assert backup.resolve_kind(settings, "incremental") == "incremental"
    assert backup.resolve_kind(settings, "full") == "full"
