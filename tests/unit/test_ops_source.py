"""The backup source: which host of a replication set takes the scheduled backups and verifies them."""

import json
import os
from contextlib import contextmanager

import pytest
from stockdb.ops import OpsError, backup, connection, jobs


class Server:
    """Answers the two questions source_check asks: @@read_only and SHOW ALL SLAVES STATUS."""

    def __init__(self, read_only=0, masters=()):
        self.read_only, self.masters, self.rows, self.description = read_only, list(masters), [], None

    def execute(self, sql):
        if "read_only" in sql:
            self.description, self.rows = [("@@global.read_only",)], [(self.read_only,)]
        elif sql == "SHOW ALL SLAVES STATUS":
            self.description = [("Connection_name",), ("Slave_SQL_State",), ("Master_Host",)]
            self.rows = [("", "", host) for host in self.masters]
        else:
            raise AssertionError(f"unexpected statement {sql}")

    def fetchone(self):
        return self.rows[0]

    def fetchall(self):
        return self.rows


@pytest.fixture
def server(monkeypatch):
    state = {"server": Server(), "down": False}

    @contextmanager
    def cursor(defaults_file, action, **kwargs):
        if state["down"]:
            raise OpsError(f"{action}: Can't connect to local server through socket")
        yield state["server"]

    monkeypatch.setattr(connection, "cursor", cursor)
    return state


def primary_settings(settings):
    return dict(settings, source="primary")


def test_a_named_source_is_that_host_only(settings):
    assert backup.source_check(dict(settings, source="db1", host_name="db1"))[0] is True
    ours, why = backup.source_check(dict(settings, source="db2", host_name="db1"))
    assert ours is False and why == "the backup source is db2, this host is db1"


@pytest.mark.parametrize("read_only, masters, ours, words", [
    (0, [], True, "this host is the primary"),
    (1, ["172.30.99.11"], False, "replicates from 172.30.99.11"),
    (0, ["172.30.99.11"], False, "a replica"),  # a replica made writable by hand is still a replica
    (1, [], False, "read_only is ON and this host replicates from no one"),
])
def test_the_primary_is_the_writable_host_that_replicates_from_no_one(settings, server, read_only, masters, ours, words):
    server["server"] = Server(read_only, masters)
    found, why = backup.source_check(primary_settings(settings))
    assert found is ours and words in why


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def test_a_backup_off_the_source_is_skipped_logged_and_neither_a_success_nor_a_failure(settings, server, monkeypatch):
    server["server"] = Server(1, ["db1"])
    monkeypatch.setattr(backup, "take", lambda *a, **k: pytest.fail("a backup was taken on a replica"))
    taken = jobs.backup_job(primary_settings(settings), "full")
    assert taken["manifest"] is None and "replicates from db1" in taken["skipped"]
    assert taken["pruned"] == dict(backups=[], binlogs=[])  # retention still ran
    assert "SKIPPED type=full: this host replicates from db1" in read(os.path.join(settings["log_dir"], "backup.log"))
    metrics = read(os.path.join(settings["metrics_dir"], "stockdb_backup.prom"))
    assert "stockdb_backup_last_status 1\n" in metrics and "stockdb_backup_failures_total 0\n" in metrics
    assert not [line for line in metrics.splitlines() if line.startswith("stockdb_backup_last_success_timestamp_seconds")]
    state = json.loads(read(os.path.join(settings["state_dir"], "backup.json")))
    assert "last_success" not in state and state["last_skipped"]


def test_a_skip_after_a_failure_resolves_the_alert_with_the_reason(settings, server, monkeypatch):
    def failing(*args, **kwargs):
        raise OpsError("mariabackup exited 1")

    monkeypatch.setattr(backup, "take", failing)
    with pytest.raises(OpsError):
        jobs.backup_job(primary_settings(settings), "full")
    server["server"] = Server(1, ["db2"])  # then a switchover made this host a replica
    jobs.backup_job(primary_settings(settings), "full")
    lines = read(settings["alert_log"]).splitlines()
    assert " FIRING critical StockdbBackupFailed " in lines[0]
    assert " RESOLVED critical StockdbBackupFailed " in lines[1] and "skipped: SKIPPED type=full" in lines[1]


def test_a_success_ends_every_alert_fired_since_the_last(settings, server, monkeypatch):
    """Two failed fulls and a failed incremental, then two successful incrementals: the first resolves each
    label fired (once, though `type=full` fired twice); the second has nothing left to resolve."""
    def failing(*args, **kwargs):
        raise OpsError("mariabackup exited 1")

    monkeypatch.setattr(backup, "full_overdue", lambda s: None)
    monkeypatch.setattr(backup, "take", failing)
    for kind in ("full", "full", "incremental"):
        with pytest.raises(OpsError):
            jobs.backup_job(primary_settings(settings), kind)
    monkeypatch.setattr(backup, "take", lambda s, kind, intraday=False: dict(
        name="20261205T010000Z-incremental", type=kind, size_bytes=1, duration_s=1.0,
        binlog=dict(file="b.000001", pos=4, gtid="")))
    for _ in range(2):
        jobs.backup_job(primary_settings(settings), "incremental", intraday=True)
    lines = read(settings["alert_log"]).splitlines()
    labels = [line.split(" :: ")[0].split(" StockdbBackupFailed ")[1] for line in lines]
    assert [line.split()[1] for line in lines] == ["FIRING"] * 3 + ["RESOLVED"] * 2, lines  # the 2nd success: none
    assert [label.split()[-1] for label in labels] == ["type=full", "type=full", "type=incremental",
                                                       "type=full", "type=incremental"]
    assert all("backup type=incremental succeeded" in line for line in lines[3:])
    state = json.loads(read(os.path.join(settings["state_dir"], "backup.json")))
    assert "fired_labels" not in state


def test_here_takes_the_backup_on_a_replica(settings, server, monkeypatch):
    server["server"] = Server(1, ["db1"])
    monkeypatch.setattr(backup, "take", lambda s, kind, intraday=False: dict(
        name="20261205T010000Z-full", type=kind, size_bytes=1, duration_s=1.0, binlog=dict(file="b.000001", pos=4, gtid="")))
    taken = jobs.backup_job(primary_settings(settings), "full", here=True)
    assert taken["skipped"] is None and taken["manifest"]["name"] == "20261205T010000Z-full"


def test_a_verification_off_the_source_is_skipped(settings, server, monkeypatch):
    from stockdb.ops import verification

    monkeypatch.setattr(verification, "verify", lambda *a: pytest.fail("verified on a replica"))
    result = jobs.verify_job(dict(settings, source="db2"))
    assert result["problems"] == [] and result["skipped"] == "the backup source is db2, this host is db1"
    assert "SKIPPED: the backup source is db2" in read(os.path.join(settings["log_dir"], "verify.log"))


def test_health_exports_the_source_and_does_not_hold_a_replica_to_the_recovery_time(settings, server):
    server["server"] = Server(1, ["db1"])
    s = primary_settings(settings)
    state = {}
    why = jobs.source_metric(s, state)
    assert "replicates from db1" in why
    assert "stockdb_backup_source 0\n" in read(os.path.join(settings["metrics_dir"], "stockdb_backup_source.prom"))
    check = jobs.recovery_time(s, why)
    assert check["ok"] is True and check["value"] is None and check["detail"].startswith("not measured here: ")
    # the server down: the last answer stands
    server["down"] = True
    assert jobs.source_metric(s, state) == why
    server["down"], server["server"] = False, Server(0, [])  # promoted
    assert jobs.source_metric(s, state) is None
    assert "stockdb_backup_source 1\n" in read(os.path.join(settings["metrics_dir"], "stockdb_backup_source.prom"))
    # a primary without a backup is held to it: nothing to recover from
    assert jobs.recovery_time(s, None)["ok"] is False
