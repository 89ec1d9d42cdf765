"""Unit tests of module_utils/stockdb/experiment.py: the plan and its drop-in file (nothing but plain names and
values reach it), one run's figures from the workload's result and the status counters, the summary over
rounds with its side-by-side ratios, and the report's files.

The experiment itself (restarts, workloads, the role's file put back) runs on the lab host with
playbooks/tune_experiment.yml (docs/tuning.md).
"""

import json

import pytest
from stockdb import experiment
from stockdb.experiment import ExperimentError
from test_work import cpu_text


def test_a_variable_gets_one_step_per_value_on_the_base_asked_for():
    steps = experiment.plan("innodb_buffer_pool_size", ["128M", "1G"], base="stock")
    assert steps == [dict(label="128M", base="stock", settings={"innodb_buffer_pool_size": "128M"}),
                     dict(label="1G", base="stock", settings={"innodb_buffer_pool_size": "1G"})]


def test_config_compares_the_role_file_with_stock():
    steps = experiment.plan("config", ["stock", "role"])
    assert [(s["label"], s["base"], s["settings"]) for s in steps] == [("stock", "stock", {}), ("role", "role", {})]


def test_a_mapping_sets_several_variables_and_is_labelled_by_them():
    steps = experiment.plan("durability", [{"sync_binlog": 1, "innodb_flush_log_at_trx_commit": 1},
                                           {"sync_binlog": 0, "innodb_flush_log_at_trx_commit": 2}])
    assert steps[1]["label"] == "innodb_flush_log_at_trx_commit=2, sync_binlog=0"
    assert steps[1]["settings"] == {"innodb_flush_log_at_trx_commit": "2", "sync_binlog": "0"}


def test_a_mapping_of_one_other_variable_is_labelled_by_its_name():
    steps = experiment.plan("cpu", [{"performance_schema": "OFF"}, {"slow_query_log": "OFF"}])
    assert [s["label"] for s in steps] == ["performance_schema=OFF", "slow_query_log=OFF"]
    assert experiment.plan("innodb_io_capacity", [{"innodb_io_capacity": 200}])[0]["label"] == "200"


def test_an_instrument_pattern_is_a_plain_value():
    (step,) = experiment.plan("ps", [{"performance_schema_instrument": "wait/%=OFF"}])
    assert experiment.drop_in(step, {}, "ps").splitlines()[-1] == "performance_schema_instrument = wait/%=OFF"


def test_booleans_become_on_and_off():
    assert experiment.plan("performance_schema", [True, False])[1]["settings"] == {"performance_schema": "OFF"}


@pytest.mark.parametrize("param, values, kwargs, message", [
    ("innodb_io_capacity", [], {}, "values must be a list of 1 to 8"),
    ("innodb_io_capacity", list(range(9)), {}, "values must be a list of 1 to 8"),
    ("innodb_io_capacity", "200", {}, "values must be a list"),
    ("innodb_io_capacity", ["200\nlocal_infile=ON"], {}, "is not a plain my.cnf value"),
    ("innodb_io_capacity", ["2 00"], {}, "is not a plain my.cnf value"),
    ("innodb_io_capacity", ["200#"], {}, "is not a plain my.cnf value"),
    ("Innodb-IO", ["200"], {}, "is not a server variable name"),
    ("x", [{"bad name": 1}], {}, "is not a server variable name"),
    ("durability", [{}], {}, "must set at least one variable"),
    ("innodb_io_capacity", ["200", "200"], {}, "name a value twice"),
    ("config", ["role", "tuned"], {}, "the values are role and stock"),
    ("innodb_io_capacity", ["200"], {"workload": "tpcc"}, "workload 'tpcc' is not one of mix"),
    ("innodb_io_capacity", ["200"], {"base": "mine"}, "base 'mine' must be role or stock")])
def test_bad_requests_are_named(param, values, kwargs, message):
    with pytest.raises(ExperimentError, match=message):
        experiment.plan(param, values, **kwargs)


def test_a_stock_step_keeps_the_durability_and_a_role_step_only_its_settings():
    stock, role = experiment.plan("innodb_io_capacity", ["200"], base="stock")[0], \
        experiment.plan("innodb_io_capacity", ["200"])[0]
    keep = {"sync_binlog": 1, "innodb_flush_log_at_trx_commit": 1, "log_bin": "/var/lib/mysql/binlog"}
    text = experiment.drop_in(stock, keep, "io")
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body == ["[mysqld]", "innodb_flush_log_at_trx_commit = 1", "log_bin = /var/lib/mysql/binlog",
                    "sync_binlog = 1", "innodb_io_capacity = 200"]
    assert [line for line in experiment.drop_in(role, keep, "io").splitlines() if not line.startswith("#")] == [
        "[mysqld]", "innodb_io_capacity = 200"]
    with pytest.raises(ExperimentError, match="not a plain my.cnf value"):
        experiment.drop_in(stock, {"log_bin": "/a b"}, "io")


def _status(**values):
    base = {name: 0 for name in experiment.COUNTERS}
    base.update(values)
    return [{"Variable_name": k, "Value": str(v)} for k, v in base.items()] + [{"Variable_name": "Uptime", "Value": "9"}]


MIX = {"orders_per_s": 50.0, "latency_ms": {"p99": 40.0}, "reads": {"per_s": 120.0, "latency_ms": {"p99": 600.0}}}


def test_a_runs_figures_come_from_the_counters_over_its_window():
    before = experiment.status(_status(Innodb_buffer_pool_read_requests=1000, Innodb_buffer_pool_reads=10))
    after = experiment.status(_status(Innodb_buffer_pool_read_requests=11000, Innodb_buffer_pool_reads=110,
                                      Innodb_data_reads=300, Innodb_data_writes=60, Innodb_os_log_written=20971520,
                                      Innodb_data_fsyncs=90))
    f = experiment.figures("mix", MIX, before, after, 10.0)
    assert (f["throughput"], f["p99_ms"], f["reads_per_s"], f["read_p99_ms"]) == (50.0, 40.0, 120.0, 600.0)
    assert f["hit_rate"] == 99.0  # 100 misses in 10,000 requests
    assert (f["disk_reads_per_s"], f["disk_writes_per_s"], f["redo_mb_per_s"], f["fsyncs_per_s"]) == (30, 6, 2, 9)


def test_mariadbds_cpu_per_transaction_and_the_hosts_busy_share_come_from_the_cpu_times():
    s = experiment.status(_status())
    # 10 s at 400 transactions/s; mariadbd used 12 CPU s of them: 3 ms per transaction; the host 18 of 20 CPU s busy
    f = experiment.figures("oltp_read_write", {"tps": 400.0, "p99_ms": 30.0}, s, s, 10.0,
                           cpu_text(1000, 5000, 1000), cpu_text(2200, 6800, 1200))
    assert (f["server_cpu_ms"], f["host_busy_pct"]) == (3.0, 90.0)
    assert experiment.figures("oltp_read_write", {"tps": 400.0, "p99_ms": 30.0}, s, s, 10.0)["server_cpu_ms"] is None
    with pytest.raises(ExperimentError, match="CPU times went back"):
        experiment.figures("oltp_read_write", {"tps": 1.0, "p99_ms": 1.0}, s, s, 10.0, cpu_text(2200, 6800, 1200),
                           cpu_text(100, 6900, 1300))
    with pytest.raises(ExperimentError, match="cannot read CPU times"):
        experiment.figures("oltp_read_write", {"tps": 1.0, "p99_ms": 1.0}, s, s, 10.0, "100\n", cpu_text(1, 1, 1))


def test_sysbench_figures_and_a_window_without_reads():
    s = experiment.status(_status())
    f = experiment.figures("oltp_read_write", {"tps": 400.5, "p99_ms": 30.2}, s, s, 5)
    assert (f["throughput"], f["p99_ms"], f["reads_per_s"], f["hit_rate"]) == (400.5, 30.2, None, None)


def test_a_mix_of_writes_only_has_no_read_latency():
    """tune_read_share=0: the simulator reports no read p99; the report once failed on it after nine runs."""
    s = experiment.status(_status())
    writes = dict(MIX, reads={"total": 0, "per_s": 0.0, "latency_ms": {"p50": None, "p99": None}})
    f = experiment.figures("mix", writes, s, s, 5)
    assert (f["throughput"], f["p99_ms"], f["reads_per_s"], f["read_p99_ms"]) == (50.0, 40.0, 0.0, None)
    (step,) = experiment.summarize(experiment.plan("x_size", ["1"]), [dict(round=1, label="1", effective={}, figures=f)])
    assert step["read_p99_ms"] is None and step["throughput"]["median"] == 50.0
    meta = dict(param="x_size", workload="mix", host="lab", clients=8, duration_s=5, warmup_s=0, rounds=1)
    assert "read p99" not in experiment.markdown(dict(meta, read_share=0.0), [step])  # no empty columns
    assert "| reads (/s) | read p99 (ms) |" in experiment.markdown(dict(meta, read_share=0.7), [step])


@pytest.mark.parametrize("workload, result, rows, seconds, message", [
    ("mix", {"orders_per_s": 1}, _status(), 10, "lacks orders_per_s"),
    ("oltp_read_write", {"tps": "fast"}, _status(), 10, "lacks tps or p99_ms"),
    ("mix", MIX, _status(), 0, "window is 0 s"),
    ("mix", MIX, _status()[1:], 10, "lacks Innodb_buffer_pool_read_requests"),
    ("mix", MIX, [{"Variable_name": "Innodb_data_reads", "Value": "many"}], 10, "is not a number")])
def test_results_that_cannot_give_figures_are_refused(workload, result, rows, seconds, message):
    with pytest.raises(ExperimentError, match=message):
        experiment.figures(workload, result, experiment.status(rows), experiment.status(_status()), seconds)


def _run(round_, label, throughput, p99, effective=None, server_cpu_ms=None):
    return dict(round=round_, label=label, effective=effective or {},
                figures=dict(throughput=throughput, p99_ms=p99, hit_rate=99.0, server_cpu_ms=server_cpu_ms))


def test_ratios_are_taken_within_each_round_and_spread_over_rounds():
    steps = experiment.plan("x_size", ["1", "2"])
    runs = [_run(1, "1", 100, 10), _run(1, "2", 120, 5), _run(2, "1", 50, 20), _run(2, "2", 55, 10),
            _run(3, "1", 80, 10), _run(3, "2", 100, 10, {"x_size": "2"})]
    first, second = experiment.summarize(steps, runs)
    assert first["throughput_ratio"] == dict(min=1.0, median=1.0, max=1.0, missing=0)
    # 1.2, 1.1, 1.25: the drift between rounds (100 -> 50 -> 80) does not reach the ratio
    assert second["throughput_ratio"] == dict(min=1.1, median=1.2, max=1.25, missing=0)
    assert second["p99_ms_ratio"] == dict(min=0.5, median=0.5, max=1.0, missing=0)
    assert second["throughput"] == dict(min=55, median=100, max=120, missing=0)
    assert second["reads_per_s"] is None and second["effective"] == {"x_size": "2"}
    assert second["server_cpu_ms_ratio"] is None  # runs without CPU times: no ratio, "-" in the table


def test_the_cpu_ratio_is_taken_within_each_round_like_the_others():
    steps = experiment.plan("config", ["stock", "role"])
    runs = [_run(1, "stock", 500, 20, server_cpu_ms=2.0), _run(1, "role", 450, 22, server_cpu_ms=2.2),
            _run(2, "stock", 400, 25, server_cpu_ms=2.1), _run(2, "role", 420, 24, server_cpu_ms=2.1)]
    _, role = experiment.summarize(steps, runs)
    assert role["server_cpu_ms_ratio"] == dict(min=1.0, median=1.05, max=1.1, missing=0)
    assert "| role | role | 0.900 / 0.975 / 1.050 | 0.960 / 1.030 / 1.100 | 1.000 / 1.050 / 1.100 |" in \
        experiment.markdown(dict(param="config", workload="oltp_read_write", host="lab", started_at="t", clients=8,
                                 duration_s=45, warmup_s=15, rounds=2, tables=4, table_size=200000), [_, role])


def test_a_run_of_a_value_not_planned_is_refused():
    with pytest.raises(ExperimentError, match="'3', which is not one of"):
        experiment.summarize(experiment.plan("x_size", ["1", "2"]), [_run(1, "3", 1, 1)])


def test_the_report_names_the_experiment_and_shows_each_value(tmp_path):
    steps = experiment.plan("config", ["stock", "role"])
    runs = [_run(n, label, t, 10) for n in (1, 2, 3) for label, t in (("stock", 100), ("role", 110 + n))]
    summary = experiment.summarize(steps, runs)
    meta = dict(param="config", workload="oltp_read_write", host="lab", clients=8, duration_s=45, warmup_s=15,
                rounds=3, tables=4, table_size=200000, command="ansible-playbook playbooks/tune_experiment.yml")
    files = experiment.render(meta, summary, runs, picture=False)
    assert sorted(files) == ["config-oltp_read_write.json", "config-oltp_read_write.md"]
    text = files["config-oltp_read_write.md"].decode()
    assert "sysbench oltp_read_write (4 tables x 200,000 rows" in text
    assert "MiB of data" not in text  # a report without the figure (older runs files) says nothing of it
    sized = experiment.markdown(dict(meta, data_mb=1234), summary)
    assert "4 tables x 200,000 rows; transactions/s) · 1,234 MiB of data and indexes · 8 clients" in sized
    grown = experiment.markdown(dict(meta, data_mb=0, data_mb_end=549), summary)
    assert "· 0 MiB of data and indexes at the start, 549 at the end · 8 clients" in grown
    assert "at the end" not in experiment.markdown(dict(meta, data_mb=1234, data_mb_end=1234), summary)
    assert "| role | role | 1.110 / 1.120 / 1.130 |" in text and "read p99" not in text
    assert json.loads(files["config-oltp_read_write.json"])["summary"][1]["label"] == "role"
    assert experiment.write(str(tmp_path / "out"), files) == sorted(files)
    assert (tmp_path / "out" / "config-oltp_read_write.md").read_text() == text


def test_the_picture_is_a_png():
    pytest.importorskip("matplotlib")
    steps = experiment.plan("x_size", ["1", "2"])
    summary = experiment.summarize(steps, [_run(1, "1", 10, 1), _run(1, "2", 12, 1)])
    png = experiment.picture_png(dict(param="x_size", workload="mix", rounds=1), summary)
    assert png.startswith(b"\x89PNG")


def test_a_report_of_an_experiment_that_broke_off_says_so():
    steps = experiment.plan("x_size", ["1", "2"])
    summary = experiment.summarize(steps, [_run(1, "1", 10, 1)])
    text = experiment.markdown(dict(param="x_size", workload="mix", host="lab", clients=8, duration_s=5, warmup_s=0,
                                    rounds=3, broken_off="Run sysbench: stopped"), summary)
    assert "**Broken off** after 1 runs: Run sysbench: stopped" in text
    assert "| 2 | role | - | - |" in text
