"""Every module documents itself (ansible-doc renders it) and its options match its argument spec."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

MODULES = sorted(p.stem for p in (REPO / "library").glob("stockdb_*.py"))
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_the_module(module):
    result = subprocess.run([str(BIN / "ansible-doc"), "-M", str(REPO / "library"), "--json", module],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)[module]
    assert doc["doc"]["short_description"]
    assert doc["examples"].strip() and doc["return"], f"{module} lacks EXAMPLES or RETURN"


@pytest.mark.parametrize("module", MODULES)
def test_bad_parameters_fail_with_a_message_naming_them(module, tmp_path):
    """Run the real module through Ansible on localhost with an out-of-range parameter."""
    bad = {"stockdb_schema": "target_version=1",  # and no migrations: required_one_of
           "stockdb_seed": "users=0",
           "stockdb_simulate": "clients=0",
           "stockdb_check": "checks=no_such_check",
           "stockdb_backup": "action=verify backup=yesterday",
           "stockdb_restore": "restore_to=yesterday confirm=true",
           "stockdb_bench": "action=sysbench login_user=u login_password=p threads=0",
           "stockdb_drill_report": 'results={"fault":"meteor"} dest=/tmp/stockdb-drill-report',
           "stockdb_sessions": "min_time=-1",
           "stockdb_drill": "action=measure ack_log=/nowhere load_started_at=yesterday",
           "stockdb_chaos": "fault=cpu_hog confirm=true duration=601",
           "stockdb_baseline": "max_password_errors=0",
           "stockdb_query_report": "window_s=1 top=0",
           "stockdb_tune": "read=open_orders table=orders index=ix-bad columns=account_id",
           "stockdb_experiment": "action=plan param=Bad-Name values=1",
           "stockdb_promote": "wait_gtid=yesterday",
           "stockdb_stop_point": "applied_pos=0-1-5 before_time=yesterday",
           "stockdb_files": '{"files": [{"path": "relative/x", "content": "a", "mode": "0644"}]}',
           "stockdb_accounts": '{"login_unix_socket": "/nowhere", "absent": '
                               '[{"user": "app", "host": "h"}, {"user": "app", "host": "H"}]}'}[module]
    result = subprocess.run([str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-m", module,
                             "-a", bad], capture_output=True, text=True, cwd=REPO,
                            env={"PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                                 "HOME": str(tmp_path)})
    assert result.returncode != 0
    named = {"stockdb_schema": "migrations", "stockdb_seed": "users", "stockdb_simulate": "clients=0",
             "stockdb_check": "no_such_check", "stockdb_backup": "backup='yesterday'",
             "stockdb_restore": "restore_to='yesterday'", "stockdb_bench": "threads=0",
             "stockdb_drill": "load_started_at='yesterday'",
             "stockdb_drill_report": "meteor", "stockdb_sessions": "min_time=-1", "stockdb_chaos": "duration=601",
             "stockdb_baseline": "max_password_errors=0",
             "stockdb_query_report": "top=0 is outside 1..50",
             "stockdb_tune": "index 'ix-bad' is not a plain identifier",
             "stockdb_experiment": "'Bad-Name' is not a server variable name",
             "stockdb_promote": "wait_gtid='yesterday' is not a GTID position",
             "stockdb_stop_point": "before_time 'yesterday' is not an ISO 8601 time",
             "stockdb_files": "path 'relative/x' must be an absolute",
             "stockdb_accounts": "absent names 'app'@'h' more than once"}[module]
    assert named in result.stdout, result.stdout
