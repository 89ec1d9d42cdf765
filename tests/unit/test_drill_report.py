"""The drill report (module_utils/stockdb/drill_report.py and library/stockdb_drill_report.py): the checks of the
results, the verdict of a run and of a fault, min / median / max, the Markdown, the pictures, determinism."""

import copy
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import REPO
from stockdb import chaos
from stockdb import drill_report as report
from stockdb.stats import spread

BIN = Path(sys.executable).parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
START = datetime(2026, 12, 2, 10, 15, 0, tzinfo=timezone.utc)


def utc(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def drill(fault="query_storm", run=1, host="stockdb-lab", alert_s=12.5, remediation_s=14.0, recover_s=8.0,
          lost=0, minutes=0, **changes):
    """A drill result as playbooks/chaos.yml collects it: 30 s of steady trading, the fault, recovery."""
    t0 = START + timedelta(minutes=minutes)
    injected = t0 + timedelta(seconds=30)
    recovered_s = None if recover_s is None else remediation_s + recover_s
    orders, p99 = [], []
    for second in range(-30, 60):
        faulty = second >= 0 and (recovered_s is None or second < recovered_s)
        orders.append(300.0 + second % 5 * 10 if faulty else 1300.0 + second % 7)
        p99.append(None if second == 40 else (140.0 if faulty else 18.0 + second % 3))
    threads = [[injected.timestamp() + s, "40" if 0 <= s < (recovered_s or 99) else "3"] for s in range(-30, 60, 5)]

    def at(seconds):
        return None if seconds is None else utc(injected + timedelta(seconds=seconds))

    result = dict(
        fault=fault, run=run, host=host,
        injected_at=utc(injected), alerted_at=at(alert_s), remediation_started_at=at(remediation_s),
        remediation_finished_at=at(remediation_s + 1.2), recovered_at=at(recovered_s),
        alert=None if alert_s is None else "StockdbQueryStorm",
        remediation="stockdb_sessions killed 8 queries of stockdb_chaos",
        time_to_alert_s=alert_s,
        time_to_recover_s=dict(from_remediation=recover_s, from_injection=recovered_s),
        orders_per_s=dict(before=1310.0, during=420.0, after=1302.0),
        p99_ms=dict(before=18.9, during=131.0, after=19.2),
        dip_ratio=0.23,
        client_errors={"lock_wait_timeout": 3},
        acknowledged_lost=lost,
        invariants_ok=True,
        left_behind=[],
        series=dict(t0=utc(t0), step_s=1, orders_per_s=orders, p99_ms=p99, threads_running=threads),
        budgets=dict(alert_s=60, recover_s=60),
    )
    result.update(changes)
    return result


def repeats():
    """query_storm three times (alert 10, 20, 12 s), lock_storm once."""
    return [drill(run=1, alert_s=10.0, recover_s=5.0), drill(run=2, alert_s=20.0, recover_s=9.0, minutes=2),
            drill(run=3, alert_s=12.0, recover_s=7.0, minutes=4),
            drill("lock_storm", alert_s=31.0, recover_s=2.5, minutes=6, client_errors={})]


def table_rows(text):
    """{fault cell: {column: cell}} of the Markdown table of all faults."""
    rows = [line.strip().strip("|").split(" | ") for line in text.splitlines() if line.startswith("| [")]
    return {cells[0].strip(): dict(zip(report.TABLE_HEAD, (c.strip() for c in cells))) for cells in rows}


# ---------------------------------------------------------------- figures and verdicts
def test_the_faults_are_those_of_stockdb_chaos():
    assert report.FAULTS == chaos.FAULTS


def test_spread_is_min_median_max_of_the_measured_values_and_counts_the_missing():
    assert spread([3, 1, 2]) == dict(min=1, median=2, max=3, missing=0)
    assert spread([4.0, 1.0, None, 2.0, 3.0]) == dict(min=1.0, median=2.5, max=4.0, missing=1)
    assert spread([None, None]) == dict(min=None, median=None, max=None, missing=2)


@pytest.mark.parametrize("changes, check, why", [
    (dict(time_to_alert_s=None, alerted_at=None), "alert", "not seen (budget 60 s)"),
    (dict(time_to_alert_s=60.5), "alert", "after 60.5 s, over the budget of 60 s"),
    (dict(time_to_recover_s=dict(from_remediation=None, from_injection=None), recovered_at=None), "recover",
     "not recovered (budget 60 s after the remediation): 420 orders/s from the injection to the end of the load, "
     "0.32 of the 1310 before (recovered means 0.9 of the slowest 5 s before, for 5 s)"),
    (dict(time_to_recover_s=dict(from_remediation=None, from_injection=None), recovered_at=None,
          orders_per_s=dict(before=1310.0, during=420.0, after=None, slowest_before=1105.0)), "recover",
     "not recovered (budget 60 s after the remediation): 420 orders/s from the injection to the end of the load, "
     "0.32 of the 1310 before (recovered means 0.9 of the slowest 5 s before, 1105, for 5 s)"),
    (dict(time_to_recover_s=dict(from_remediation=75.0, from_injection=89.0)), "recover",
     "75.0 s after the remediation, over the budget of 60 s"),
    (dict(acknowledged_lost=2), "lost", "2 acknowledged rows lost"),
    (dict(acknowledged_lost=None), "lost", "not checked against the ack log"),
    (dict(invariants_ok=False), "invariants", "did not hold"),
    (dict(left_behind=["unit stockdb-chaos-lock_storm", "3 chaos sessions"]), "left_behind",
     "unit stockdb-chaos-lock_storm, 3 chaos sessions"),
    (dict(budgets=dict(alert_s=10, recover_s=60)), "alert", "after 12.5 s, over the budget of 10 s"),
])
def test_each_check_fails_on_its_own(changes, check, why):
    assert report.run_failures(drill(**changes)) == [(check, why)]


def test_a_run_at_its_budgets_passes():
    assert report.run_failures(drill(alert_s=60.0, recover_s=60.0)) == []


def test_with_repeats_the_fault_passes_only_when_its_worst_run_does():
    results = repeats()
    summary = report.summarize(results)
    storm = summary["faults"]["query_storm"]
    assert storm["runs"] == 3 and storm["passed"] and summary["passed"] and summary["failures"] == []
    assert storm["time_to_alert_s"] == dict(min=10.0, median=12.0, max=20.0, missing=0)
    assert storm["time_to_recover_s"]["from_remediation"] == dict(min=5.0, median=7.0, max=9.0, missing=0)
    assert storm["timeline"] == dict(file="query_storm.png", run=3, host="stockdb-lab")

    results[1] = drill(run=2, alert_s=61.0, minutes=2, acknowledged_lost=1)
    summary = report.summarize(results)
    storm = summary["faults"]["query_storm"]
    assert not storm["passed"] and not summary["passed"] and summary["faults"]["lock_storm"]["passed"]
    assert storm["failed_checks"] == {"alert": 1, "lost": 1}
    assert storm["time_to_alert_s"]["max"] == 61.0
    assert summary["failures"] == ["query_storm run 2 on stockdb-lab: alert: after 61.0 s, over the budget of 60 s",
                                   "query_storm run 2 on stockdb-lab: lost: 1 acknowledged rows lost"]


def test_a_run_without_an_alert_counts_as_missing_and_fails():
    results = [drill(run=1, alert_s=10.0), drill(run=2, alert_s=None, minutes=2)]
    storm = report.summarize(results)["faults"]["query_storm"]
    assert storm["time_to_alert_s"] == dict(min=10.0, median=10.0, max=10.0, missing=1)
    assert storm["failed_checks"] == {"alert": 1}


def test_client_errors_are_summarized_per_kind_with_runs_without_a_kind_as_zero():
    results = [drill(run=1, client_errors={"lock_wait_timeout": 4}),
               drill(run=2, minutes=2, client_errors={"lock_wait_timeout": 2, "connection_lost": 6}),
               drill(run=3, minutes=4, client_errors={})]
    errors = report.summarize(results)["faults"]["query_storm"]["client_errors"]
    assert errors == {"connection_lost": dict(min=0, median=0, max=6, missing=0),
                      "lock_wait_timeout": dict(min=0, median=2, max=4, missing=0)}


# ---------------------------------------------------------------- Markdown
def test_the_table_has_one_row_per_fault_in_fault_order_with_min_median_max_for_repeats():
    results = repeats()
    text = report.markdown(report.summarize(results, commit="a8eabc4", command="ansible-playbook playbooks/chaos.yml"),
                           results)
    header = next(line for line in text.splitlines() if line.startswith("| fault |"))
    assert header == "| " + " | ".join(report.TABLE_HEAD) + " |"
    rows = table_rows(text)
    assert list(rows) == ["[query_storm](#query_storm)", "[lock_storm](#lock_storm)"]
    storm = rows["[query_storm](#query_storm)"]
    assert storm["runs"] == "3"
    assert storm["alert s"] == "10.0 / 12.0 / 20.0"
    assert storm["recover s from remediation"] == "5.0 / 7.0 / 9.0"
    assert storm["recover s from injection"] == "19.0 / 21.0 / 23.0"
    assert storm["orders/s before"] == "1310 / 1310 / 1310"
    assert storm["dip"] == "0.23 / 0.23 / 0.23"
    assert storm["acknowledged lost"] == "0 / 0 / 0"
    assert storm["client errors"] == "lock_wait_timeout 3 / 3 / 3"
    assert storm["result"] == "pass"
    lock = rows["[lock_storm](#lock_storm)"]
    assert (lock["alert s"], lock["recover s from remediation"], lock["p99 ms during"], lock["client errors"]) == \
        ("31.0", "2.5", "131.0", "0")
    assert "- commit: a8eabc4" in text and "```sh\nansible-playbook playbooks/chaos.yml\n```" in text
    assert "- result: **PASS** - every run met every check" in text
    assert "None: every run of every fault met every check." in text
    assert "![query_storm: orders/s, p99 and threads running over time](query_storm.png)" in text
    assert "- drills: 2026-12-02 10:15:30 UTC (first injection) to 2026-12-02 10:22:01 UTC (last event)" in text


def test_failed_checks_are_listed_and_the_result_column_names_them():
    results = repeats()
    results[2] = drill(run=3, minutes=4, alert_s=None, alerted_at=None, left_behind=["filler /srv/x/stockdb-chaos.filler"])
    text = report.markdown(report.summarize(results), results)
    storm = table_rows(text)["[query_storm](#query_storm)"]
    assert storm["alert s"] == "10.0 / 15.0 / 20.0 (+1 none)"
    assert storm["result"] == "**FAIL**: alert (1/3), left_behind (1/3)"
    assert "- result: **FAIL** - 2 failed checks" in text
    assert "- query_storm run 3 on stockdb-lab: alert: not seen (budget 60 s)" in text
    assert "- query_storm run 3 on stockdb-lab: left_behind: filler /srv/x/stockdb-chaos.filler" in text


def test_drills_that_broke_off_fail_the_report_and_say_why_first():
    """A drill that fails outright ends the series (the lab's disk filled during cpu_hog run 4): the report of the
    runs before it must not read as a complete run."""
    results = repeats()
    summary = report.summarize(results, broken_off=["cpu_hog run 4: Wait for the trading load to finish: timed out"])
    assert summary["passed"] is False
    assert summary["failures"][0] == "broke off: cpu_hog run 4: Wait for the trading load to finish: timed out"
    text = report.markdown(summary, results)
    assert "- result: **FAIL** - 1 failed checks" in text
    assert "- broke off: cpu_hog run 4: Wait for the trading load to finish: timed out" in text


def test_figures_the_drill_could_not_measure_show_as_none():
    results = [drill(orders_per_s=dict(before=1310.0, during=420.0, after=None), dip_ratio=None,
                     p99_ms=dict(before=18.9, during=None, after=None), acknowledged_lost=None)]
    text = report.markdown(report.summarize(results), results)
    row = table_rows(text)["[query_storm](#query_storm)"]
    assert (row["orders/s after"], row["dip"], row["p99 ms during"], row["acknowledged lost"]) == ("none",) * 4
    assert row["result"] == "**FAIL**: lost"


def test_a_pipe_in_an_error_kind_does_not_break_the_table():
    results = [drill(client_errors={"a|b": 1})]
    text = report.markdown(report.summarize(results), results)
    assert "a\\|b 1" in text


# ---------------------------------------------------------------- files
def test_the_report_files_and_a_png_picture_per_fault(tmp_path):
    results = repeats()
    outcome = report.write_report(str(tmp_path / "drills"), results, commit="a8eabc4")
    names = sorted(os.path.basename(f) for f in outcome["files"])
    assert names == ["lock_storm.png", "query_storm.png", "report.json", "report.md", "series.json"]
    assert outcome["changed"] and outcome["written"] == outcome["files"] and outcome["removed"] == []
    png = (tmp_path / "drills" / "query_storm.png").read_bytes()
    assert png.startswith(PNG_MAGIC)
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (900, 450)
    assert b"Software" not in png and len(png) < 200_000
    written = json.loads((tmp_path / "drills" / "report.json").read_text())
    assert written["results"] == [{k: v for k, v in d.items() if k != "series"} for d in results]
    assert written["summary"]["faults"]["query_storm"]["time_to_alert_s"]["median"] == 12.0
    series = json.loads((tmp_path / "drills" / "series.json").read_text())
    assert [(s["fault"], s["run"]) for s in series] == [("query_storm", 1), ("query_storm", 2), ("query_storm", 3),
                                                       ("lock_storm", 1)]
    assert series[0]["series"] == results[0]["series"]


def test_the_same_results_give_the_same_bytes_and_a_rerun_changes_nothing(tmp_path):
    results = repeats()
    first = report.write_report(str(tmp_path / "a"), copy.deepcopy(results), command="make drills")
    report.write_report(str(tmp_path / "b"), copy.deepcopy(results), command="make drills")
    for path in first["files"]:
        name = os.path.basename(path)
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    again = report.write_report(str(tmp_path / "a"), results, command="make drills")
    assert not again["changed"] and again["written"] == [] and again["files"] == first["files"]


def test_pictures_of_faults_no_longer_reported_are_removed_and_check_mode_writes_nothing(tmp_path):
    dest = tmp_path / "drills"
    report.write_report(str(dest), repeats())
    only_lock = [drill("lock_storm", alert_s=31.0)]
    planned = report.write_report(str(dest), only_lock, check_mode=True)
    assert planned["changed"] and planned["removed"] == [str(dest / "query_storm.png")]
    assert (dest / "query_storm.png").exists()
    done = report.write_report(str(dest), only_lock)
    assert done["removed"] == [str(dest / "query_storm.png")] and not (dest / "query_storm.png").exists()
    assert sorted(p.name for p in dest.iterdir()) == ["lock_storm.png", "report.json", "report.md", "series.json"]

    fresh = tmp_path / "fresh"
    assert report.write_report(str(fresh), only_lock, check_mode=True)["changed"] and not fresh.exists()


def test_a_picture_is_drawn_without_any_series_data():
    empty = drill(series=dict(t0=None, step_s=1, orders_per_s=[], p99_ms=[], threads_running=[]))
    assert report.timeline_png(empty).startswith(PNG_MAGIC)


def test_without_matplotlib_the_error_names_it_and_requirements_txt(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(report.DrillReportError, match=r"needs matplotlib.*requirements\.txt"):
        report.timeline_png(drill())


# ---------------------------------------------------------------- bad input
def without(key):
    result = drill()
    del result[key]
    return result


@pytest.mark.parametrize("results, message", [
    ([], "results must be a non-empty list"),
    (["query_storm"], "results[0] (?): must be a dict"),
    ([drill(fault="meteor")], "results[0] (meteor run 1 on stockdb-lab): fault must be one of query_storm,"),
    ([without("recovered_at")], "results[0] (query_storm run 1 on stockdb-lab): missing recovered_at"),
    ([drill(), drill("crash", time_to_alert_s="12")], "results[1] (crash run 1 on stockdb-lab): time_to_alert_s must be"
                                                      " a number or null, got '12'"),
    ([drill(run=0)], "run must be an integer >= 1, got 0"),
    ([drill(injected_at="2026-12-02 10:15:30")], "injected_at must be a UTC time YYYY-MM-DDTHH:MM:SS.ffffffZ, got"),
    ([drill(injected_at=None)], "injected_at must be a UTC time"),
    ([drill(orders_per_s=dict(before=1.0, during="fast", after=2.0))],
     "orders_per_s.during must be a number or null, got 'fast'"),
    ([drill(time_to_recover_s=dict(from_injection=3.0))], "missing time_to_recover_s.from_remediation"),
    ([drill(p99_ms=[1, 2, 3])], "p99_ms must be a dict with before, during, after"),
    ([drill(invariants_ok="yes")], "invariants_ok must be true or false, got 'yes'"),
    ([drill(acknowledged_lost=-1)], "acknowledged_lost must be an integer >= 0, or null when not checked, got -1"),
    ([drill(client_errors={"deadlock": "3"})], "client_errors must be a dict of error kind -> count"),
    ([drill(left_behind="filler")], "left_behind must be a list of strings"),
    ([drill(budgets=dict(alert_s=0, recover_s=60))], "budgets.alert_s must be a positive number, got 0"),
    ([drill(series=dict(t0=None, step_s=1, orders_per_s=[1.0], p99_ms=[], threads_running=[]))],
     "series.t0 must be a UTC time YYYY-MM-DDTHH:MM:SS.ffffffZ (the series have points), got None"),
    ([drill(series=dict(t0=None, step_s=1, orders_per_s=[], p99_ms=[]))], "missing series.threads_running"),
    ([drill(series=dict(t0=None, step_s=1, orders_per_s=["x"], p99_ms=[], threads_running=[]))],
     "series.orders_per_s must be a list of numbers"),
    ([drill(series=dict(t0=None, step_s=1, orders_per_s=[], p99_ms=[], threads_running=[[1.0]]))],
     "series.threads_running must be a list of [unix time, value] pairs"),
    ([drill(), drill(minutes=3)], "results[1] (query_storm run 1 on stockdb-lab): the same fault, run and host as results[0]"),
])
def test_bad_results_fail_naming_the_drill_and_the_key(tmp_path, results, message):
    with pytest.raises(report.DrillReportError) as caught:
        report.write_report(str(tmp_path / "drills"), results)
    assert message in str(caught.value)
    assert not (tmp_path / "drills").exists()


def test_every_problem_of_every_drill_is_named_at_once():
    bad = [without("alert"), drill(run=2, dip_ratio="low", invariants_ok=1)]
    with pytest.raises(report.DrillReportError) as caught:
        report.check_results(bad)
    assert str(caught.value) == (
        "bad drill results: results[0] (query_storm run 1 on stockdb-lab): missing alert"
        " | results[1] (query_storm run 2 on stockdb-lab): dip_ratio must be a number or null, got 'low';"
        " invariants_ok must be true or false, got 1")


def test_prometheus_values_as_strings_and_times_without_fractions_are_accepted():
    result = drill(injected_at="2026-12-02T10:15:30Z")
    injected = datetime(2026, 12, 2, 10, 15, 30, tzinfo=timezone.utc).timestamp()
    result["series"]["threads_running"] = [[str(injected + 0.5), "7"], [int(injected) + 1, 9]]
    report.check_results([result])
    _, _, threads = report.timeline_points(result)
    assert threads == [(0.5, 7.0), (1.0, 9.0)]


# ---------------------------------------------------------------- the module through Ansible
def run_module(tmp_path, args, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_LOCALHOST_WARNING="false", HOME=str(tmp_path),
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", PATH=f"{BIN}:/usr/bin:/bin")
    proc = subprocess.run([BIN / "ansible", "localhost", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
                           "-m", "stockdb_drill_report", "-a", json.dumps(args), *extra],
                          capture_output=True, text=True, env=env, cwd=REPO)
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_the_module_writes_the_report_and_a_rerun_changes_nothing(tmp_path):
    dest = tmp_path / "drills"
    results = repeats()
    results[3] = drill("lock_storm", minutes=6, acknowledged_lost=3)
    args = dict(results=results, dest=str(dest), title="Drills on the lab", commit="a8eabc4", command="make drills")
    first = run_module(tmp_path, args)
    assert first["changed"] and first["passed"] is False, first
    assert first["failures"] == ["lock_storm run 1 on stockdb-lab: lost: 3 acknowledged rows lost"]
    assert sorted(os.path.basename(f) for f in first["written"]) == \
        ["lock_storm.png", "query_storm.png", "report.json", "report.md", "series.json"]
    assert (dest / "report.md").read_text().startswith("# Drills on the lab\n")
    again = run_module(tmp_path, args)
    assert again["changed"] is False and again["written"] == [] and again["summary"] == first["summary"], again


def test_the_module_fails_on_bad_results_naming_the_drill_and_the_key(tmp_path):
    result = run_module(tmp_path, dict(results=[drill(), without("series")], dest=str(tmp_path / "drills")))
    assert result.get("failed"), result
    assert "results[1] (query_storm run 1 on stockdb-lab): missing series" in result["msg"]
    assert not (tmp_path / "drills").exists()
