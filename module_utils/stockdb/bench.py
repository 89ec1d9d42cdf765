"""The measurements and figures of playbooks/benchmark.yml and playbooks/backup_benchmark.yml.

  sysbench      the commands of a sysbench OLTP run (prepare, run, cleanup) and the reading of its report
  back to back  a host command repeated until a deadline (full backups while the simulator trades)
  alternating   windows without and with a backup in turn while the simulator trades, and the orders the
                simulator acknowledged in each (from its ack log): drift between phases cancels
  cold copy     a timed, synced tar copy of a stopped server's data files (what a restore is compared with)
  figures       the results the playbooks print and write: rates, ratios, means, the JSON file

Commands run through a `run(argv, seconds)` callable that returns (rc, stdout, stderr) and kills the
command after `seconds` (library/stockdb_bench.py wraps module.run_command with coreutils `timeout`),
so every step is bounded in time. Standard library only (and the drills' reading of the ack log).
"""

import bisect
import datetime
import json
import os
import re
import statistics
import subprocess
import tempfile
import time

from .drill import ack_order
from .work import WorkError, per_transaction, snapshot

# What `timeout` exits with when it stopped the command (TERM, then KILL after the grace).
TIMED_OUT = (124, 137)
KILL_AFTER_S = 10
TAIL = 1500

SYSBENCH_WORKLOADS = ("oltp_read_only", "oltp_read_write", "oltp_write_only", "oltp_point_select",
                      "oltp_insert", "oltp_update_index", "oltp_update_non_index", "oltp_delete")

# sysbench 1.0's report: "transactions:  12305  (410.03 per sec.)", "99th percentile:  48.34" (ms).
_COUNT_RATE = r"^\s*{}:\s+(\d+)\s+\(([0-9.]+) per sec\.\)"
_TRANSACTIONS = re.compile(_COUNT_RATE.format("transactions"), re.M)
_QUERIES = re.compile(_COUNT_RATE.format("queries"), re.M)
_IGNORED_ERRORS = re.compile(_COUNT_RATE.format("ignored errors"), re.M)
_TOTAL_TIME = re.compile(r"^\s*total time:\s+([0-9.]+)s", re.M)
_LATENCY = re.compile(r"^\s*(min|avg|max|\d+th percentile):\s+([0-9.]+)\s*$", re.M)


class BenchError(Exception):
    """A measurement could not be made or its figures are missing; the message says which and why."""


# ---------------------------------------------------------------- commands
def bounded(timeout_bin, argv, seconds):
    """argv run under coreutils `timeout`: TERM after `seconds` (at least 1), KILL 10 s later."""
    return [timeout_bin, f"--kill-after={KILL_AFTER_S}", str(max(1, int(seconds + 0.999))), *argv]


def remaining(deadline, clock=time.monotonic):
    """Seconds left until `deadline` (of `clock`); BenchError when none are."""
    left = deadline - clock()
    if left <= 0:
        raise BenchError("the time allowed (timeout) ran out before the next step")
    return left


def checked(what, argv, seconds, rc, out, err):
    """The output of a command that succeeded; BenchError naming the step, the tool and the cause otherwise."""
    tool = os.path.basename(argv[0])
    if rc in TIMED_OUT:
        raise BenchError(f"{what}: {tool} did not finish within {int(seconds + 0.999)} s and was stopped")
    if rc != 0:
        tail = (err or "").strip()[-TAIL:] or (out or "").strip()[-TAIL:] or "(no output)"
        raise BenchError(f"{what}: {tool} exited {rc}: {tail}")
    return out


# ---------------------------------------------------------------- sysbench
def sysbench_argv(sysbench_bin, workload, socket, database, tables, table_size, threads, config_file):
    """The options every phase shares; credentials come from `config_file`, never the command line."""
    if workload not in SYSBENCH_WORKLOADS:
        raise BenchError(f"workload {workload!r} is not one of {', '.join(SYSBENCH_WORKLOADS)}")
    return [sysbench_bin, workload, "--db-driver=mysql", f"--mysql-socket={socket}", f"--mysql-db={database}",
            f"--tables={int(tables)}", f"--table-size={int(table_size)}", f"--threads={int(threads)}",
            f"--config-file={config_file}"]


def sysbench_config(user, password):
    """sysbench reads no MySQL option file: the account goes into its own --config-file (key=value lines)."""
    for name, value in (("login_user", user), ("login_password", password)):
        if not value or any(c in value for c in "\r\n"):
            raise BenchError(f"{name} must be a non-empty single line")
    return f"mysql-user={user}\nmysql-password={password}\n"


def parse_sysbench(text, percentile=99):
    """Rate and latency from sysbench's report; BenchError when the figures are missing or no transaction ran."""
    transactions = _TRANSACTIONS.search(text or "")
    latency = {name: float(value) for name, value in _LATENCY.findall(text or "")}
    wanted = f"{int(percentile)}th percentile"
    if not transactions or wanted not in latency:
        lines = (text or "").strip().splitlines()[-20:]
        raise BenchError(f"sysbench's report has no transaction rate or {wanted}: {' | '.join(lines) or '(empty)'}")
    figures = dict(transactions=int(transactions.group(1)), tps=float(transactions.group(2)), p99_ms=latency[wanted])
    if figures["tps"] <= 0:
        raise BenchError(f"sysbench committed no transactions ({figures['transactions']} in the run)")
    queries = _QUERIES.search(text)
    errors = _IGNORED_ERRORS.search(text)
    total = _TOTAL_TIME.search(text)
    figures.update(
        queries_per_s=float(queries.group(2)) if queries else None,
        ignored_errors=int(errors.group(1)) if errors else None,
        total_time_s=float(total.group(1)) if total else None,
        latency_ms={**{k: latency[k] for k in ("min", "avg", "max") if k in latency}, f"p{int(percentile)}": latency[wanted]},
    )
    return figures


SYSBENCH_PHASES = ("prepare", "run", "cleanup")


def run_sysbench(run, base_argv, duration, timeout, config_text, config_file, clock=time.monotonic,
                 phases=SYSBENCH_PHASES):
    """The `phases` of prepare, run for `duration` s, cleanup (in that order), all within `timeout` s.

    With "cleanup" among them it runs even after a failure. `base_argv` names `config_file`, which is
    written here (mode 0600) with `config_text` and removed whatever happens. Returns the figures of
    parse_sysbench() and the run's report (with "run" among the phases), and cleanup_error.
    """
    unknown = [p for p in phases if p not in SYSBENCH_PHASES]
    if unknown or not phases:
        raise BenchError(f"phases {list(phases)} must be some of {', '.join(SYSBENCH_PHASES)}")
    deadline = clock() + timeout
    fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(config_text)

        def phase(what, extra, at_least=0):
            argv = base_argv + extra
            seconds = max(at_least, deadline - clock()) if at_least else remaining(deadline, clock)
            return checked(f"sysbench {what}", argv, seconds, *run(argv, seconds))

        cleanup_error, figures = None, {}
        try:
            if "prepare" in phases:
                phase("prepare", ["prepare"])
            if "run" in phases:
                report = phase("run", [f"--time={int(duration)}", "--events=0", "--percentile=99", "--report-interval=0",
                                       "run"])
                figures = dict(parse_sysbench(report), report=report)
        finally:
            # the tables go even when the run failed; a failed cleanup must not hide the run's error
            if "cleanup" in phases:
                try:
                    phase("cleanup", ["cleanup"], at_least=60)
                except BenchError as exc:
                    cleanup_error = str(exc)
    finally:
        os.unlink(config_file)
    return dict(figures, cleanup_error=cleanup_error)


def private_dir():
    """A directory only this user can read (mode 0700), for a credentials file."""
    return tempfile.mkdtemp(prefix="stockdb-bench-")


# ---------------------------------------------------------------- back to back
def back_to_back(run, argv, seconds, max_runs, timeout, clock=time.monotonic):
    """Run `argv` again and again until `seconds` have passed (a run under way finishes) or `max_runs`.

    The whole loop is bounded by `timeout` s. Each run must succeed; its last output line, when it is
    JSON (as `stockdb-ops backup` prints), is kept. Returns dict(count, elapsed_s, runs).
    """
    start = clock()
    stop_starting, deadline = start + seconds, start + timeout
    runs = []
    while clock() < stop_starting and len(runs) < max_runs:
        left = remaining(deadline, clock)
        t0 = clock()
        out = checked(f"run {len(runs) + 1} of {os.path.basename(argv[0])} {' '.join(argv[1:])}", argv, left,
                      *run(argv, left))
        runs.append(dict(_last_json(out), wall_s=round(clock() - t0, 3)))
    return dict(count=len(runs), elapsed_s=round(clock() - start, 3), runs=runs)


def _last_json(out):
    lines = (out or "").strip().splitlines()
    try:
        value = json.loads(lines[-1]) if lines else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------- alternating
ACK_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # the simulator's committed_at, UTC


def alternate(run, argv, seconds, quiet, timeout, clock=time.monotonic, wall=time.time, sleep=time.sleep):
    """Windows of `quiet` s without a backup and of one run of `argv` (a backup) in turn: Q B Q B ... Q.

    Meant to run while a load trades for (at least) `seconds` more. A backup starts only when what is
    left of `seconds` holds one as long as the longest so far (at first `quiet`) and a quiet window after
    it; a backup that ends too late for its quiet window is dropped. So every backup window has a quiet
    one on each side, all within the load. Bounded by `timeout`. Returns dict(windows): each with kind
    (quiet or backup), start and end (UTC epoch seconds) and, for a backup, its last JSON line as `run`.
    """
    start = clock()
    stop, deadline = start + seconds, start + timeout
    windows = []

    def quiet_window():
        t0 = wall()
        sleep(quiet)
        windows.append(dict(kind="quiet", start=t0, end=wall()))

    quiet_window()
    longest = quiet
    while clock() + longest + quiet <= stop:
        left = remaining(deadline, clock)
        c0, t0 = clock(), wall()
        out = checked(f"backup {len(windows) // 2 + 1}: {os.path.basename(argv[0])} {' '.join(argv[1:])}", argv, left,
                      *run(argv, left))
        windows.append(dict(kind="backup", start=t0, end=wall(), run=_last_json(out)))
        longest = max(longest, clock() - c0)
        if clock() + quiet > stop:
            windows.pop()  # no room for the quiet window after it
            break
        quiet_window()
    if len(windows) < 3:
        raise BenchError(f"no backup fitted between two quiet windows of {quiet} s in {seconds} s; give the load "
                         "more time (a backup and two quiet windows at least)")
    return dict(windows=windows)


def ack_stamp(epoch):
    """UTC epoch seconds in the simulator's committed_at format."""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(ACK_TIME_FORMAT)


def count_orders(ack_lines, windows):
    """`windows` with the orders acknowledged in each (committed_at within [start, end)), their rate and the
    longest order latency in each (what a backup's blocking of commits shows as; None without latencies).

    `ack_lines`: the simulator's ack log, one JSON object per line. BenchError when the load ended before
    the last window did (its newest order is older than that window's end): the rates would be wrong.
    """
    # the drills' reading of the ack log: (commit time in unix seconds, latency) of each order line
    orders = sorted((order for order in map(ack_order, ack_lines) if order), key=lambda order: order[0])
    times = [order[0] for order in orders]
    if not times:
        raise BenchError("the ack log has no acknowledged orders")
    if times[-1] < windows[-1]["end"]:
        raise BenchError(f"the load ended ({ack_stamp(times[-1])} UTC) before the last window did "
                         f"({ack_stamp(windows[-1]['end'])} UTC); give the load more time than the windows")
    counted = []
    for w in windows:
        first, end = bisect.bisect_left(times, w["start"]), bisect.bisect_left(times, w["end"])
        seconds = w["end"] - w["start"]
        latencies = [latency for _, latency in orders[first:end] if latency is not None]
        counted.append(dict(w, seconds=round(seconds, 3), orders=end - first,
                            orders_per_s=round((end - first) / seconds, 1) if seconds > 0 else None,
                            max_latency_ms=round(max(latencies)) if latencies else None))
    return counted


def alternating_figures(windows):
    """Each backup window's orders/s ÷ the mean of the quiet windows on either side, and their summary.

    Comparing each backup with its neighbours cancels the drift of the rate over a run.
    """
    kinds = [w["kind"] for w in windows]
    if len(windows) < 3 or kinds != ["quiet", "backup"] * (len(windows) // 2) + ["quiet"]:
        raise BenchError(f"windows must alternate quiet, backup, ..., quiet; got {', '.join(kinds) or 'none'}")
    ratios = [ratio(windows[i]["orders_per_s"], mean([windows[i - 1]["orders_per_s"], windows[i + 1]["orders_per_s"]]),
                    f"backup window {i // 2 + 1} ÷ its quiet neighbours")
              for i in range(1, len(windows), 2)]
    backups = windows[1::2]
    quiet_latencies = [w["max_latency_ms"] for w in windows[0::2] if w.get("max_latency_ms") is not None]
    return dict(
        cycles=len(ratios),
        ratios=ratios,
        ratio_mean=round(mean(ratios), 3),
        ratio_min=min(ratios),
        ratio_median=round(statistics.median(ratios), 3),
        ratio_max=max(ratios),
        backup_s=[b["seconds"] for b in backups],
        backup_types=sorted({b.get("run", {}).get("type") or "?" for b in backups}),
        backup_phases=[b.get("run", {}).get("phases") for b in backups],
        # the longest order latency in each backup window, and in all the windows without one
        backup_max_latency_ms=[b.get("max_latency_ms") for b in backups],
        quiet_max_latency_ms=max(quiet_latencies) if quiet_latencies else None,
        orders_per_s_quiet=round(sum(w["orders"] for w in windows[0::2]) / sum(w["seconds"] for w in windows[0::2]), 1),
        orders_per_s_backup=round(sum(b["orders"] for b in backups) / sum(b["seconds"] for b in backups), 1),
    )


# ---------------------------------------------------------------- cold copy
def check_copy_paths(datadir, dest):
    """The copy goes to an empty place outside the datadir, and is not the datadir's parent."""
    for name, path in (("datadir", datadir), ("dest", dest)):
        if not os.path.isabs(path) or os.path.realpath(path) == "/":
            raise BenchError(f"{name}={path!r} must be an absolute path other than /")
    real_data, real_dest = os.path.realpath(datadir), os.path.realpath(dest)
    if real_dest == real_data or real_dest.startswith(real_data + "/") or real_data.startswith(real_dest + "/"):
        raise BenchError(f"dest {dest} must be outside the datadir {datadir} and must not contain it")
    if not os.path.isdir(datadir):
        raise BenchError(f"datadir {datadir} does not exist")
    if os.path.lexists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise BenchError(f"dest {dest} exists and is not an empty directory; remove it first")


def tar_copy(src, dest, excludes, seconds, tar="tar"):
    """`tar -C src -cf - . | tar -C dest -xf -` with `excludes`, stopped after `seconds`."""
    with tempfile.TemporaryFile() as pack_err, tempfile.TemporaryFile() as unpack_err:
        pack = subprocess.Popen([tar, "-C", src, *(f"--exclude={e}" for e in excludes), "-cf", "-", "."],
                                stdout=subprocess.PIPE, stderr=pack_err)
        unpack = subprocess.Popen([tar, "-C", dest, "-xf", "-"], stdin=pack.stdout, stderr=unpack_err)
        pack.stdout.close()  # unpack holds the pipe now: pack sees SIGPIPE if unpack dies
        try:
            unpack.wait(timeout=seconds)
            pack.wait(timeout=max(1, seconds))
        except subprocess.TimeoutExpired:
            for proc in (pack, unpack):
                proc.kill()
                proc.wait()
            raise BenchError(f"the copy of {src} did not finish within {int(seconds + 0.999)} s and was stopped") from None
        for side, proc, err in (("reading", pack, pack_err), ("writing", unpack, unpack_err)):
            if proc.returncode != 0:
                err.seek(0)
                raise BenchError(f"tar {side} the copy of {src} exited {proc.returncode}: "
                                 f"{err.read().decode(errors='replace').strip()[-TAIL:] or '(no output)'}")


def tree_bytes(path):
    """Apparent size of a tree, files and directories, as `du -sb` counts it."""
    total = os.lstat(path).st_size
    for root, dirs, files in os.walk(path):
        total += sum(os.lstat(os.path.join(root, name)).st_size for name in dirs + files)
    return total


def cold_copy(datadir, dest, excludes, stop, start, timeout, clock=time.monotonic, tar="tar"):
    """With the server stopped (`stop()`), copy its data files to `dest` and sync; `start()` whatever happens.

    Returns dict(bytes, seconds): the copy's size and the wall time of the copy and the sync.
    """
    check_copy_paths(datadir, dest)
    deadline = clock() + timeout
    os.makedirs(dest, mode=0o700, exist_ok=True)
    stop()
    try:
        t0 = clock()
        tar_copy(datadir, dest, excludes, remaining(deadline, clock), tar=tar)
        os.sync()
        seconds = clock() - t0
    finally:
        start()
    return dict(bytes=tree_bytes(dest), seconds=round(seconds, 3))


# ---------------------------------------------------------------- figures
def number(value, what):
    """A measured figure as a float; BenchError naming it when it is missing or not a number."""
    if isinstance(value, bool) or value is None:
        raise BenchError(f"{what} is missing")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BenchError(f"{what}={value!r} is not a number") from None


def mean(values, what="the mean"):
    values = [number(v, what) for v in values]
    if not values:
        raise BenchError(f"{what}: no values")
    return sum(values) / len(values)


def ratio(numerator, denominator, what, digits=3):
    """numerator ÷ denominator rounded; BenchError naming the ratio when the denominator is not positive."""
    numerator, denominator = number(numerator, what), number(denominator, what)
    if denominator <= 0:
        raise BenchError(f"{what}: the denominator is {denominator:g}, not a positive figure")
    return round(numerator / denominator, digits)


def field(result, path, what):
    """result['a']['b'] for path 'a.b'; BenchError naming the result and the missing field."""
    value = result
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise BenchError(f"the {what} result has no {path}")
        value = value[key]
    return value


def _optional(result, path):
    try:
        return field(result, path, "")
    except BenchError:
        return None


def require(inputs, required, optional=()):
    """The inputs of a result, checked: every required one given, no unknown ones."""
    missing = sorted(k for k in required if inputs.get(k) is None)
    unknown = sorted(set(inputs) - set(required) - set(optional))
    problems = ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unknown {', '.join(unknown)}"] if unknown else [])
    if problems:
        raise BenchError("measured: " + "; ".join(problems))


def _work(counters, half, transactions):
    """per_transaction() of one half from the benchmark's snapshots (None when they were not taken)."""
    if not counters or counters.get(f"{half}_before") is None or transactions is None:
        return None
    before, after = (counters.get(f"{half}_{point}") or {} for point in ("before", "after"))
    try:
        return per_transaction(snapshot(before.get("status"), before.get("cpu")),
                               snapshot(after.get("status"), after.get("cpu")), transactions)
    except WorkError as exc:
        raise BenchError(f"{half}: {exc}") from None


ENGINE_INPUTS = ("clients", "duration_s", "tables", "table_size", "sysbench")
ENGINE_OPTIONAL = ("simulator", "seed", "counters")


def engine_result(host, measured, started_at=None):
    """benchmark.yml: sysbench against the trade simulator, and the seed's bulk load against LOAD DATA.

    `measured`: clients, duration_s, tables, table_size, sysbench (stockdb_bench action=sysbench), and
    simulator (stockdb_simulate) and seed (stockdb_seed), None when that half was skipped; counters, the
    snapshots around each half's run (sysbench_before, sysbench_after, simulator_before, simulator_after:
    dict(status=SHOW GLOBAL STATUS rows, cpu=the text cpu_times() reads)) for the work per transaction.
    """
    require(measured, ENGINE_INPUTS, ENGINE_OPTIONAL)
    sysbench, simulator, seed = measured["sysbench"], measured.get("simulator"), measured.get("seed")
    counters = measured.get("counters")
    sysbench_work = _work(counters, "sysbench", int(field(sysbench, "transactions", "sysbench")))
    # per order placed: the simulator's cancels and rejected orders are part of what an order costs
    simulator_work = _work(counters, "simulator", _optional(simulator, "orders.placed") if simulator else None)
    tps = number(field(sysbench, "tps", "sysbench"), "sysbench tps")
    orders_per_s = number(field(simulator, "orders_per_s", "simulator"), "simulator orders/s") if simulator else None
    rows = _optional(seed, "rows") if seed else None
    return dict(
        host=host,
        started_at=started_at,
        clients=int(measured["clients"]),
        duration_s=int(measured["duration_s"]),
        sysbench_tables=int(measured["tables"]),
        sysbench_table_size=int(measured["table_size"]),
        sysbench_transactions=int(field(sysbench, "transactions", "sysbench")),
        sysbench_tps=tps,
        sysbench_p99_ms=number(field(sysbench, "p99_ms", "sysbench"), "sysbench p99"),
        simulator_orders_per_s=orders_per_s,
        simulator_p99_ms=number(field(simulator, "latency_ms.p99", "simulator"), "simulator p99") if simulator else None,
        simulator_duration_s=_optional(simulator, "duration_s") if simulator else None,
        simulator_orders=_optional(simulator, "orders") if simulator else None,
        simulator_trades=_optional(simulator, "trades") if simulator else None,
        simulator_errors=_optional(simulator, "errors") if simulator else None,
        simulator_retries=_optional(simulator, "retries") if simulator else None,
        seed_rows=sum(rows.values()) if isinstance(rows, dict) else None,
        seed_rows_per_s=_optional(seed, "rows_per_s") if seed else None,
        load_data_rows_per_s=_optional(seed, "load_data.rows_per_s") if seed else None,
        seed_vs_load_data=_optional(seed, "load_data.seed_ratio") if seed else None,
        ratio=ratio(orders_per_s, tps, "simulator orders/s ÷ sysbench tps", 4) if simulator else None,
        sysbench_work=sysbench_work,
        simulator_work=simulator_work,
        # what the ratio would be if both halves were held by the host's CPU alone
        host_cpu_ratio=(ratio(sysbench_work["host_cpu_ms"], simulator_work["host_cpu_ms"], "host CPU per transaction", 4)
                        if sysbench_work and simulator_work else None),
    )


def _fmt(value, spec="%.2f"):
    return "n/a" if value is None else spec % value


def engine_summary(r):
    seed = ("seed bulk load not measured" if r["seed_rows"] is None else
            f"seed bulk load {_fmt(r['seed_rows_per_s'], '%s')} rows/s vs LOAD DATA LOCAL INFILE "
            f"{_fmt(r['load_data_rows_per_s'], '%s')} rows/s of the same {r['seed_rows']} rows: "
            f"{_fmt(r['seed_vs_load_data'], '%s')}x")
    return [
        f"{r['host']}, {r['clients']} clients, {r['duration_s']} s: sysbench oltp_write_only {_fmt(r['sysbench_tps'])} tps "
        f"(p99 {_fmt(r['sysbench_p99_ms'])} ms); simulator {_fmt(r['simulator_orders_per_s'])} orders/s "
        f"(p99 {_fmt(r['simulator_p99_ms'])} ms); ratio {_fmt(r['ratio'])}",
        seed,
    ] + [_work_line(name, r[key]) for name, key in (("sysbench", "sysbench_work"), ("simulator", "simulator_work"))
         if r.get(key)] + ([f"host CPU per transaction, sysbench ÷ simulator: {_fmt(r['host_cpu_ratio'], '%.3f')} (the "
                            "ratio if the host's CPU alone held both)"] if r.get("host_cpu_ratio") else [])


def _work_line(name, w):
    per = w["per_transaction"]
    return (f"{name} per {'order' if name == 'simulator' else 'transaction'}: {w['rows_changed']:g} rows changed, "
            f"{per['Rows_read']:g} read, {per['Handler_read_key']:g} index lookups, "
            f"{per['Innodb_row_lock_waits']:g} row lock waits ({per['Innodb_row_lock_time']:g} ms), "
            f"{per['Binlog_bytes_written']:.0f} binlog bytes, {per['Innodb_os_log_written']:.0f} redo bytes, "
            f"{per['Binlog_group_commits']:g} group commits; CPU ms: mariadbd {w['server_cpu_ms']:g}, rest of the host "
            f"{w['other_cpu_ms']:g} (host {w['host_busy_pct']:g} % busy)")


BACKUP_INPUTS = ("clients", "duration_s", "before", "after", "loaded", "backups", "intraday", "base", "restore",
                 "cold_copy", "replayed", "restore_single")


def backup_result(host, measured, started_at=None):
    """backup_benchmark.yml: trading during back-to-back backups, a restore against a cold copy, the replay.

    `measured`: clients, duration_s; before, after, loaded and replayed (stockdb_simulate: the runs
    without backups, the run during them, the run whose binlogs the restore replays); backups
    (stockdb_bench action=backups); intraday (stockdb_bench action=alternate: windows without and with an
    incremental backup in turn, while one load runs); base (stockdb_backup, the backup restored); restore and restore_single
    (stockdb_restore of that backup to the same end, in parallel and as one stream, both with
    checksum_tables); cold_copy (stockdb_bench action=cold_copy). `started_at` names the file only.
    """
    require(measured, BACKUP_INPUTS)
    m = measured
    before = number(field(m["before"], "orders_per_s", "run before the backups"), "orders/s before")
    after = number(field(m["after"], "orders_per_s", "run after the backups"), "orders/s after")
    during = number(field(m["loaded"], "orders_per_s", "run during the backups"), "orders/s during the backups")
    timings = field(m["restore"], "restore.timings", "restore")
    restore_s = sum(number(field(timings, k, "restore timings"), f"restore {k}") for k in ("copy_s", "prepare_s", "move_back_s"))
    plain_copy_s = number(field(m["cold_copy"], "seconds", "cold copy"), "cold copy seconds")
    replay_s = number(field(timings, "replay_s", "restore timings"), "restore replay_s")
    replayed_load_s = number(field(m["replayed"], "duration_s", "replayed load"), "replayed load seconds")
    single_s = number(field(m["restore_single"], "restore.timings.replay_s", "single-stream restore"),
                      "single-stream replay_s")
    intraday = alternating_figures(field(m["intraday"], "windows", "intraday backups"))
    tables = [field(r, "restore.checksums", what) for r, what in ((m["restore"], "restore"),
                                                                  (m["restore_single"], "single-stream restore"))]
    return dict(
        host=host,
        clients=int(m["clients"]),
        duration_s=int(m["duration_s"]),
        orders_per_s_before=before,
        orders_per_s_after=after,
        orders_per_s_without_backup=round(mean([before, after], "orders/s without backups"), 1),
        orders_per_s_during_backups=during,
        backups_during_load=int(field(m["backups"], "count", "back-to-back backups")),
        # the rate drifts between runs: "without" is the mean of a run before and a run after
        hot_backup_ratio=ratio(during, mean([before, after]), "hot_backup_ratio"),
        # each intraday backup's window ÷ the windows without a backup on either side, in one load
        intraday_backup_ratio=intraday["ratio_mean"],
        intraday_ratios=intraday["ratios"],
        intraday_backup_types=intraday["backup_types"],
        intraday_backup_s=intraday["backup_s"],
        intraday_backup_phases=intraday["backup_phases"],
        intraday_backup_max_latency_ms=intraday["backup_max_latency_ms"],
        intraday_quiet_max_latency_ms=intraday["quiet_max_latency_ms"],
        intraday_orders_per_s_quiet=intraday["orders_per_s_quiet"],
        intraday_orders_per_s_backup=intraday["orders_per_s_backup"],
        backup_s=field(m["base"], "backup.duration_s", "base backup"),
        backup_bytes=field(m["base"], "backup.size_bytes", "base backup"),
        datadir_bytes=int(field(m["cold_copy"], "bytes", "cold copy")),
        restore_copy_s=timings["copy_s"],
        restore_prepare_s=timings["prepare_s"],
        restore_s=round(restore_s, 3),
        plain_copy_s=round(plain_copy_s, 3),
        restore_ratio=ratio(restore_s, plain_copy_s, "restore_ratio"),
        downtime_s=field(timings, "downtime_s", "restore timings"),
        replay_s=replay_s,
        replayed_load_s=replayed_load_s,
        replayed_orders=field(m["replayed"], "orders.placed", "replayed load"),
        replay_ratio=ratio(replay_s, replayed_load_s, "replay_ratio"),
        replay_method=field(m["restore"], "restore.replay.method", "restore"),
        replay_threads=field(m["restore"], "restore.replay", "restore").get("threads", 1),
        replay_single_s=single_s,
        replay_bytes=field(m["restore"], "restore.replay_bytes", "restore"),
        replay_speedup=ratio(single_s, replay_s, "replay_speedup"),
        # the same backup replayed to the same end both ways: the tables must come out identical
        replay_tables_equal=tables[0] == tables[1] and bool(tables[0]),
        invariants_after_restore=field(m["restore"], "restore.check.ok", "restore"),
    )


def _longest_orders(r):
    """The longest order of each intraday backup window (a commit stall shows here) and of the quiet ones;
    ? for a window without latencies, nothing when no window has any (an ack log without them)."""
    backups = r["intraday_backup_max_latency_ms"]
    if all(m is None for m in backups):
        return ""
    shown = ", ".join("?" if m is None else str(m) for m in backups)
    quiet = r["intraday_quiet_max_latency_ms"]
    return f"; longest order {shown} ms ({'?' if quiet is None else quiet} ms in the windows without)"


def backup_summary(r):
    return [
        f"orders/s {r['orders_per_s_during_backups']} during {r['backups_during_load']} back-to-back backups vs "
        f"{r['orders_per_s_without_backup']} without ({r['orders_per_s_before']} before, {r['orders_per_s_after']} after): "
        f"ratio {r['hot_backup_ratio']} (target >= 0.8)",
        f"orders/s during {len(r['intraday_ratios'])} {'/'.join(r['intraday_backup_types'])} backups "
        f"({', '.join(f'{s:g}' for s in r['intraday_backup_s'])} s) ÷ the windows without on either side: "
        f"{', '.join(f'{x:g}' for x in r['intraday_ratios'])}; mean {r['intraday_backup_ratio']} (target >= 0.9)"
        + _longest_orders(r),
        f"restore {r['restore_s']} s vs plain copy {r['plain_copy_s']} s of {r['datadir_bytes']} bytes: "
        f"ratio {r['restore_ratio']} (target <= 1.5)",
        f"replay {r['replay_s']} s for {r['replayed_load_s']} s of load ({r['replayed_orders']} orders): "
        f"ratio {r['replay_ratio']} (target <= 0.333); downtime {r['downtime_s']} s",
        f"replay {r['replay_method']} ({r['replay_threads']} threads) {r['replay_s']} s vs one stream "
        f"{r['replay_single_s']} s: speed-up {r['replay_speedup']}; tables "
        f"{'identical' if r['replay_tables_equal'] else 'DIFFER'}",
    ]


# per kind of benchmark: the JSON file's name, the result, its summary lines
KINDS = dict(
    engine=("benchmark", engine_result, engine_summary),
    backup=("backup-benchmark", backup_result, backup_summary),
)


def stamp(started_at=None, now=None):
    """YYYYMMDDTHHMMSSZ of `started_at` (ISO 8601, UTC) or of now."""
    if started_at:
        try:
            when = datetime.datetime.strptime(started_at, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            raise BenchError(f"started_at={started_at!r} is not YYYY-MM-DDTHH:MM:SSZ") from None
    else:
        when = now or datetime.datetime.now(datetime.timezone.utc)
    return when.strftime("%Y%m%dT%H%M%SZ")


def result_path(output_dir, kind, host, started_at=None, now=None):
    if not re.fullmatch(r"[A-Za-z0-9._-]+", host or ""):
        raise BenchError(f"host={host!r} cannot name a file (letters, digits, '.', '_', '-')")
    return os.path.join(os.path.realpath(output_dir), f"{KINDS[kind][0]}-{host}-{stamp(started_at, now)}.json")


def write_result(path, result):
    """The result as indented JSON, keys in the order the result functions give them."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(result, indent=4, ensure_ascii=False) + "\n")
    os.chmod(path, 0o644)
