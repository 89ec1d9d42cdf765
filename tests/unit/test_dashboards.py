"""Dashboards as code: well-formed, wired to the provisioned datasource, every panel queried.

That every query returns data is proven against the live Prometheus by
tests/integration/test_stack.py::test_every_dashboard_panel_query_returns_data.
"""

import json

import pytest
import yaml
from conftest import REPO

DASHBOARDS = sorted((REPO / "files/grafana/dashboards").glob("*.json"))
DATASOURCE_UID = yaml.safe_load((REPO / "roles/grafana/vars/main.yml").read_text())["_grafana_datasource_uid"]
# What the seed asks to see: DB CPU, connections, query response time, errors (plus QPS, InnoDB, disk, host).
REQUIRED_METRICS = [
    "node_cpu_seconds_total",
    "mysql_global_status_threads_connected",
    "mysql_global_status_queries",
    "mysql_perf_schema_events_statements_sum_timer_wait",
    "mysql_global_status_aborted_connects",
    "mysql_global_status_innodb_row_lock_waits",
    "node_filesystem_avail_bytes",
    "node_memory_MemAvailable_bytes",
]


def test_there_are_dashboards():
    assert DASHBOARDS


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_wired_to_the_provisioned_datasource(path):
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids repeat"
    for panel in panels:
        assert panel["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID
            assert target["expr"].strip(), panel["title"]


def test_dashboards_cover_what_the_seed_asks_to_see():
    exprs = " ".join(t["expr"] for p in DASHBOARDS for panel in json.loads(p.read_text())["panels"]
                     for t in panel["targets"])
    missing = [m for m in REQUIRED_METRICS if m not in exprs]
    assert not missing, f"no panel shows {missing}"


def test_panels_do_not_overlap():
    for path in DASHBOARDS:
        cells = set()
        for panel in json.loads(path.read_text())["panels"]:
            g = panel["gridPos"]
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not cells & mine, f"{path.name}: {panel['title']} overlaps another panel"
            cells |= mine
