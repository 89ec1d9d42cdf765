"""The failure-injection drills at the end of Molecule's `default` side_effect
(molecule/default/side_effect.yml).

playbooks/chaos.yml left /var/lib/stockdb/drills/last.json: one result per drill. These tests check
that every fault was drilled and met its targets, and that the host is as before: no fault's unit,
filler file or session left, the exporter and the server running, the alerts in the alert log.
"""

import json

import pytest
from conftest import sql

# The faults molecule/default/side_effect.yml drills: all of them.
FAULTS = {"query_storm", "connection_flood", "lock_storm", "disk_full", "crash", "exporter_down", "cpu_hog", "io_hog"}
RESULTS = "/var/lib/stockdb/drills/last.json"
ALERTS = "/var/log/stockdb/alerts.log"


@pytest.fixture(scope="module")
def drills(host):
    results = host.file(RESULTS)
    if not results.exists:
        pytest.skip("no drills on this host: run `make molecule SCENARIOS=default`")
    return json.loads(results.content_string)


def test_chaos_every_fault_was_drilled(drills):
    assert {d["fault"] for d in drills} == FAULTS


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_chaos_drill_met_its_targets(drills, fault):
    for d in (d for d in drills if d["fault"] == fault):
        assert d["time_to_alert_s"] is not None and d["time_to_alert_s"] <= d["budgets"]["alert_s"], d["alert"]
        recover = d["time_to_recover_s"]["from_remediation"]
        assert recover is not None and recover <= d["budgets"]["recover_s"]
        assert d["acknowledged_lost"] == 0
        assert d["invariants_ok"]
        assert d["left_behind"] == []
        assert d["orders_per_s"]["before"] > 0


def test_chaos_each_alert_is_in_the_alert_log(host, drills):
    log = host.file(ALERTS).content_string
    for d in drills:
        stamp = d["alerted_at"][:19] + "Z"
        assert f"{stamp} FIRING" in log and f" {d['alert']} " in log, (d["fault"], d["alert"], stamp)


def test_chaos_nothing_is_left_on_the_host(host):
    units = host.run("systemctl list-units --all --plain --no-legend 'stockdb-chaos-*'")
    assert units.rc == 0 and units.stdout.strip() == ""
    assert not host.file("/var/lib/mysql/stockdb-chaos.filler").exists
    assert not host.file("/run/stockdb-chaos").exists
    sessions = sql(host, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'stockdb_chaos'")
    assert sessions.rc == 0 and sessions.stdout.strip() == "0"
    for service in ("mariadb", "prometheus-mysqld-exporter", "prometheus-node-exporter"):
        assert host.service(service).is_running, service


def test_chaos_the_lock_storm_was_rolled_back(drills):
    """Killing the blocker rolled its transaction back: the rows it had changed hold their old values."""
    for d in (d for d in drills if d["fault"] == "lock_storm"):
        rollback = d.get("rollback") or {}
        assert rollback.get("rows_modified", 0) > 0
        assert rollback.get("restored") is True, rollback
