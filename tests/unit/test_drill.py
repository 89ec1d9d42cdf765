"""The drill's measurements (module_utils/stockdb/drill.py) on written alert and ack logs."""

import base64
import http.server
import json
import threading

import pytest
from stockdb import drill

T0 = drill.parse_time("2026-12-02T10:00:00Z", "t0")


def ack_log(path, rates, latency=2.0, start=T0):
    """An ack log with rates[i] orders in second i (and a trade and a cancel that must not count)."""
    with open(path, "w") as log:
        for second, count in enumerate(rates):
            for n in range(count):
                at = drill.stamp(start + second + n / max(count, 1)).replace("T", " ").rstrip("Z")
                log.write(json.dumps(dict(kind="order", id=second * 1000 + n, status="NEW", committed_at=at, client=0,
                                          latency_ms=latency + n)) + "\n")
                log.write(json.dumps(dict(kind="trade", id=n, order_id=n, committed_at=at, client=0)) + "\n")
            log.write(json.dumps(dict(kind="cancel", id=second, status="CANCELLED", committed_at=at, client=0)) + "\n")
    return str(path)


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_times_parse_in_every_layout_the_drills_meet():
    assert drill.parse_time("2026-12-02T10:00:00Z", "x") == T0
    assert drill.parse_time("2026-12-02T10:00:00.500000Z", "x") == T0 + 0.5
    assert drill.parse_time("2026-12-02 10:00:00.25", "x") == T0 + 0.25
    with pytest.raises(drill.DrillError, match="since='yesterday' is not a UTC time"):
        drill.parse_time("yesterday", "since")


def test_the_first_expected_firing_line_at_or_after_the_injection_counts():
    lines = ["2026-12-02T09:59:59Z FIRING critical MariaDBRestarted instance=a since=x",   # before: an old one
             "2026-12-02T10:00:20Z RESOLVED critical MariaDBDown instance=a since=x",
             "2026-12-02T10:00:21Z FIRING warning HostCPUHigh instance=a since=x",        # not expected
             "garbage",
             "2026-12-02T10:00:30Z FIRING critical MariaDBDown instance=a since=x :: down"]
    name, at, line = drill.first_alert(lines, ["MariaDBDown", "MariaDBRestarted"], T0 + 0.7)
    assert (name, at) == ("MariaDBDown", T0 + 30) and line.endswith(":: down")
    assert drill.first_alert(lines, [], T0)[0] == "HostCPUHigh"
    assert drill.first_alert(lines, ["Nope"], T0) is None


def test_wait_alert_follows_the_log_as_it_grows_and_times_out(tmp_path):
    log = tmp_path / "alerts.log"
    clock = Clock(T0)
    calls = []

    def sleep(seconds):
        clock.sleep(seconds)
        calls.append(clock.now)
        if len(calls) == 4:  # the notification arrives while the module waits, its line in two writes
            log.write_text("2026-12-02T10:00:01Z FIRING critical TargetDown job=mysqld")
        if len(calls) == 5:
            log.write_text("2026-12-02T10:00:01Z FIRING critical TargetDown job=mysqld\n")

    found = drill.wait_alert(str(log), ["TargetDown"], T0, 60, clock=clock, sleep=sleep)
    assert found["alert"] == "TargetDown" and found["alerted_at"] == "2026-12-02T10:00:01.000000Z"
    assert found["waited_s"] == 2.5
    missing = drill.wait_alert(str(log), ["MariaDBDown"], T0, 10, clock=clock, sleep=clock.sleep)
    assert missing["alert"] is None and missing["alerted_at"] is None and missing["waited_s"] >= 10


def test_only_orders_count_and_unfinished_lines_are_skipped(tmp_path):
    path = ack_log(tmp_path / "ack.log", [3, 2])
    with open(path, "a") as log:
        log.write('{"kind": "order", "id": 9, "committed_at": "2026-12-02 10:00:01.9"')  # being written
    orders = drill.read_orders(path)
    assert len(orders) == 5 and orders[0] == (T0, 2.0)
    assert drill.read_orders(str(tmp_path / "none.log")) == []


def test_the_ack_tail_parses_each_line_once_and_waits_for_unfinished_ones(tmp_path, monkeypatch):
    path = ack_log(tmp_path / "ack.log", [3, 2])
    tail = drill.AckTail(path, since=T0 + 1)
    assert len(tail.read()) == 2                                            # the second 10:00:00 is before since
    parsed = []
    real = drill._order
    monkeypatch.setattr(drill, "_order", lambda line, since: parsed.append(line) or real(line, since))
    with open(path, "a") as log:
        log.write('{"kind": "order", "id": 9, "committed_at": "2026-12-02 10:00:01.9", "latency_ms": 4.0}\n'
                  '{"kind": "order", "id": 10, "committed_at": "2026-12-02 10:00:01.5"')   # being written
    assert len(tail.read()) == 3 and len(parsed) == 1                       # only the new whole line was parsed
    with open(path, "a") as log:
        log.write(', "latency_ms": 1.0}\n')
    orders = tail.read()
    assert len(orders) == 4 and len(parsed) == 2 and [o[0] for o in orders] == sorted(o[0] for o in orders)
    assert orders[-1] == (T0 + 1.9, 4.0)


def test_recovery_is_the_first_window_back_at_the_share_of_the_baseline():
    orders = [(T0 + s + 0.1, 1.0) for s in range(10) for _ in range(10)]            # 10/s before
    orders += [(T0 + 10 + s + 0.1, 1.0) for s in range(10) for _ in range(2)]       # 2/s during
    orders += [(T0 + 20 + s + 0.1, 1.0) for s in range(10) for _ in range(9)]       # 9/s after
    assert drill.recovery_point(orders, 10.0, T0 + 12.5, T0 + 30) == T0 + 20
    assert drill.recovery_point(orders, 10.0, T0 + 12.5, T0 + 24) is None           # the window has not ended
    assert drill.recovery_point(orders, 10.0, T0 + 2, T0 + 30) == T0 + 2             # never dipped: at once
    with pytest.raises(drill.DrillError, match="no baseline"):
        drill.recovery_point(orders, 0, T0, T0 + 30)


def test_wait_recovery_reads_the_baseline_then_waits(tmp_path):
    path = ack_log(tmp_path / "ack.log", [10] * 10 + [0] * 5 + [10] * 10)
    clock = Clock(T0 + 40)
    result = drill.wait_recovery(path, T0, T0 + 10, T0 + 11, 30, clock=clock, sleep=clock.sleep)
    assert result == dict(baseline_per_s=10.0, slowest_per_s=10.0, recovered_at="2026-12-02T10:00:15.000000Z",
                          waited_s=0.0)
    slow = drill.wait_recovery(ack_log(tmp_path / "slow.log", [10] * 10 + [1] * 30), T0, T0 + 10, T0 + 11, 5,
                               clock=clock, sleep=clock.sleep)
    assert slow["recovered_at"] is None and slow["waited_s"] >= 5


def test_slowest_window_is_the_slowest_five_seconds_in_a_row():
    orders = [(T0 + s + 0.5, 1.0) for s, n in enumerate([10, 10, 6, 6, 6, 6, 6, 10, 10, 10]) for _ in range(n)]
    assert drill.slowest_window_rate(orders, T0, T0 + 10) == 6.0
    assert drill.slowest_window_rate(orders, T0, T0 + 10, window_s=2) == 6.0
    assert drill.slowest_window_rate(orders, T0 + 7, T0 + 10) == 10.0        # shorter than 5 s: its mean
    assert drill.slowest_window_rate(orders, T0, T0 + 10.7) == 6.0          # a part second is not a window
    assert drill.slowest_window_rate([], T0, T0 + 10) == 0.0
    assert drill.slowest_window_rate(orders, T0, T0) is None


def test_recovery_is_judged_against_the_baselines_slow_phase_not_its_mean(tmp_path):
    # the host swings between 12 and 8 orders/s with nothing wrong (mean 10); after the fault it trades at 8
    path = ack_log(tmp_path / "ack.log", [12] * 10 + [8] * 10 + [0] * 10 + [8] * 10)
    clock = Clock(T0 + 45)
    result = drill.wait_recovery(path, T0, T0 + 20, T0 + 21, 5, clock=clock, sleep=clock.sleep)
    assert result["baseline_per_s"] == 10.0 and result["slowest_per_s"] == 8.0
    assert result["recovered_at"] == drill.stamp(T0 + 30)                   # 8/s >= 0.9 x 8/s; the mean would say never
    still = drill.wait_recovery(ack_log(tmp_path / "still.log", [12] * 10 + [8] * 10 + [7] * 20), T0, T0 + 20,
                                T0 + 21, 5, clock=clock, sleep=clock.sleep)
    assert still["recovered_at"] is None                                    # 7/s < 0.9 x 8/s


def test_measure_splits_the_load_at_the_marks(tmp_path):
    path = ack_log(tmp_path / "ack.log", [10] * 10 + [2] * 10 + [10] * 10, latency=1.0)
    marks = dict(load_started_at=drill.stamp(T0), injected_at="2026-12-02T10:00:10Z", load_stopped_at=drill.stamp(T0 + 30))
    figures = drill.measure(path, dict(marks, alerted_at="2026-12-02T10:00:41Z", recovered_at=drill.stamp(T0 + 20),
                                       remediation_started_at=drill.stamp(T0 + 17.5)))
    assert figures["time_to_alert_s"] == 31.0
    assert figures["time_to_recover_s"] == dict(from_remediation=2.5, from_injection=10.0)
    assert figures["orders_per_s"] == dict(before=10.0, during=2.0, after=10.0)
    assert figures["dip_ratio"] == 0.2
    assert figures["p99_ms"]["before"] == 10.0 and figures["p99_ms"]["during"] == 2.0
    assert figures["series"]["orders_per_s"][:12] == [10] * 10 + [2, 2] and len(figures["series"]["orders_per_s"]) == 30
    assert figures["series"]["t0"] == "2026-12-02T10:00:00.000000Z"
    unrecovered = drill.measure(path, marks)
    assert unrecovered["orders_per_s"]["after"] is None and unrecovered["orders_per_s"]["during"] == 6.0
    assert unrecovered["time_to_alert_s"] is None and unrecovered["time_to_recover_s"]["from_injection"] is None
    with pytest.raises(drill.DrillError, match="not in that order"):
        drill.measure(path, dict(marks, injected_at=drill.stamp(T0 - 10)))
    with pytest.raises(drill.DrillError, match="measure needs load_stopped_at"):
        drill.measure(path, dict(marks, load_stopped_at=None))


def test_measure_takes_before_from_the_baseline_window_after_the_warm_up(tmp_path):
    # a fresh load trades fast for its first seconds (20/s here) and settles (10/s): the baseline window
    # after the warm-up is "before", the same window wait_recovery judges recovery against
    path = ack_log(tmp_path / "ack.log", [20] * 5 + [10] * 5 + [2] * 10 + [10] * 10, latency=1.0)
    marks = dict(load_started_at=drill.stamp(T0), injected_at=drill.stamp(T0 + 10), load_stopped_at=drill.stamp(T0 + 30),
                 recovered_at=drill.stamp(T0 + 20))
    assert drill.measure(path, marks)["orders_per_s"]["before"] == 12.9                 # 3 s in by default
    warmed = drill.measure(path, dict(marks, baseline_started_at=drill.stamp(T0 + 5)))
    assert warmed["orders_per_s"] == dict(before=10.0, during=2.0, after=10.0) and warmed["dip_ratio"] == 0.2
    with pytest.raises(drill.DrillError, match="not in that order"):
        drill.measure(path, dict(marks, baseline_started_at=drill.stamp(T0 + 11)))


def test_wait_quiet_waits_for_the_resolved_line(tmp_path):
    log = tmp_path / "alerts.log"
    log.write_text("2026-12-02T10:00:01Z FIRING critical MariaDBDown job=mysqld\n"
                   "2026-12-02T10:00:02Z FIRING warning HostCPUSaturated job=node\n"
                   "2026-12-02T10:00:09Z RESOLVED critical MariaDBDown job=mysqld\n"
                   "2026-12-02T10:01:01Z FIRING critical MariaDBRestarted job=mysqld\n")
    assert drill.still_firing(log.read_text().splitlines(), ["MariaDBDown", "MariaDBRestarted"]) == ["MariaDBRestarted"]
    clock = Clock(T0)

    def sleep(seconds):
        clock.sleep(seconds)
        with open(log, "a") as out:
            out.write("2026-12-02T10:01:31Z RESOLVED critical MariaDBRestarted job=mysqld\n")

    assert drill.wait_quiet(str(log), ["MariaDBDown", "MariaDBRestarted"], 60, clock=clock, sleep=sleep) == \
        dict(firing=[], ended=[], waited_s=2.0)
    log.write_text("2026-12-02T10:01:01Z FIRING critical MariaDBRestarted job=mysqld\n")
    assert drill.wait_quiet(str(log), ["MariaDBRestarted"], 5, clock=clock, sleep=clock.sleep)["firing"] == ["MariaDBRestarted"]
    assert drill.wait_quiet(str(tmp_path / "none.log"), ["X"], 5, clock=clock, sleep=clock.sleep)["firing"] == []


def test_an_alert_that_fired_before_alertmanager_started_is_told_ended_and_its_resolved_line_waited_for(tmp_path):
    # the lab stopped at 10:03 while MariaDBRestarted fired; its Alertmanager started again at 11:00 with that
    # notification in its log: it never tells the end, and would not notify the next crash's MariaDBRestarted
    lines = ["2026-12-02T10:01:01Z FIRING critical MariaDBRestarted instance=lab:9104 job=mysqld "
             "since=2026-12-02T10:00:31.5Z :: MariaDB on lab:9104 restarted",
             "2026-12-02T10:02:00Z FIRING critical MariaDBDown job=mysqld since=2026-12-02T10:01:30Z",
             "2026-12-02T11:00:30Z FIRING critical MariaDBDown job=mysqld since=2026-12-02T11:00:00Z"]
    started = drill.parse_time("2026-12-02T11:00:00Z", "start")
    names = ["MariaDBRestarted", "MariaDBDown"]
    assert drill.still_firing(lines, names) == ["MariaDBDown", "MariaDBRestarted"]
    assert drill.still_firing(lines, names, since=started) == ["MariaDBDown"]
    assert drill.stale_firing(lines, names, since=started) == {"MariaDBRestarted": lines[0]}
    assert drill.stale_firing(lines, names, since=None) == {}

    log = tmp_path / "alerts.log"
    log.write_text("\n".join(lines[:2]) + "\n")
    clock, told = Clock(T0), []

    def end_alerts(alerts):  # Alertmanager sends the RESOLVED 10 s later
        told.append(alerts)

    def sleep(seconds):
        clock.sleep(seconds)
        if told and clock() - T0 >= 10 and "RESOLVED" not in log.read_text():
            with open(log, "a") as out:
                out.write("2026-12-02T11:05:10Z RESOLVED critical MariaDBRestarted instance=lab:9104 job=mysqld\n")
                out.write("2026-12-02T11:05:10Z RESOLVED critical MariaDBDown job=mysqld\n")

    result = drill.wait_quiet(str(log), names, 120, since=started, end_alerts=end_alerts, clock=clock, sleep=sleep)
    assert result == dict(firing=[], ended=["MariaDBDown", "MariaDBRestarted"], waited_s=10.0)
    assert told == [[dict(labels=dict(alertname="MariaDBDown", severity="critical", job="mysqld"),
                          startsAt="2026-12-02T10:01:30Z", endsAt=drill.stamp(T0)),
                     dict(labels=dict(alertname="MariaDBRestarted", severity="critical", instance="lab:9104", job="mysqld"),
                          startsAt="2026-12-02T10:00:31.5Z", endsAt=drill.stamp(T0))]]


def test_a_stale_alert_counts_as_firing_without_a_way_to_end_it_and_is_waited_for_at_most_resolved_wait(tmp_path):
    log = tmp_path / "alerts.log"
    log.write_text("2026-12-02T10:01:01Z FIRING critical MariaDBRestarted job=mysqld since=2026-12-02T10:00:31Z\n")
    started = drill.parse_time("2026-12-02T11:00:00Z", "start")
    clock = Clock(T0)
    assert drill.wait_quiet(str(log), ["MariaDBRestarted"], 30, since=started, clock=clock, sleep=clock.sleep) == \
        dict(firing=["MariaDBRestarted"], ended=[], waited_s=30.0)
    # an Alertmanager that forgot the notification too sends no RESOLVED, and will notify the next firing
    clock, told = Clock(T0), []
    assert drill.wait_quiet(str(log), ["MariaDBRestarted"], 300, since=started, end_alerts=told.append,
                            resolved_wait=60, clock=clock, sleep=clock.sleep) == \
        dict(firing=[], ended=["MariaDBRestarted"], waited_s=60.0)
    assert len(told) == 1


def test_alert_labels_reads_the_lines_the_alert_log_receiver_writes():
    assert drill.alert_labels("2026-12-02T10:01:01Z FIRING warning TargetDown instance=lab:9104 job=mysqld "
                              "since=2026-12-02T10:00:01Z :: a = b") == \
        (dict(alertname="TargetDown", severity="warning", instance="lab:9104", job="mysqld"), "2026-12-02T10:00:01Z")
    assert drill.alert_labels("2026-12-02T10:01:01Z RESOLVED none X") == (dict(alertname="X", severity="none"), None)
    assert drill.alert_labels("garbage") is None
    assert drill.alert_labels("2026-12-02T10:01:01Z FIRING warning X job=a with spaces") is None
    with pytest.raises(drill.DrillError, match="cannot read the labels"):
        drill.ended_alerts(["2026-12-02T10:01:01Z FIRING warning X job=a with spaces"], T0)


def test_post_alerts_sends_them_to_alertmanagers_api_with_basic_auth():
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers.get("Authorization"), json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        alerts = [dict(labels=dict(alertname="X"), endsAt=drill.stamp(T0))]
        drill.post_alerts(f"http://127.0.0.1:{server.server_port}/", alerts, "am", "secret")
        assert received == [("/api/v2/alerts", "Basic " + base64.b64encode(b"am:secret").decode(), alerts)]
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(drill.DrillError, match=r"telling Alertmanager at http://127.0.0.1:1 that \['X'\] ended failed"):
        drill.post_alerts("http://127.0.0.1:1", alerts)


def test_the_longest_stall_is_what_clients_saw_of_a_write_block():
    # orders every 0.1 s, none from 10.05 to 13.45 (a switchover's write block), then again
    orders = [(T0 + i / 10, 1.0) for i in range(101)] + [(T0 + 13.45 + i / 10, 1.0) for i in range(50)]
    stall = drill.longest_stall(orders, T0 + 9.5, T0 + 20)
    assert stall == dict(seconds=3.45, last_before=drill.stamp(T0 + 10), first_after=drill.stamp(T0 + 13.45))
    # trading never came back: the stall runs to the end of the load
    assert drill.longest_stall(orders[:101], T0 + 9.5, T0 + 20) == dict(
        seconds=10.0, last_before=drill.stamp(T0 + 10), first_after=None)
    # a pause before the fault does not count
    assert drill.longest_stall(orders, T0 + 14, T0 + 18.4)["seconds"] == 0.1


def test_measure_reports_the_stall_after_the_injection(tmp_path):
    path = ack_log(tmp_path / "ack.log", [10] * 10 + [0] * 4 + [10] * 6, latency=1.0)
    figures = drill.measure(path, dict(load_started_at=drill.stamp(T0), injected_at=drill.stamp(T0 + 10),
                                       load_stopped_at=drill.stamp(T0 + 20)))
    assert 4.0 <= figures["stall"]["seconds"] <= 5.0 and figures["stall"]["first_after"] is not None
