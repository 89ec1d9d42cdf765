"""library/stockdb_chaos.py and its action plugin through Ansible itself on the controller: the refusals
(nothing injected), the inventory groups coming from the inventory, check mode, and a fault wired to
stand-ins for systemd-run, systemctl and stress-ng on PATH (nothing runs for real)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

BIN = Path(sys.executable).parent

SYSTEMD_RUN = """#!/bin/sh
echo "systemd-run $*" >> "$CHAOS_CALLS"
for a in "$@"; do case "$a" in --unit=*) echo active > "$CHAOS_UNITS/${a#--unit=}" ;; esac; done
"""
SYSTEMCTL = """#!/bin/sh
echo "systemctl $*" >> "$CHAOS_CALLS"
case "$1" in
  is-active) if [ -f "$CHAOS_UNITS/$2" ]; then s=$(cat "$CHAOS_UNITS/$2"); else s=inactive; fi
             echo "$s"; [ "$s" = active ] ;;
  stop) echo inactive > "$CHAOS_UNITS/$2" ;;
  start) echo active > "$CHAOS_UNITS/$2" ;;
  show) echo 0 ;;
esac
"""


@pytest.fixture
def host(tmp_path):
    """An inventory with localhost in chaos_targets, and stand-in tools that record their calls."""
    tools = tmp_path / "bin"
    units = tmp_path / "units"
    tools.mkdir()
    units.mkdir()
    for name, script in (("systemd-run", SYSTEMD_RUN), ("systemctl", SYSTEMCTL), ("journalctl", "#!/bin/sh\n"),
                         ("stress-ng", "#!/bin/sh\nexit 1\n")):
        (tools / name).write_text(script)
        (tools / name).chmod(0o755)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    mariadb:\n      hosts:\n        localhost:\n    chaos_targets:\n"
                         "      hosts:\n        localhost:\n  vars:\n    ansible_connection: local\n"
                         f"    ansible_python_interpreter: {sys.executable}\n")
    return tmp_path


def chaos(tmp_path, args, *extra, inventory=None, tools=True):
    """Run stockdb_chaos on localhost; returns the task result."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_LOCALHOST_WARNING="false", HOME=str(tmp_path),
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", CHAOS_CALLS=str(tmp_path / "calls"),
               CHAOS_UNITS=str(tmp_path / "units"),
               PATH=f"{tmp_path / 'bin'}:{BIN}:/usr/bin:/bin" if tools else f"{BIN}:/usr/bin:/bin")
    if isinstance(args, dict):
        args = dict(args, state_dir=str(tmp_path / "state"))
    else:
        args = f"{args} state_dir={tmp_path / 'state'}"
    proc = subprocess.run([BIN / "ansible", "localhost", "-i", str(inventory or tmp_path / "hosts.yml"),
                           "-m", "stockdb_chaos", "-a", json.dumps(args) if isinstance(args, dict) else args, *extra],
                          capture_output=True, text=True, env=env, cwd=REPO)
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def calls(tmp_path):
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("args, message", [
    ("fault=no_such_fault confirm=true", "value of fault must be one of: query_storm, connection_flood, lock_storm, disk_full, "
                                         "crash, exporter_down, cpu_hog, io_hog, got: no_such_fault"),
    ("fault=cpu_hog", "confirm=true is required to inject cpu_hog into localhost; nothing injected"),
    ("fault=cpu_hog confirm=true duration=601", "duration=601 is over the cap max_duration=600; nothing injected"),
    ("fault=cpu_hog confirm=true duration=900 max_duration=800", "duration=900 is over the cap max_duration=800"),
    ("fault=disk_full confirm=true path=/etc", "disk_full: /etc is on the root filesystem"),
    ("fault=crash confirm=true sessions=4", "fault=crash does not take sessions"),
    ("confirm=true", "state is present but all of the following are missing: fault"),
])
def test_bad_input_is_refused_naming_it_and_nothing_is_injected(host, args, message):
    result = chaos(host, args)
    assert result.get("failed") and message in result["msg"], result
    assert not any(call.startswith("systemd-run") or " kill " in call for call in calls(host))


def test_a_host_outside_chaos_targets_is_refused(host):
    inventory = host / "outside.yml"
    inventory.write_text("all:\n  children:\n    mariadb:\n      hosts:\n        localhost:\n  vars:\n"
                         f"    ansible_connection: local\n    ansible_python_interpreter: {sys.executable}\n")
    result = chaos(host, "fault=crash confirm=true", inventory=inventory)
    assert result.get("failed"), result
    assert result["msg"] == ("host localhost is not in the inventory group chaos_targets (its groups: mariadb); "
                             "add it there to allow faults on it; nothing injected")
    assert calls(host) == []


def test_the_groups_come_from_the_inventory_not_from_the_task(host):
    result = chaos(host, {"fault": "crash", "confirm": True, "inventory_groups": ["chaos_targets"]})
    assert result.get("failed") and "takes inventory_groups from the inventory, not from the task" in result["msg"], result


@pytest.mark.skipif(shutil.which("stress-ng") is not None, reason="stress-ng is installed on this machine")
def test_a_missing_stress_ng_is_named_with_its_package(host):
    (host / "bin" / "stress-ng").unlink()
    result = chaos(host, "fault=io_hog confirm=true duration=10")
    assert result.get("failed"), result
    assert result["msg"] == "io_hog needs stress-ng on the host (Debian/Ubuntu package stress-ng); nothing injected"


def test_check_mode_starts_nothing_and_says_a_run_would_change_something(host):
    result = chaos(host, "fault=cpu_hog confirm=true duration=10 workers=1", "--check")
    assert result["changed"] is True and "failed" not in result, result
    assert result["command"][1:] == ["--cpu", "1", "--cpu-load", "100", "--timeout", "10s", "--metrics-brief"]
    assert not any(call.startswith("systemd-run") for call in calls(host))


def test_a_fault_runs_in_its_unit_once_and_removal_stops_it(host):
    result = chaos(host, "fault=cpu_hog confirm=true duration=10 workers=1 cpu_load=50")
    assert result["changed"] is True and result["unit"] == "stockdb-chaos-cpu_hog.service", result
    assert result["injected_at"].endswith("Z") and result["expires_at"].endswith("Z")
    started = [call for call in calls(host) if call.startswith("systemd-run")]
    assert len(started) == 1 and "--property=RuntimeMaxSec=15" in started[0]
    assert started[0].endswith(f"-- {host / 'bin' / 'stress-ng'} --cpu 1 --cpu-load 50 --timeout 10s --metrics-brief")

    again = chaos(host, "fault=cpu_hog confirm=true duration=10 workers=1 cpu_load=50")
    assert again["changed"] is False and again["already_active"] is True, again

    planned = chaos(host, "state=absent fault=cpu_hog", "--check")
    assert planned["changed"] is True and planned["removed"][0]["done"] == ["stop unit stockdb-chaos-cpu_hog.service"]
    removed = chaos(host, "state=absent fault=cpu_hog")
    assert removed["changed"] is True and removed["removed"][0]["done"] == ["stopped unit stockdb-chaos-cpu_hog.service"]
    assert removed["removed_at"].endswith("Z") and removed["removed"][0]["injected_at"] == result["injected_at"]
    assert not (host / "state").exists()
    assert chaos(host, "state=absent")["changed"] is False
