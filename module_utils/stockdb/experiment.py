"""A parameter experiment (playbooks/tune_experiment.yml): the same workload run at each value of a server
setting, round after round, and what each value did. library/stockdb_experiment.py runs it on the controller.

  plan      the steps of one round: per value, the configuration it is measured on (the role's my.cnf, or
            Debian's stock one with the role's durability) and the settings written into the drop-in file
            read last - names and values checked to be plain before they go into a file
  figures   one run's: throughput, p99, buffer pool hit rate, disk reads and writes, from the workload's
            result and two snapshots of SHOW GLOBAL STATUS around it; mariadbd's CPU per transaction and how
            busy the host was, from two readings of /proc (work.cpu_times)
  summary   per value over the rounds: min / median / max, and each round's ratio to the first value of the
            same round (the values of a round run one after the other, so a drift of the host falls on all)
  output    the Markdown table, the JSON and a picture

Everything works on plain values; no server is needed to test it. The picture needs matplotlib (on the
controller). Standard library otherwise.
"""

import io
import json
import os
import re

from .stats import spread
from .work import WorkError, cpu_times, status_values

ROLE, STOCK = "role", "stock"
CONFIG = "config"
MAX_VALUES = 8
NAME = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
# A my.cnf value: no spaces, quotes, '#' or line breaks can go into the drop-in file.
# % and = as in performance_schema_instrument = wait/%=OFF (the first = of a my.cnf line ends the name).
VALUE = re.compile(r"^[A-Za-z0-9_.,:/+%=-]{1,128}$")
SYSBENCH = ("oltp_read_only", "oltp_read_write", "oltp_write_only", "oltp_point_select")
WORKLOADS = ("mix",) + SYSBENCH

# SHOW GLOBAL STATUS counters read around each run.
COUNTERS = ("Innodb_buffer_pool_read_requests", "Innodb_buffer_pool_reads", "Innodb_data_reads",
            "Innodb_data_writes", "Innodb_data_read", "Innodb_data_written", "Innodb_os_log_written",
            "Innodb_data_fsyncs", "Innodb_buffer_pool_wait_free")

# The figures of a run: key, heading, unit, digits; higher_is_better decides the ratio's reading.
METRICS = (
    ("throughput", "throughput", "/s", 1, True),
    ("p99_ms", "p99", "ms", 1, False),
    ("reads_per_s", "reads", "/s", 1, True),
    ("read_p99_ms", "read p99", "ms", 1, False),
    ("hit_rate", "buffer pool hit rate", "%", 3, True),
    ("disk_reads_per_s", "disk reads", "/s", 1, False),
    ("disk_writes_per_s", "disk writes", "/s", 1, False),
    ("redo_mb_per_s", "redo written", "MiB/s", 2, False),
    ("fsyncs_per_s", "fsyncs", "/s", 1, False),
    ("server_cpu_ms", "mariadbd CPU", "ms/txn", 3, False),
    ("host_busy_pct", "host CPU busy", "%", 0, False),
)
# Figures whose ratio to the first value is reported. mariadbd's CPU per transaction is the one that a noisy
# host moves least: on a CPU-bound host a rate follows it, so a setting that costs CPU shows there first.
RATIOS = ("throughput", "p99_ms", "server_cpu_ms")


class ExperimentError(Exception):
    """A request or a result the experiment refuses; the message names what is wrong."""


# ---------------------------------------------------------------- plan
def _value_text(name, value):
    if isinstance(value, bool):
        value = "ON" if value else "OFF"
    text = str(value)
    if not VALUE.match(text):
        raise ExperimentError(f"value {text!r} of {name} is not a plain my.cnf value "
                              "(letters, digits and . , : / + % = - _ only; at most 128)")
    return text


def _settings(name, value):
    if isinstance(value, dict):
        if not value:
            raise ExperimentError("a value given as a mapping must set at least one variable")
        return {_name(k): _value_text(k, v) for k, v in sorted(value.items())}
    return {name: _value_text(name, value)}


def _name(name):
    if not isinstance(name, str) or not NAME.match(name):
        raise ExperimentError(f"{name!r} is not a server variable name (lower case letters, digits, _)")
    return name


def _label(param, settings):
    """A value of `param` is labelled by itself; a mapping by each name=value it sets."""
    if list(settings) == [param]:
        return settings[param]
    return ", ".join(f"{k}={v}" for k, v in settings.items())


def plan(param, values, base=ROLE, workload="mix"):
    """The steps of one round, in order: dicts of label, base (role or stock) and settings (name -> text).

    `param` is a server variable (each value sets it), or "config" (the values are "role" and "stock": the
    configuration itself is compared). A value may also be a mapping of several variables at once
    (innodb_flush_log_at_trx_commit with sync_binlog); `param` then only names the experiment.
    """
    if workload not in WORKLOADS:
        raise ExperimentError(f"workload {workload!r} is not one of {', '.join(WORKLOADS)}")
    if base not in (ROLE, STOCK):
        raise ExperimentError(f"base {base!r} must be {ROLE} or {STOCK}")
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_VALUES:
        raise ExperimentError(f"values must be a list of 1 to {MAX_VALUES} values (got {values!r})")
    if param == CONFIG:
        bad = [v for v in values if v not in (ROLE, STOCK)]
        if bad:
            raise ExperimentError(f"with param=config the values are {ROLE} and {STOCK} (got {bad})")
        steps = [dict(label=v, base=v, settings={}) for v in values]
    else:
        _name(param)
        steps = []
        for value in values:
            settings = _settings(param, value)
            steps.append(dict(label=_label(param, settings), base=base, settings=settings))
    labels = [s["label"] for s in steps]
    if len(set(labels)) != len(labels):
        raise ExperimentError(f"values {labels} name a value twice")
    return steps


def drop_in(step, stock_settings, experiment):
    """The text of the drop-in file read after every other (99-...): the step's settings, and for a stock
    step the settings that keep the role's durability and binlog (the role's own file is set aside)."""
    lines = ["# Written by playbooks/tune_experiment.yml for one step of an experiment, and removed after it.",
             f"# Experiment: {experiment}; value: {step['label']}; configuration: {step['base']}.", "[mysqld]"]
    if step["base"] == STOCK:
        lines.append("# Debian's stock configuration with the durability and the binlog the role keeps:")
        lines += [f"{_name(k)} = {_value_text(k, v)}" for k, v in sorted(stock_settings.items())]
    lines += [f"{k} = {v}" for k, v in step["settings"].items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- figures
def status(rows):
    """SHOW GLOBAL STATUS rows (Variable_name, Value) as name -> number, the counters only."""
    try:
        return status_values(rows, COUNTERS)
    except WorkError as exc:
        raise ExperimentError(str(exc)) from None


def _rate(before, after, name, seconds, scale=1.0):
    return round((after[name] - before[name]) / seconds / scale, 3)


def figures(workload, result, before, after, seconds, cpu_before=None, cpu_after=None):
    """One run's figures from the workload's result (stockdb_simulate's or stockdb_bench's) and the counters
    (status()) before and after it, `seconds` apart; with the texts of work.cpu_times() taken at the same two
    points, mariadbd's CPU ms per transaction (an order of the mix, with its share of the reads; a sysbench
    transaction) and the host's busy share."""
    if seconds <= 0:
        raise ExperimentError(f"the run's window is {seconds} s")
    if workload == "mix":
        try:
            reads = result["reads"]
            # a mix without reads (tune_read_share=0: writes only) has no read latency: "-" in the table
            read_p99 = reads["latency_ms"]["p99"]
            out = dict(throughput=float(result["orders_per_s"]), p99_ms=float(result["latency_ms"]["p99"]),
                       reads_per_s=float(reads["per_s"]), read_p99_ms=None if read_p99 is None else float(read_p99))
        except (KeyError, TypeError, ValueError):
            raise ExperimentError("the simulator's result lacks orders_per_s, latency_ms.p99 or reads") from None
    else:
        try:
            out = dict(throughput=float(result["tps"]), p99_ms=float(result["p99_ms"]), reads_per_s=None,
                       read_p99_ms=None)
        except (KeyError, TypeError, ValueError):
            raise ExperimentError("sysbench's result lacks tps or p99_ms") from None
    requests = after["Innodb_buffer_pool_read_requests"] - before["Innodb_buffer_pool_read_requests"]
    misses = after["Innodb_buffer_pool_reads"] - before["Innodb_buffer_pool_reads"]
    out.update(
        hit_rate=round(100.0 * (1 - misses / requests), 3) if requests > 0 else None,
        disk_reads_per_s=_rate(before, after, "Innodb_data_reads", seconds),
        disk_writes_per_s=_rate(before, after, "Innodb_data_writes", seconds),
        mb_read_per_s=_rate(before, after, "Innodb_data_read", seconds, 1048576),
        mb_written_per_s=_rate(before, after, "Innodb_data_written", seconds, 1048576),
        redo_mb_per_s=_rate(before, after, "Innodb_os_log_written", seconds, 1048576),
        fsyncs_per_s=_rate(before, after, "Innodb_data_fsyncs", seconds),
        wait_free=int(after["Innodb_buffer_pool_wait_free"] - before["Innodb_buffer_pool_wait_free"]),
        window_s=round(seconds, 3),
        server_cpu_ms=None, host_busy_pct=None,
    )
    if cpu_before is not None and cpu_after is not None:
        try:
            first, last = cpu_times(cpu_before), cpu_times(cpu_after)
        except WorkError as exc:
            raise ExperimentError(str(exc)) from None
        server = last["server"] - first["server"]
        busy, total = last["host_busy"] - first["host_busy"], last["host_total"] - first["host_total"]
        if server < 0 or busy < 0 or total <= 0:
            raise ExperimentError("the CPU times went back over the run (was the server restarted?)")
        transactions = out["throughput"] * seconds
        out.update(server_cpu_ms=round(1000.0 * server / transactions, 3) if transactions > 0 else None,
                   host_busy_pct=round(100.0 * busy / total, 1))
    return out


# ---------------------------------------------------------------- summary
def _spread(values):
    """min / median / max over the rounds, or None when no round measured it (a cell of "-", no bar)."""
    figures = spread(values)
    return figures if figures["median"] is not None else None


def summarize(steps, runs):
    """Per step (in plan order): the spread of each figure over the rounds, and of each round's ratio to the
    first step of the same round (RATIOS: throughput, p99, mariadbd's CPU per transaction). `runs` are dicts of
    round, label, figures, effective."""
    labels = [s["label"] for s in steps]
    by = {}
    for run in runs:
        if run["label"] not in labels:
            raise ExperimentError(f"a run has the value {run['label']!r}, which is not one of {labels}")
        by.setdefault(run["label"], {})[run["round"]] = run
    first = labels[0]
    out = []
    for step in steps:
        mine = by.get(step["label"], {})
        entry = dict(label=step["label"], base=step["base"], settings=step["settings"], rounds=len(mine),
                     effective=_effective(mine.values()))
        for key, *_ in METRICS:
            entry[key] = _spread([r["figures"].get(key) for r in mine.values()])
        for key in RATIOS:
            ratios = [r["figures"][key] / by[first][n]["figures"][key] for n, r in mine.items()
                      if n in by.get(first, {}) and r["figures"].get(key) is not None
                      and by[first][n]["figures"].get(key)]
            entry[f"{key}_ratio"] = _spread(ratios)
        out.append(entry)
    return out


def _effective(runs):
    """What the server reported for the step's variables (the value it really used), when all rounds agree."""
    seen = {}
    for run in runs:
        for name, value in (run.get("effective") or {}).items():
            seen.setdefault(name, set()).add(str(value))
    return {name: (next(iter(v)) if len(v) == 1 else "varied: " + ", ".join(sorted(v))) for name, v in seen.items()}


# ---------------------------------------------------------------- output
def _cell(s, digits):
    if not s:
        return "-"
    fmt = f"{{:,.{digits}f}}"
    return " / ".join(fmt.format(s[k]) for k in ("min", "median", "max"))


def _metrics(meta):
    """The figures a report shows: the reads' only for a mix that reads (read_share absent: it did)."""
    reads = meta["workload"] == "mix" and float(meta.get("read_share", 1) or 0) > 0
    return [m for m in METRICS if reads or m[0] not in ("reads_per_s", "read_p99_ms")]


def markdown(meta, summary):
    """The report: what was run, then one row per value with min / median / max of each figure over the rounds."""
    workload = meta["workload"]
    what = ("the simulator's read/write mix (orders/s; p99 of orders; reads/s and their p99)" if workload == "mix"
            else f"sysbench {workload} ({meta.get('tables')} tables x {meta.get('table_size'):,} rows; transactions/s)")
    if meta.get("data_mb") not in (None, ""):
        what += f" · {int(meta['data_mb']):,} MiB of data and indexes"
        if meta.get("data_mb_end") not in (None, "") and int(meta["data_mb_end"]) != int(meta["data_mb"]):
            what += f" at the start, {int(meta['data_mb_end']):,} at the end"  # the mix's tables grow as it trades
    lines = [f"# Parameter experiment: {meta['param']} on {meta['host']}", "",
             f"{meta.get('started_at', '')} · {what} · {meta['clients']} clients · {meta['duration_s']} s per run"
             f" after {meta['warmup_s']} s of warm-up · {meta['rounds']} rounds · the server restarted before each run",
             "", "Each cell is min / median / max over the rounds. Ratios are to the first value, taken in the same "
             "round (the values of a round run one after the other, even rounds in reverse order). mariadbd CPU is "
             "the server's CPU time per transaction (per order for the mix, its reads included): on a CPU-bound "
             "host it moves less from run to run than the rate does.", ""]
    metrics = _metrics(meta)
    head = (["value", "configuration", "throughput ratio", "p99 ratio", "mariadbd CPU/txn ratio"]
            + [f"{h} ({u})" for _, h, u, _, _ in metrics])
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in summary:
        row = [_md(e["label"]), e["base"]] + [_cell(e.get(f"{key}_ratio"), 3) for key in RATIOS]
        row += [_cell(e[key], digits) for key, _, _, digits, _ in metrics]
        lines.append("| " + " | ".join(row) + " |")
    effective = [(e["label"], e["effective"]) for e in summary if e["effective"]]
    if effective:
        lines += ["", "What the server used (SHOW GLOBAL VARIABLES after the restart):", ""]
        lines += [f"- {_md(label)}: " + ", ".join(f"`{k}={v}`" for k, v in eff.items()) for label, eff in effective]
    if meta.get("broken_off"):
        lines += ["", f"**Broken off** after {sum(e['rounds'] for e in summary)} runs: {_md(meta['broken_off'])}"]
    if meta.get("command"):
        lines += ["", f"Reproduce: `{meta['command']}`"]
    return "\n".join(lines) + "\n"


def _md(text):
    return str(text).replace("|", "\\|")


def picture_png(meta, summary):
    """Bars of the median per value with the min..max range, one panel per figure; PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = [m for m in _metrics(meta) if m[0] in
               ("throughput", "p99_ms", "read_p99_ms", "server_cpu_ms", "hit_rate", "disk_reads_per_s",
                "disk_writes_per_s")]
    fig = Figure(figsize=(3.2 * len(metrics), 3.4))
    FigureCanvasAgg(fig)
    labels = [e["label"] for e in summary]
    for i, (key, heading, unit, _, _) in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        med = [e[key]["median"] if e[key] else 0 for e in summary]
        low = [m - e[key]["min"] if e[key] else 0 for m, e in zip(med, summary)]
        high = [e[key]["max"] - m if e[key] else 0 for m, e in zip(med, summary)]
        ax.bar(range(len(labels)), med, yerr=[low, high], capsize=3, color="#4c72b0")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
        if key == "hit_rate" and any(e[key] for e in summary):
            # hit rates sit near 100 %: start the axis just under the lowest, or every bar looks the same
            ax.set_ylim(max(0.0, min(e[key]["min"] for e in summary if e[key]) - 0.5), 100.0)
        ax.set_title(f"{heading} ({unit})", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(f"{meta['param']} · {meta['workload']} · median, min..max of {meta['rounds']} rounds", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def file_stem(param, workload):
    return f"{param}-{workload}"


def render(meta, summary, runs, picture=True):
    """The report's files by name: <param>-<workload>.md, .json and (with `picture`) .png."""
    stem = file_stem(meta["param"], meta["workload"])
    files = {f"{stem}.md": markdown(meta, summary).encode(),
             f"{stem}.json": (json.dumps(dict(meta=meta, summary=summary, runs=runs), indent=2, sort_keys=True)
                              + "\n").encode()}
    if picture:
        files[f"{stem}.png"] = picture_png(meta, summary)
    return files


def write(dest, files):
    """Write the files into `dest` (created when missing); the names written."""
    os.makedirs(dest, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(dest, name), "wb") as handle:
            handle.write(data)
    return sorted(files)
