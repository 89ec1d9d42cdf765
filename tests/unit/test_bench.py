"""The benchmarks' logic (module_utils/stockdb/bench.py): sysbench's report, the bounded steps, the figures."""

import json
import os
import stat
import subprocess

import pytest
from stockdb import bench
from stockdb.bench import BenchError
from test_work import cpu_text, status_rows

# The report of a real run on a lab host, 2026-12-01 (sysbench 1.0.20 from Debian 12, MariaDB 10.11):
# the run stockdb_bench action=sysbench makes, with --threads=2 --tables=2 --table-size=10000 --time=10.
SYSBENCH_REPORT = """\
sysbench 1.0.20 (using system LuaJIT 2.1.0-beta3)

Running the test with following options:
Number of threads: 2
Initializing random number generator from current time


Initializing worker threads...

Threads started!

SQL statistics:
    queries performed:
        read:                            0
        write:                           49684
        other:                           24842
        total:                           74526
    transactions:                        12421  (1241.26 per sec.)
    queries:                             74526  (7447.54 per sec.)
    ignored errors:                      0      (0.00 per sec.)
    reconnects:                          0      (0.00 per sec.)

General statistics:
    total time:                          10.0063s
    total number of events:              12421

Latency (ms):
         min:                                    0.45
         avg:                                    1.61
         max:                                   35.67
         99th percentile:                        7.70
         sum:                                19981.35

Threads fairness:
    events (avg/stddev):           6210.5000/64.50
    execution time (avg/stddev):   9.9907/0.00

"""


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


# ---------------------------------------------------------------- sysbench's report
def test_a_real_sysbench_report_gives_rate_latency_and_errors():
    figures = bench.parse_sysbench(SYSBENCH_REPORT)
    assert figures == dict(transactions=12421, tps=1241.26, p99_ms=7.7, queries_per_s=7447.54, ignored_errors=0,
                           total_time_s=10.0063, latency_ms=dict(min=0.45, avg=1.61, max=35.67, p99=7.7))


@pytest.mark.parametrize("text, message", [
    ("", r"no transaction rate or 99th percentile: \(empty\)"),
    (SYSBENCH_REPORT.replace("99th percentile", "95th percentile"), "no transaction rate or 99th percentile"),
    (SYSBENCH_REPORT.replace("transactions:", "txns:"), "no transaction rate"),
    ("FATAL: unable to connect to MySQL server on socket '/run/mysqld/mysqld.sock'", "unable to connect"),
])
def test_a_report_without_the_figures_is_refused_with_its_tail(text, message):
    with pytest.raises(BenchError, match=message):
        bench.parse_sysbench(text)


def test_a_run_that_committed_nothing_is_refused():
    text = SYSBENCH_REPORT.replace("12421  (1241.26 per sec.)", "0  (0.00 per sec.)")
    with pytest.raises(BenchError, match=r"committed no transactions \(0 in the run\)"):
        bench.parse_sysbench(text)


def test_the_credentials_never_reach_the_command_line():
    argv = bench.sysbench_argv("/usr/bin/sysbench", "oltp_write_only", "/run/mysqld/mysqld.sock", "sbtest", 4, 100000, 8,
                               "/run/x/sysbench.cfg")
    assert argv == ["/usr/bin/sysbench", "oltp_write_only", "--db-driver=mysql", "--mysql-socket=/run/mysqld/mysqld.sock",
                    "--mysql-db=sbtest", "--tables=4", "--table-size=100000", "--threads=8", "--config-file=/run/x/sysbench.cfg"]
    assert bench.sysbench_config("bench", "s3cret") == "mysql-user=bench\nmysql-password=s3cret\n"


@pytest.mark.parametrize("user, password, message", [
    ("bench", "a\nmysql-host=evil", "login_password must be a non-empty single line"),
    ("", "x", "login_user must be a non-empty single line"),
])
def test_credentials_cannot_add_lines_to_the_config_file(user, password, message):
    with pytest.raises(BenchError, match=message):
        bench.sysbench_config(user, password)


def test_an_unknown_workload_is_named():
    with pytest.raises(BenchError, match="workload 'oltp_nope' is not one of oltp_read_only"):
        bench.sysbench_argv("sysbench", "oltp_nope", "/s", "db", 1, 1, 1, "/c")


# ---------------------------------------------------------------- sysbench's phases
class FakeSysbench:
    """Answers prepare/run/cleanup; records each call and what the config file held at that moment."""

    def __init__(self, config_file, fail=None, rc=1):
        self.config_file, self.fail, self.rc, self.calls = config_file, fail, rc, []

    def __call__(self, argv, seconds):
        mode = stat.S_IMODE(os.stat(self.config_file).st_mode)
        with open(self.config_file) as handle:
            self.calls.append((argv[-1], seconds, mode, handle.read()))
        if argv[-1] == self.fail:
            return self.rc, "", f"FATAL: {argv[-1]} failed"
        return 0, SYSBENCH_REPORT if argv[-1] == "run" else "", ""


def test_sysbench_prepares_runs_and_cleans_up_with_a_private_config_file(tmp_path):
    config = str(tmp_path / "sysbench.cfg")
    fake = FakeSysbench(config)
    base = bench.sysbench_argv("sysbench", "oltp_write_only", "/s", "sbtest", 2, 10, 2, config)
    figures = bench.run_sysbench(fake, base, 10, 600, "mysql-user=u\nmysql-password=p\n", config, clock=FakeClock())
    assert [c[0] for c in fake.calls] == ["prepare", "run", "cleanup"]
    assert {c[2] for c in fake.calls} == {0o600} and {c[3] for c in fake.calls} == {"mysql-user=u\nmysql-password=p\n"}
    assert fake.calls[1][1] == 600  # the run may use what is left of the timeout
    assert figures["tps"] == 1241.26 and figures["report"] == SYSBENCH_REPORT and figures["cleanup_error"] is None
    assert not os.path.exists(config)


def test_a_failed_run_still_cleans_up_and_removes_the_config_file(tmp_path):
    config = str(tmp_path / "sysbench.cfg")
    fake = FakeSysbench(config, fail="run")
    with pytest.raises(BenchError, match="sysbench run: sysbench exited 1: FATAL: run failed"):
        bench.run_sysbench(fake, ["sysbench"], 10, 600, "x", config, clock=FakeClock())
    assert [c[0] for c in fake.calls] == ["prepare", "run", "cleanup"]
    assert not os.path.exists(config)


def test_a_run_stopped_by_the_timeout_says_so(tmp_path):
    config = str(tmp_path / "sysbench.cfg")
    fake = FakeSysbench(config, fail="run", rc=124)
    with pytest.raises(BenchError, match="sysbench run: sysbench did not finish within 600 s and was stopped"):
        bench.run_sysbench(fake, ["sysbench"], 10, 600, "x", config, clock=FakeClock())


def test_a_failed_cleanup_is_reported_not_raised(tmp_path):
    config = str(tmp_path / "sysbench.cfg")
    figures = bench.run_sysbench(FakeSysbench(config, fail="cleanup"), ["sysbench"], 10, 600, "x", config, clock=FakeClock())
    assert figures["cleanup_error"] == "sysbench cleanup: sysbench exited 1: FATAL: cleanup failed"


@pytest.mark.parametrize("phases, calls, figures", [
    (["prepare"], ["prepare"], False),
    (["run"], ["run"], True),
    (["cleanup"], ["cleanup"], False),
    (["cleanup", "prepare"], ["prepare", "cleanup"], False)])
def test_the_phases_asked_for_run_in_their_order(tmp_path, phases, calls, figures):
    config = str(tmp_path / "sysbench.cfg")
    fake = FakeSysbench(config)
    out = bench.run_sysbench(fake, ["sysbench"], 10, 600, "x", config, clock=FakeClock(), phases=phases)
    assert [c[0] for c in fake.calls] == calls
    assert ("tps" in out) is figures and out["cleanup_error"] is None
    assert not os.path.exists(config)


@pytest.mark.parametrize("phases", [[], ["warmup"], ["run", "drop"]])
def test_unknown_phases_are_refused_before_anything_runs(tmp_path, phases):
    config = str(tmp_path / "sysbench.cfg")
    fake = FakeSysbench(config)
    with pytest.raises(BenchError, match="must be some of prepare, run, cleanup"):
        bench.run_sysbench(fake, ["sysbench"], 10, 600, "x", config, clock=FakeClock(), phases=phases)
    assert fake.calls == [] and not os.path.exists(config)


def test_bounded_commands_run_under_coreutils_timeout():
    assert bench.bounded("/usr/bin/timeout", ["sysbench", "run"], 70.2) == [
        "/usr/bin/timeout", "--kill-after=10", "71", "sysbench", "run"]
    proc = subprocess.run(bench.bounded("timeout", ["sleep", "5"], 0.1), check=False)
    assert proc.returncode in bench.TIMED_OUT


# ---------------------------------------------------------------- back to back
def test_backups_run_back_to_back_until_the_duration_has_passed():
    clock, seen = FakeClock(), []

    def run(argv, seconds):
        seen.append(seconds)
        clock.now += 25  # each backup takes 25 s
        return 0, "log line\n" + json.dumps({"backup": f"B{len(seen)}", "duration_s": 24.5}) + "\n", ""

    done = bench.back_to_back(run, ["stockdb-ops", "backup"], 60, 100, 660, clock=clock)
    # started at 0, 25 and 50 s (the one under way at 60 s finishes), none at 75 s
    assert done["count"] == 3 and done["elapsed_s"] == 75
    assert [r["backup"] for r in done["runs"]] == ["B1", "B2", "B3"] and done["runs"][0]["wall_s"] == 25
    assert seen == [660, 635, 610]  # each run is bounded by what is left of the timeout


def test_back_to_back_stops_at_max_runs_and_keeps_non_json_output_out():
    clock = FakeClock()

    def run(argv, seconds):
        clock.now += 1
        return 0, "not json", ""

    done = bench.back_to_back(run, ["x"], 60, 2, 660, clock=clock)
    assert done["count"] == 2 and done["runs"] == [{"wall_s": 1}, {"wall_s": 1}]


def test_a_failed_backup_ends_the_loop_naming_it():
    clock, calls = FakeClock(), []

    def run(argv, seconds):
        calls.append(argv)
        clock.now += 5
        return (0, "{}", "") if len(calls) < 2 else (1, "", "another stockdb-ops job holds /var/backups/.lock")

    with pytest.raises(BenchError, match="run 2 of stockdb-ops --config /b.json backup: stockdb-ops exited 1: another"):
        bench.back_to_back(run, ["/usr/local/sbin/stockdb-ops", "--config", "/b.json", "backup"], 60, 100, 660, clock=clock)


def test_back_to_back_never_outlives_its_timeout():
    clock = FakeClock()

    def run(argv, seconds):
        clock.now += seconds
        return 0, "{}", ""

    with pytest.raises(BenchError, match="ran out"):
        bench.back_to_back(run, ["x"], 60, 100, 30, clock=clock)


# ---------------------------------------------------------------- alternating
def fake_backups(clock, seconds_each, outcomes=None):
    """run(argv, seconds) for bench.alternate: each backup takes `seconds_each` of `clock`."""
    calls = []

    def run(argv, seconds):
        calls.append((argv, seconds))
        clock.now += seconds_each
        if outcomes and not outcomes[len(calls) - 1]:
            return 1, "", "mariabackup: Error: log sequence number is too old"
        return 0, json.dumps(dict(backup=f"B{len(calls)}", type="incremental", phases=dict(copy_s=seconds_each - 1))), ""

    return run, calls


def alternate(clock, run, seconds, quiet=20, timeout=700):
    def sleep(s):
        clock.now += s
    return bench.alternate(run, ["stockdb-ops", "backup"], seconds, quiet, timeout, clock=clock, wall=clock, sleep=sleep)


def test_backups_alternate_with_quiet_windows_and_each_has_one_on_either_side():
    clock = FakeClock()
    run, calls = fake_backups(clock, 15)
    windows = alternate(clock, run, 100)["windows"]
    # Q 0-20, B 20-35, Q 35-55, B 55-70, Q 70-90; at 90 a backup (20 s longest so far) and a window no longer fit
    spans = [(w["kind"], w["start"] - 1000, w["end"] - 1000) for w in windows]
    assert spans == [("quiet", 0, 20), ("backup", 20, 35), ("quiet", 35, 55), ("backup", 55, 70), ("quiet", 70, 90)]
    assert windows[1]["run"]["backup"] == "B1" and windows[3]["run"]["type"] == "incremental"
    assert [seconds for _, seconds in calls] == [680, 645]  # each backup is bounded by what is left of the timeout


def test_a_backup_that_ends_too_late_for_its_quiet_window_is_dropped():
    clock = FakeClock()
    run, _ = fake_backups(clock, 25)
    with pytest.raises(BenchError, match="no backup fitted between two quiet windows of 20 s in 60 s"):
        alternate(clock, run, 60)
    clock = FakeClock()
    run, calls = fake_backups(clock, 25)
    windows = alternate(clock, run, 120)["windows"]
    # Q 0-20, B 20-45, Q 45-65, B 65-90, Q 90-110; at 110 nothing more fits
    assert [w["kind"] for w in windows] == ["quiet", "backup", "quiet", "backup", "quiet"] and len(calls) == 2
    clock = FakeClock()
    run, calls = fake_backups(clock, 40)
    windows = alternate(clock, run, 110)["windows"]
    # Q 0-20, B 20-60, Q 60-80; at 80, 40+20 s do not fit in the 30 s left: no second backup
    assert [w["kind"] for w in windows] == ["quiet", "backup", "quiet"] and len(calls) == 1


def test_a_failed_backup_ends_the_alternation_naming_it():
    clock = FakeClock()
    run, _ = fake_backups(clock, 10, outcomes=[True, False])
    with pytest.raises(BenchError, match="backup 2: stockdb-ops backup: stockdb-ops exited 1: mariabackup: Error"):
        alternate(clock, run, 200)


def ack(kind, epoch, ident=1):
    return json.dumps({"kind": kind, "id": ident, "status": "NEW", "committed_at": bench.ack_stamp(epoch), "client": 0})


def window(kind, start, end):
    return dict(kind=kind, start=start, end=end)


def test_orders_are_counted_per_window_from_the_ack_log():
    t0 = 1_764_583_200.0  # 2025-12-01 10:00:00 UTC
    lines = ([ack("order", t0 + i * 0.1) for i in range(200)]       # 10 orders/s from t0 to t0 + 20 s
             + [ack("trade", t0 + i * 0.1) for i in range(200)]     # trades are not orders
             + [ack("order", t0 + 5 + i * 0.5) for i in range(10)])  # and 2 more per second from t0 + 5 to t0 + 10
    windows = [window("quiet", t0, t0 + 5), window("backup", t0 + 5, t0 + 10), window("quiet", t0 + 10, t0 + 19.85)]
    counted = bench.count_orders(reversed(lines), windows)  # the log is in no particular order
    assert [(w["orders"], w["orders_per_s"], w["seconds"]) for w in counted] == [(50, 10.0, 5), (60, 12.0, 5),
                                                                               (99, 10.1, 9.85)]
    assert counted[1]["kind"] == "backup" and counted[0]["start"] == t0
    assert [w["max_latency_ms"] for w in counted] == [None, None, None]  # these lines carry no latency
    with pytest.raises(BenchError, match=r"the load ended \(2025-12-01 10:00:19.900000 UTC\) before the last window did"):
        bench.count_orders(lines, windows[:2] + [window("quiet", t0 + 10, t0 + 30)])
    with pytest.raises(BenchError, match="the ack log has no acknowledged orders"):
        bench.count_orders([ack("trade", t0)], windows)


def test_the_longest_order_of_each_window_shows_a_commit_stall():
    t0 = 1_764_583_200.0

    def order(epoch, latency):
        return json.dumps({"kind": "order", "id": 1, "committed_at": bench.ack_stamp(epoch), "latency_ms": latency})

    lines = [order(t0 + i * 0.1, 10.4) for i in range(300)] + [order(t0 + 12.5, 987.6), order(t0 + 25, None)]
    windows = [window("quiet", t0, t0 + 10), window("backup", t0 + 10, t0 + 20), window("quiet", t0 + 20, t0 + 29.9)]
    counted = bench.count_orders(lines, windows)
    assert [w["max_latency_ms"] for w in counted] == [10, 988, 10]
    empty = bench.count_orders(lines, windows[:1] + [window("backup", t0 + 10.01, t0 + 10.05)] + windows[2:])
    assert empty[1]["orders"] == 0 and empty[1]["max_latency_ms"] is None  # a window with no order has no longest one
    f = bench.alternating_figures(counted)
    assert f["backup_max_latency_ms"] == [988] and f["quiet_max_latency_ms"] == 10


def rated(*rates):
    kinds = ["quiet", "backup"] * (len(rates) // 2) + ["quiet"]
    return [dict(kind=k, seconds=10.0, orders=int(r * 10), orders_per_s=r,
                 run=dict(type="incremental", phases=dict(copy_s=9)) if k == "backup" else None)
            for k, r in zip(kinds, rates)]


def test_each_backup_window_is_compared_with_its_neighbours():
    # the rate drifts down from 1000 to 800; each backup costs about a tenth of its neighbours' mean
    f = bench.alternating_figures(rated(1000, 855, 900, 765, 800))
    assert f["ratios"] == [0.9, 0.9] and f["ratio_mean"] == f["ratio_min"] == f["ratio_median"] == f["ratio_max"] == 0.9
    assert f["cycles"] == 2 and f["backup_types"] == ["incremental"] and f["backup_s"] == [10.0, 10.0]
    assert f["backup_max_latency_ms"] == [None, None] and f["quiet_max_latency_ms"] is None  # no latencies counted
    assert f["orders_per_s_quiet"] == 900.0 and f["orders_per_s_backup"] == 810.0
    # a whole-run comparison would have said 810 / 900, too: here by chance; with three cycles it would not
    f = bench.alternating_figures(rated(1000, 950, 900, 720, 800, 780, 800))
    assert f["ratios"] == [1.0, 0.847, 0.975] and f["ratio_median"] == 0.975 and f["ratio_min"] == 0.847


@pytest.mark.parametrize("windows, message", [
    (rated(1000, 900), "windows must alternate quiet, backup, ..., quiet; got quiet, backup"),
    ([], "got none"),
    (rated(0, 900, 0), r"backup window 1 ÷ its quiet neighbours: the denominator is 0"),
])
def test_windows_that_do_not_alternate_or_have_no_orders_are_refused(windows, message):
    with pytest.raises(BenchError, match=message):
        bench.alternating_figures(windows)


# ---------------------------------------------------------------- cold copy
@pytest.fixture
def datadir(tmp_path):
    root = tmp_path / "mysql"
    (root / "stockdb").mkdir(parents=True)
    (root / "ibdata1").write_bytes(b"i" * 5000)
    (root / "stockdb" / "orders.ibd").write_bytes(b"o" * 3000)
    (root / "ib_logfile0").write_bytes(b"r" * 7000)
    (root / "binlog.000001").write_bytes(b"b" * 900)
    return root


def test_the_cold_copy_stops_copies_syncs_and_starts_again(datadir, tmp_path):
    events = []
    dest = tmp_path / "copy"
    done = bench.cold_copy(str(datadir), str(dest), ["./ib_logfile*", "./binlog.*"], stop=lambda: events.append("stop"),
                           start=lambda: events.append("start"), timeout=60)
    assert events == ["stop", "start"]
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["ibdata1", "stockdb", "stockdb/orders.ibd"]
    assert done["bytes"] == bench.tree_bytes(str(dest)) and done["seconds"] >= 0
    du = subprocess.run(["du", "-sb", str(dest)], capture_output=True, text=True, check=False)
    if du.returncode == 0:
        assert done["bytes"] == int(du.stdout.split()[0])


def test_the_server_is_started_again_when_the_copy_fails(datadir, tmp_path):
    events = []
    with pytest.raises(BenchError, match="tar reading the copy of .* exited 1"):
        bench.cold_copy(str(datadir), str(tmp_path / "copy"), [], stop=lambda: events.append("stop"),
                        start=lambda: events.append("start"), timeout=60, tar="false")
    assert events == ["stop", "start"]


@pytest.mark.parametrize("dest, message", [
    ("{data}/copy", "must be outside the datadir"),
    ("{tmp}", "must not contain it"),
    ("{data}", "must be outside the datadir"),
    ("relative/copy", "dest='relative/copy' must be an absolute path other than /"),
    ("/", "dest='/' must be an absolute path other than /"),
    ("{tmp}/full", "exists and is not an empty directory; remove it first"),
])
def test_the_copy_goes_only_to_an_empty_place_outside_the_datadir(datadir, tmp_path, dest, message):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old").write_text("x")
    events = []
    with pytest.raises(BenchError, match=message):
        bench.cold_copy(str(datadir), dest.format(data=datadir, tmp=tmp_path), [], stop=lambda: events.append("stop"),
                        start=lambda: events.append("start"), timeout=60)
    assert events == []  # refused before the server was touched


# ---------------------------------------------------------------- figures
SIMULATOR = dict(orders_per_s=1370.5, latency_ms=dict(p50=4.1, p99=15.2), duration_s=30.01,
                 orders=dict(placed=41130, filled=17000), trades=18000, errors={}, retries=3, changed=True)
SEED = dict(rows=dict(users=200, accounts=1000, orders=200000, trades=90000), rows_per_s=120000.0,
            load_data=dict(rows_per_s=180000.0, seed_ratio=0.67))
SYSBENCH = dict(transactions=75273, tps=2509.1, p99_ms=8.43, report="...")
ENGINE_KEYS = ["host", "started_at", "clients", "duration_s", "sysbench_tables", "sysbench_table_size",
               "sysbench_transactions", "sysbench_tps", "sysbench_p99_ms", "simulator_orders_per_s", "simulator_p99_ms",
               "simulator_duration_s", "simulator_orders", "simulator_trades", "simulator_errors", "simulator_retries",
               "seed_rows", "seed_rows_per_s", "load_data_rows_per_s", "seed_vs_load_data", "ratio", "sysbench_work",
               "simulator_work", "host_cpu_ratio"]


def engine(**changes):
    measured = dict(clients=8, duration_s=30, tables=4, table_size=100000, sysbench=SYSBENCH, simulator=SIMULATOR, seed=SEED)
    measured.update(changes)
    return bench.engine_result("stockdb-lab", measured, started_at="2026-12-01T10:00:00Z")


def test_the_engine_result_has_the_keys_and_figures_of_before():
    r = engine()
    assert list(r) == ENGINE_KEYS
    assert r["ratio"] == round(1370.5 / 2509.1, 4) == 0.5462
    assert (r["sysbench_tps"], r["sysbench_p99_ms"], r["simulator_p99_ms"]) == (2509.1, 8.43, 15.2)
    assert r["seed_rows"] == 291200 and r["seed_vs_load_data"] == 0.67 and r["simulator_orders"]["placed"] == 41130
    assert bench.engine_summary(r) == [
        "stockdb-lab, 8 clients, 30 s: sysbench oltp_write_only 2509.10 tps (p99 8.43 ms); simulator 1370.50 orders/s "
        "(p99 15.20 ms); ratio 0.55",
        "seed bulk load 120000.0 rows/s vs LOAD DATA LOCAL INFILE 180000.0 rows/s of the same 291200 rows: 0.67x"]


def test_the_engine_result_without_the_simulator_half():
    r = engine(simulator=None, seed=None)
    assert list(r) == ENGINE_KEYS and r["ratio"] is None and r["simulator_orders_per_s"] is None and r["seed_rows"] is None
    assert "simulator n/a orders/s (p99 n/a ms); ratio n/a" in bench.engine_summary(r)[0]
    assert bench.engine_summary(r)[1] == "seed bulk load not measured"


def test_work_per_transaction_and_the_cpu_ratio():
    before = dict(status=status_rows(Handler_write=100, Binlog_bytes_written=1000), cpu=cpu_text(1000, 2000, 500))
    sysbench_after = dict(status=status_rows(Handler_write=1100, Handler_update=2000, Handler_delete=1000,
                                             Binlog_bytes_written=501000, Innodb_row_lock_waits=10),
                          cpu=cpu_text(2000, 3800, 700))          # 10 s of mariadbd, 18 s busy, 2 s idle
    simulator_after = dict(status=status_rows(Handler_write=5100, Handler_update=4100,
                                              Binlog_bytes_written=2001000, Innodb_row_lock_waits=500),
                           cpu=cpu_text(2000, 3800, 700))
    counters = dict(sysbench_before=before, sysbench_after=sysbench_after, simulator_before=before,
                    simulator_after=simulator_after)
    r = engine(counters=counters, sysbench=dict(SYSBENCH, transactions=1000),
               simulator=dict(SIMULATOR, orders=dict(placed=500, filled=200)))
    s, m = r["sysbench_work"], r["simulator_work"]
    assert (s["transactions"], s["rows_changed"], s["per_transaction"]["Binlog_bytes_written"]) == (1000, 4.0, 500.0)
    assert (s["server_cpu_ms"], s["other_cpu_ms"], s["host_cpu_ms"], s["host_busy_pct"]) == (10.0, 8.0, 18.0, 90.0)
    assert (m["transactions"], m["rows_changed"], m["per_transaction"]["Innodb_row_lock_waits"]) == (500, 18.2, 1.0)
    assert m["host_cpu_ms"] == 36.0 and r["host_cpu_ratio"] == 0.5
    summary = bench.engine_summary(r)
    assert summary[2].startswith("sysbench per transaction: 4 rows changed, 0 read")
    assert "simulator per order: 18.2 rows changed" in summary[3] and "CPU ms: mariadbd 20, rest of the host 16" in summary[3]
    assert summary[4].startswith("host CPU per transaction, sysbench ÷ simulator: 0.500")
    # without the snapshots (an older playbook) the figures are as before
    assert engine()["sysbench_work"] is None and engine()["host_cpu_ratio"] is None


@pytest.mark.parametrize("counters, message", [
    (dict(sysbench_before=dict(status=status_rows()[:3], cpu=cpu_text(1, 2, 3)),
          sysbench_after=dict(status=status_rows(), cpu=cpu_text(1, 2, 3))), "SHOW GLOBAL STATUS lacks"),
    (dict(sysbench_before=dict(status=status_rows(Rows_read=10), cpu=cpu_text(1, 2, 3)),
          sysbench_after=dict(status=status_rows(), cpu=cpu_text(1, 2, 4))), "a counter went back"),
    (dict(sysbench_before=dict(status=status_rows(), cpu="no"), sysbench_after=dict(status=status_rows(), cpu="no")),
     "cannot read CPU times"),
])
def test_bad_snapshots_are_named(counters, message):
    with pytest.raises(bench.BenchError, match=message):
        engine(counters=counters, simulator=None, seed=None)


@pytest.mark.parametrize("changes, message", [
    (dict(sysbench=dict(transactions=1, p99_ms=1)), "the sysbench result has no tps"),
    (dict(sysbench=None), "measured: missing sysbench"),
    (dict(simulator=dict(SIMULATOR, orders_per_s="fast")), r"simulator orders/s='fast' is not a number"),
    (dict(sysbench=dict(SYSBENCH, tps=0)), "simulator orders/s ÷ sysbench tps: the denominator is 0"),
    (dict(sysbnch=SYSBENCH), "measured: unknown sysbnch"),
])
def test_bad_engine_input_is_named(changes, message):
    with pytest.raises(BenchError, match=message):
        engine(**changes)


TABLES = {"orders": dict(rows=10, checksum="ab"), "trades": dict(rows=4, checksum="cd")}


def backup_measured(**changes):
    measured = dict(
        clients=4, duration_s=90,
        before=dict(orders_per_s=895.0), after=dict(orders_per_s=866.0), loaded=dict(orders_per_s=747.0, finished=1),
        backups=dict(count=2, elapsed_s=95.2, runs=[]),
        intraday=dict(windows=rated(1000, 855, 900, 765, 800)),
        base=dict(backup=dict(name="20261201T100000Z-full", duration_s=54.9, size_bytes=367000000)),
        replayed=dict(duration_s=90.02, orders=dict(placed=80000)),
        restore=dict(restore=dict(timings=dict(copy_s=1.1, prepare_s=0.0, move_back_s=0.05, downtime_s=70.3, replay_s=22.2),
                                  check=dict(ok=True), replay=dict(method="parallel", threads=4), checksums=TABLES,
                                  replay_bytes=123456789)),
        restore_single=dict(restore=dict(timings=dict(replay_s=66.6), checksums=TABLES)),
        cold_copy=dict(bytes=1540000000, seconds=2.5),
    )
    measured.update(changes)
    return measured


def test_the_backup_result_has_the_keys_and_figures_of_before():
    r = bench.backup_result("stockdb-lab", backup_measured())
    assert set(r) == {
        "host", "clients", "duration_s", "orders_per_s_before", "orders_per_s_after", "orders_per_s_without_backup",
        "orders_per_s_during_backups", "backups_during_load", "hot_backup_ratio", "intraday_backup_ratio", "intraday_ratios",
        "intraday_backup_types", "intraday_backup_s", "intraday_backup_phases", "intraday_orders_per_s_quiet",
        "intraday_backup_max_latency_ms", "intraday_quiet_max_latency_ms",
        "intraday_orders_per_s_backup", "backup_s", "backup_bytes", "datadir_bytes",
        "restore_copy_s", "restore_prepare_s", "restore_s", "plain_copy_s", "restore_ratio", "downtime_s", "replay_s",
        "replayed_load_s", "replayed_orders", "replay_ratio", "invariants_after_restore", "replay_method",
        "replay_threads", "replay_single_s", "replay_speedup", "replay_tables_equal", "replay_bytes"}
    # "without" is the mean of the runs before and after; the old Jinja: during * 2 / (before + after)
    assert r["orders_per_s_without_backup"] == 880.5
    assert r["hot_backup_ratio"] == round(747.0 * 2 / (895.0 + 866.0), 3) == 0.848
    assert r["restore_s"] == 1.15 and r["restore_ratio"] == round(1.15 / 2.5, 3) == 0.46
    assert r["replay_ratio"] == round(22.2 / 90.02, 3) == 0.247
    assert (r["replay_method"], r["replay_threads"], r["replay_single_s"]) == ("parallel", 4, 66.6)
    assert r["replay_speedup"] == 3.0 and r["replay_tables_equal"] is True
    assert (r["backups_during_load"], r["replayed_orders"], r["invariants_after_restore"]) == (2, 80000, True)
    assert (r["backup_s"], r["backup_bytes"], r["datadir_bytes"], r["downtime_s"]) == (54.9, 367000000, 1540000000, 70.3)
    summary = bench.backup_summary(r)
    assert summary[0] == ("orders/s 747.0 during 2 back-to-back backups vs 880.5 without (895.0 before, 866.0 after): "
                          "ratio 0.848 (target >= 0.8)")
    assert summary[1] == ("orders/s during 2 incremental backups (10, 10 s) ÷ the windows without on either side: "
                          "0.9, 0.9; mean 0.9 (target >= 0.9)")
    assert r["intraday_backup_ratio"] == 0.9 and r["intraday_backup_phases"] == [dict(copy_s=9)] * 2
    slow = [dict(w, max_latency_ms=m) for w, m in zip(rated(1000, 855, 900, 765, 800), (30, 310, 41, 1220, 35))]
    assert bench.backup_summary(bench.backup_result("stockdb-lab", backup_measured(intraday=dict(windows=slow))))[1] == (
        "orders/s during 2 incremental backups (10, 10 s) ÷ the windows without on either side: 0.9, 0.9; mean 0.9 "
        "(target >= 0.9); longest order 310, 1220 ms (41 ms in the windows without)")
    # a window without latencies keeps its place in the list (the backups' seconds are listed in the same order)
    gaps = [dict(w, max_latency_ms=m) for w, m in zip(rated(1000, 855, 900, 765, 800), (None, None, None, 1220, None))]
    assert bench.backup_summary(bench.backup_result("stockdb-lab", backup_measured(intraday=dict(windows=gaps))))[1].endswith(
        "; longest order ?, 1220 ms (? ms in the windows without)")
    assert "ratio 0.46 (target <= 1.5)" in summary[2] and "ratio 0.247 (target <= 0.333); downtime 70.3 s" in summary[3]
    assert summary[4] == "replay parallel (4 threads) 22.2 s vs one stream 66.6 s: speed-up 3.0; tables identical"
    other = dict(TABLES, trades=dict(rows=4, checksum="ce"))
    r = bench.backup_result("stockdb-lab", backup_measured(restore_single=dict(restore=dict(timings=dict(replay_s=60),
                                                                                            checksums=other))))
    assert r["replay_tables_equal"] is False and bench.backup_summary(r)[4].endswith("tables DIFFER")


@pytest.mark.parametrize("changes, message", [
    (dict(cold_copy=dict(bytes=1, seconds=0)), "restore_ratio: the denominator is 0"),
    (dict(replayed=dict(duration_s=0, orders=dict(placed=0))), "replay_ratio: the denominator is 0"),
    (dict(restore=dict(restore=dict(timings=dict(copy_s=1.0)))), "the restore timings result has no prepare_s"),
    (dict(loaded=dict(finished=1)), "the run during the backups result has no orders_per_s"),
    (dict(base=None), "measured: missing base"),
    (dict(intraday=dict(count=3)), "the intraday backups result has no windows"),
])
def test_bad_backup_input_is_named(changes, message):
    with pytest.raises(BenchError, match=message):
        bench.backup_result("stockdb-lab", backup_measured(**changes))


def test_the_result_file_is_named_by_kind_host_and_start_and_holds_the_figures(tmp_path):
    path = bench.result_path(str(tmp_path / "out"), "engine", "stockdb-lab", "2026-12-01T10:00:00Z")
    assert path == str(tmp_path / "out" / "benchmark-stockdb-lab-20261201T100000Z.json")
    r = engine()
    bench.write_result(path, r)
    assert json.loads(open(path).read()) == r and list(json.loads(open(path).read())) == ENGINE_KEYS
    assert os.path.basename(bench.result_path(str(tmp_path), "backup", "db1")).startswith("backup-benchmark-db1-2")


@pytest.mark.parametrize("host, started_at, message", [
    ("../etc", None, "cannot name a file"),
    ("db1", "yesterday", "started_at='yesterday' is not YYYY-MM-DDTHH:MM:SSZ"),
])
def test_bad_names_of_the_result_file_are_refused(tmp_path, host, started_at, message):
    with pytest.raises(BenchError, match=message):
        bench.result_path(str(tmp_path), "engine", host, started_at)


def test_a_copy_that_hangs_is_stopped_and_the_server_started_again(datadir, tmp_path):
    slow_tar = tmp_path / "slow-tar"
    slow_tar.write_text("#!/bin/sh\nexec sleep 30\n")
    slow_tar.chmod(0o755)
    events = []
    with pytest.raises(BenchError, match="did not finish within 1 s and was stopped"):
        bench.cold_copy(str(datadir), str(tmp_path / "copy"), [], stop=lambda: events.append("stop"),
                        start=lambda: events.append("start"), timeout=0.5, tar=str(slow_tar))
    assert events == ["stop", "start"]
