"""Unit tests of the operations package (module_utils/stockdb/ops/) on temporary directories.

What needs MariaDB (mariabackup, replay, the private server) runs for real in the Molecule `ops`
scenario; here: settings, targets, manifests against files, backup choice for a point,
the binlog archive's order and gaps, and what a failed backup leaves behind. Retention is in
test_ops_retention.py, the restore's and the verification's refusals in test_ops_restore.py.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO
from stockdb import report
from stockdb.ops import OpsError, archive, backup, catalogue, cli, host, integrity, jobs, mariabackup, packing, restore
from stockdb.ops import settings as ops_settings


def make_backup(settings, name, consistent_at, timeline=1, binlog="binlog.000001", gtid="0-1-10", chain=None):
    path = os.path.join(catalogue.backups_root(settings), name)
    os.makedirs(os.path.join(path, "data"))
    with open(os.path.join(path, "data", "ibdata1.zst"), "wb") as handle:
        handle.write(name.encode() * 100)
    manifest = dict(name=name, type=name.split("-")[1], timeline=timeline, consistent_at=consistent_at,
                    binlog=dict(file=binlog, pos=4, gtid=gtid), chain=chain or [name], data_bytes=10)
    manifest["files"] = integrity.file_inventory(path)
    with open(os.path.join(path, "manifest.json"), "w", encoding="utf-8") as handle:
        json.dump(manifest, handle)
    return dict(manifest, path=path)


def archive_files(settings, timeline, *names, size=100):
    directory = os.path.join(archive.binlog_root(settings), str(timeline))
    os.makedirs(directory, exist_ok=True)
    for name in names:
        with open(os.path.join(directory, name), "wb") as handle:
            handle.write(b"x" * size)
    return directory


# --------------------------------------------------------------------------- settings and targets


def test_settings_refuse_unknown_keys_and_unsafe_paths(tmp_path):
    config = tmp_path / "backup.json"
    config.write_text(json.dumps({"backup_dri": "/x"}))
    with pytest.raises(OpsError, match=r"unknown settings \['backup_dri'\]"):
        ops_settings.load(str(config))
    with pytest.raises(OpsError, match="must not be inside the datadir"):
        ops_settings.load(None, dict(backup_dir="/var/lib/mysql/backups"))
    with pytest.raises(OpsError, match="compress_level=25"):
        ops_settings.load(None, dict(compress_level=25))
    with pytest.raises(OpsError, match="absolute path other than /"):
        ops_settings.load(None, dict(backup_dir="/"))
    with pytest.raises(OpsError, match=r"prepare_memory_mb=8 must be >= 32"):
        ops_settings.load(None, dict(prepare_memory_mb=8))
    with pytest.raises(OpsError, match="does not exist"):
        ops_settings.load(str(tmp_path / "missing.json"))


def test_settings_file_then_overrides(tmp_path):
    config = tmp_path / "backup.json"
    config.write_text(json.dumps({"retention_days": 3, "logical_dump": True}))
    s = ops_settings.load(str(config), dict(logical_dump=False, backup_dir=None))
    assert s["retention_days"] == 3 and s["logical_dump"] is False and s["backup_dir"] == ops_settings.DEFAULTS["backup_dir"]


@pytest.mark.parametrize("text, kind", [("2026-11-24 14:02:07", "time"), ("0-1-1234", "gtid"),
                                        ("0-1-5,1-2-7", "gtid"), ("end", "end"), (None, None), ("", None)])
def test_targets(text, kind):
    target = catalogue.parse_target(text)
    assert (target or {}).get("kind") == kind


@pytest.mark.parametrize("text", ["2026-11-24T14:02:07", "2026-02-30 10:00:00", "yesterday", "0-1", "1234", "0-1-x"])
def test_bad_targets_are_refused_naming_the_formats(text):
    with pytest.raises(OpsError, match="restore_to="):
        catalogue.parse_target(text)


def test_gtid_target_knows_each_domain():
    assert catalogue.parse_target("0-1-5,1-2-7")["seqs"] == {0: 5, 1: 7}


# --------------------------------------------------------------------------- manifest against files


def test_check_files_names_corrupted_missing_resized_and_extra_files(settings):
    backup = make_backup(settings, "20261124T030000Z-full", "2026-11-24T03:00:01Z")
    with open(os.path.join(backup["path"], "data", "more.zst"), "wb") as handle:
        handle.write(b"abc")
    backup["files"] = integrity.file_inventory(backup["path"])
    assert integrity.check_files(backup) == []
    data = os.path.join(backup["path"], "data", "ibdata1.zst")
    with open(data, "r+b") as handle:
        handle.seek(5)
        handle.write(b"!")
    with open(os.path.join(backup["path"], "data", "more.zst"), "ab") as handle:
        handle.write(b"d")
    with open(os.path.join(backup["path"], "stray"), "w", encoding="utf-8") as handle:
        handle.write("?")
    problems = integrity.check_files(backup)
    assert "20261124T030000Z-full/data/ibdata1.zst: sha256 differs from the manifest (corrupted)" in problems
    assert "20261124T030000Z-full/data/more.zst: size 4 != 3 in the manifest" in problems
    assert "20261124T030000Z-full/stray: not in the manifest" in problems
    os.unlink(data)
    assert "20261124T030000Z-full/data/ibdata1.zst: missing" in integrity.check_files(backup)


def test_a_sealed_backup_passes_and_any_change_to_its_manifest_breaks_the_seal(settings, tmp_path):
    key = tmp_path / "backup.key"
    key.write_text("k" * 48)
    sealed = dict(settings, encrypt_key_file=str(key))
    backup = make_backup(settings, "20261124T030000Z-full", "2026-11-24T03:00:01Z")
    backup.update(encrypted=True, key_fingerprint=integrity.sha256_file(str(key))[:16])
    packing.seal(sealed, backup)
    assert backup["seal"].startswith("hmac-sha256:")
    assert packing.check_seal(sealed, backup) == []
    # a file changed and its hash in the manifest changed to match: the file check passes, the seal does not
    forged = json.loads(json.dumps(backup))
    forged["files"]["data/ibdata1.zst"]["sha256"] = "0" * 64
    assert "tampered" in packing.check_seal(sealed, forged)[0]
    # the seal removed, or the backup passed off as unencrypted: where backups are encrypted, refused all the same
    for downgrade in ({k: v for k, v in backup.items() if k != "seal"},
                      {**{k: v for k, v in backup.items() if k != "seal"}, "encrypted": False}):
        assert "not sealed" in packing.check_seal(sealed, downgrade)[0]
    # another key: the seal cannot be checked, and says so
    other = tmp_path / "other.key"
    other.write_text("o" * 48)
    assert "not the key" in packing.check_seal(dict(settings, encrypt_key_file=str(other)), backup)[0]
    # without a key an encrypted backup is named, an unencrypted one has nothing to check
    assert "set encrypt_key_file" in packing.check_seal(settings, backup)[0]
    assert packing.check_seal(settings, dict(backup, encrypted=False)) == []


def test_a_restore_refuses_a_forged_backup_before_it_touches_anything(settings, tmp_path, monkeypatch):
    key = tmp_path / "backup.key"
    key.write_text("k" * 48)
    sealed = dict(settings, encrypt_key_file=str(key))
    backup = make_backup(settings, "20261124T030000Z-full", "2026-11-24T03:00:01Z")
    backup.update(encrypted=True)
    packing.seal(sealed, backup)
    backup["binlog"]["gtid"] = "0-1-99"  # changed after sealing
    monkeypatch.setattr(restore, "plan", lambda *a, **k: dict(_chain=[backup], backup=backup["name"],
                                                              replaced_live_datadir=False, datadir="/nonexistent"))
    monkeypatch.setattr(restore, "execute", lambda *a, **k: pytest.fail("the restore ran on a forged backup"))
    with pytest.raises(OpsError, match="tampered"):
        restore.restore(sealed, backup["name"], None, confirm=True)


def test_compare_checksums_names_tables():
    expected = {"orders": {"rows": 3, "checksum": 10}, "trades": {"rows": 1, "checksum": 5}}
    assert integrity.compare_checksums(expected, dict(expected)) == []
    problems = integrity.compare_checksums(expected, {"orders": {"rows": 2, "checksum": 9}, "extra": {"rows": 0, "checksum": 0}})
    assert problems == ["table orders: 2 rows checksum 9, manifest 3 rows checksum 10", "table trades: missing",
                        "table extra: not in the manifest"]


# --------------------------------------------------------------------------- catalogue and choice


def test_list_ignores_partial_and_foreign_directories(settings):
    make_backup(settings, "20261124T030000Z-full", "2026-11-24T03:00:01Z")
    os.makedirs(os.path.join(catalogue.backups_root(settings), ".partial-20261125T030000Z-full", "data"))
    os.makedirs(os.path.join(catalogue.backups_root(settings), "notes"))
    assert [b["name"] for b in catalogue.list_backups(settings)] == ["20261124T030000Z-full"]
    with pytest.raises(OpsError, match="backup '20261101T030000Z-full' not found"):
        catalogue.find_backup(settings, "20261101T030000Z-full")


def test_a_point_picks_the_newest_backup_before_it_in_the_current_timeline(settings):
    make_backup(settings, "20261122T030000Z-full", "2026-11-22T03:00:05Z", gtid="0-1-100")
    make_backup(settings, "20261123T030000Z-full", "2026-11-23T03:00:05Z", gtid="0-1-200")
    make_backup(settings, "20261123T120000Z-incremental", "2026-11-23T12:00:05Z", gtid="0-1-250",
                chain=["20261123T030000Z-full", "20261123T120000Z-incremental"])
    pick = catalogue.pick_backup
    assert pick(settings, None, catalogue.parse_target("2026-11-23 11:00:00"))["name"] == "20261123T030000Z-full"
    assert pick(settings, None, catalogue.parse_target("2026-11-23 12:00:06"))["name"] == "20261123T120000Z-incremental"
    assert pick(settings, None, catalogue.parse_target("0-1-199"))["name"] == "20261122T030000Z-full"
    assert pick(settings, None, catalogue.parse_target("end"))["name"] == "20261123T120000Z-incremental"
    assert pick(settings, "20261122T030000Z-full", catalogue.parse_target("end"))["name"] == "20261122T030000Z-full"
    with pytest.raises(OpsError, match="no backup of the current binlog timeline 1 is older than restore_to=0-1-50"):
        pick(settings, None, catalogue.parse_target("0-1-50"))
    chain = catalogue.chain_of(settings, catalogue.find_backup(settings, "20261123T120000Z-incremental"))
    assert [b["name"] for b in chain] == ["20261123T030000Z-full", "20261123T120000Z-incremental"]


def test_a_backup_consistent_in_the_very_second_of_a_time_target_is_too_new_for_it(settings):
    """consistent_at is taken after the copy, to the second: the backup may hold transactions of that second,
    which a replay to that second leaves out (it stops at the first event at or after it)."""
    make_backup(settings, "20261123T030000Z-full", "2026-11-23T03:00:05Z", gtid="0-1-200")
    make_backup(settings, "20261123T120000Z-incremental", "2026-11-23T12:00:05Z", gtid="0-1-250",
                chain=["20261123T030000Z-full", "20261123T120000Z-incremental"])
    target = catalogue.parse_target("2026-11-23 12:00:05")
    assert catalogue.pick_backup(settings, None, target)["name"] == "20261123T030000Z-full"
    with pytest.raises(OpsError, match="consistent at 2026-11-23T12:00:05Z .* not before restore_to=2026-11-23 12:00:05"):
        catalogue.pick_backup(settings, "20261123T120000Z-incremental", target)


def test_after_a_restore_only_backups_of_the_new_timeline_serve_a_point(settings):
    make_backup(settings, "20261123T030000Z-full", "2026-11-23T03:00:05Z")
    assert archive.current_timeline(settings) == 1
    assert archive.start_new_timeline(settings) == 2
    with pytest.raises(OpsError, match="a restore starts a new timeline"):
        catalogue.pick_backup(settings, None, catalogue.parse_target("2026-11-24 00:00:00"))


def test_an_incremental_whose_base_is_gone_is_refused(settings):
    make_backup(settings, "20261123T120000Z-incremental", "2026-11-23T12:00:05Z",
                chain=["20261123T030000Z-full", "20261123T120000Z-incremental"])
    with pytest.raises(OpsError, match=r"needs \['20261123T030000Z-full'\], which are gone"):
        catalogue.chain_of(settings, catalogue.find_backup(settings))


# --------------------------------------------------------------------------- binlog archive


def test_replay_files_run_from_the_backups_binlog_and_refuse_gaps(settings):
    backup = make_backup(settings, "20261123T030000Z-full", "2026-11-23T03:00:05Z", binlog="binlog.000002")
    directory = archive_files(settings, 1, "binlog.000001", "binlog.000002", "binlog.000003", "binlog.000010")
    with pytest.raises(OpsError, match="has a gap before binlog.000010"):
        archive.replay_files(settings, backup)
    assert [os.path.basename(f) for f in archive.replay_files(settings, backup, "binlog.000003")] == ["binlog.000002",
                                                                                                   "binlog.000003"]
    os.unlink(os.path.join(directory, "binlog.000002"))
    with pytest.raises(OpsError, match="lacks binlog.000002, where backup 20261123T030000Z-full ends"):
        archive.replay_files(settings, backup)


def test_complete_archive_copies_what_the_archiver_had_not_streamed_yet(settings, tmp_path):
    archive_files(settings, 1, "binlog.000003", "binlog.000004", size=100)
    datadir = tmp_path / "old-datadir"
    datadir.mkdir()
    for name, size in (("binlog.000002", 500), ("binlog.000003", 100), ("binlog.000004", 180), ("binlog.000005", 40),
                       ("binlog.index", 10), ("ibdata1", 10)):
        (datadir / name).write_bytes(b"y" * size)
    assert archive.complete_archive(settings, 1, str(datadir)) == ["binlog.000004", "binlog.000005"]
    assert [(n, s) for n, _, s in archive.archived_binlogs(settings, 1)] == [("binlog.000003", 100), ("binlog.000004", 180),
                                                                         ("binlog.000005", 40)]


def test_complete_archive_never_copies_an_encrypted_binlog_into_the_archive(settings, tmp_path):
    archive_files(settings, 1, "binlog.000003", size=100)
    datadir = tmp_path / "old-datadir"
    datadir.mkdir()
    fde = (0).to_bytes(4, "little") + bytes([15]) + bytes(4) + (40).to_bytes(4, "little") + bytes(27)
    start_encryption = (0).to_bytes(4, "little") + bytes([164]) + bytes(4) + (40).to_bytes(4, "little") + bytes(27)
    (datadir / "binlog.000003").write_bytes(b"\xfebin" + fde + start_encryption + b"\x93" * 200)
    with pytest.raises(OpsError, match="binlog.000003 in .* is encrypted and holds bytes the binlog archive lacks"):
        archive.complete_archive(settings, 1, str(datadir))
    assert [(n, s) for n, _, s in archive.archived_binlogs(settings, 1)] == [("binlog.000003", 100)]


# --------------------------------------------------------------------------- materialize


@pytest.mark.parametrize("prepared", [True, False])
def test_materialize_prepares_only_a_base_not_stored_prepared_then_applies_incrementals(settings, tmp_path,
                                                                                         monkeypatch, prepared):
    full = make_backup(settings, "20260101T030000Z-full", "2026-01-01 03:00:05")
    inc = make_backup(settings, "20260101T120000Z-incremental", "2026-01-01 12:00:05",
                      chain=[full["name"], "20260101T120000Z-incremental"])
    for manifest in (full, inc):
        manifest.update(encrypted=False, compress=None)
    full["prepared"] = prepared
    commands = []
    monkeypatch.setattr(host, "run", lambda cmd, **kwargs: commands.append(cmd))
    staging = tmp_path / "staging"
    staging.mkdir()
    timings = {}
    base = mariabackup.materialize(settings, [full, inc], str(staging), timings)
    assert base == str(staging / "00-full")
    applies = [c for c in commands if c[:2] == ["mariabackup", "--prepare"]]
    memory = f"--use-memory={settings['prepare_memory_mb']}M"
    expected = [] if prepared else [["mariabackup", "--prepare", f"--target-dir={base}", memory]]
    expected.append(["mariabackup", "--prepare", f"--target-dir={base}", memory,
                     f"--incremental-dir={staging}/01-incremental"])
    assert applies == expected
    assert not (staging / "01-incremental").exists() and set(timings) == {"copy_s", "prepare_s"}


# --------------------------------------------------------------------------- failures


def test_a_failed_backup_leaves_no_directory_and_writes_log_metrics_and_alert(settings, monkeypatch):
    calls = []

    def failing_run(cmd, **kwargs):
        calls.append(cmd[0])
        os.makedirs(os.path.join(catalogue.backups_root(settings), os.listdir(catalogue.backups_root(settings))[0], "data", "x"))
        raise OpsError("mariabackup exited 1: Access denied")

    monkeypatch.setattr(host, "run", failing_run)
    with pytest.raises(OpsError, match="Access denied"):
        jobs.backup_job(settings, "full")
    assert calls == ["mariabackup"]
    assert os.listdir(catalogue.backups_root(settings)) == []
    metrics = open(os.path.join(settings["metrics_dir"], "stockdb_backup.prom"), encoding="utf-8").read()
    assert "stockdb_backup_last_status 0\n" in metrics and "stockdb_backup_failures_total 1\n" in metrics
    alert = open(settings["alert_log"], encoding="utf-8").read()
    assert " FIRING critical StockdbBackupFailed " in alert and "type=full" in alert and "Access denied" in alert
    assert "FAILED type=full: mariabackup exited 1" in open(os.path.join(settings["log_dir"], "backup.log"),
                                                            encoding="utf-8").read()


def fake_copy(cmd):
    """What mariabackup --backup leaves in its --target-dir that a backup reads: the binlog position, the LSNs."""
    data = next(c.split("=", 1)[1] for c in cmd if c.startswith("--target-dir="))
    os.makedirs(data)
    with open(os.path.join(data, "xtrabackup_binlog_info"), "w", encoding="utf-8") as handle:
        handle.write("binlog.000001 4 0-1-10\n")
    with open(os.path.join(data, "xtrabackup_checkpoints"), "w", encoding="utf-8") as handle:
        handle.write("backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 100\n")


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux only")
def test_after_the_copy_a_backup_runs_its_tools_on_idle_cpu_only_and_restores_the_policy(settings, monkeypatch):
    seen = []

    def fake_run(cmd, **kwargs):
        seen.append((cmd[0], cmd[1], os.sched_getscheduler(0)))
        if cmd[:2] == ["mariabackup", f"--defaults-extra-file={settings['defaults_file']}"]:
            fake_copy(cmd)

    monkeypatch.setattr(host, "run", fake_run)
    settings.update(table_checksums=False)
    policy = os.sched_getscheduler(0)
    manifest = backup.take(settings, "full")
    assert manifest["prepared"] is True
    assert seen == [("mariabackup", f"--defaults-extra-file={settings['defaults_file']}", policy),
                    ("mariabackup", "--prepare", os.SCHED_IDLE), ("zstd", "-q", os.SCHED_IDLE)]
    assert os.sched_getscheduler(0) == policy


def test_a_job_stopped_by_systemd_kills_its_tool_removes_its_partial_and_alerts(settings, tmp_path):
    # systemd stops a job past its TimeoutStartSec with SIGTERM: the job must not die mid-way like a
    # plain Python process, it must clean up and say why (the unit's timeout is in roles/backup)
    tools = tmp_path / "bin"
    tools.mkdir()
    pid_file = tmp_path / "mariabackup.pid"
    (tools / "mariabackup").write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    (tools / "mariabackup").chmod(0o755)
    config = tmp_path / "ops.json"
    config.write_text(json.dumps(settings))
    env = dict(os.environ, PYTHONPATH=str(REPO / "module_utils"), PATH=f"{tools}:{os.environ['PATH']}")
    job = subprocess.Popen([sys.executable, "-c", "import sys; from stockdb.ops import cli; sys.exit(cli.main())",
                            "--config", str(config), "backup", "--type", "full"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    tool_pid = int(pid_file.read_text())
    assert [p for p in os.listdir(catalogue.backups_root(settings)) if p.startswith(catalogue.PARTIAL)]
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=20)
    assert job.returncode == 1
    assert "stopped by SIGTERM" in err
    assert not os.path.exists(f"/proc/{tool_pid}"), "the tool the job waited for must be killed with it"
    assert os.listdir(catalogue.backups_root(settings)) == []
    metrics = open(os.path.join(settings["metrics_dir"], "stockdb_backup.prom"), encoding="utf-8").read()
    assert "stockdb_backup_last_status 0\n" in metrics
    alert = open(settings["alert_log"], encoding="utf-8").read()
    assert " FIRING critical StockdbBackupFailed " in alert and "stopped by SIGTERM" in alert


def test_the_job_units_have_a_deadline(role_vars):
    def unit(job, **overrides):
        item = next(j for j in role_vars("backup", **overrides)["_backup_jobs"] if j["name"] == job)
        return role_vars("backup", item=item, ansible_managed="", **overrides).render(
            "roles/backup/templates/etc/systemd/system/stockdb-job.service.j2")

    assert "\nTimeoutStartSec=360min\n" in unit("stockdb-backup")
    assert "\nTimeoutStartSec=10min\n" in unit("stockdb-healthcheck")
    assert "\nTimeoutStartSec=infinity\n" in unit("stockdb-backup-verify", backup_job_timeout_minutes=0)


def test_the_verification_runs_after_the_nights_full_and_after_the_session_unless_unset(role_vars):
    def calendars(job, **overrides):
        item = next(j for j in role_vars("backup", **overrides)["_backup_jobs"] if j["name"] == job)
        timer = role_vars("backup", item=item, ansible_managed="", **overrides).render(
            "roles/backup/templates/etc/systemd/system/stockdb-job.timer.j2")
        return [line.split("=", 1)[1] for line in timer.splitlines() if line.startswith("OnCalendar=")]

    assert calendars("stockdb-backup-verify") == ["*-*-* 04:30:00", "Mon..Fri *-*-* 16:00:00 Asia/Seoul"]
    assert calendars("stockdb-backup-verify", backup_verify_intraday_on_calendar="") == ["*-*-* 04:30:00"]
    assert calendars("stockdb-backup-verify", backup_verify_on_calendar="", backup_verify_intraday_on_calendar="") == []
    assert calendars("stockdb-backup") == ["*-*-* 03:00:00"]


@pytest.mark.parametrize("intraday, intraday_setting, taken", [
    (False, False, True),   # the nightly full (and any backup taken by hand): checksums, compressed
    (True, False, False),   # the intraday job, the role's default: neither, trading keeps the server's CPU and disk
    (True, True, True)])    # backup_intraday_table_checksums and backup_intraday_compress: true
def test_the_intraday_job_takes_table_checksums_and_compresses_only_when_asked(settings, monkeypatch, intraday,
                                                                                  intraday_setting, taken):
    tools = []

    def fake_run(cmd, **kwargs):
        tools.append(cmd[0])
        if cmd[0] == "mariabackup" and "--backup" in cmd:
            fake_copy(cmd)

    monkeypatch.setattr(host, "run", fake_run)
    monkeypatch.setattr(integrity, "snapshot_checksums", lambda s: tools.append("checksums") or dict(tables={}))
    settings.update(intraday_table_checksums=intraday_setting, intraday_compress=intraday_setting, compress=True,
                    compress_level=3, prepare=False)
    manifest = backup.take(settings, "full", intraday=intraday)
    assert tools == (["mariabackup", "checksums", "zstd"] if taken else ["mariabackup"])
    assert (manifest["checksums"] is not None, manifest["compress"]) == ((True, "zstd-3") if taken else (False, None))
    assert settings["compress"] is True  # the caller's settings are left as they were


def test_the_copy_reads_the_redo_log_at_the_set_interval_and_throttles_only_when_asked(settings):
    settings.update(log_copy_interval_ms=100, throttle=20, parallel=2)
    cmd = mariabackup.copy_command(settings, "/b/data", 12345)
    assert cmd[:3] == ["mariabackup", f"--defaults-extra-file={settings['defaults_file']}", "--backup"]
    assert cmd[3:] == ["--target-dir=/b/data", "--parallel=2", "--throttle=20", "--log-copy-interval=100",
                       "--incremental-lsn=12345"]
    settings.update(log_copy_interval_ms=1000, throttle=0)
    assert mariabackup.copy_command(settings, "/b/data")[3:] == ["--target-dir=/b/data", "--parallel=2",
                                                                 "--log-copy-interval=1000"]


def test_the_intraday_unit_says_it_is_the_intraday_job(role_vars):
    jobs_ = {j["name"]: j["command"] for j in role_vars("backup")["_backup_jobs"]}
    assert jobs_["stockdb-backup-intraday"].split() == ["backup", "--type", "auto", "--intraday"]
    assert "--intraday" not in jobs_["stockdb-backup"]
    assert cli.parser().parse_args(["backup", "--type", "auto", "--intraday"]).intraday is True


def test_an_incremental_needs_a_full_backup_first(settings):
    with pytest.raises(OpsError, match="needs a full backup in timeline 1"):
        backup.take(settings, "incremental")


def test_a_second_job_waits_for_the_lock_then_gives_up_naming_the_holder(settings):
    with host.lock(settings), pytest.raises(OpsError, match=r"another stockdb-ops job holds .*\(pid \d+ since"):
        with host.lock(settings):
            pass


def test_textfile_values_are_exact_and_labels_escaped(tmp_path):
    text = report.format_metrics([("m", "help", "gauge", [({"path": 'a"b\\c'}, 1795489215), ({}, 0.25)])])
    assert 'm{path="a\\"b\\\\c"} 1795489215\n' in text and "m 0.25\n" in text
    with pytest.raises(ValueError, match="invalid metric name"):
        report.format_metrics([("bad-name", "h", "gauge", [])])
    assert report.write_textfile(str(tmp_path / "absent"), "x", []) is None


# --------------------------------------------------------------------------- defects a review found


def test_a_tools_warnings_never_land_in_the_data_it_writes_and_its_error_is_kept(tmp_path):
    dump = tmp_path / "dump.sql"
    with open(dump, "wb") as out:
        host.run(["sh", "-c", "echo 'CREATE TABLE t (a INT);'; echo 'Warning: using a password' >&2"], stdout=out)
    assert dump.read_text() == "CREATE TABLE t (a INT);\n"
    with open(dump, "wb") as out, pytest.raises(OpsError, match="sh exited 2: Access denied for user"):
        host.run(["sh", "-c", "echo partial; echo 'Access denied for user' >&2; exit 2"], stdout=out)


def test_a_stopped_server_is_an_ops_error_naming_the_cause_not_a_driver_traceback(tmp_path):
    from stockdb.ops import connection

    option_file = tmp_path / "client.cnf"
    option_file.write_text(f"[client]\nuser=nobody\nsocket={tmp_path}/absent.sock\n")
    with pytest.raises(OpsError, match=r"cannot connect to MariaDB with the account of .*client.cnf: MariaDB error 2003"):
        connection.connect(str(option_file))


def test_the_health_job_reports_a_server_it_cannot_reach_in_metrics_log_and_alert_log(settings, tmp_path):
    option_file = tmp_path / "client.cnf"
    option_file.write_text(f"[client]\nuser=nobody\nsocket={tmp_path}/absent.sock\n")
    settings.update(defaults_file=str(option_file), health=dict(settings["health"], disk_paths=[str(tmp_path)]))
    outcome = jobs.health_job(settings)
    assert outcome.ok and outcome.value["server_down"]  # a finding of the job, not a failure of it
    metrics = open(os.path.join(settings["metrics_dir"], "stockdb_health.prom"), encoding="utf-8").read()
    assert 'stockdb_health_check_ok{check="server"} 0' in metrics and 'stockdb_health_check_ok{check="disk"} 1' in metrics
    assert "stockdb_health_last_status 1\n" in metrics
    alerts = open(settings["alert_log"], encoding="utf-8").read()
    assert " FIRING warning StockdbHealthCheckBreach check=server " in alerts and "MariaDB error 2003" in alerts
    assert " health BREACH server=1/0 " in open(os.path.join(settings["log_dir"], "health.log"), encoding="utf-8").read()


def test_a_backup_killed_midway_is_removed_and_alerted_by_the_next_health_check(settings):
    partial = os.path.join(catalogue.backups_root(settings), ".partial-20261124T030000Z-full")
    os.makedirs(os.path.join(partial, "data"))
    with host.lock(settings):  # a running backup: its partial is left alone
        assert jobs.sweep_partials(settings) == []
    assert os.path.isdir(partial)
    assert jobs.sweep_partials(settings) == ["20261124T030000Z-full"]
    assert not os.path.exists(partial)
    metrics = open(os.path.join(settings["metrics_dir"], "stockdb_backup.prom"), encoding="utf-8").read()
    assert "stockdb_backup_last_status 0\n" in metrics and "stockdb_backup_failures_total 1\n" in metrics
    alert = open(settings["alert_log"], encoding="utf-8").read()
    assert " FIRING critical StockdbBackupFailed " in alert and "type=full" in alert and "interrupted" in alert


def test_a_named_backup_never_restores_to_a_later_point_than_asked(settings):
    make_backup(settings, "20261123T030000Z-full", "2026-11-23T03:00:05Z", gtid="0-1-200")
    for target in ("2026-11-23 02:00:00", "0-1-150"):
        with pytest.raises(OpsError, match="cannot restore to an earlier point"):
            catalogue.pick_backup(settings, "20261123T030000Z-full", catalogue.parse_target(target))
    assert catalogue.pick_backup(settings, "20261123T030000Z-full", catalogue.parse_target("0-1-250"))["name"] == \
        "20261123T030000Z-full"


@pytest.mark.parametrize("gtid", ["0-1-5'; DROP TABLE orders; --", "0-1-5,", "x"])
def test_a_manifest_gtid_is_validated_before_it_reaches_sql(settings, gtid):
    make_backup(settings, "20261123T030000Z-full", "2026-11-23T03:00:05Z", gtid=gtid)
    with pytest.raises(OpsError, match="is not a GTID list"):
        restore.plan(settings, "20261123T030000Z-full")


def test_identifiers_are_quoted_with_backticks_doubled():
    sql = integrity.table_checksum_sql(["id", "we`ird"], "stock`db", "orders")
    assert "CAST(`we``ird` AS CHAR)" in sql and "FROM `stock``db`.`orders`" in sql


def test_an_archive_gap_is_a_metric_until_a_full_backup_covers_it(settings):
    start, lost = archive.archiver_start([("binlog.000003", 3, 100)], ["binlog.000005", "binlog.000006"])
    assert (start, lost) == ("binlog.000005", "binlog.000003")
    assert archive.archiver_start([("binlog.000005", 5, 100)], ["binlog.000005", "binlog.000006"]) == ("binlog.000005", None)
    gap = archive.record_gap(settings, 1, lost, start)
    assert jobs.gap_metric(settings) == gap
    assert "stockdb_binlog_archive_gap 1\n" in open(os.path.join(settings["metrics_dir"], "stockdb_binlog_archive_gap.prom"),
                                                    encoding="utf-8").read()
    make_backup(settings, "20200101T030000Z-full", "2020-01-01T03:00:05Z")  # older than the gap: not enough
    assert jobs.gap_metric(settings)
    make_backup(settings, "29991231T030000Z-full", "2999-12-31T03:00:05Z", binlog="binlog.000005")
    assert jobs.gap_metric(settings) is None
    assert "stockdb_binlog_archive_gap 0\n" in open(os.path.join(settings["metrics_dir"], "stockdb_binlog_archive_gap.prom"),
                                                    encoding="utf-8").read()


def test_a_health_run_that_fails_halfway_alerts_and_leaves_the_breaches_for_the_next_run(settings, tmp_path):
    option_file = tmp_path / "client.cnf"
    option_file.write_text(f"[client]\nuser=nobody\nsocket={tmp_path}/absent.sock\n")
    settings.update(defaults_file=str(option_file), health=dict(settings["health"], disk_paths=[str(tmp_path)]))
    broken = make_backup(settings, "20261123T030000Z-full", "2026-11-23T03:00:05Z")
    with open(os.path.join(broken["path"], "manifest.json"), "w", encoding="utf-8") as handle:
        handle.write("{not json")
    outcome = jobs.health_job(settings)
    assert not outcome.ok and "manifest.json is not JSON" in outcome.problem
    alerts = open(settings["alert_log"], encoding="utf-8").read()
    assert " FIRING critical StockdbHealthCheckFailed " in alerts and "check=server" not in alerts
    assert "stockdb_health_last_status 0\n" in open(os.path.join(settings["metrics_dir"], "stockdb_health.prom"),
                                                    encoding="utf-8").read()
    os.unlink(os.path.join(broken["path"], "manifest.json"))
    assert jobs.health_job(settings).ok
    alerts = open(settings["alert_log"], encoding="utf-8").read()
    assert " FIRING warning StockdbHealthCheckBreach check=server " in alerts  # not lost with the failed run
    assert " RESOLVED critical StockdbHealthCheckFailed " in alerts


def test_an_unreadable_manifest_is_named(settings):
    broken = make_backup(settings, "20261123T030000Z-full", "2026-11-23T03:00:05Z")
    with open(os.path.join(broken["path"], "manifest.json"), "w", encoding="utf-8") as handle:
        handle.write("")
    with pytest.raises(OpsError, match=r"20261123T030000Z-full/manifest.json is not JSON"):
        catalogue.list_backups(settings)


def test_an_archive_gap_no_longer_alerts_once_a_restore_started_a_new_timeline(settings):
    archive.record_gap(settings, 1, "binlog.000003", "binlog.000005")
    assert jobs.gap_metric(settings)
    archive.start_new_timeline(settings)
    assert jobs.gap_metric(settings) is None


def test_the_stockdb_ops_command_never_imports_from_the_directory_it_was_started_in(role_vars):
    text = role_vars("backup", ansible_managed="").render("roles/backup/templates/usr/local/sbin/stockdb-ops.j2")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "cd / || exit 1" and lines[1].startswith("PYTHONPATH=/usr/local/lib/stockdb/python exec ")


def test_the_intraday_decision_is_made_under_the_lock_and_its_failure_recorded(settings, monkeypatch):
    def resolve_kind(s, kind):
        with pytest.raises(OpsError, match="another stockdb-ops job holds"):
            with host.lock(dict(settings, lock_timeout=0)):
                pass
        raise OpsError(f"the manifest of a backup is not JSON ({kind})")

    monkeypatch.setattr(backup, "resolve_kind", resolve_kind)
    with pytest.raises(OpsError, match=r"is not JSON \(auto\)"):
        jobs.backup_job(settings, "auto", here=True, intraday=True)
    metrics = open(os.path.join(settings["metrics_dir"], "stockdb_backup.prom"), encoding="utf-8").read()
    assert "stockdb_backup_failures_total 1\n" in metrics
    assert " FIRING critical StockdbBackupFailed " in open(settings["alert_log"], encoding="utf-8").read()
