"""Playbook guards and check mode, run through ansible itself on the controller (no lab host needed).

Check mode must not hide that backup, restore and simulate change something whenever they run.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

BIN = Path(sys.executable).parent  # ansible and ansible-playbook of the same environment
ENV = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
           ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")


def ansible(*args):
    command = [BIN / "ansible", "localhost", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}", *args]
    proc = subprocess.run(command, capture_output=True, text=True, env=dict(ENV, ANSIBLE_LOAD_CALLBACK_PLUGINS="1"), cwd=REPO)
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_restore_playbook_refuses_more_than_one_host(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    mariadb:\n      hosts:\n        db1: {ansible_connection: local}\n"
                         "        db2: {ansible_connection: local}\n")
    proc = subprocess.run([BIN / "ansible-playbook", "-i", str(inventory), "playbooks/restore.yml", "-e", "restore_confirm=true"],
                          capture_output=True, text=True, env=dict(ENV, ANSIBLE_STDOUT_CALLBACK="default"), cwd=REPO)
    assert proc.returncode != 0
    assert "refuses to run on 2 hosts (db1, db2): name the one to restore with --limit HOST" in proc.stdout



def playbook(tmp_path, name, *args, host_vars=None):
    """Run a playbook on three local 'database hosts' (their servers do not answer); (return code, output)."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    mariadb:\n      hosts:\n" + "".join(
        f"        {host}: {{ansible_connection: local{(', ' + host_vars[host]) if host in (host_vars or {}) else ''}}}\n"
        for host in ("db1", "db2", "db3")))
    proc = subprocess.run([BIN / "ansible-playbook", "-i", str(inventory), f"playbooks/{name}",
                           "-e", f"ansible_python_interpreter={sys.executable}", *args],
                          capture_output=True, text=True, env=dict(ENV, ANSIBLE_STDOUT_CALLBACK="default"), cwd=REPO)
    return proc.returncode, " ".join(proc.stdout.split())


@pytest.mark.parametrize("timeout", ["0", "3601", "ten"])
def test_failover_refuses_a_timeout_stockdb_promote_would_refuse_before_it_reads_or_fences(tmp_path, timeout):
    rc, out = playbook(tmp_path, "failover.yml", "-e", "failover_confirm=true", "-e", f"failover_apply_timeout={timeout}")
    assert rc != 0
    assert f"failover_apply_timeout whole seconds in 1..3600 (got {timeout})" in out
    assert "Read what this database host is in replication" not in out


def test_a_rebuild_is_refused_unless_limited_or_the_hosts_are_listed(tmp_path):
    rc, out = playbook(tmp_path, "replica_provision.yml", "-e", "mariadb_replication_primary=db1",
                       "-e", "replica_confirm_rebuild=true")
    assert rc != 0
    assert "replica_confirm_rebuild=true replaces the data of every replica it reaches: choose them" in out
    rc, out = playbook(tmp_path, "replica_provision.yml", "-e", "mariadb_replication_primary=db1",
                       "-e", "replica_confirm_rebuild=true", "-e", '{"replica_rebuild_hosts": ["db9"]}')
    assert rc != 0 and "replica_rebuild_hosts names hosts outside the mariadb group: db9" in out


@pytest.mark.parametrize("chosen, named", [(["-l", "mariadb"], False), (["-l", "db*"], False),
                                           (["-l", "db2,db3"], True), (["-e", '{"replica_rebuild_hosts": ["db3"]}'], True)])
def test_a_delayed_replica_is_rebuilt_only_when_named(tmp_path, chosen, named):
    rc, out = playbook(tmp_path, "replica_provision.yml", "-e", "mariadb_replication_primary=db1",
                       "-e", "replica_confirm_rebuild=true", *chosen, host_vars={"db3": "mariadb_replication_delay: 60"})
    assert rc != 0
    refused = "a delayed replica (mariadb_replication_delay), chosen only by a pattern" in out
    assert refused is not named, out
    # named, it passes the guard and stops at the next check: no server here answers, so no primary
    assert ("A replica is built from the one writable host" in out) is named, out


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "ops.json"
    datadir = tmp_path / "mysql"
    datadir.mkdir()
    (datadir / "ibdata1").write_text("live")
    path.write_text(json.dumps(dict(backup_dir=str(tmp_path / "backup"), datadir=str(datadir), state_dir=str(tmp_path / "s"),
                                    verify_dir=str(tmp_path / "v"), log_dir=str(tmp_path / "log"), metrics_dir="",
                                    service="stockdb-no-such-unit")))
    return path


def test_check_mode_says_a_backup_would_change_something(config):
    result = ansible("-m", "stockdb_backup", "-a", f"config={config}", "--check")
    assert result["changed"] is True and "failed" not in result, result


def test_check_mode_says_a_simulation_would_change_something(tmp_path):
    (tmp_path / "app.cnf").write_text("[client]\nuser=app\n")
    result = ansible("-m", "stockdb_simulate", "-a", f"clients=1 duration=1 ack_log={tmp_path}/ack.log "
                     f"login_defaults_file={tmp_path}/app.cnf", "--check")
    assert result["changed"] is True and "failed" not in result, result


def test_a_simulation_that_would_only_read_is_refused_naming_the_option(tmp_path):
    (tmp_path / "app.cnf").write_text("[client]\nuser=app\n")
    result = ansible("-m", "stockdb_simulate", "-a", f"clients=1 duration=1 read_share=0.99 ack_log={tmp_path}/ack.log "
                     f"login_defaults_file={tmp_path}/app.cnf", "--check")
    assert result.get("failed") and result["msg"] == "read_share=0.99 is outside 0.0..0.95", result


def test_check_mode_of_a_restore_changes_when_allowed_and_not_when_refused(config, tmp_path):
    from stockdb.ops import settings as ops_settings
    from test_ops import make_backup

    make_backup(ops_settings.load(str(config)), "20261123T030000Z-full", "2026-11-23T03:00:05Z")
    refused = ansible("-m", "stockdb_restore", "-a", f"config={config}", "--check")
    assert refused["changed"] is False and "refusing to replace the live datadir" in refused["restore"]["refused"]
    allowed = ansible("-m", "stockdb_restore", "-a", f"config={config} confirm=true", "--check")
    assert allowed["changed"] is True and allowed["restore"]["backup"] == "20261123T030000Z-full", allowed
