#!/usr/bin/python
"""Ansible module stockdb_query_report: the top statements of a window, with plans and findings."""

DOCUMENTATION = r"""
---
module: stockdb_query_report
short_description: Report the statements that took the server's time over a window, with their plans and what is worth fixing
description:
  - Watches the server for O(window_s) seconds (run it while the workload of interest runs, e.g. the trade
    simulator started with C(async)) and reports the top O(top) statements by total time, from the two
    sources a DBA uses.
  - C(performance_schema.events_statements_summary_by_digest), live, every statement - the difference of two
    snapshots taken at the window's ends - calls, total and average time, rows examined and sent, full
    scans, joins re-planned for each row, rows sorted, temporary tables (and those on disk).
  - The slow query log written during the window, through C(pt-query-digest) (percona-toolkit) - only
    statements above C(long_query_time), but with p95 and maximum; a digest slow enough to be logged gets
    them, matched by the words of its text.
  - For each top statement it takes an example text (from C(events_statements_history_long), whose consumer
    it turns on for the window and restores after, or from the slow log) and gets its plan - C(ANALYZE
    FORMAT=JSON) for a plain SELECT when O(analyze) is true (the statement runs again, inside a read-only
    transaction and bounded by O(analyze_timeout_s); one that takes longer is explained instead),
    C(EXPLAIN FORMAT=JSON) for writes and locking reads (never run).
  - Findings name what in a statement costs and why (a join without a usable index, whole-table reads,
    many rows examined for each row returned, sorts, temporary tables on disk); a statement with findings
    is worth acting on when it holds at least O(act_share) of the window's statement time.
  - It returns the report as data and as Markdown; C(playbooks/query_report.yml) writes both to the controller.
options:
  window_s:
    description: Seconds to watch (5..3600).
    type: int
    default: 60
  top:
    description: How many statements to report, by total time (1..50).
    type: int
    default: 10
  schemas:
    description: Only statements run with one of these default schemas (the report's own are never counted).
    type: list
    elements: str
    default: [stockdb]
  slow_log:
    description:
      - The server's slow query log (the mariadb role's C(mariadb_slow_query_log_file)). Empty to leave the slow log out.
      - Only the part written during the window is read (from the size seen at its start; all of it after a rotation).
    type: path
    default: /var/log/mysql/mariadb-slow.log
  pt_query_digest:
    description: The C(pt-query-digest) command (Debian package percona-toolkit, installed by the mariadb role).
    type: str
    default: pt-query-digest
  analyze:
    description: Run C(ANALYZE FORMAT=JSON) for plain SELECTs (actual rows and time); false gives C(EXPLAIN) only.
    type: bool
    default: true
  analyze_timeout_s:
    description: Longest an C(ANALYZE) may run (C(max_statement_time), 0.1..600).
    type: float
    default: 10
  act_share:
    description: Share of the window's statement time (0..1) from which a statement with findings is worth acting on.
    type: float
    default: 0.05
  sample_every_s:
    description:
      - Seconds between two reads of C(events_statements_history_long) for example texts (0.1..10). The table keeps
        the server's last 1,000 statements, those of stored procedures included, so under load it covers well under
        a second.
    type: float
    default: 0.25
extends_documentation_fragment:
  - stockdb_connection
notes:
  - Needs the admin account (C(/etc/stockdb/admin.cnf)) - reading and setting C(performance_schema), EXPLAIN on
    every table - and root for the slow log (C(become)).
  - Needs C(performance_schema=ON) (the mariadb role's C(mariadb_performance_schema)).
  - Check mode is not supported - the window needs the consumer turned on.
author: stockdb
"""

EXAMPLES = r"""
- name: Trade in the background for the window
  stockdb_simulate:
    clients: 8
    duration: 70
  async: 400
  poll: 0
  register: load

- name: Report the top statements of the next minute
  stockdb_query_report:
    window_s: 60
    top: 10
  become: true
  register: report
"""

RETURN = r"""
window:
  description: Start and end (UTC) and length of the window in seconds.
  returned: always
  type: dict
totals:
  description: Calls and seconds of statement time of the reported schemas in the window.
  returned: always
  type: dict
  sample: {"calls": 5321, "total_s": 88.4}
top:
  description:
    - The top statements by total time - rank, share, digest, text, calls, total_s, avg_ms, rows_examined, rows_sent,
      full_scans, range_checks, sort_rows, tmp_tables, tmp_disk_tables, slow (p95_ms, max_ms ... when in the slow log),
      example, plan (tables with access, key, rows, r_rows; filesort, temporary, range_checked, full_scans),
      analyzed, plan_error, findings, act.
  returned: always
  type: list
  elements: dict
act:
  description: The texts of the top statements worth acting on, by rank.
  returned: always
  type: list
  elements: str
slow_log:
  description: The slow log's classes in the window (pt-query-digest), C(long_query_time), or the C(error) that left it out.
  returned: always
  type: dict
markdown:
  description: The report for people.
  returned: always
  type: str
"""

import os
import shutil
import subprocess
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import db, digest
from ansible.module_utils.stockdb.report import utc_stamp

ANALYZE_PREFIX = "SET STATEMENT max_statement_time={:g} FOR ANALYZE FORMAT=JSON "
ER_STATEMENT_TIMEOUT = 1969
ER_READ_ONLY_TRANSACTION = 1792


def validate(p):
    bad = []
    for name, low, high in (("window_s", 5, 3600), ("top", 1, 50), ("analyze_timeout_s", 0.1, 600),
                            ("act_share", 0, 1), ("sample_every_s", 0.1, 10)):
        if not low <= p[name] <= high:
            bad.append(f"{name}={p[name]} is outside {low}..{high}")
    if not [s for s in p["schemas"] if s]:
        bad.append("schemas is empty")
    return bad


def scalar(cur, sql):
    cur.execute(sql)
    row = cur.fetchone()
    return list(row.values())[0] if row else None


def consumers(cur):
    cur.execute("SELECT NAME, ENABLED FROM performance_schema.setup_consumers WHERE NAME IN %s", (digest.PS_CONSUMERS,))
    return {r["NAME"]: r["ENABLED"] for r in cur.fetchall()}


def set_consumers(cur, names, enabled):
    if names:
        cur.execute("UPDATE performance_schema.setup_consumers SET ENABLED = %s WHERE NAME IN %s",
                    ("YES" if enabled else "NO", tuple(names)))


def digests(cur):
    cur.execute(digest.PS_DIGESTS)
    return digest.snapshot(cur.fetchall())


def watch(cur, seconds, every, max_text):
    """Snapshot, sample examples until the window ends, snapshot again: (start, end, before, after, examples)."""
    start, before, examples = utc_stamp(), digests(cur), {}
    end_at = time.monotonic() + seconds
    while True:
        cur.execute(digest.PS_EXAMPLES)
        digest.keep_example(examples, cur.fetchall(), max_text)
        left = end_at - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(every, left))
    return start, utc_stamp(), before, digests(cur), examples


def read_slow_log(path, offset, command):
    """The window's part of the slow log through pt-query-digest: (classes, error)."""
    exe = shutil.which(command)
    if not exe:
        return [], f"{command} is not installed (Debian package percona-toolkit; the mariadb role installs it)"
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as log, tempfile.NamedTemporaryFile(prefix="stockdb-slow-", suffix=".log") as part:
            log.seek(digest.slow_log_cut(size, offset))
            shutil.copyfileobj(log, part)
            part.flush()
            done = subprocess.run([exe, "--output", "json", "--limit", "100%", part.name],
                                  capture_output=True, text=True, timeout=300, check=False)
    except (OSError, ValueError) as exc:
        return [], f"cannot read {path}: {exc}"
    except Exception as exc:  # noqa: BLE001 - subprocess.TimeoutExpired and the like: the report goes on without it
        return [], f"{command} failed: {exc}"
    if done.returncode != 0:
        return [], f"{command} exited {done.returncode}: {done.stderr.strip()[-300:]}"
    try:
        return digest.parse_pt_query_digest(done.stdout), None
    except digest.DigestError as exc:
        return [], str(exc)


def plan(cur, entry, analyze, timeout):
    """EXPLAIN (or ANALYZE for a plain SELECT) of the entry's example, into the entry."""
    example = digest.explainable(entry.get("example"))
    kind = digest.statement_kind(example or entry["text"])
    if kind is None:
        entry["plan_error"] = "not a statement EXPLAIN takes"
        return
    if not example:
        entry["plan_error"] = "no example text was seen in the window (events_statements_history_long or the slow log)"
        return
    analyzed = analyze and kind == "read"
    try:
        if entry.get("example_schema") or entry.get("schema"):
            cur.execute(f"USE `{(entry.get('example_schema') or entry['schema']).replace('`', '``')}`")
        row = None
        if analyzed:
            # In a read-only transaction: a SELECT whose functions would write fails instead of writing (error 1792).
            cur.execute("START TRANSACTION READ ONLY")
            try:
                cur.execute(ANALYZE_PREFIX.format(timeout) + example)
                row = cur.fetchone()
            except Exception as exc:  # noqa: BLE001 - a statement too slow or that writes is still explained
                why = {ER_STATEMENT_TIMEOUT: f"ANALYZE stopped after {timeout:g} s (analyze_timeout_s)",
                       ER_READ_ONLY_TRANSACTION: "ANALYZE refused: the statement writes"}.get(db.error_code(exc))
                if why is None:
                    raise
                analyzed, entry["analyze_note"] = False, why + ": EXPLAIN instead"
            finally:
                cur.execute("ROLLBACK")
        if not analyzed:
            cur.execute("EXPLAIN FORMAT=JSON " + example)
            row = cur.fetchone()
        entry["plan"] = digest.plan_summary(list(row.values())[0])
        entry["analyzed"] = analyzed
    except Exception as exc:  # noqa: BLE001 - a plan that cannot be had is reported, the others still are
        entry["plan_error"] = f"{'ANALYZE' if analyzed else 'EXPLAIN'} failed: {exc}"


def main():
    spec = db.connection_argument_spec()
    spec.update(
        window_s=dict(type="int", default=60),
        top=dict(type="int", default=10),
        schemas=dict(type="list", elements="str", default=["stockdb"]),
        slow_log=dict(type="path", default="/var/log/mysql/mariadb-slow.log"),
        pt_query_digest=dict(type="str", default="pt-query-digest"),
        analyze=dict(type="bool", default=True),
        analyze_timeout_s=dict(type="float", default=10),
        act_share=dict(type="float", default=0.05),
        sample_every_s=dict(type="float", default=0.25),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=False)
    p = module.params
    bad = validate(p)
    if bad:
        module.fail_json(msg="; ".join(bad))
    # No default schema: the report's own statements then never count as the schemas' (and happen outside the window).
    db.require_pymysql(module)
    conn = db.connect_or_fail(module, autocommit=True, database=None, cursorclass=db.pymysql.cursors.DictCursor)
    cur = conn.cursor()
    if str(scalar(cur, "SELECT @@performance_schema")) not in ("1", "ON"):
        module.fail_json(msg="performance_schema is OFF on this server: the report needs its statement digests "
                             "(mariadb role: mariadb_performance_schema: true, then a restart)")
    max_text = int(scalar(cur, "SELECT @@performance_schema_max_sql_text_length") or 1024)
    long_query_time = float(scalar(cur, "SELECT @@global.long_query_time"))
    slow_on = str(scalar(cur, "SELECT @@global.slow_query_log")) in ("1", "ON")
    slow_offset = os.path.getsize(p["slow_log"]) if p["slow_log"] and os.path.exists(p["slow_log"]) else 0
    was = consumers(cur)
    turned_on = [name for name in digest.PS_CONSUMERS if was.get(name) != "YES"]
    try:
        set_consumers(cur, turned_on, True)
        start, end, before, after, examples = watch(cur, p["window_s"], p["sample_every_s"], max_text)
    finally:
        set_consumers(cur, turned_on, False)

    entries = digest.merge_same_text(digest.window(before, after))
    kept = [e for e in entries if e["schema"] in p["schemas"]]
    totals = dict(calls=sum(e["calls"] for e in kept), total_s=round(sum(e["total_s"] for e in kept), 3))
    top = digest.rank(kept, p["top"])
    for entry in top:
        seen = next((examples[d] for d in entry["digests"] if d in examples), None)
        if seen:
            entry["example"], entry["example_schema"] = seen["sql"], seen["schema"]

    slow = dict(long_query_time=long_query_time, classes=[])
    if not p["slow_log"]:
        slow["error"] = "left out (slow_log is empty)"
    elif not slow_on:
        slow["error"] = "slow_query_log is OFF on this server"
    elif not os.path.exists(p["slow_log"]):
        slow["error"] = f"{p['slow_log']} does not exist"
    else:
        classes, error = read_slow_log(p["slow_log"], slow_offset, p["pt_query_digest"])
        slow["classes"] = sorted(classes, key=lambda c: -c["total_s"])[:p["top"]]
        if error:
            slow["error"] = error
        digest.match_slow(top, classes)

    for entry in top:
        plan(cur, entry, p["analyze"], p["analyze_timeout_s"])
        entry["findings"] = digest.findings(entry, entry.get("plan"))
        entry["act"] = digest.worth_acting(entry, p["act_share"])
    conn.close()

    report = dict(host=os.uname().nodename, window=dict(start=start, end=end, seconds=p["window_s"]),
                  schemas=p["schemas"], act_share=p["act_share"], totals=totals, top=top, slow_log=slow,
                  act=[e["text"] for e in top if e["act"]])
    module.exit_json(changed=False, markdown=digest.render_markdown(report), **report)


if __name__ == "__main__":
    main()
