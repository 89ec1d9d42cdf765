#!/usr/bin/python
"""Ansible module stockdb_drill: what a chaos drill waits for and measures on a host."""

DOCUMENTATION = r"""
---
module: stockdb_drill
short_description: Wait for a drill's alert or trading's recovery, and measure orders/s and p99 from the ack log
description:
  - The measuring steps of C(playbooks/chaos.yml); the logic is in C(module_utils/stockdb/drill.py) and unit-tested.
    The module reads files; the one thing it may change is Alertmanager's memory of a stale alert (below).
  - O(action=wait_alert) follows the alert log (one line per Alertmanager notification, written on the
    monitoring host) until a C(FIRING) line of one of O(alerts) dated at or after O(since) appears, or
    O(timeout) seconds pass. Returns the alert and the line's time. Run it on the monitoring host.
  - O(action=wait_quiet) waits until none of O(alerts) is firing as the alert log tells it (its C(RESOLVED)
    line came after its last C(FIRING) line), or O(timeout) seconds pass, so the next drill's alert is a new
    notification and not a change of a group Alertmanager still holds. An alert whose last C(FIRING) line
    predates O(since) (give Alertmanager's start) is one a restarted Alertmanager will never tell ended, and
    whose next firing it will not notify for hours (its repeat interval). The module tells O(alertmanager_url)
    that alert ended (C(POST /api/v2/alerts), its labels from the line, C(changed)), so Alertmanager sends
    the C(RESOLVED), and waits for it up to 60 s. Only ask this once Prometheus no longer fires the alert.
    Run it on the monitoring host.
  - O(action=wait_recovery) follows the simulator's acknowledgement log until, from a second at or after
    O(since), O(window_s) seconds in a row run at O(ratio) or more of the slowest O(window_s) seconds in a
    row acknowledged between O(baseline_from) and O(baseline_to) (a rate the host ran at with no fault; the
    baseline's mean would call a host whose rate swings unrecovered in its slow phases), or O(timeout) seconds
    pass. Run it on the database host.
  - O(action=measure) computes the time to alert and to recover (from the remediation's start and from the
    injection) from the marks, and, from the acknowledgement log, orders/s and p99 latency before the fault
    (from O(baseline_started_at)),
    during it (from O(injected_at) to O(recovered_at), or to the end of the load) and after it, the lowest
    O(window_s)-second orders/s during it as a share of before (the dip), the longest pause in acknowledged
    orders from the injection on (the stall), and the per-second series.
  - Times are UTC, C(YYYY-MM-DDTHH:MM:SS[.ffffff]Z). The alert log has whole seconds, so a time to alert is
    exact to a second.
options:
  action:
    description: What to do.
    type: str
    choices: [wait_alert, wait_quiet, wait_recovery, measure]
    required: true
  alert_log:
    description: The alert log (O(action=wait_alert)).
    type: path
    default: /var/log/stockdb/alerts.log
  alerts:
    description: Alert names that count (O(action=wait_alert), empty means any alert), or to wait for (O(action=wait_quiet)).
    type: list
    elements: str
    default: []
  since:
    description: Only what happened at or after this time counts (O(action=wait_alert), O(action=wait_quiet),
      O(action=wait_recovery)).
    type: str
  timeout:
    description: Seconds (1..3600) to wait at most (O(action=wait_alert), O(action=wait_quiet), O(action=wait_recovery)).
    type: int
    default: 120
  ack_log:
    description: The simulator's acknowledgement log (O(action=wait_recovery), O(action=measure)).
    type: path
  baseline_from:
    description: Start of the window whose orders/s is the baseline (O(action=wait_recovery)).
    type: str
  baseline_to:
    description: End of the baseline window (O(action=wait_recovery)).
    type: str
  ratio:
    description: Share (0..1] of the baseline's slowest O(window_s) seconds that counts as recovered (O(action=wait_recovery)).
    type: float
    default: 0.9
  alertmanager_url:
    description: Alertmanager's address, told the end of a stale alert (O(action=wait_quiet)).
    type: str
    default: http://127.0.0.1:9093
  alertmanager_user:
    description: Basic-auth user of O(alertmanager_url), when Alertmanager asks for one.
    type: str
  alertmanager_password:
    description: Basic-auth password of O(alertmanager_user).
    type: str
  window_s:
    description: Seconds (1..60) in a row at that rate (O(action=wait_recovery)); the dip's window (O(action=measure)).
    type: int
    default: 5
  load_started_at:
    description: When the drill's trading load started (O(action=measure)).
    type: str
  baseline_started_at:
    description:
      - Start of the window before the fault whose orders/s and p99 are "before" (O(action=measure)); the same
        time as O(baseline_from) of O(action=wait_recovery), so both judge against one baseline.
      - Default 3 s after O(load_started_at) (the clients' first second of connecting is no baseline).
    type: str
  injected_at:
    description: When the fault was in effect (O(action=measure)).
    type: str
  alerted_at:
    description: When the alert's line appeared, if it did (O(action=measure)).
    type: str
  remediation_started_at:
    description: When the remediation started (O(action=measure)).
    type: str
  recovered_at:
    description: When trading recovered, if it did (O(action=measure)).
    type: str
  load_stopped_at:
    description:
      - When the drill's trading load was told to stop, or its planned end (O(action=measure)); not when its
        clients were done, whose last second does not trade at the load's rate.
    type: str
author: stockdb
"""

EXAMPLES = r"""
- name: Wait up to 90 s for the alert of a lock storm
  stockdb_drill:
    action: wait_alert
    alerts: [MariaDBLockWaitTimeouts]
    since: "{{ injected.injected_at }}"
    timeout: 90
  delegate_to: "{{ groups['monitoring'][0] }}"
  register: alerted

- name: Wait up to 90 s for orders/s back to 90 % of the baseline
  stockdb_drill:
    action: wait_recovery
    ack_log: /var/lib/stockdb/drills/lock_storm-1.ack
    baseline_from: "{{ load_started_at }}"
    baseline_to: "{{ injected.injected_at }}"
    since: "{{ remediation_started_at }}"
    timeout: 90
"""

RETURN = r"""
alert:
  description: The alert whose line came first (null on timeout).
  returned: action is wait_alert
  type: str
alerted_at:
  description: The time of that line (null on timeout).
  returned: action is wait_alert
  type: str
line:
  description: The alert log's line.
  returned: action is wait_alert
  type: str
firing:
  description: Alerts among O(alerts) still firing when the wait ended (empty = quiet).
  returned: action is wait_quiet
  type: list
  elements: str
ended:
  description: Stale alerts (fired before O(since), never resolved) Alertmanager was told ended.
  returned: action is wait_quiet
  type: list
  elements: str
baseline_per_s:
  description: Orders/s acknowledged in the baseline window.
  returned: action is wait_recovery
  type: float
slowest_per_s:
  description: Orders/s of the baseline's slowest O(window_s) seconds in a row, the rate recovery is judged against.
  returned: action is wait_recovery
  type: float
recovered_at:
  description: The first second of the recovered window (null on timeout).
  returned: action is wait_recovery
  type: str
waited_s:
  description: Seconds the module waited.
  returned: action is wait_alert, wait_quiet or wait_recovery
  type: float
time_to_alert_s:
  description: Seconds from O(injected_at) to O(alerted_at) (null without an alert).
  returned: action is measure
  type: float
time_to_recover_s:
  description: Seconds to O(recovered_at) C(from_remediation) (its start) and C(from_injection) (nulls when not recovered).
  returned: action is measure
  type: dict
orders_per_s:
  description: Orders/s C(before), C(during) and C(after) the fault.
  returned: action is measure
  type: dict
p99_ms:
  description: 99th percentile latency (ms) of the orders C(before), C(during) and C(after) the fault.
  returned: action is measure
  type: dict
dip_ratio:
  description: The lowest O(window_s)-second orders/s during the fault over the orders/s before it.
  returned: action is measure
  type: float
stall:
  description:
    - The longest pause in acknowledged orders from the injection on - C(seconds), C(last_before) (the last order
      before it), C(first_after) (the first after it; null when trading had not come back when the load stopped).
    - What clients saw of a switchover's write block or of a failover.
  returned: action is measure
  type: dict
series:
  description: C(t0), C(step_s) (1) and per-second C(orders_per_s) and C(p99_ms) from the load's start.
  returned: action is measure
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import drill

NEEDS = dict(wait_alert=("since",), wait_quiet=("alerts",), wait_recovery=("ack_log", "baseline_from", "baseline_to", "since"),
             measure=("ack_log", "load_started_at", "injected_at", "load_stopped_at"))
MARKS = ("load_started_at", "baseline_started_at", "injected_at", "alerted_at", "remediation_started_at", "recovered_at",
         "load_stopped_at")
TIMES = ("since", "baseline_from", "baseline_to") + MARKS


def check(p):
    problems = [f"action={p['action']} needs {name}" for name in NEEDS[p["action"]] if not p[name]]
    for name in TIMES:
        if p[name]:
            try:
                drill.parse_time(p[name], name)
            except drill.DrillError as exc:
                problems.append(str(exc))
    if not 1 <= p["timeout"] <= 3600:
        problems.append(f"timeout={p['timeout']} is not within 1..3600")
    if not 0 < p["ratio"] <= 1:
        problems.append(f"ratio={p['ratio']} is not within (0, 1]")
    if not p["alertmanager_url"].startswith(("http://", "https://")):
        problems.append(f"alertmanager_url={p['alertmanager_url']!r} is not an http:// or https:// URL")
    if not 1 <= p["window_s"] <= 60:
        problems.append(f"window_s={p['window_s']} is not within 1..60")
    return problems


def main():
    module = AnsibleModule(
        argument_spec=dict(
            action=dict(type="str", required=True, choices=list(NEEDS)),
            alert_log=dict(type="path", default="/var/log/stockdb/alerts.log"),
            alerts=dict(type="list", elements="str", default=[]),
            since=dict(type="str"),
            timeout=dict(type="int", default=120),
            ack_log=dict(type="path"),
            baseline_from=dict(type="str"),
            baseline_to=dict(type="str"),
            ratio=dict(type="float", default=0.9),
            window_s=dict(type="int", default=5),
            alertmanager_url=dict(type="str", default="http://127.0.0.1:9093"),
            alertmanager_user=dict(type="str"),
            alertmanager_password=dict(type="str", no_log=True),
            load_started_at=dict(type="str"),
            baseline_started_at=dict(type="str"),
            injected_at=dict(type="str"),
            alerted_at=dict(type="str"),
            remediation_started_at=dict(type="str"),
            recovered_at=dict(type="str"),
            load_stopped_at=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    problems = check(p)
    if problems:
        module.fail_json(msg="; ".join(problems))
    changed = False
    try:
        if p["action"] == "wait_alert":
            result = drill.wait_alert(p["alert_log"], p["alerts"], drill.parse_time(p["since"], "since"), p["timeout"])
        elif p["action"] == "wait_quiet":
            def end_alerts(alerts):
                drill.post_alerts(p["alertmanager_url"], alerts, p["alertmanager_user"], p["alertmanager_password"])

            result = drill.wait_quiet(p["alert_log"], p["alerts"], p["timeout"],
                                      drill.parse_time(p["since"], "since") if p["since"] else None,
                                      end_alerts=None if module.check_mode else end_alerts)
            changed = bool(result["ended"])
        elif p["action"] == "wait_recovery":
            result = drill.wait_recovery(p["ack_log"], drill.parse_time(p["baseline_from"], "baseline_from"),
                                         drill.parse_time(p["baseline_to"], "baseline_to"),
                                         drill.parse_time(p["since"], "since"), p["timeout"], p["ratio"], p["window_s"])
        else:
            result = drill.measure(p["ack_log"], {name: p[name] for name in MARKS}, window_s=p["window_s"])
    except (drill.DrillError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
