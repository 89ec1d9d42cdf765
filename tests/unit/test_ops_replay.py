"""Planning a parallel binlog replay (ops/replay.py) on binlog files built here event by event: where it
stops, which GTIDs it waits for, the relay-log copies, and when it falls back to one stream. The replay
itself ran on real MariaDB (tests/integration/test_ops.py compares it with the single stream)."""

import os
from types import SimpleNamespace

import pytest
from stockdb.ops import OpsError, archive, replay

FDE, QUERY, XID, GTID, ROWS, ROTATE, ENCRYPTION = 15, 2, 16, 162, 30, 4, 164


def event(kind, when, body=b"", server_id=1):
    length = 19 + len(body) + 4  # + a CRC32 the walk does not read
    return (when.to_bytes(4, "little") + bytes([kind]) + server_id.to_bytes(4, "little") + length.to_bytes(4, "little")
            + bytes(6) + body + b"\0\0\0\0")


def gtid(seq, when, domain=0, standalone=False, server_id=1):
    return event(GTID, when, seq.to_bytes(8, "little") + domain.to_bytes(4, "little") + bytes([1 if standalone else 0]),
                 server_id)


def transaction(seq, when, domain=0):
    """BEGIN, a row event, XID: what an InnoDB transaction writes."""
    return [gtid(seq, when, domain), event(QUERY, when, b"x" * 13 + b"BEGIN"), event(ROWS, when, b"r" * 40),
            event(XID, when, b"\1" * 8)]


def binlog(path, *events):
    path.write_bytes(b"\xfebin" + event(FDE, 900, b"f" * 80) + b"".join(events))
    return str(path)


def offsets(path):
    """Offsets of the events of a file built by binlog()."""
    data, offset, found = open(path, "rb").read(), 4, []
    while offset < len(data):
        found.append(offset)
        offset += int.from_bytes(data[offset + 9:offset + 13], "little")
    return found


@pytest.fixture
def two_files(tmp_path):
    first = binlog(tmp_path / "binlog.000001", *transaction(11, 1000), *transaction(12, 1001),
                   event(ROTATE, 1001, b"binlog.000002"))
    second = binlog(tmp_path / "binlog.000002", *transaction(13, 1002), gtid(14, 1003, standalone=True),
                    event(QUERY, 1003, b"x" * 13 + b"CREATE TABLE t (a INT)"), *transaction(1, 1004, domain=1))
    return [first, second]


def test_to_the_end_the_replay_stops_after_the_last_transaction_of_each_domain(two_files):
    point = replay.stop_point(two_files, 4)
    assert point["gtids"] == {0: "0-1-14", 1: "1-1-1"} and point["transactions"] == 5
    assert (point["file"], point["offset"]) == (1, os.path.getsize(two_files[1]))
    assert point["server_ids"] == [1]
    start_of_12 = offsets(two_files[0])[5]  # FDE, then 4 events of the first transaction
    assert replay.stop_point(two_files, start_of_12)["transactions"] == 4  # from a backup's position


def test_an_archive_ending_inside_a_transaction_stops_before_it(tmp_path):
    whole = transaction(21, 1000)
    path = binlog(tmp_path / "binlog.000001", *whole, *transaction(22, 1001)[:3])  # no XID yet
    point = replay.stop_point([path], 4)
    assert point["gtids"] == {0: "0-1-21"} and point["offset"] == 4 + len(event(FDE, 900, b"f" * 80)) + len(b"".join(whole))


def test_a_time_stops_before_the_transaction_holding_the_first_event_at_or_after_it(two_files):
    point = replay.stop_point(two_files, 4, moment=1002)
    assert point["gtids"] == {0: "0-1-12"} and (point["file"], point["offset"]) == (1, offsets(two_files[1])[1])
    point = replay.stop_point(two_files, 4, moment=1001)
    assert point["gtids"] == {0: "0-1-11"} and (point["file"], point["offset"]) == (0, offsets(two_files[0])[5])
    assert replay.stop_point(two_files, 4, moment=999)["gtids"] == {}


def test_a_position_in_the_last_file_stops_there(two_files):
    stop = offsets(two_files[1])[5]  # after transaction 13
    point = replay.stop_point(two_files, 4, stop_pos=stop)
    assert point["gtids"] == {0: "0-1-13"} and (point["file"], point["offset"]) == (1, stop)


def test_a_binlog_the_archiver_streamed_from_an_encrypting_server_is_planned_as_a_plain_one(tmp_path):
    """The archiver's raw stream keeps the start-encryption event; the events after it came decrypted."""
    path = binlog(tmp_path / "binlog.000001", event(ENCRYPTION, 1000, b"k" * 20), *transaction(1, 1000))
    assert not archive.is_encrypted(path)
    assert replay.stop_point([path], 4)["transactions"] == 1


def test_an_encrypted_binlog_is_refused_even_from_the_middle_of_the_file(tmp_path):
    """From a backup's position past the encryption event, the walk would read noise as a torn tail and plan
    no transaction at all (a CI run restored that way and lost every order after the backup): refused first."""
    path = binlog(tmp_path / "binlog.000001", event(ENCRYPTION, 1000, b"k" * 20), b"\x93" * 300)
    plain = binlog(tmp_path / "binlog.000002", *transaction(1, 1000))
    assert archive.is_encrypted(path) and not archive.is_encrypted(plain)
    with pytest.raises(OpsError, match=r"\['binlog.000001'\] are encrypted"):
        replay.prepare(4, [path, plain], offsets(path)[2], str(tmp_path / "relay"))


def test_the_relay_copies_end_at_the_stop_point_and_are_listed_in_order(two_files, tmp_path, monkeypatch):
    monkeypatch.setattr(replay.shutil, "chown", lambda *a: None)
    point = replay.stop_point(two_files, 4, moment=1003)
    first = replay.relay_copies(two_files, point, 4, str(tmp_path / "relay"))
    copies = open(replay.index_path(str(tmp_path / "relay"))).read().split()
    assert copies == [first, str(tmp_path / "relay" / "stockdb-replay-relay.000002")]
    assert open(copies[0], "rb").read() == open(two_files[0], "rb").read()
    assert open(copies[1], "rb").read() == open(two_files[1], "rb").read()[:point["offset"]]


def test_what_cannot_run_in_parallel_says_why_and_copies_nothing(two_files, tmp_path, monkeypatch):
    relay = str(tmp_path / "relay")
    assert replay.prepare(0, two_files, 4, relay)["why"] == "replay_parallel_threads is 0"
    assert replay.prepare(4, two_files, 4, relay, gtid_target=True)["method"] == "single stream"
    monkeypatch.setattr(replay.shutil, "disk_usage", lambda path: SimpleNamespace(free=100))
    how = replay.prepare(4, two_files, 4, relay)
    assert how["method"] == "single stream" and "relay-log copies (twice needed)" in how["why"]
    assert not os.path.exists(relay) and how["args"] == []


def test_a_parallel_plan_starts_the_server_with_the_relay_log_and_reports_its_transactions(two_files, tmp_path,
                                                                                           monkeypatch):
    monkeypatch.setattr(replay.shutil, "chown", lambda *a: None)
    relay = str(tmp_path / "relay")
    how = replay.prepare(4, two_files, 4, relay, log_updates=True)
    assert how["method"] == "parallel" and how["threads"] == 4
    assert f"--relay-log-index={relay}/stockdb-replay-relay.index" in how["args"] and "--log-slave-updates" in how["args"]
    assert replay.summary(how) == dict(method="parallel", threads=4, transactions=5, gtids={0: "0-1-14", 1: "1-1-1"})
