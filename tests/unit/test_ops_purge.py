"""stockdb-ops purge-binlogs (archive.purge_plan, archive.purge_binlogs): PURGE BINARY LOGS only up to what
the binlog archive holds whole, with a stand-in server (a cursor answering SHOW BINARY LOGS) and binlog
files in temporary directories. The real purge ran on a lab host with the archiver streaming."""

import json
import os
import shutil
from contextlib import contextmanager

import pytest
from stockdb.ops import OpsError, archive, cli, connection
from test_ops import make_backup


def names(*numbers):
    return [f"binlog.{n:06d}" for n in numbers]


# ---------------------------------------------------------------- the plan (pure)
def test_purge_stops_at_the_first_file_not_held_whole_and_never_takes_the_current_one():
    on_server = [("binlog.000003", 100), ("binlog.000004", 200), ("binlog.000005", 300), ("binlog.000006", 50)]
    archived = [("binlog.000003", 3, 100), ("binlog.000004", 4, 200), ("binlog.000005", 5, 120)]  # 5 still streaming
    plan = archive.purge_plan(on_server, archived)
    assert plan == dict(purge_to="binlog.000005", files=[("binlog.000003", 100), ("binlog.000004", 200)],
                        stopped_at="binlog.000005", reason="the archive holds 120 of its 300 bytes (the archiver is behind)")
    archived[-1] = ("binlog.000005", 5, 300)
    archived.append(("binlog.000006", 6, 50))  # the current binlog, archived to its present end: still kept
    plan = archive.purge_plan(on_server, archived)
    assert plan["purge_to"] == "binlog.000006" and [n for n, _ in plan["files"]] == names(3, 4, 5)
    assert plan["reason"] == "the server's current binlog"


def test_a_file_missing_from_the_archive_or_differing_ends_the_purge_before_it():
    on_server = [(n, 100) for n in names(3, 4, 5, 6)]
    archived = [("binlog.000003", 3, 100), ("binlog.000005", 5, 100), ("binlog.000006", 6, 100)]
    plan = archive.purge_plan(on_server, archived)
    assert (plan["purge_to"], plan["reason"]) == ("binlog.000004", "not in the archive")
    archived.insert(1, ("binlog.000004", 4, 100))
    plan = archive.purge_plan(on_server, archived, same=lambda name: name != "binlog.000004")
    assert plan["purge_to"] == "binlog.000004" and plan["files"] == [("binlog.000003", 100)]
    assert plan["reason"] == "the archived copy differs from the server's file"
    # an encrypted server file cannot be compared with its (decrypted) archived copy: sizes decide
    plan = archive.purge_plan(on_server, archived, same=lambda name: None)
    assert plan["purge_to"] == "binlog.000006" and [n for n, _ in plan["files"]] == names(3, 4, 5)


def test_the_archives_newest_file_stays_on_the_server_for_the_archiver_to_resume_from():
    on_server = [(n, 100) for n in names(1, 2, 3, 4, 5)]
    plan = archive.purge_plan(on_server, [(n, int(n[-6:]), 100) for n in names(1, 2, 3)])
    assert plan["purge_to"] == "binlog.000003" and [n for n, _ in plan["files"]] == names(1, 2)
    assert plan["reason"] == "the archive's newest file: the archiver resumes from it, so the server keeps it"


def test_nothing_to_purge_is_no_error_when_the_server_has_only_its_current_binlog_or_the_archive_lags():
    assert archive.purge_plan([("binlog.000007", 10)], [("binlog.000007", 7, 10)])["files"] == []
    plan = archive.purge_plan([("binlog.000007", 10), ("binlog.000008", 5)], [("binlog.000007", 7, 4)])
    assert plan["purge_to"] is None and plan["files"] == [] and plan["stopped_at"] == "binlog.000007"


@pytest.mark.parametrize("on_server, archived, message", [
    ([], [("binlog.000001", 1, 5)], "the server lists no binary logs (log_bin is off?): nothing to purge"),
    ([("binlog.000001", 5), ("binlog.000002", 5)], [], "the binlog archive holds no file of the current timeline"),
    ([("binlog.000001", 5), ("binlog.000002", 5), ("binlog.000003", 5)], [("binlog.000002", 2, 5)],
     "the server's oldest binary log binlog.000001 is not in the binlog archive (which holds binlog.000002..binlog.000002)"),
])
def test_an_empty_archive_or_one_without_the_oldest_binlog_is_refused(on_server, archived, message):
    with pytest.raises(OpsError) as refused:
        archive.purge_plan(on_server, archived)
    assert message in str(refused.value)


def test_what_retention_pruned_from_the_archive_goes_but_a_file_never_archived_stays():
    """Retention prunes the archive to the oldest kept backup's binlog (about 6 days); the server keeps 7 days."""
    on_server = [(n, 100) for n in names(1, 2, 3, 4, 5)]
    archived = [(n, int(n[-6:]), 100) for n in names(3, 4)]
    plan = archive.purge_plan(on_server, archived, pruned_below=3)
    assert plan["purge_to"] == "binlog.000004" and [n for n, _ in plan["files"]] == names(1, 2, 3)
    # the oldest kept backup needs binlog.000002, which the archive lacks: never archived, not pruned
    with pytest.raises(OpsError, match="the server's oldest binary log binlog.000002 is not in the binlog archive"):
        archive.purge_plan(on_server[1:], archived, pruned_below=2)
    plan = archive.purge_plan(on_server, archived, pruned_below=2)
    assert (plan["purge_to"], plan["reason"]) == ("binlog.000002", "not in the archive")


# ---------------------------------------------------------------- with a stand-in server
class Server:
    """SHOW BINARY LOGS from files in a binlog directory (and those removed_by_hand, listed with size 0 as the
    server does); PURGE BINARY LOGS TO deletes the older ones."""

    def __init__(self, binlog_dir, keep_in_use=()):
        self.binlog_dir, self.statements, self.keep_in_use = binlog_dir, [], set(keep_in_use)
        self.result, self.removed_by_hand = [], set()

    def files(self):
        return sorted(n for n in os.listdir(self.binlog_dir) if n.startswith("binlog.0"))

    def execute(self, sql, args=None):
        self.statements.append(sql % tuple(repr(a) for a in args) if args else sql)
        if sql == "SELECT @@log_bin_basename":
            self.result = [(os.path.join(self.binlog_dir, "binlog"),)]
        elif sql == "SHOW BINARY LOGS":
            self.result = sorted([(n, os.path.getsize(os.path.join(self.binlog_dir, n))) for n in self.files()]
                                 + [(n, 0) for n in self.removed_by_hand])
        elif sql.startswith("PURGE BINARY LOGS TO"):
            for name in self.files():
                if name < args[0] and name not in self.keep_in_use:
                    os.unlink(os.path.join(self.binlog_dir, name))

    def fetchone(self):
        return self.result[0]

    def fetchall(self):
        return self.result


@pytest.fixture
def server(settings, monkeypatch):
    """The server's binlogs 1..5 (5 current) and an archive holding 1..3 whole and 4 in part."""
    for number, size in ((1, 1000), (2, 2000), (3, 3000), (4, 4000), (5, 500)):
        with open(os.path.join(settings["datadir"], f"binlog.{number:06d}"), "wb") as handle:
            handle.write(bytes([number]) * size)
    directory = archive.timeline_dir(settings, 1)
    os.makedirs(directory)
    for number, size in ((1, 1000), (2, 2000), (3, 3000), (4, 1500)):
        with open(os.path.join(directory, f"binlog.{number:06d}"), "wb") as handle:
            handle.write(bytes([number]) * size)
    stand_in = Server(settings["datadir"])
    used = []

    @contextmanager
    def cursor(defaults_file, action, database=None, unix_socket=None, read_timeout=None):
        used.append(defaults_file)
        stand_in.read_timeout = read_timeout
        yield stand_in

    monkeypatch.setattr(connection, "cursor", cursor)
    stand_in.used = used
    return stand_in


def test_a_dry_run_says_what_would_go_and_purges_nothing(settings, server):
    result = archive.purge_binlogs(settings, [], dry_run=True)
    # a server stuck on a full disk must not hang the tool: each answer is awaited 30 s at most
    assert server.read_timeout == archive.PURGE_TIMEOUT_S == 30
    disk = result.pop("disk")
    assert disk["path"] == settings["datadir"] and 0 < disk["used_pct"] <= 100 and disk["free_bytes"] > 0
    assert result == dict(dry_run=True, timeline=1, purge_to="binlog.000004", files=names(1, 2, 3), bytes=6000,
                          compared="content", kept_from="binlog.000004",
                          kept_because="the archive holds 1500 of its 4000 bytes (the archiver is behind)")
    assert server.files() == names(1, 2, 3, 4, 5) and not any(s.startswith("PURGE") for s in server.statements)
    assert server.used == [settings["admin_defaults_file"]]


def test_the_purge_removes_only_what_the_archive_holds_and_logs_it(settings, server):
    result = archive.purge_binlogs(settings, [])
    assert "PURGE BINARY LOGS TO 'binlog.000004'" in server.statements
    assert server.files() == names(4, 5) and result["bytes_freed"] == 6000 and result["not_removed"] == []
    line = open(os.path.join(settings["log_dir"], "archive.log"), encoding="utf-8").read()
    assert "PURGED timeline=1 to=binlog.000004 files=3 bytes=6000 compared=content" in line


def test_an_archived_copy_whose_content_differs_is_not_purged(settings, server):
    with open(os.path.join(archive.timeline_dir(settings, 1), "binlog.000002"), "r+b") as handle:
        handle.write(b"\xff")
    result = archive.purge_binlogs(settings, [])
    assert result["files"] == names(1) and server.files() == names(2, 3, 4, 5)
    assert result["kept_because"] == "the archived copy differs from the server's file"


def test_a_binlog_left_in_use_by_a_crash_still_matches_its_archived_copy(settings, server):
    """A crash leaves LOG_EVENT_BINLOG_IN_USE_F set in the server's file (byte 21, bit 0x01) where the archived
    copy has it clear; the lab's crash drills blocked every purge on this until its disk filled. Only that
    bit is forgiven: another bit of the same byte still differs."""
    server_file = os.path.join(settings["datadir"], "binlog.000002")
    with open(server_file, "r+b") as handle:
        handle.seek(archive.BINLOG_FLAGS_OFFSET)
        handle.write(bytes([2 | archive.BINLOG_IN_USE_FLAG]))
    archived = os.path.join(archive.timeline_dir(settings, 1), "binlog.000002")
    assert archive.same_binlog(server_file, archived)
    result = archive.purge_binlogs(settings, [])
    assert result["files"] == names(1, 2, 3) and server.files() == names(4, 5)
    with open(server_file, "wb") as handle:  # purged above; written again to compare once more
        handle.write(bytes([2]) * 2000)
    with open(archived, "r+b") as handle:
        handle.seek(archive.BINLOG_FLAGS_OFFSET)
        handle.write(bytes([2 | 0x04]))
    assert not archive.same_binlog(server_file, archived)


def test_a_file_the_server_keeps_is_reported_not_removed(settings, server):
    server.keep_in_use = {"binlog.000002"}
    result = archive.purge_binlogs(settings, [])
    assert result["not_removed"] == ["binlog.000002"] and result["bytes_freed"] == 4000


def test_a_binlog_the_server_lists_but_its_directory_lacks_is_named_not_a_traceback(settings, server):
    """Seen on the lab: a binlog removed by hand from a full disk (the server still listed it) ended the purge
    in a FileNotFoundError."""
    os.unlink(os.path.join(settings["datadir"], "binlog.000002"))
    server.removed_by_hand.add("binlog.000002")
    with pytest.raises(OpsError, match=r"not in .*: binlog.000002 \(removed by hand\?\); nothing purged.*"
                                       r"PURGE BINARY LOGS TO 'binlog.000003'"):
        archive.purge_binlogs(settings, [])
    assert not any(s.startswith("PURGE") for s in server.statements)


def test_an_open_gap_of_the_archive_refuses_the_purge_until_a_full_backup_covers_it(settings, server):
    archive.record_gap(settings, 1, "binlog.000000", "binlog.000001")
    with pytest.raises(OpsError, match=r"the binlog archive has a gap: binlog.000000 was purged before it was archived"):
        archive.purge_binlogs(settings, [])
    assert server.statements == [] and len(server.files()) == 5
    backup = make_backup(settings, "29991231T030000Z-full", "2999-12-31T03:00:05Z")
    assert archive.purge_binlogs(settings, [backup], dry_run=True)["files"] == names(1, 2, 3)


def test_binlogs_older_than_every_kept_backup_are_purged_once_retention_pruned_them(settings, server):
    directory = archive.timeline_dir(settings, 1)
    for name in names(1, 2):
        os.unlink(os.path.join(directory, name))
    with pytest.raises(OpsError, match="oldest binary log binlog.000001 is not in the binlog archive"):
        archive.purge_binlogs(settings, [])
    oldest = make_backup(settings, "20261123T030000Z-full", "2026-11-23T03:00:05Z", binlog="binlog.000003")
    other = make_backup(settings, "20261120T030000Z-full", "2026-11-20T03:00:05Z", timeline=2, binlog="binlog.000001")
    result = archive.purge_binlogs(settings, [other, oldest])
    assert result["files"] == names(1, 2, 3) and server.files() == names(4, 5)


def test_the_command_prints_the_result_as_json(settings, server, tmp_path, capsys):
    config = tmp_path / "ops.json"
    config.write_text(json.dumps({k: settings[k] for k in ("backup_dir", "datadir", "verify_dir", "state_dir", "log_dir",
                                                           "metrics_dir", "alert_log")}))
    assert cli.main(["--config", str(config), "purge-binlogs", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == names(1, 2, 3)
    archive.record_gap(settings, 1, "binlog.000000", "binlog.000001")
    assert cli.main(["--config", str(config), "purge-binlogs"]) == 1
    assert "stockdb-ops purge-binlogs: the binlog archive has a gap" in capsys.readouterr().err
    assert len(server.files()) == 5


def test_the_disk_it_leaves_is_reported_even_when_nothing_could_be_purged(settings, server, monkeypatch):
    """The drills make room with purge-binlogs before they trade: when nothing can go, the caller must learn
    how full the disk stays and why (a lab series once filled its disk while every purge said nothing)."""
    monkeypatch.setattr(archive.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100, 97, 3))
    with open(os.path.join(archive.timeline_dir(settings, 1), "binlog.000001"), "r+b") as handle:
        handle.write(b"\xff")
    result = archive.purge_binlogs(settings, [])
    assert result["files"] == [] and result["bytes_freed"] == 0
    assert result["disk"] == dict(path=settings["datadir"], used_pct=97.0, free_bytes=3)
    assert result["kept_because"] == "the archived copy differs from the server's file"


# --------------------------------------------------------------------------- torn tails

def event(length, fill=b"e"):
    """A binlog event of `length` bytes: a 19-byte header carrying its length at bytes 9..12, then a body."""
    header = bytes(9) + length.to_bytes(4, "little") + bytes(6)
    return header + fill * (length - len(header))


def binlog(path, *parts):
    path.write_bytes(b"\xfebin" + b"".join(parts))
    return str(path)


# what the lab's server left in binlog.000009 after a full disk and a crash: 1536 bytes whose header claims
# an event of 3663724544 bytes
TORN = bytes(9) + (3663724544).to_bytes(4, "little") + b"\x00" * (1536 - 13)


def test_the_whole_events_of_a_binlog_end_where_a_torn_write_begins(tmp_path):
    clean = binlog(tmp_path / "a", event(120), event(300), event(19))
    assert archive.whole_events_end(clean) == 4 + 120 + 300 + 19
    torn = binlog(tmp_path / "b", event(120), event(300), TORN)
    assert archive.whole_events_end(torn) == 4 + 120 + 300
    short = binlog(tmp_path / "c", event(120), event(300)[:200])  # a last event cut short
    assert archive.whole_events_end(short) == 4 + 120


def test_a_torn_tail_is_told_apart_from_an_archiver_that_is_behind(tmp_path):
    server = binlog(tmp_path / "server", event(120), event(300), TORN)
    assert archive.torn_tail(server, binlog(tmp_path / "whole", event(120), event(300))) == len(TORN)
    # behind: the server's file has whole events past the archived copy
    assert archive.torn_tail(server, binlog(tmp_path / "behind", event(120))) == 0
    # a copy whose content differs is no prefix of the server's file
    assert archive.torn_tail(server, binlog(tmp_path / "other", event(120), event(300, b"x"))) == 0
    # an archived copy cut mid-event (the archiver killed while writing) is no boundary of the server's file
    assert archive.torn_tail(server, binlog(tmp_path / "cut", event(120), event(300)[:150])) == 0
    clean = binlog(tmp_path / "clean", event(120), event(300))
    assert archive.torn_tail(clean, binlog(tmp_path / "same", event(120), event(300))) == 0


def typed(kind, length, fill=b"f"):
    """A readable event of a given type: the format description (15) or the start of the encryption (164)."""
    header = bytes(4) + bytes([kind]) + bytes(4) + length.to_bytes(4, "little") + bytes(6)
    return header + fill * (length - len(header))


def sealed(length, noise=0x5A):
    """An event as an encrypting server writes it: every byte noise but its length (bytes 9..12)."""
    return bytes([noise]) * 9 + length.to_bytes(4, "little") + bytes([noise]) * (length - 13)


def test_an_encrypted_torn_file_is_told_by_its_event_lengths(tmp_path):
    """The lab's binlog.000053 (encrypt_binlog) ended in 257 torn bytes after a full disk and a crash; compared
    byte for byte it never matched its decrypted archived copy, so the archiver fetched it again every 10 s
    and every purge stopped at it (the lab's binlog disk filled behind it)."""
    head = typed(15, 120) + typed(164, 40)
    server = binlog(tmp_path / "server", head, sealed(300), sealed(77), TORN)
    assert archive.is_encrypted(server)
    # the archiver's copy: the same events decrypted (other bytes, the same lengths)
    assert archive.torn_tail(server, binlog(tmp_path / "copy", head, event(300, b"p"), event(77, b"p"))) == len(TORN)
    # behind, or cut mid-event: not a torn tail
    assert archive.torn_tail(server, binlog(tmp_path / "behind", head, event(300, b"p"))) == 0
    assert archive.torn_tail(server, binlog(tmp_path / "cut", head, event(300, b"p"), event(77, b"p")[:40])) == 0
    # the same size in other event lengths: another file, not this one's copy
    assert archive.torn_tail(server, binlog(tmp_path / "other", head, event(200, b"p"), event(177, b"p"))) == 0
    clean = binlog(tmp_path / "clean", head, sealed(300), sealed(77))
    assert archive.torn_tail(clean, binlog(tmp_path / "same", head, event(300, b"p"), event(77, b"p"))) == 0


def test_the_archiver_moves_past_a_torn_file_to_the_next_without_a_gap():
    archived = [("binlog.000009", 9, 967696386)]
    on_server = ["binlog.000009", "binlog.000010", "binlog.000011"]
    assert archive.archiver_start(archived, on_server, torn=lambda name: 1536) == ("binlog.000010", None)
    assert archive.archiver_start(archived, on_server, torn=lambda name: 0) == ("binlog.000009", None)
    # the server's current file is never skipped: it is still being written
    assert archive.archiver_start(archived, ["binlog.000009"], torn=lambda name: 1536) == ("binlog.000009", None)


def test_a_file_held_but_for_its_torn_tail_is_purged():
    """Before: the torn tail read as 'the archiver is behind' forever, and no purge passed that file."""
    plan = archive.purge_plan([(f"binlog.00000{n}", s) for n, s in ((1, 1000), (2, 2000 + len(TORN)), (3, 3000), (4, 4000))],
                              [(f"binlog.00000{n}", n, s) for n, s in ((1, 1000), (2, 2000), (3, 3000), (4, 4000))],
                              same=lambda name: True, torn=lambda name: len(TORN) if name == "binlog.000002" else 0)
    assert [name for name, _ in plan["files"]] == names(1, 2, 3) and plan["purge_to"] == "binlog.000004"
    plan = archive.purge_plan([("binlog.000001", 1000), ("binlog.000002", 2000 + len(TORN)), ("binlog.000003", 5)],
                              [("binlog.000001", 1, 1000), ("binlog.000002", 2, 2000), ("binlog.000003", 3, 5)],
                              torn=lambda name: 0)
    assert plan["purge_to"] == "binlog.000002" and "the archiver is behind" in plan["reason"]


def test_a_torn_file_of_a_surviving_datadir_is_not_copied_over_its_clean_archived_copy(settings, tmp_path):
    directory = archive.timeline_dir(settings, 1)
    os.makedirs(directory, exist_ok=True)
    binlog(tmp_path / "archived", event(120), event(300))
    shutil.copy(tmp_path / "archived", os.path.join(directory, "binlog.000009"))
    datadir = tmp_path / "old-datadir"
    datadir.mkdir()
    binlog(datadir / "binlog.000009", event(120), event(300), TORN)
    binlog(datadir / "binlog.000010", event(50))
    assert archive.complete_archive(settings, 1, str(datadir)) == ["binlog.000010"]
    assert archive.whole_events_end(os.path.join(directory, "binlog.000009")) == os.path.getsize(
        os.path.join(directory, "binlog.000009"))
