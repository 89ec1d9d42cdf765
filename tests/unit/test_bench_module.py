"""library/stockdb_bench.py through Ansible itself on the controller: its checks, check mode, and each
action wired to the real AnsibleModule, with stand-ins for sysbench and stockdb-ops on PATH."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from test_bench import SEED, SIMULATOR, SYSBENCH, SYSBENCH_REPORT, backup_measured

BIN = Path(sys.executable).parent


def bench(tmp_path, args, *extra, path=None):
    """Run stockdb_bench on localhost; returns the task result (and the module's stdout when it failed)."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_LOCALHOST_WARNING="false", HOME=str(tmp_path),
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", PATH=f"{path}:{BIN}:/usr/bin:/bin" if path else f"{BIN}:/usr/bin:/bin")
    proc = subprocess.run([BIN / "ansible", "localhost", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
                           "-m", "stockdb_bench", "-a", json.dumps(args) if isinstance(args, dict) else args, *extra],
                          capture_output=True, text=True, env=env, cwd=REPO)
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def tool(directory, name, script, shebang="#!/bin/sh\n"):
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(shebang + script)
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("args, message", [
    ("action=sysbench login_user=u login_password=p threads=0", "threads=0 is outside 1..256"),
    ("action=sysbench login_user=u login_password=p duration=7200", "duration=7200 is outside 1..3600"),
    ("action=sysbench login_user=u login_password=p table_size=0", "table_size=0 is outside 1..10000000"),
    ("action=sysbench", "action is sysbench but all of the following are missing: login_user, login_password"),
    ("action=sysbench login_user=u login_password=p workload=tpcc", "value of workload must be one of"),
    ("action=cold_copy dest=/tmp/x login_user=u", "action=cold_copy does not take login_user"),
    ("action=backups config=/nonexistent/ops.json", "config /nonexistent/ops.json does not exist"),
    ("action=backups config=/etc/hostname duration=60 timeout=30", "timeout=30 is shorter than duration=60"),
    ("action=backups config=/etc/hostname max_backups=0", "max_backups=0 is outside 1..1000"),
    ("action=backups config=/etc/hostname ack_log=/tmp/a", "action=backups does not take ack_log"),
    ("action=alternate config=/etc/hostname", "action is alternate but all of the following are missing: ack_log"),
    ("action=alternate config=/etc/hostname ack_log=/tmp/a quiet=0", "quiet=0 is outside 1..600"),
    ("action=result kind=engine host=h output_dir=/nonexistent",
     "action is result but all of the following are missing: measured"),
    ({"action": "result", "kind": "engine", "host": "h", "output_dir": "/nonexistent", "measured": {"clients": 1}},
     "result: measured: missing duration_s, sysbench, table_size, tables"),
])
def test_bad_parameters_fail_naming_them(tmp_path, args, message):
    result = bench(tmp_path, args)
    assert result.get("failed") and message in result["msg"], result


def test_check_mode_runs_nothing_and_says_a_run_changes_something(tmp_path):
    marker = tmp_path / "ran"
    tools = tmp_path / "bin"
    tool(tools, "sysbench", f"touch {marker}\n")
    result = bench(tmp_path, "action=sysbench login_user=u login_password=p", "--check", path=tools)
    assert result["changed"] is True and "failed" not in result and not marker.exists(), result


def test_sysbench_gets_its_credentials_from_a_private_file_and_its_figures_are_read(tmp_path):
    tools = tmp_path / "bin"
    calls = tmp_path / "calls"
    report = tmp_path / "report.txt"
    report.write_text(SYSBENCH_REPORT)
    # the stand-in records its arguments, the config file's mode and content, and prints a real report for `run`
    tool(tools, "sysbench", f"""import os, sys
cfg = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--config-file=")][0]
with open({str(calls)!r}, "a") as log:
    log.write(" ".join(sys.argv[1:]) + " | " + oct(os.stat(cfg).st_mode & 0o777)[2:] + " | "
              + open(cfg).read().replace("\\n", " ") + "\\n")
if sys.argv[-1] == "run":
    print(open({str(report)!r}).read())
""", shebang=f"#!{sys.executable}\n")
    result = bench(tmp_path, {"action": "sysbench", "login_user": "stockdb_bench", "login_password": "Secret123",
                              "threads": 2, "tables": 2, "table_size": 10000, "duration": 10}, path=tools)
    assert result["changed"] is True and result["tps"] == 1241.26 and result["p99_ms"] == 7.7, result
    lines = calls.read_text().splitlines()
    assert [line.split(" | ")[0].split()[-1] for line in lines] == ["prepare", "run", "cleanup"]
    assert all(line.split(" | ")[1:] == ["600", "mysql-user=stockdb_bench mysql-password=Secret123 "] for line in lines)
    assert "Secret123" not in " ".join(line.split(" | ")[0] for line in lines)
    assert "--time=10" in lines[1] and "--threads=2" in lines[1] and "--mysql-socket=/run/mysqld/mysqld.sock" in lines[1]
    config = lines[0].split("--config-file=")[1].split()[0]
    assert not os.path.exists(config) and not os.path.exists(os.path.dirname(config))


def test_backups_run_back_to_back_with_the_settings_given(tmp_path):
    tools = tmp_path / "bin"
    calls = tmp_path / "calls"
    tool(tools, "stockdb-ops", f'echo "$*" >> {calls}; sleep 0.4; echo \'{{"backup": "B", "duration_s": 0.4}}\'\n')
    config = tmp_path / "ops-bench.json"
    config.write_text("{}")
    result = bench(tmp_path, f"action=backups config={config} duration=1", path=tools)
    assert result["changed"] is True and result["count"] >= 2 and result["runs"][0]["backup"] == "B", result
    assert set(calls.read_text().splitlines()) == {f"--config {config} backup"}


def test_incrementals_alternate_with_quiet_windows_and_the_orders_of_each_are_counted(tmp_path):
    tools = tmp_path / "bin"
    calls = tmp_path / "calls"
    tool(tools, "stockdb-ops", f'echo "$*" >> {calls}; sleep 0.5; '
                               'echo \'{"backup": "B", "type": "incremental", "phases": {"copy_s": 0.4}}\'\n')
    config = tmp_path / "ops-bench.json"
    config.write_text("{}")
    ack_log = tmp_path / "ack.log"
    # a stand-in for the simulator: 50 orders/s into the ack log for 12 s, from now
    writer = subprocess.Popen([sys.executable, "-c", f"""import datetime, time
with open({str(ack_log)!r}, "a", buffering=1) as log:
    for i in range(600):
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        log.write('{{"kind": "order", "id": %d, "status": "NEW", "committed_at": "%s", "client": 0}}\\n' % (i, now))
        time.sleep(0.02)
"""])
    try:
        result = bench(tmp_path, dict(action="alternate", config=str(config), ack_log=str(ack_log), quiet=1, duration=6),
                       path=tools)
    finally:
        writer.wait(timeout=30)
    assert result["changed"] is True, result
    windows = result["windows"]
    # Q 0-1, B 1-1.5, Q 1.5-2.5, B 2.5-3, Q 3-4 (at about 4, the longest window so far and a quiet one end after 6)
    assert len(windows) >= 5 and [w["kind"] for w in windows] == ["quiet", "backup"] * (len(windows) // 2) + ["quiet"]
    assert all(w["orders"] > 0 and 20 < w["orders_per_s"] < 60 for w in windows), windows
    assert result["figures"]["cycles"] == len(windows) // 2 and result["figures"]["backup_types"] == ["incremental"]
    assert set(calls.read_text().splitlines()) == {f"--config {config} backup --type incremental --intraday"}
    # nothing to count: an ack log that is not there is named
    missing = bench(tmp_path, dict(action="alternate", config=str(config), ack_log=str(tmp_path / "none.log"), quiet=1,
                                   duration=4), path=tools)
    assert missing.get("failed") and f"cannot read the ack log {tmp_path / 'none.log'}" in missing["msg"], missing


def test_the_cold_copy_copies_the_data_files(tmp_path):
    datadir = tmp_path / "mysql"
    (datadir / "stockdb").mkdir(parents=True)
    (datadir / "stockdb" / "orders.ibd").write_bytes(b"o" * 4096)
    (datadir / "ib_logfile0").write_bytes(b"r" * 4096)
    result = bench(tmp_path, {"action": "cold_copy", "datadir": str(datadir), "dest": str(tmp_path / "copy"), "services": []})
    assert result["changed"] is True and result["bytes"] >= 4096 and result["seconds"] >= 0, result
    assert (tmp_path / "copy" / "stockdb" / "orders.ibd").is_file() and not (tmp_path / "copy" / "ib_logfile0").exists()
    # tar keeps the datadir's owners and modes, so the copy is no more readable than the datadir
    assert stat.S_IMODE((tmp_path / "copy").stat().st_mode) == stat.S_IMODE(datadir.stat().st_mode)


@pytest.mark.parametrize("kind, measured, name", [
    ("engine", dict(clients=8, duration_s=30, tables=4, table_size=100000, sysbench=SYSBENCH, simulator=SIMULATOR, seed=SEED),
     "benchmark-stockdb-lab-20261201T100000Z.json"),
    ("backup", backup_measured(), "backup-benchmark-stockdb-lab-20261201T100000Z.json"),
])
def test_the_result_is_written_as_json_with_its_summary(tmp_path, kind, measured, name):
    args = dict(action="result", kind=kind, host="stockdb-lab", started_at="2026-12-01T10:00:00Z",
                output_dir=str(tmp_path / "out"), measured=measured)
    checked = bench(tmp_path, args, "--check")
    assert checked["changed"] is True and not (tmp_path / "out" / name).exists(), checked
    result = bench(tmp_path, args)
    assert result["file"] == str(tmp_path / "out" / name), result
    assert json.loads((tmp_path / "out" / name).read_text()) == result["result"]
    assert result["summary"][-1] == f"written to {tmp_path / 'out' / name}"
    assert result["result"]["ratio" if kind == "engine" else "hot_backup_ratio"] in (0.5462, 0.848)
