"""What a chaos drill measures on the hosts: the alert's line, trading's recovery, the figures of a run.

The drills (playbooks/chaos.yml) keep trading going with the simulator, whose acknowledgement log
holds one JSON line per committed order with its commit time and latency; the alert log holds one
line per Alertmanager notification. Everything here reads those two files: when the first FIRING
line of an expected alert appeared, when orders/s came back, and orders/s and p99 per second.
"""

import base64
import json
import math
import os
import re
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

from .stats import percentile

STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"
ALERT_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) FIRING (\S+) (\S+)(.*)$")
STATUS_LINE = re.compile(r"^(\S+) (FIRING|RESOLVED) \S+ (\S+)")
POLL_S = 0.5


class DrillError(ValueError):
    pass


def parse_time(text, what):
    """A UTC time as the drills write it (ISO 8601 with Z, fraction optional) -> unix seconds."""
    if not isinstance(text, str):
        raise DrillError(f"{what}={text!r} is not a UTC time (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)")
    for layout in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    raise DrillError(f"{what}={text!r} is not a UTC time (YYYY-MM-DDTHH:MM:SS[.ffffff]Z)")


def stamp(moment):
    return datetime.fromtimestamp(moment, timezone.utc).strftime(STAMP)


# --- the alert log -------------------------------------------------------------------------------

def first_alert(lines, names, since):
    """The first FIRING line, at or after `since` (unix s, compared to the line's whole second), of an
    alert in `names` (any alert when empty): (name, unix time, line) or None."""
    floor = math.floor(since)
    for line in lines:
        found = ALERT_LINE.match(line.rstrip("\n"))
        if not found:
            continue
        at = parse_time(found.group(1), "alert log time")
        name = found.group(3)
        if at >= floor and (not names or name in names):
            return name, at, line.rstrip("\n")
    return None


def wait_alert(path, names, since, timeout, clock=time.time, sleep=time.sleep):
    """Follow the alert log until an expected alert fires or `timeout` seconds pass.

    Returns dict(alert, alerted_at, line, waited_s); alert and alerted_at are None on timeout.
    The file may not exist yet (no notification so far) and may be rotated meanwhile.
    """
    started = clock()
    offset, partial = 0, ""
    while True:
        if os.path.exists(path):
            size = os.path.getsize(path)
            if size < offset:  # rotated: read the new file from its start
                offset, partial = 0, ""
            with open(path, encoding="utf-8", errors="replace") as log:
                log.seek(offset)
                text = partial + log.read()
                offset = log.tell()
            lines = text.split("\n")
            partial = lines.pop()  # an unfinished last line waits for the next read
            hit = first_alert(lines, names, since)
            if hit:
                return dict(alert=hit[0], alerted_at=stamp(hit[1]), line=hit[2], waited_s=round(clock() - started, 1))
        if clock() - started >= timeout:
            return dict(alert=None, alerted_at=None, line=None, waited_s=round(clock() - started, 1))
        sleep(POLL_S)


def alert_labels(line):
    """The labels of one alert-log line (alertname and severity included), as Alertmanager held them, and
    its startsAt: (labels, starts_at) or None. Lines are `TIME STATUS SEVERITY NAME k=v ... since=START[ :: summary]`."""
    head = line.rstrip("\n").split(" :: ", 1)[0].split()
    if len(head) < 4 or head[1] not in ("FIRING", "RESOLVED"):
        return None
    labels = dict(alertname=head[3], severity=head[2])
    starts_at = None
    for token in head[4:]:
        key, sep, value = token.partition("=")
        if not sep:
            return None
        if key == "since":
            starts_at = value
        else:
            labels[key] = value
    return labels, starts_at


def last_lines(lines, names):
    """The last alert-log line of each alert in `names`: {name: (FIRING|RESOLVED, line)}."""
    last = {}
    for line in lines:
        found = STATUS_LINE.match(line)
        if found and found.group(3) in names:
            last[found.group(3)] = (found.group(2), line.rstrip("\n"))
    return last


def still_firing(lines, names, since=None):
    """The alerts among `names` whose last line in the alert log says FIRING (not RESOLVED since).

    With `since` (unix seconds; when Alertmanager last started), a FIRING line dated before it is left out
    here and returned by stale_firing."""
    return sorted(name for name, (status, line) in last_lines(lines, names).items()
                  if status == "FIRING" and not _before(line, since))


def stale_firing(lines, names, since):
    """The last FIRING line, dated before `since` (Alertmanager's start) and never followed by a RESOLVED
    one, of each alert in `names`: {name: line}.

    Alertmanager keeps the notifications it sent on disk across a restart but no group of the alert, so it
    never sends this one's RESOLVED, and until its repeat interval (hours) passes it will not tell the same
    alert firing again: the next drill of that alert would see no alert at all (the lab stopped while
    MariaDBRestarted fired, and a crash drill the next session was never alerted). Telling Alertmanager the
    alert ended (wait_quiet's end_alerts) makes it send the RESOLVED and forget the notification."""
    return {name: line for name, (status, line) in sorted(last_lines(lines, names).items())
            if status == "FIRING" and since is not None and _before(line, since)}


def _before(line, since):
    if since is None:
        return False
    try:
        return parse_time(line.split(" ", 1)[0], "alert line") < since
    except DrillError:
        return False


def ended_alerts(lines, now):
    """Alertmanager API v2 alerts (POST /api/v2/alerts) telling that the alerts of these alert-log lines
    ended at `now` (unix s): the same labels, so Alertmanager matches the notification it keeps."""
    alerts = []
    for line in lines:
        parsed = alert_labels(line)
        if parsed is None:
            raise DrillError(f"cannot read the labels of the alert-log line {line!r}")
        labels, starts_at = parsed
        alert = dict(labels=labels, endsAt=stamp(now))
        if starts_at:
            alert["startsAt"] = starts_at
        alerts.append(alert)
    return alerts


def wait_quiet(path, names, timeout, since=None, end_alerts=None, resolved_wait=60, clock=time.time,
               sleep=time.sleep):
    """Wait until none of `names` is firing as far as the alert log tells (its RESOLVED line came), so a
    new drill's alert is a new notification; returns dict(firing (those still firing on timeout), ended
    (those told ended), waited_s).

    An alert whose FIRING line predates `since` (Alertmanager's start; see stale_firing) is told ended once
    through `end_alerts(alerts)` (for example post_alerts to Alertmanager) and then waited for like the
    others, for at most `resolved_wait` seconds: an Alertmanager that had forgotten the notification as
    well sends no RESOLVED, and will notify the next firing anyway. Without `end_alerts` such an alert
    counts as firing."""
    started = clock()
    ended, told_at = [], None
    while True:
        lines = []
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as log:
                lines = log.readlines()
        firing = still_firing(lines, names, since)
        stale = stale_firing(lines, names, since)
        if stale and end_alerts is not None and told_at is None:
            end_alerts(ended_alerts(stale.values(), clock()))
            ended, told_at = sorted(stale), clock()
        if told_at is not None and clock() - told_at >= resolved_wait:
            stale = {}
        firing = sorted(set(firing) | set(stale))
        if not firing or clock() - started >= timeout:
            return dict(firing=firing, ended=ended, waited_s=round(clock() - started, 1))
        sleep(POLL_S * 4)


def post_alerts(url, alerts, user=None, password=None, timeout=10):
    """POST alerts to Alertmanager's API v2 at `url` (http://host:port), with basic auth when a user is given."""
    if not url.startswith(("http://", "https://")):
        raise DrillError(f"Alertmanager's URL {url!r} is not an http:// or https:// URL")
    request = urllib.request.Request(url.rstrip("/") + "/api/v2/alerts", data=json.dumps(alerts).encode(),  # noqa: S310
                                     headers={"Content-Type": "application/json"}, method="POST")
    if user:
        token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) only, above)
            response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise DrillError(f"telling Alertmanager at {url} that {[a['labels']['alertname'] for a in alerts]} ended "
                         f"failed: {exc}") from exc


# --- the acknowledgement log ---------------------------------------------------------------------

def _order(line, since):
    """(commit time, latency ms or None) of an ack-log line that acknowledges an order at or after since."""
    if '"kind": "order"' not in line:
        return None
    try:
        entry = json.loads(line)
        at = parse_time(entry["committed_at"], "committed_at")
    except (ValueError, KeyError, DrillError):
        return None
    return (at, entry.get("latency_ms")) if since is None or at >= since else None


def ack_order(line):
    """(commit time, latency ms or None) of an ack-log line that acknowledges an order, else None."""
    return _order(line, None)


class AckTail:
    """The acknowledged orders of a growing ack log: each read() parses only the lines added since the last.

    A drill polls the log while trading runs on the same host; parsing the whole log at every poll
    (150,000 lines after three minutes) took CPU from the trading it measures."""

    def __init__(self, path, since=None):
        self.path, self.since = path, since
        self.offset, self.partial, self.orders = 0, "", []

    def read(self):
        """Every order acknowledged so far (at or after `since`), oldest first."""
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8", errors="replace") as log:
                log.seek(self.offset)
                text = self.partial + log.read()
                self.offset = log.tell()
            lines = text.split("\n")
            self.partial = lines.pop()  # an unfinished last line waits for the next read
            self.orders.extend(o for o in (_order(line, self.since) for line in lines) if o)
            self.orders.sort(key=lambda o: o[0])  # clients append concurrently: nearly sorted already
        return self.orders


def read_orders(path, since=None):
    """(commit time, latency ms or None) of every acknowledged order in the ack log, oldest first."""
    return AckTail(path, since).read()


def per_second(orders, start, end):
    """Orders and latencies in each whole second [start + i, start + i + 1) up to `end`."""
    seconds = max(0, int(math.ceil(end - start)))
    counts = [0] * seconds
    latencies = [[] for _ in range(seconds)]
    for at, latency in orders:
        i = int(math.floor(at - start))
        if 0 <= i < seconds:
            counts[i] += 1
            if latency is not None:
                latencies[i].append(float(latency))
    return counts, latencies


def window_rate(orders, start, end):
    """Orders per second in [start, end) (None for an empty window)."""
    if end <= start:
        return None
    return sum(1 for at, _ in orders if start <= at < end) / (end - start)


def window_p99(orders, start, end):
    latencies = [float(lat) for at, lat in orders if start <= at < end and lat is not None]
    value = percentile(latencies, 0.99)
    return None if value is None else round(value, 1)


def slowest_window_rate(orders, start, end, window_s=5):
    """Orders/s of the slowest `window_s` whole seconds in a row in [start, end); the whole window's rate
    when it is shorter than that (None for an empty window)."""
    whole = int(end - start)
    if whole < window_s:
        return window_rate(orders, start, end)
    counts, _ = per_second(orders, start, start + whole)
    return min(sum(counts[i:i + window_s]) for i in range(whole - window_s + 1)) / window_s


def recovery_point(orders, reference, since, now, ratio=0.9, window_s=5):
    """The first second s >= since from which the next `window_s` seconds run at >= ratio x `reference`
    orders/s; None if no complete window (ending before `now`) does yet."""
    if reference is None or reference <= 0:
        raise DrillError("no baseline: no order was acknowledged before the fault (is trading running?)")
    start = math.floor(since)
    counts, _ = per_second(orders, start, now)
    need = ratio * reference * window_s
    for i in range(0, len(counts) - window_s + 1):
        if sum(counts[i:i + window_s]) >= need:
            return float(start + i)
    return None


def wait_recovery(path, baseline_from, baseline_to, since, timeout, ratio=0.9, window_s=5,
                  clock=time.time, sleep=time.sleep):
    """Wait until `window_s` seconds in a row run at `ratio` of the slowest `window_s` seconds in a row of
    the baseline window: back to what the host did without the fault. Judged against the baseline's mean,
    a host whose undisturbed rate swings (the lab's moves by a third within half a minute) looks
    unrecovered whenever the fault ends in a slow phase; the slowest stretch the host ran before the fault
    is a rate it runs at with nothing wrong.

    Returns dict(baseline_per_s (the mean), slowest_per_s, recovered_at (None on timeout), waited_s)."""
    orders = read_orders(path, baseline_from)
    baseline = window_rate(orders, baseline_from, baseline_to)
    slowest = slowest_window_rate(orders, baseline_from, baseline_to, window_s)
    tail = AckTail(path, math.floor(since))
    started = clock()
    figures = dict(baseline_per_s=round(baseline, 1) if baseline is not None else None,
                   slowest_per_s=round(slowest, 1) if slowest is not None else None)
    while True:
        now = clock()
        # the last second is still being written: judge whole seconds that have ended
        point = recovery_point(tail.read(), slowest, since, math.floor(now) - 1, ratio, window_s)
        if point is not None:
            return dict(figures, recovered_at=stamp(max(point, since)), waited_s=round(now - started, 1))
        if now - started >= timeout:
            return dict(figures, recovered_at=None, waited_s=round(now - started, 1))
        sleep(POLL_S)


def longest_stall(orders, since, until):
    """The longest time without an acknowledged order that ends at or after `since` (the fault), up to
    `until`: dict(seconds, last_before, first_after). What clients saw of a switchover's write block or a
    failover: from the last order acknowledged before it to the first after it. first_after is None when
    trading had not come back by `until`."""
    times = sorted(at for at, _ in orders if at <= until)
    before = [t for t in times if t < since]
    previous = before[-1] if before else since
    longest = None
    for at in (t for t in times if t >= since):
        if longest is None or at - previous > longest[0]:
            longest = (at - previous, previous, at)
        previous = at
    if longest is None or until - previous > longest[0]:
        longest = (until - previous, previous, None)
    return dict(seconds=round(longest[0], 3), last_before=stamp(longest[1]),
                first_after=None if longest[2] is None else stamp(longest[2]))


def seconds_between(earlier, later):
    """Seconds from one UTC time to another (None when either is missing)."""
    if not earlier or not later:
        return None
    return round(parse_time(later, "later") - parse_time(earlier, "earlier"), 1)


def measure(path, marks, warmup_s=3, window_s=5):
    """The figures of one drill from its ack log and its marks (UTC times: load_started_at, injected_at,
    load_stopped_at; baseline_started_at, alerted_at, remediation_started_at, recovered_at when they happened).
    load_stopped_at is when the load was told to stop (or its planned end), not when its clients were done:
    their last second does not trade at the load's rate.

    Orders/s and p99 before the fault (from baseline_started_at, or `warmup_s` after the load's start),
    during it (injection to recovery, or to the end of the load) and after it; the lowest `window_s`
    orders/s during it as a share of before (dip_ratio); the longest pause in acknowledged orders from
    the fault on (stall); the time to alert and to recover (from the remediation's start and from the
    injection); per-second series."""
    for name in ("load_started_at", "injected_at", "load_stopped_at"):
        if not marks.get(name):
            raise DrillError(f"measure needs {name}")
    start = parse_time(marks["load_started_at"], "load_started_at")
    injected = parse_time(marks["injected_at"], "injected_at")
    stopped = parse_time(marks["load_stopped_at"], "load_stopped_at")
    recovered = parse_time(marks["recovered_at"], "recovered_at") if marks.get("recovered_at") else None
    baseline_from = (parse_time(marks["baseline_started_at"], "baseline_started_at")
                     if marks.get("baseline_started_at") else min(start + warmup_s, injected))
    if not start <= baseline_from <= injected <= stopped:
        raise DrillError(f"load_started_at {marks['load_started_at']}, baseline_started_at "
                         f"{marks.get('baseline_started_at') or '(not given)'}, injected_at {marks['injected_at']}, "
                         f"load_stopped_at {marks['load_stopped_at']} are not in that order")
    orders = read_orders(path, start)
    before = (baseline_from, injected)
    during = (injected, recovered if recovered else stopped)
    after = (recovered, stopped) if recovered else (stopped, stopped)
    baseline = window_rate(orders, *before)
    counts, latencies = per_second(orders, math.floor(start), stopped)
    first = int(math.floor(injected) - math.floor(start))
    last = int(math.ceil(during[1]) - math.floor(start))
    windows = [sum(counts[i:i + window_s]) / window_s for i in range(first, max(first + 1, last - window_s + 1))
               if i + window_s <= len(counts)]
    dip = None
    if baseline and windows:
        dip = round(min(windows) / baseline, 3)

    def rate(window):
        value = window_rate(orders, *window)
        return None if value is None else round(value, 1)

    return dict(
        time_to_alert_s=seconds_between(marks["injected_at"], marks.get("alerted_at")),
        time_to_recover_s=dict(from_remediation=seconds_between(marks.get("remediation_started_at"),
                                                                marks.get("recovered_at")),
                               from_injection=seconds_between(marks["injected_at"], marks.get("recovered_at"))),
        orders_per_s=dict(before=rate(before), during=rate(during), after=rate(after)),
        p99_ms=dict(before=window_p99(orders, *before), during=window_p99(orders, *during),
                    after=window_p99(orders, *after)),
        dip_ratio=dip,
        stall=longest_stall(orders, injected, stopped),
        orders=len(orders),
        series=dict(t0=stamp(math.floor(start)), step_s=1, orders_per_s=counts,
                    p99_ms=[None if not v else round(percentile(v, 0.99), 1) for v in latencies]),
    )
