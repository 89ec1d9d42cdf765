"""The drill report (library/stockdb_drill_report.py): from the results of the fault drills of
playbooks/chaos.yml to docs/drills/ - report.json, series.json, report.md and one timeline per fault.

  check      each drill result against the shape the playbook gives it; every problem is named with
             the drill (its index, fault and run) and the key
  verdict    the five checks of a run: alert within its budget, recovered within its budget after the
             remediation started, nothing acknowledged lost, the invariants hold, nothing left behind
  summary    per fault over its runs: min / median / max of every figure; a fault passes when its
             worst run does, i.e. when every run passes every check
  files      the JSON, the Markdown and the timeline pictures (matplotlib, Agg), all deterministic: the
             same results give the same bytes, so a rerun changes nothing

Runs on the controller. Standard library only, but for matplotlib, imported when a picture is drawn.
"""

import io
import json
import math
import os
from datetime import datetime, timezone

from .report import atomic_write
from .stats import spread

FAULTS = ("query_storm", "connection_flood", "lock_storm", "disk_full", "crash", "exporter_down", "cpu_hog", "io_hog")
CHECKS = ("alert", "recover", "lost", "invariants", "left_behind")
EVENTS = ("injected_at", "alerted_at", "remediation_started_at", "remediation_finished_at", "recovered_at")
PHASES = ("before", "during", "after")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

REPORT_JSON = "report.json"
SERIES_JSON = "series.json"
REPORT_MD = "report.md"

MISSING_MATPLOTLIB = ("the drill report needs matplotlib on the controller to draw the timelines: "
                      "install the pinned requirements into the Python that runs Ansible "
                      "(pip install -r requirements.txt; make venv does it for .venv)")
FIGURE_INCHES = (9, 4.5)
FIGURE_DPI = 100


class DrillReportError(Exception):
    """The results cannot be reported; the message names the drill and the key."""


# ---------------------------------------------------------------- check
def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_time(value):
    """UTC 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z' as an aware datetime; ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError(value)
    pattern = TIME_FORMAT if "." in value else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.strptime(value, pattern).replace(tzinfo=timezone.utc)


def _number(value):
    return None if _is_number(value) else "a number"


def _number_or_null(value):
    return None if value is None or _is_number(value) else "a number or null"


def _positive(value):
    return None if _is_number(value) and value > 0 else "a positive number"


def _count(value):
    return None if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else "an integer >= 0"


def _count_or_null(value):
    return None if value is None or _count(value) is None else "an integer >= 0, or null when not checked"


def _run_number(value):
    return None if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else "an integer >= 1"


def _text(value):
    return None if isinstance(value, str) and value.strip() else "a non-empty string"


def _text_or_null(value):
    return None if value is None or isinstance(value, str) else "a string or null"


def _bool(value):
    return None if isinstance(value, bool) else "true or false"


def _time(value, nullable=False):
    if value is None and nullable:
        return None
    try:
        parse_time(value)
    except (TypeError, ValueError):
        return "a UTC time YYYY-MM-DDTHH:MM:SS.ffffffZ" + (" or null" if nullable else "")
    return None


def _time_or_null(value):
    return _time(value, nullable=True)


def _fault(value):
    return None if value in FAULTS else f"one of {', '.join(FAULTS)}"


def _strings(value):
    return None if isinstance(value, list) and all(isinstance(v, str) for v in value) else "a list of strings"


def _error_counts(value):
    if isinstance(value, dict) and all(isinstance(k, str) and _count(v) is None for k, v in value.items()):
        return None
    return "a dict of error kind -> count (integer >= 0)"


# The keys of a drill result and what each must be; a dict is a nested dict with those keys.
SHAPE = dict(
    fault=_fault,
    run=_run_number,
    host=_text,
    injected_at=_time,
    alerted_at=_time_or_null,
    remediation_started_at=_time_or_null,
    remediation_finished_at=_time_or_null,
    recovered_at=_time_or_null,
    alert=_text_or_null,
    remediation=_text_or_null,
    time_to_alert_s=_number_or_null,
    time_to_recover_s=dict(from_remediation=_number_or_null, from_injection=_number_or_null),
    orders_per_s=dict(before=_number_or_null, during=_number_or_null, after=_number_or_null),
    p99_ms=dict(before=_number_or_null, during=_number_or_null, after=_number_or_null),
    dip_ratio=_number_or_null,
    client_errors=_error_counts,
    acknowledged_lost=_count_or_null,
    invariants_ok=_bool,
    left_behind=_strings,
    series=None,  # _series_problems
    budgets=dict(alert_s=_positive, recover_s=_positive),
)


# Share of the baseline orders/s that counts as recovered when a result's budgets do not say
# (playbooks/chaos.yml passes chaos_recovered_ratio as budgets.recovered_ratio).
DEFAULT_RECOVERED_RATIO = 0.9


def _shape_problems(value, shape, missing, prefix=""):
    """Problems of `value` against `shape`; the names of missing keys are appended to `missing`."""
    problems = []
    for key, want in shape.items():
        name = prefix + key
        if key not in value:
            missing.append(name)
        elif isinstance(want, dict):
            if isinstance(value[key], dict):
                problems.extend(_shape_problems(value[key], want, missing, name + "."))
            else:
                problems.append(f"{name} must be a dict with {', '.join(want)}, got {value[key]!r}")
        elif want is not None:
            wanted = want(value[key])
            if wanted:
                problems.append(f"{name} must be {wanted}, got {value[key]!r}")
    return problems


def _numeric(value):
    """A number, or a string holding one (Prometheus gives sample values as strings); ValueError otherwise."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        return float(value)
    raise ValueError(value)


def _series_problems(series, missing):
    keys = ("t0", "step_s", "orders_per_s", "p99_ms", "threads_running")
    if not isinstance(series, dict):
        return [f"series must be a dict with {', '.join(keys)}, got {series!r}"]
    absent = [f"series.{key}" for key in keys if key not in series]
    if absent:
        missing.extend(absent)
        return []
    problems = []
    for key in ("orders_per_s", "p99_ms"):
        values = series[key]
        if not isinstance(values, list) or any(_number_or_null(v) for v in values):
            problems.append(f"series.{key} must be a list of numbers (null for a gap)")
    sampled = any(isinstance(series[k], list) and series[k] for k in ("orders_per_s", "p99_ms"))
    wanted = _time(series["t0"], nullable=not sampled)
    if wanted:
        problems.append(f"series.t0 must be {wanted}{' (the series have points)' if sampled else ''}, got {series['t0']!r}")
    if _positive(series["step_s"]):
        problems.append(f"series.step_s must be a positive number, got {series['step_s']!r}")
    points = series["threads_running"]
    try:
        if not isinstance(points, list):
            raise ValueError(points)
        for point in points:
            if not isinstance(point, (list, tuple)) or len(point) != 2:
                raise ValueError(point)
            _numeric(point[0])
            _numeric(point[1])
    except ValueError:
        problems.append("series.threads_running must be a list of [unix time, value] pairs "
                        "(numbers, or strings as Prometheus query_range gives them)")
    return problems


def drill_name(drill):
    """'query_storm run 2 on stockdb-lab', with what of it is there."""
    if not isinstance(drill, dict):
        return "?"
    name = str(drill.get("fault", "?"))
    if "run" in drill:
        name += f" run {drill['run']}"
    if "host" in drill:
        name += f" on {drill['host']}"
    return name


def check_results(results):
    """DrillReportError naming every problem of every drill (by index, fault, run and key); None when all is well."""
    if not isinstance(results, list) or not results:
        raise DrillReportError("results must be a non-empty list of drill results")
    problems, seen = [], {}
    for index, drill in enumerate(results):
        label = f"results[{index}] ({drill_name(drill)})"
        if not isinstance(drill, dict):
            problems.append(f"{label}: must be a dict, got {drill!r}")
            continue
        missing = []
        found = _shape_problems(drill, SHAPE, missing)
        if "series" in drill:
            found.extend(_series_problems(drill["series"], missing))
        if missing:
            found.insert(0, f"missing {', '.join(missing)}")
        if found:
            problems.append(f"{label}: {'; '.join(found)}")
            continue
        key = (drill["fault"], drill["run"], drill["host"])
        if key in seen:
            problems.append(f"{label}: the same fault, run and host as results[{seen[key]}]")
        seen.setdefault(key, index)
    if problems:
        raise DrillReportError("bad drill results: " + " | ".join(problems))


# ---------------------------------------------------------------- verdict
def _s(value):
    return f"{value:.1f} s"


def _budget(value):
    return f"{value:g} s"


def _rates(drill):
    """What a run that did not recover traded: orders/s before and from the injection to the end, against the
    share of the baseline that counts as recovered (a CI log says why without the series)."""
    rates = drill["orders_per_s"]
    if not rates["before"] or rates["during"] is None:
        return ""
    ratio = drill["budgets"].get("recovered_ratio", DEFAULT_RECOVERED_RATIO)
    slowest = rates.get("slowest_before")
    return (f": {rates['during']:g} orders/s from the injection to the end of the load, "
            f"{rates['during'] / rates['before']:.2f} of the {rates['before']:g} before (recovered means "
            f"{ratio:g} of the slowest 5 s before{f', {slowest:g}' if _is_number(slowest) else ''}, for 5 s)")


def run_failures(drill):
    """[(check, why)] for each check this run failed; [] when it passed them all."""
    budgets = drill["budgets"]
    failed = []
    alert = drill["time_to_alert_s"]
    if alert is None:
        failed.append(("alert", f"not seen (budget {_budget(budgets['alert_s'])})"))
    elif alert > budgets["alert_s"]:
        failed.append(("alert", f"after {_s(alert)}, over the budget of {_budget(budgets['alert_s'])}"))
    recover = drill["time_to_recover_s"]["from_remediation"]
    if recover is None:
        why = "not recovered" if drill["recovered_at"] is None else "no time to recover from the remediation"
        failed.append(("recover", f"{why} (budget {_budget(budgets['recover_s'])} after the remediation)"
                                  + _rates(drill)))
    elif recover > budgets["recover_s"]:
        failed.append(("recover", f"{_s(recover)} after the remediation, over the budget of "
                                  f"{_budget(budgets['recover_s'])}"))
    if drill["acknowledged_lost"] is None:
        failed.append(("lost", "not checked against the ack log"))
    elif drill["acknowledged_lost"]:
        failed.append(("lost", f"{drill['acknowledged_lost']} acknowledged rows lost"))
    if not drill["invariants_ok"]:
        failed.append(("invariants", "did not hold"))
    if drill["left_behind"]:
        failed.append(("left_behind", ", ".join(drill["left_behind"])))
    return failed


# ---------------------------------------------------------------- summary
def order(drill):
    return (FAULTS.index(drill["fault"]), drill["run"], drill["host"])


def by_fault(results):
    """{fault: [its runs, by run number then host]} in the order of FAULTS."""
    grouped = {}
    for drill in sorted(results, key=order):
        grouped.setdefault(drill["fault"], []).append(drill)
    return grouped


def _unique(values):
    return sorted({v for v in values if v is not None})


def fault_summary(runs):
    """Min / median / max of each figure over the runs of one fault, and its verdict (worst run)."""
    failed = {}
    for drill in runs:
        for check, _ in run_failures(drill):
            failed[check] = failed.get(check, 0) + 1
    kinds = sorted({kind for drill in runs for kind in drill["client_errors"]})
    last = runs[-1]
    return dict(
        runs=len(runs),
        hosts=_unique(d["host"] for d in runs),
        alerts=_unique(d["alert"] for d in runs),
        recovered_ratios=_unique(d["budgets"].get("recovered_ratio", DEFAULT_RECOVERED_RATIO) for d in runs),
        budgets=[dict(alert_s=a, recover_s=r)
                 for a, r in sorted({(d["budgets"]["alert_s"], d["budgets"]["recover_s"]) for d in runs})],
        time_to_alert_s=spread([d["time_to_alert_s"] for d in runs]),
        time_to_recover_s=dict(from_remediation=spread([d["time_to_recover_s"]["from_remediation"] for d in runs]),
                               from_injection=spread([d["time_to_recover_s"]["from_injection"] for d in runs])),
        orders_per_s={phase: spread([d["orders_per_s"][phase] for d in runs]) for phase in PHASES},
        dip_ratio=spread([d["dip_ratio"] for d in runs]),
        p99_ms={phase: spread([d["p99_ms"][phase] for d in runs]) for phase in PHASES},
        acknowledged_lost=spread([d["acknowledged_lost"] for d in runs]),
        client_errors={kind: spread([d["client_errors"].get(kind, 0) for d in runs]) for kind in kinds},
        failed_checks={check: failed[check] for check in CHECKS if check in failed},
        passed=not failed,
        timeline=dict(file=picture_name(last["fault"]), run=last["run"], host=last["host"]),
    )


def summarize(results, title=None, commit=None, command=None, broken_off=()):
    """The whole report's summary: header facts, per fault its summary, the verdict and the failures.

    broken_off: why the series of drills stopped early (a drill that failed outright; the drills after it
    did not run): each is a failure, first in the list.
    """
    check_results(results)
    faults = {fault: fault_summary(runs) for fault, runs in by_fault(results).items()}
    failures = [f"broke off: {why}" for why in broken_off]
    failures += [f"{drill_name(d)}: {check}: {why}" for d in sorted(results, key=order) for check, why in run_failures(d)]
    moments = [parse_time(d[event]) for d in results for event in EVENTS if d[event] is not None]
    return dict(
        title=title,
        commit=commit,
        command=command,
        hosts=_unique(d["host"] for d in results),
        first_injection=min(parse_time(d["injected_at"]) for d in results).strftime(TIME_FORMAT),
        last_event=max(moments).strftime(TIME_FORMAT),
        drills=len(results),
        passed=not failures,
        failures=failures,
        faults=faults,
    )


# ---------------------------------------------------------------- Markdown
def cell(figures, spec, runs):
    """'12.3' for one run; 'min / median / max' for several, runs without the figure counted as 'none'."""
    if figures["min"] is None:
        return "none"
    if runs == 1:
        return format(figures["min"], spec)
    text = " / ".join(format(figures[k], spec) for k in ("min", "median", "max"))
    return text + (f" (+{figures['missing']} none)" if figures["missing"] else "")


def _md_escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _errors_cell(errors, runs):
    if not errors:
        return "0"
    return ", ".join(f"{_md_escape(kind)} {cell(figures, '.0f', runs)}" for kind, figures in errors.items())


def _verdict_cell(summary):
    if summary["passed"]:
        return "pass"
    runs = summary["runs"]
    return "**FAIL**: " + ", ".join(f"{check} ({count}/{runs})" if runs > 1 else check
                                    for check, count in summary["failed_checks"].items())


TABLE_HEAD = ("fault", "runs", "alert s", "recover s from remediation", "recover s from injection",
              "orders/s before", "orders/s during", "orders/s after", "dip", "p99 ms before", "p99 ms during",
              "p99 ms after", "acknowledged lost", "client errors", "result")


def table_row(fault, s):
    n = s["runs"]
    return [f"[{fault}](#{fault})", str(n),
            cell(s["time_to_alert_s"], ".1f", n),
            cell(s["time_to_recover_s"]["from_remediation"], ".1f", n),
            cell(s["time_to_recover_s"]["from_injection"], ".1f", n),
            *(cell(s["orders_per_s"][p], ".0f", n) for p in PHASES),
            cell(s["dip_ratio"], ".2f", n),
            *(cell(s["p99_ms"][p], ".1f", n) for p in PHASES),
            cell(s["acknowledged_lost"], ".0f", n),
            _errors_cell(s["client_errors"], n),
            _verdict_cell(s)]


def _when(stamp):
    return parse_time(stamp).strftime("%Y-%m-%d %H:%M:%S UTC")


def _budget_text(budgets):
    return "; ".join(f"alert within {b['alert_s']:g} s of the injection, recovered within {b['recover_s']:g} s of "
                     "the start of the remediation" for b in budgets)


def _offset(drill, event):
    if drill[event] is None:
        return None
    return (parse_time(drill[event]) - parse_time(drill["injected_at"])).total_seconds()


def _fault_section(fault, summary, runs):
    last = runs[-1]
    lines = [f"## {fault}", "",
             f"![{fault}: orders/s, p99 and threads running over time]({picture_name(fault)})", ""]
    alerts = ", ".join(f"`{a}`" for a in summary["alerts"]) or "none"
    remediations = _unique(d["remediation"] for d in runs)
    facts = [f"- runs: {summary['runs']} on {', '.join(summary['hosts'])}; the picture is run {last['run']} "
             f"on {last['host']}, injected {_when(last['injected_at'])}",
             f"- alert: {alerts}",
             f"- remediation: {'; '.join(remediations) or 'none'}",
             f"- budgets: {_budget_text(summary['budgets'])}"]
    marks = [(label, _offset(last, event)) for label, event in
             (("alert", "alerted_at"), ("remediation started", "remediation_started_at"),
              ("remediation finished", "remediation_finished_at"), ("recovered", "recovered_at"))]
    facts.append(f"- run {last['run']}, seconds after the injection: "
                 + ", ".join(f"{label} {'none' if s is None else format(s, '.1f')}" for label, s in marks))
    left = _unique(item for d in runs for item in d["left_behind"])
    if left:
        facts.append(f"- left behind: {', '.join(left)}")
    return lines + facts + [""]


def markdown(summary, results):
    """report.md: header, the table of all faults, the failed checks, one section (and picture) per fault."""
    title = summary["title"] or "Fault drills"
    first, last = _when(summary["first_injection"]), _when(summary["last_event"])
    header = [f"# {title}", "",
              "Generated by the module `stockdb_drill_report` from the drill results in `report.json` (the time "
              "series in `series.json`); the same results give the same files.", "",
              f"- drills: {first} (first injection) to {last} (last event)",
              f"- hosts: {', '.join(summary['hosts'])}",
              f"- commit: {summary['commit'] or 'not given'}",
              f"- runs: {summary['drills']} of {len(summary['faults'])} faults",
              f"- result: {'**PASS**' if summary['passed'] else '**FAIL**'} - "
              + ("every run met every check" if summary["passed"] else f"{len(summary['failures'])} failed checks"),
              ""]
    if summary["command"]:
        header += ["Produced by:", "", "```sh", summary["command"], "```", ""]
    budgets = _unique((b["alert_s"], b["recover_s"]) for s in summary["faults"].values() for b in s["budgets"])
    budget_text = (_budget_text([dict(alert_s=a, recover_s=r) for a, r in budgets]) if len(budgets) == 1
                   else "per fault, see its section")
    ratios = _unique(r for s in summary["faults"].values() for r in s["recovered_ratios"])
    ratio_text = " or ".join(f"{r * 100:g} %" for r in ratios)
    legend = ["## All faults", "",
              f"A run passes when the alert fired within its budget, trading recovered (5 s in a row at {ratio_text} "
              "or more of the orders/s of the baseline's slowest 5 s) within its budget after the remediation started, "
              "no acknowledged row was lost, the "
              f"invariants held and nothing was left behind. Budgets: {budget_text}. With several runs of a fault, "
              "a figure is min / median / max over the runs and the fault passes only when every run does (the "
              "worst run meets the budget); `none` counts runs without the figure (no alert, not recovered, no "
              "latency data). Times in seconds; dip = the lowest 5 s of orders/s during the fault / orders/s "
              "before.", ""]
    table = ["| " + " | ".join(TABLE_HEAD) + " |", "|" + " --- |" * len(TABLE_HEAD)]
    table += ["| " + " | ".join(table_row(fault, s)) + " |" for fault, s in summary["faults"].items()]
    failed = ["", "## Failed checks", ""]
    failed += [f"- {_md_escape(f)}" for f in summary["failures"]] or ["None: every run of every fault met every check."]
    sections = []
    for fault, runs in by_fault(results).items():
        sections += [""] + _fault_section(fault, summary["faults"][fault], runs)[:-1]
    return "\n".join(header + legend + table + failed + sections).rstrip("\n") + "\n"


# ---------------------------------------------------------------- JSON
def report_json(summary, results):
    """The summary and the results as given, but for their time series (series.json)."""
    drills = [{k: v for k, v in d.items() if k != "series"} for d in results]
    return json.dumps(dict(summary=summary, results=drills), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def series_json(results):
    """A JSON list, one line per drill: fault, run, host and its series as given."""
    lines = [json.dumps(dict(fault=d["fault"], run=d["run"], host=d["host"], series=d["series"]), sort_keys=True,
                        ensure_ascii=False) for d in sorted(results, key=order)]
    return "[\n" + ",\n".join(lines) + "\n]\n"


# ---------------------------------------------------------------- timeline
def picture_name(fault):
    return f"{fault}.png"


def _matplotlib():
    try:
        import matplotlib.style
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise DrillReportError(f"{MISSING_MATPLOTLIB} ({exc})") from None
    return matplotlib.style, Figure, FigureCanvasAgg


def timeline_points(drill):
    """(orders, p99, threads): lists of (seconds after the injection, value) for the picture."""
    series = drill["series"]
    injected = parse_time(drill["injected_at"])
    start = (parse_time(series["t0"]) - injected).total_seconds() if series["t0"] else 0.0
    step = float(series["step_s"])

    def regular(values):
        return [(start + i * step, math.nan if v is None else float(v)) for i, v in enumerate(values)]

    threads = [(_numeric(t) - injected.timestamp(), _numeric(v)) for t, v in series["threads_running"]]
    return regular(series["orders_per_s"]), regular(series["p99_ms"]), sorted(threads)


MARKS = (("injection", "injected_at", "tab:red", "-"), ("alert", "alerted_at", "tab:orange", "--"),
         ("remediation", "remediation_started_at", "tab:purple", "-."), ("recovered", "recovered_at", "tab:green", ":"))


def timeline_title(drill):
    alert, recover = drill["time_to_alert_s"], drill["time_to_recover_s"]["from_remediation"]
    return (f"{drill['fault']}: run {drill['run']} on {drill['host']} - "
            + ("no alert" if alert is None else f"alert after {alert:.1f} s") + ", "
            + ("not recovered" if recover is None else f"recovered {recover:.1f} s after the remediation") + " - "
            + ("pass" if not run_failures(drill) else "FAIL"))


def timeline_png(drill):
    """The picture of one run as PNG bytes: orders/s and p99 (second axis) above, threads running below,
    vertical marks at injection, alert, remediation (its span shaded) and recovery. Same drill, same bytes."""
    style, figure_class, canvas_class = _matplotlib()
    orders, p99, threads = timeline_points(drill)
    with style.context("default"):
        fig = figure_class(figsize=FIGURE_INCHES, dpi=FIGURE_DPI)
        canvas_class(fig)
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw=dict(height_ratios=(2, 1)))
        latency = top.twinx()
        handles = []
        if orders:
            handles += top.plot(*zip(*orders), color="tab:blue", linewidth=1.2, label="orders/s")
        if p99:
            handles += latency.plot(*zip(*p99), color="tab:gray", linewidth=1, label="p99 ms (right)")
        if threads:
            handles += bottom.step(*zip(*threads), where="post", color="tab:brown", linewidth=1,
                                   label="threads running (below)")
        for axes, what, empty in ((top, "orders/s or p99", not orders and not p99), (bottom, "threads_running", not threads)):
            if empty:
                axes.text(0.5, 0.5, f"no {what} data", transform=axes.transAxes, ha="center", va="center",
                          fontsize=8, color="gray")
        started, finished = _offset(drill, "remediation_started_at"), _offset(drill, "remediation_finished_at")
        if started is not None and finished is not None and finished > started:
            for axes in (top, bottom):
                axes.axvspan(started, finished, color="tab:purple", alpha=0.12, linewidth=0)
        for label, event, color, dash in MARKS:
            at = _offset(drill, event)
            if at is None:
                continue
            for axes in (top, bottom):
                line = axes.axvline(at, color=color, linestyle=dash, linewidth=1.2, label=f"{label} {at:+.1f} s")
            handles.append(line)
            top.annotate(label, xy=(at, 1), xycoords=("data", "axes fraction"), xytext=(2, -3),
                         textcoords="offset points", rotation=90, va="top", ha="left", fontsize=7, color=color)
        top.set_ylabel("orders/s")
        latency.set_ylabel("p99 ms")
        bottom.set_ylabel("threads running")
        bottom.set_xlabel(f"seconds after the injection at {_when(drill['injected_at'])}")
        for axes in (top, latency, bottom):
            axes.set_ylim(bottom=0)
        fig.suptitle(timeline_title(drill), fontsize=10)
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.955), ncol=len(handles), fontsize=7,
                   frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 0.94))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    return buffer.getvalue()


# ---------------------------------------------------------------- files
def render(results, title=None, commit=None, command=None, broken_off=()):
    """{file name: bytes} of the whole report, and its summary."""
    summary = summarize(results, title=title, commit=commit, command=command, broken_off=broken_off)
    files = {REPORT_JSON: report_json(summary, results).encode(),
             SERIES_JSON: series_json(results).encode(),
             REPORT_MD: markdown(summary, results).encode()}
    for fault, runs in by_fault(results).items():
        files[picture_name(fault)] = timeline_png(runs[-1])
    return files, summary


def _same(path, data):
    try:
        with open(path, "rb") as handle:
            return handle.read() == data
    except OSError:
        return False


def write_report(dest, results, title=None, commit=None, command=None, check_mode=False, broken_off=()):
    """Render the report into `dest` (created when missing); only files whose bytes differ are written.

    Timelines of faults not in `results` (<fault>.png of another fault) are removed, so the directory holds
    the report of these results only. Returns dict(changed, files, written, removed, summary).
    """
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise DrillReportError(f"dest {dest} exists and is not a directory")
    files, summary = render(results, title=title, commit=commit, command=command, broken_off=broken_off)
    paths = {name: os.path.join(dest, name) for name in files}
    written = [paths[name] for name in files if not _same(paths[name], files[name])]
    stale = [os.path.join(dest, picture_name(f)) for f in FAULTS if picture_name(f) not in files]
    removed = [path for path in stale if os.path.lexists(path)]
    if not check_mode:
        os.makedirs(dest, mode=0o755, exist_ok=True)
        for name, data in files.items():
            if paths[name] in written:
                atomic_write(paths[name], data)
        for path in removed:
            os.unlink(path)
    return dict(changed=bool(written or removed), files=sorted(paths.values()), written=sorted(written),
                removed=removed, summary=summary)
