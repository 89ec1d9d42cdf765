"""The operations drill after Molecule's `ops` side_effect (molecule/ops/side_effect.yml).

The drill left /var/lib/stockdb/drill.json: the point P it recovered to, what the database held
at P, the backups it took during the load and what stockdb_restore returned. These tests check
the recovered database against P, then exercise the jobs the timers run (backup, verification,
health) on the same host, including a corrupted and an incomplete backup and a failed backup.
"""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from conftest import sql

ROOT = Path(__file__).resolve().parents[2]
BACKUPS = "/var/backups/stockdb/backups"
TEXTFILES = "/var/lib/prometheus/node-exporter"
ALERTS = "/var/log/stockdb/alerts.log"
SETTINGS = "/etc/stockdb/ops.json"


@pytest.fixture(scope="module")
def drill(host):
    drill_file = host.file("/var/lib/stockdb/drill.json")
    if not drill_file.exists:
        pytest.skip("no drill on this host: run `molecule test -s ops`")
    return json.loads(drill_file.content_string)


def value(host, statement):
    result = sql(host, statement)
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def metric(host, name, prom_file):
    for line in host.file(f"{TEXTFILES}/{prom_file}.prom").content_string.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    pytest.fail(f"{name} not in {prom_file}.prom")


def ops(host, args):
    return host.run("stockdb-ops " + args)


def newest_backup(host):
    return sorted(host.file(BACKUPS).listdir())[-1]


def test_recovered_exactly_to_the_point_before_the_accident(host, drill):
    restore = drill["restore"]
    assert restore["restored_gtid"] == drill["gtid_at_point"]
    accident_seqs = [int(g.rsplit("-", 1)[1]) for g in drill["accident_gtids"]]
    assert int(drill["gtid_at_point"].rsplit("-", 1)[1]) < min(accident_seqs), "the accident was replayed"
    assert int(value(host, "SELECT COUNT(*) FROM stockdb.trades")) == drill["trades_at_point"]
    assert int(value(host, "SELECT COUNT(*) FROM stockdb.cash_movements")) == drill["cash_movements_at_point"]


def test_no_acknowledged_transaction_was_lost(host, drill):
    check = drill["restore"]["check"]
    assert check["ok"], check["failures"]
    assert all(check["checks"].values())
    ack = check["ack"]
    assert ack["missing"] == 0, ack
    assert ack["orders"] > 100 and ack["trades"] > 0
    # the load had stopped before P: everything acknowledged was required, and is there
    assert ack["lines_after_until"] == 0


def test_the_restore_used_the_encrypted_incremental_chain_and_the_archived_binlogs(host, drill):
    restore = drill["restore"]
    assert restore["chain"] == [drill["full_backup"]["name"], drill["incremental_backup"]["name"]]
    assert restore["backup"] == drill["incremental_backup"]["name"]
    assert drill["incremental_backup"]["parent"] == drill["full_backup"]["name"]
    assert drill["full_backup"]["encrypted"] and drill["incremental_backup"]["encrypted"]
    # the full backup was stored prepared; the incremental was applied on top of it at restore time
    assert drill["full_backup"]["prepared"] is True and drill["incremental_backup"]["prepared"] is False
    assert restore["binlog_files"], "nothing was replayed"
    assert restore["timings"]["replay_s"] >= 0 and restore["timings"]["downtime_s"] > 0


def test_the_restore_replayed_in_parallel_and_left_no_replication_behind(host, drill):
    """MariaDB's SQL thread applied the relay-log copies (4 threads) to exactly P (the GTID test above); its
    copies, its replication settings and the server id it borrowed are gone."""
    replay = drill["restore"]["replay"]
    assert replay["method"] == "parallel" and replay["threads"] == 4, replay
    assert replay["transactions"] > 100 and replay["gtids"], replay
    assert drill["restore"]["replay_bytes"] > 0
    assert not host.file("/var/lib/mysql/stockdb-replay-relay").exists
    assert not host.file("/var/lib/mysql/master.info").exists and not host.file("/var/lib/mysql/relay-log.info").exists
    assert value(host, "SHOW ALL SLAVES STATUS") == ""
    configured = host.check_output("my_print_defaults --mysqld | sed -n 's/^--server[-_]id=//p'").strip()
    assert value(host, "SELECT @@server_id") == (configured or "1")


def test_the_replaced_datadir_is_kept_aside_with_the_accident_in_it(host, drill):
    replaced = host.file(drill["restore"]["replaced_datadir"])
    assert replaced.is_directory
    assert host.file(drill["restore"]["replaced_datadir"] + "/stockdb/trades.ibd").exists
    assert not host.file(drill["restore"]["replaced_datadir"] + "/stockdb/cash_movements.ibd").exists


def test_the_server_runs_on_a_new_binlog_timeline_with_the_archiver(host, drill):
    assert host.service("mariadb").is_running
    assert host.service("stockdb-binlog-archiver").is_running
    assert host.file("/var/backups/stockdb/binlog/CURRENT").content_string.strip() == str(drill["restore"]["timeline"])
    assert int(value(host, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")) == 1


def test_a_restore_failing_after_the_swap_put_the_previous_datadir_back(host, drill):
    message = drill["failed_restore_msg"]
    assert "before restore_to=" in message and "the failed attempt is kept in /var/lib/mysql.failed-restore-" in message
    failed_dir = message.split("kept in ", 1)[1].split(":", 1)[0]
    assert host.file(failed_dir).is_directory
    assert value(host, "SELECT @@gtid_binlog_pos") == drill["gtid_before_failed_restore"]
    assert host.file("/var/backups/stockdb/binlog/CURRENT").content_string.strip() == str(drill["restore"]["timeline"])
    assert int(value(host, "SELECT COUNT(*) FROM stockdb.trades")) == drill["trades_at_point"]


def test_the_full_backup_during_load_has_a_complete_manifest(host, drill):
    manifest = json.loads(host.file(f"{BACKUPS}/{drill['full_backup']['name']}/manifest.json").content_string)
    for key in ("started_at", "consistent_at", "finished_at", "duration_s", "size_bytes", "tools", "lsn"):
        assert manifest[key], key
    assert set(manifest["binlog"]) == {"file", "pos", "gtid"}
    assert manifest["prepared"] is True and manifest["phases"]["prepare_s"] > 0
    assert manifest["files"] and all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    assert all(name.endswith(".zst.enc") for name in manifest["files"])
    assert "orders" in manifest["checksums"]["tables"] and manifest["checksums"]["binlog_pos"] > 0
    assert "mariabackup" in manifest["tools"]["mariabackup"].lower() or "mariadb" in manifest["tools"]["mariabackup"].lower()


def test_the_logical_dump_holds_the_order_engine(host, drill):
    newest = newest_backup(host)
    iterations = json.loads(host.file(f"{BACKUPS}/{newest}/manifest.json").content_string)["encryption"].split()[-1]
    dump = f"{BACKUPS}/{newest}/logical/stockdb.sql.zst.enc"
    text = host.check_output(f"openssl enc -d -aes-256-cbc -pbkdf2 -iter {iterations} -pass file:/etc/stockdb/backup.key "
                             f"-in {dump} | zstd -dc | grep -c -E 'PROCEDURE `(place_order|cancel_order)`'")
    assert int(text) >= 2


def test_a_dump_for_test_environments_holds_no_customer_name_or_e_mail(host, drill):
    """The masked dump of the newest backup: every customer's row is there, none of their names or addresses
    (each looked for in the dump as written); the same dump unmasked holds them, so the search is a real one."""
    work = "/var/lib/stockdb/dump-test"
    host.check_output(f"rm -rf {work} && mkdir -m 700 {work}")
    try:
        host.check_output(f"mariadb -N -e 'SELECT name FROM stockdb.users; SELECT email FROM stockdb.users' > {work}/people")
        people = host.file(f"{work}/people").content_string.split("\n")
        assert len([p for p in people if "@" in p]) >= 10, "no customers to look for"
        result = json.loads(host.check_output(f"stockdb-ops dump --output {work}/masked.sql"))
        assert result["masked"] == {"users": ["email", "name"]} and result["tables"] >= 9
        dump = host.file(f"{work}/masked.sql")
        assert dump.mode == 0o600 and "CREATE TABLE `users`" in dump.content_string
        assert dump.content_string.count("@masked.invalid") >= len([p for p in people if "@" in p])
        found = host.run(f"grep -cFf {work}/people {work}/masked.sql")
        assert found.stdout.strip() == "0", f"customers' data in the masked dump: {found.stdout}"
        host.check_output(f"stockdb-ops dump --no-mask --output {work}/unmasked.sql")
        assert int(host.check_output(f"grep -cFf {work}/people {work}/unmasked.sql")) > 0
        refused = ops(host, f"dump --output {work}/masked.sql")
        assert refused.rc == 1 and "exists" in refused.stderr
        assert not host.file(f"/var/lib/stockdb-verify/dump-{result['backup']}").exists, "scratch copy left behind"
    finally:
        host.run(f"rm -rf {work}")


def test_verification_passes_and_exports_its_metrics(host, drill):
    result = ops(host, "verify")
    assert result.rc == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["problems"] == [] and report["tables"] >= 9
    assert report["replay"]["method"] == "parallel", report["replay"]  # and its checksums equal the backup's
    assert metric(host, "stockdb_backup_verify_last_status", "stockdb_backup_verify") == 1
    assert metric(host, "stockdb_backup_verify_restore_seconds", "stockdb_backup_verify") > 0
    assert not host.file(f"/var/lib/stockdb-verify/{report['backup']}").exists, "scratch left behind"


FORGE = """import hashlib, json, sys
path, rel = sys.argv[1], sys.argv[2]
manifest = json.load(open(path + "/manifest.json"))
data = open(path + "/" + rel, "rb").read()
manifest["files"][rel] = dict(size=len(data), sha256=hashlib.sha256(data).hexdigest())
json.dump(manifest, open(path + "/manifest.json", "w"))
"""


@pytest.mark.parametrize(("damage", "named"), [("corrupt", "corrupted"), ("remove", "missing"), ("forge", "tampered")])
def test_verification_catches_a_damaged_backup_naming_the_file(host, drill, damage, named):
    """A byte changed, a file removed, or a file changed with the manifest's hash changed to match (what a
    forger without the key would do): the first two fail the file hashes, the third the manifest's seal."""
    taken = json.loads(host.check_output("stockdb-ops backup"))["backup"]
    rel = "data/stockdb/orders.ibd.zst.enc"
    target = f"{BACKUPS}/{taken}/{rel}"
    if damage == "remove":
        host.check_output(f"rm {target}")
    else:
        host.check_output(f"printf 'X' | dd of={target} bs=1 seek=100 conv=notrunc status=none")
    if damage == "forge":
        host.check_output(f"python3 -c {shlex.quote(FORGE)} {BACKUPS}/{taken} {rel}")
    result = ops(host, f"verify --backup {taken}")
    assert result.rc == 1
    problems = json.loads(result.stdout)["problems"]
    assert any((rel if damage != "forge" else taken) in p and named in p for p in problems), problems
    if damage == "forge":
        assert not any(rel in p for p in problems), f"the forgery passes the file hashes, only the seal sees it: {problems}"
    assert metric(host, "stockdb_backup_verify_last_status", "stockdb_backup_verify") == 0
    last_alert = host.file(ALERTS).content_string.strip().splitlines()[-1]
    assert "FIRING critical StockdbBackupVerifyFailed" in last_alert and named in last_alert
    host.check_output(f"rm -r {BACKUPS}/{taken}")
    assert ops(host, "verify").rc == 0
    assert "RESOLVED critical StockdbBackupVerifyFailed" in host.file(ALERTS).content_string.strip().splitlines()[-1]


def test_a_failed_backup_leaves_nothing_and_reaches_the_alert_log(host, drill):
    before = sorted(host.file(BACKUPS).listdir())
    failures = metric(host, "stockdb_backup_failures_total", "stockdb_backup")
    # the backup account's option file with a wrong password
    bad_cnf = "/var/lib/stockdb/bad-backup.cnf"
    host.check_output(f"sed 's/^password.*/password = wrong-password-for-the-test/' /etc/stockdb/backup.cnf > {bad_cnf}"
                      f" && chmod 600 {bad_cnf}")
    config = json.loads(host.file(SETTINGS).content_string)
    config["defaults_file"] = bad_cnf
    host.check_output(f"echo {shlex.quote(json.dumps(config))} > /var/lib/stockdb/bad-backup.json")
    # asking whether this host is the backup source is the first login: it fails there, naming the account
    result = ops(host, "--config /var/lib/stockdb/bad-backup.json backup")
    assert result.rc == 1 and f"cannot connect to MariaDB with the account of {bad_cnf}" in result.stderr
    # --here skips that question: mariabackup itself fails
    result = ops(host, "--config /var/lib/stockdb/bad-backup.json backup --here")
    assert result.rc == 1 and "mariabackup exited" in result.stderr
    assert sorted(host.file(BACKUPS).listdir()) == before, "a failed backup left a directory"
    assert metric(host, "stockdb_backup_last_status", "stockdb_backup") == 0
    assert metric(host, "stockdb_backup_failures_total", "stockdb_backup") == failures + 2
    assert "FIRING critical StockdbBackupFailed" in host.file(ALERTS).content_string.strip().splitlines()[-1]
    assert "FAILED type=full" in host.file("/var/log/stockdb/backup.log").content_string.strip().splitlines()[-1]
    assert ops(host, "backup").rc == 0
    assert "RESOLVED critical StockdbBackupFailed" in host.file(ALERTS).content_string.strip().splitlines()[-1]
    assert metric(host, "stockdb_backup_last_status", "stockdb_backup") == 1
    host.check_output("rm -f /var/lib/stockdb/bad-backup.cnf /var/lib/stockdb/bad-backup.json")


def test_the_health_check_reports_every_check(host, drill):
    result = ops(host, "health")
    assert result.rc == 0, result.stderr
    assert " health " in result.stdout
    text = host.file(f"{TEXTFILES}/stockdb_health.prom").content_string
    for check in ("server", "connections", "slow_queries", "long_transactions", "lock_waits", "disk", "replication",
                  "rto"):
        assert f'stockdb_health_check_ok{{check="{check}"}}' in text
    assert metric(host, "stockdb_binlog_archive_lag_bytes", "stockdb_binlog_archive") >= 0
    assert host.file("/var/log/stockdb/health.log").contains(" health ")


def test_the_health_check_estimates_the_recovery_time_from_what_this_host_measured(host, drill):
    """rto = the last verification's restore + the binlog archived since the newest backup at the slowest recent
    replay rate; the drill's restore (to P, through the load after the incremental) measured a rate."""
    result = ops(host, "health")
    assert result.rc == 0, result.stderr
    samples = json.loads(host.file("/var/lib/stockdb/ops/replay-rate.json").content_string)["samples"]
    assert any(s["source"].startswith("restore ") for s in samples), samples
    assert min(s["bytes"] for s in samples) >= 1 << 20
    rate, pending = (metric(host, name, "stockdb_backup_rto") for name in
                     ("stockdb_backup_rto_replay_bytes_per_second", "stockdb_backup_rto_pending_bytes"))
    restore_s = json.loads(host.file("/var/lib/stockdb/ops/verify.json").content_string)["restore_s"]
    assert rate == min(s["bytes_per_s"] for s in samples)
    assert metric(host, "stockdb_backup_rto_seconds", "stockdb_backup_rto") == round(restore_s + pending / rate, 1)
    assert metric(host, "stockdb_backup_rto_target_seconds", "stockdb_backup_rto") == 900
    assert re.search(r" rto=[0-9.]+/900", result.stdout), result.stdout


def test_a_long_transaction_is_a_breach_that_reaches_the_alert_log(host, drill):
    # the ops scenario sets long_transaction_seconds to 5: hold one open for 15 s in the background
    threshold = json.loads(host.file(SETTINGS).content_string)["health"]["long_transaction_seconds"]
    host.check_output("(mariadb stockdb -e 'START TRANSACTION; SELECT COUNT(*) FROM orders FOR UPDATE; "
                      f"SELECT SLEEP({threshold + 10}); ROLLBACK' >/dev/null 2>&1 &)")
    host.check_output(f"sleep {threshold + 3}")
    result = ops(host, "health")
    assert "BREACH" in result.stdout and "long_transactions=1/" in result.stdout, result.stdout
    assert "FIRING warning StockdbHealthCheckBreach check=long_transactions" in host.file(ALERTS).content_string
    host.check_output("sleep 10")
    assert ops(host, "health").rc == 0
    assert "RESOLVED warning StockdbHealthCheckBreach check=long_transactions" in host.file(ALERTS).content_string


def test_the_timers_are_scheduled(host, drill):
    timers = host.check_output("systemctl list-timers --all --no-pager")
    for timer in ("stockdb-backup.timer", "stockdb-backup-intraday.timer", "stockdb-backup-verify.timer",
                  "stockdb-healthcheck.timer"):
        assert timer in timers
        assert host.service(timer).is_enabled
    assert "OnCalendar=*-*-* 03:00:00 " in host.check_output("systemctl show -p TimersCalendar stockdb-backup.timer")
    assert "Asia/Seoul" in host.check_output("systemctl show -p TimersCalendar stockdb-backup-intraday.timer")
    # the role's default intraday calendar (the tests set one far ahead): every 30 minutes of the KRX session
    default = yaml.safe_load((ROOT / "roles/backup/defaults/main.yml").read_text())["backup_intraday_on_calendar"]
    runs = host.check_output(f"TZ=UTC systemd-analyze calendar --iterations=14 '{default}'")
    times = re.findall(r"(?:Next elapse|Iter\. #\d+): \w{3} \S+ (\d\d:\d\d):00 UTC", runs)
    assert sorted(times) == [f"{h:02d}:{m:02d}" for h in range(7) for m in (0, 30)], runs  # 09:00..15:30 KST
    # verification twice: after the night's full, and (the tests set it far ahead) after the session, of the day's chain
    verify = host.check_output("systemctl show -p TimersCalendar stockdb-backup-verify.timer")
    assert "*-*-* 04:30:00" in verify and "2099-01-01 16:00:00 Asia/Seoul" in verify, verify
    default = yaml.safe_load((ROOT / "roles/backup/defaults/main.yml").read_text())["backup_verify_intraday_on_calendar"]
    runs = host.check_output(f"TZ=UTC systemd-analyze calendar --iterations=5 '{default}'")
    assert set(re.findall(r"(?:Next elapse|Iter\. #\d+): (\w{3}) \S+ (\d\d:\d\d):00 UTC", runs)) == {
        (day, "07:00") for day in ("Mon", "Tue", "Wed", "Thu", "Fri")}, runs  # 16:00 KST, after the last at 15:30
    # under memory pressure the kernel kills a job, never MariaDB
    for job in ("stockdb-backup", "stockdb-backup-intraday", "stockdb-backup-verify", "stockdb-healthcheck"):
        assert host.check_output(f"systemctl show -p OOMScoreAdjust {job}.service").strip() == "OOMScoreAdjust=1000"


@pytest.mark.parametrize("job", ["stockdb-healthcheck", "stockdb-backup", "stockdb-backup-intraday",
                                 "stockdb-backup-verify"])
def test_each_job_works_inside_its_sandboxed_unit(host, drill, job):
    """What the timers start: the unit (read-only system, a few writable paths, few capabilities) runs the job."""
    log = {"stockdb-healthcheck": "health", "stockdb-backup": "backup", "stockdb-backup-intraday": "backup",
           "stockdb-backup-verify": "verify"}[job]
    before = host.run(f"wc -l < /var/log/stockdb/{log}.log").stdout.strip() or "0"
    started = host.run(f"systemctl start {job}.service")  # a oneshot: returns when the job is done
    status = host.run(f"systemctl status --no-pager -n 20 {job}.service").stdout
    assert started.rc == 0, f"{job} failed in its unit: {started.stderr}\n{status}"
    assert host.check_output(f"systemctl show -p Result --value {job}.service").strip() == "success"
    assert host.check_output(f"systemctl show -p ProtectSystem --value {job}.service").strip() == "strict"
    lines = host.file(f"/var/log/stockdb/{log}.log").content_string.splitlines()[int(before):]
    assert lines and "FAILED" not in lines[-1], lines
    if job == "stockdb-backup-intraday":  # the scenario's host is the primary: it takes the backup
        # backup_intraday_table_checksums and backup_intraday_compress: false - neither the scan of every trading
        # table nor zstd runs during trading; the verification job after it restores this chain (compressed full,
        # uncompressed incremental)
        stamp, outcome, name = lines[-1].split()[:3]
        assert outcome == "OK", lines[-1]
        manifest = json.loads(host.file(f"{BACKUPS}/{name}/manifest.json").content_string)
        assert (manifest["checksums"], manifest["compress"]) == (None, None), manifest
    if job == "stockdb-backup-verify":  # the newest backup: the intraday one, restored on its compressed full
        assert lines[-1].split()[1:3] == ["OK", newest_backup(host)] and "incremental" in newest_backup(host), lines[-1]


def test_the_health_check_reports_a_stopped_server_instead_of_failing_itself(host, drill):
    host.check_output("systemctl stop mariadb")
    try:
        result = ops(host, "health")
        assert result.rc == 1 and "health BREACH server=1/0" in result.stdout, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        last = host.file(ALERTS).content_string.strip().splitlines()[-1]
        assert "FIRING warning StockdbHealthCheckBreach check=server" in last and "MariaDB error" in last
        assert metric(host, "stockdb_health_last_status", "stockdb_health") == 1  # the job itself ran
        assert 'stockdb_health_check_ok{check="server"} 0' in host.file(f"{TEXTFILES}/stockdb_health.prom").content_string
    finally:
        host.check_output("systemctl start mariadb")
    assert ops(host, "health").rc == 0
    assert "RESOLVED warning StockdbHealthCheckBreach check=server" in host.file(ALERTS).content_string


def test_a_backup_killed_midway_is_swept_and_alerted_by_the_health_check(host, drill):
    failures = metric(host, "stockdb_backup_failures_total", "stockdb_backup")
    # the whole job (stockdb-ops and mariabackup) killed, as the OOM killer and systemd would leave it
    host.check_output("setsid stockdb-ops backup >/dev/null 2>&1 & pid=$!; "
                      "for i in $(seq 1 50); do ls -d /var/backups/stockdb/backups/.partial-* >/dev/null 2>&1 && break; "
                      "sleep 0.2; done; sleep 1; kill -9 -$pid; sleep 1")
    partial = host.run("ls -d /var/backups/stockdb/backups/.partial-*").stdout.split()
    assert partial, "the killed backup left no partial directory to sweep"
    assert ops(host, "health").rc == 0
    assert not host.run("ls -d /var/backups/stockdb/backups/.partial-*").stdout.strip()
    assert metric(host, "stockdb_backup_failures_total", "stockdb_backup") == failures + 1
    last = host.file(ALERTS).content_string.strip().splitlines()[-1]
    assert "FIRING critical StockdbBackupFailed" in last and "interrupted" in last
    assert ops(host, "backup").rc == 0
    assert "RESOLVED critical StockdbBackupFailed" in host.file(ALERTS).content_string.strip().splitlines()[-1]


def test_only_root_and_the_scratch_server_can_read_a_verification(host, drill):
    scratch = host.file(json.loads(host.file(SETTINGS).content_string)["verify_dir"])
    assert (scratch.user, scratch.group, scratch.mode) == ("root", "mysql", 0o750)
