#!/usr/bin/python
"""Ansible module stockdb_sessions: find sessions by criteria and, when told to, kill them."""

DOCUMENTATION = r"""
---
module: stockdb_sessions
short_description: Find runaway queries and idle-in-transaction lock holders, and kill them (dry run by default)
description:
  - Lists the server's sessions that meet every criterion given (AND) - O(ids), O(users), O(min_time),
    O(command), O(state_pattern), O(info_pattern), O(program_name_pattern), O(idle_in_transaction),
    O(min_transaction_time), O(blocking) - with what each holds - its InnoDB transaction (age, rows
    modified and locked) and the sessions waiting for its locks. At least one criterion is required.
  - Kills them only with O(kill=true), and not in check mode. O(kill_mode=query) runs C(KILL QUERY ID),
    which ends only the query seen when listing (not one the session started since); O(kill_mode=connection)
    runs C(KILL CONNECTION) - the server rolls the session's open transaction back, and the report gives
    the rows that rollback undid (C(rolled_back_rows), the transaction's C(trx_rows_modified)). The module
    then waits up to O(wait) seconds for what it killed to end.
  - Never lists or kills the server's own threads (C(system user), the event scheduler, unauthenticated
    connections), replication threads (C(Binlog Dump), the binlog archiver's among them, C(Slave_*)) or its
    own connection. When more sessions match than O(max_kills), nothing is killed and the module fails
    naming the count.
  - Why not only pt-kill (percona-toolkit) - pt-kill matches processlist columns (user, command, time,
    state, query text), so it cannot tell a session that holds locks others wait for, or an open
    transaction behind a session that shows C(Sleep) - the blocker of a lock storm. This module joins the
    processlist with C(information_schema.INNODB_TRX) and C(INNODB_LOCK_WAITS) (MariaDB 10.11 still has
    both) and the connection attribute C(program_name) (C(performance_schema.session_connect_attrs)).
  - It opens one connection. With C(max_connections) reached, an account with SUPER or CONNECTION ADMIN
    (the admin account) still gets the one connection MariaDB keeps for administrators; when that is taken
    too (error 1040), log in through the server's extra port with its option file (O(login_defaults_file)).
options:
  ids:
    description: Only these thread ids (the C(id) of a listed session).
    type: list
    elements: int
  users:
    description: Only sessions of these accounts (user names, as the processlist shows them).
    type: list
    elements: str
  min_time:
    description: Only sessions that have been in their current command (query, or Sleep) at least this many seconds.
    type: int
  command:
    description: Only sessions in one of these commands (C(Query), C(Sleep), C(Execute), ...; any case).
    type: list
    elements: str
  state_pattern:
    description: Only sessions whose state matches this regular expression (Python syntax, searched, any case).
    type: str
  info_pattern:
    description: Only sessions whose query text matches this regular expression (Python syntax, searched, any case).
    type: str
  program_name_pattern:
    description:
      - Only sessions whose connection attribute C(program_name) matches this regular expression (searched,
        any case); C(stockdb-chaos:lock_storm) finds the sessions of that fault. Needs performance_schema.
    type: str
  idle_in_transaction:
    description: Only sessions in C(Sleep) with an open InnoDB transaction. False is no criterion.
    type: bool
    default: false
  min_transaction_time:
    description: Only sessions whose InnoDB transaction started at least this many seconds ago.
    type: int
  blocking:
    description: Only sessions holding InnoDB locks another session waits for. False is no criterion.
    type: bool
    default: false
  kill:
    description: Kill the sessions found. Without it (and in check mode) nothing is killed.
    type: bool
    default: false
  kill_mode:
    description:
      - C(connection) ends the session (its open transaction rolls back); C(query) ends only the running
        query (a session in C(Sleep) is skipped), leaving the connection and its transaction.
    type: str
    choices: [connection, query]
    default: connection
  max_kills:
    description: Kill nothing, and fail, when more sessions than this match (1 or more).
    type: int
    default: 20
  wait:
    description: Seconds to wait for the killed sessions (a rollback) or queries to end; 0 does not wait.
    type: int
    default: 10
  login_defaults_file:
    description:
      - Option file ([client] group) of an account with PROCESS and CONNECTION ADMIN (or SUPER), the admin account.
      - When C(max_connections) is exhausted, the extra port's option file (e.g. C(/etc/stockdb/admin-extra.cnf)).
    type: path
    default: /etc/stockdb/admin.cnf
extends_documentation_fragment:
  - stockdb_connection
author: stockdb
"""

EXAMPLES = r"""
- name: List the queries of the reporting account running for more than 30 s (dry run)
  stockdb_sessions:
    users: [stockdb_report]
    command: [Query]
    min_time: 30
  register: runaway

- name: Kill those queries, leaving the connections
  stockdb_sessions:
    users: [stockdb_report]
    command: [Query]
    min_time: 30
    kill: true
    kill_mode: query

- name: Kill the session that holds the locks others wait for; its transaction rolls back
  stockdb_sessions:
    blocking: true
    kill: true
  register: blocker

- name: Kill idle connections of the chaos account that kept a transaction open for 60 s or more
  stockdb_sessions:
    users: [stockdb_chaos]
    idle_in_transaction: true
    min_transaction_time: 60
    kill: true
    max_kills: 500

- name: Through the extra port when max_connections is exhausted
  stockdb_sessions:
    program_name_pattern: "^stockdb-chaos:connection_flood$"
    kill: true
    max_kills: 5000
    login_defaults_file: /etc/stockdb/admin-extra.cnf
"""

RETURN = r"""
sessions:
  description:
    - Every session that met the criteria, in id order - C(id), C(user), C(host), C(db), C(command), C(time)
      (seconds in the command), C(state), C(info) (the query text, cut to 300 characters), C(query_id),
      C(program_name) (null without performance_schema), C(trx_id), C(trx_state), C(trx_started) (server
      time), C(trx_age) (seconds), C(trx_rows_modified), C(trx_rows_locked) (all C(trx_*) null without an
      InnoDB transaction), C(waiting_for) (ids whose locks it waits for), C(blocked_ids) and
      C(blocked_sessions) (the sessions waiting for its locks, and how many).
  returned: always
  type: list
  elements: dict
matched:
  description: How many sessions met the criteria.
  returned: always
  type: int
would_kill:
  description: Ids a run with O(kill=true) would kill (empty when more than O(max_kills) match).
  returned: when nothing was killed (O(kill=false) or check mode)
  type: list
  elements: int
killed:
  description:
    - The sessions killed - C(id), C(user), C(kill_mode), C(statement), C(query_id), C(trx_id),
      C(rolled_back_rows) (the rows the rollback of its transaction undid; null for a query kill or a
      session without a transaction), C(ended) (gone within O(wait); null when not waited for).
  returned: when O(kill=true), not in check mode
  type: list
  elements: dict
not_killed:
  description: Matched sessions not killed - C(id), C(user), C(reason) (ended before the kill, no query running).
  returned: when O(kill=true), not in check mode
  type: list
  elements: dict
kill_errors:
  description: KILLs the server refused - C(id), C(user), C(statement), C(error); the module fails naming them.
  returned: when a KILL was refused
  type: list
  elements: dict
still_running:
  description: Ids of killed sessions (or queries) still running after O(wait) seconds (a long rollback).
  returned: when O(kill=true), not in check mode
  type: list
  elements: int
dry_run:
  description: True when nothing was killed because O(kill=false) or check mode.
  returned: always
  type: bool
performance_schema:
  description: Whether performance_schema is on (C(program_name) known).
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import db, sessions

# What to do when even the connection kept for administrators is taken (error 1040).
EXTRA_PORT_HINT = ("log in through the server's extra port (extra_port, extra_max_connections) with its option file, "
                   "e.g. login_defaults_file=/etc/stockdb/admin-extra.cnf")


def connect(module):
    db.require_pymysql(module)
    db.require_option_file(module)
    p = module.params
    where = p.get("login_defaults_file") or p.get("login_host") or "the server"
    try:
        return db.connect(p, autocommit=True)
    except Exception as exc:  # noqa: BLE001 - any connection failure ends the module
        if db.error_code(exc) == 1040:
            module.fail_json(msg=f"MariaDB refused the connection of {where}: too many connections (error 1040), and the "
                                 f"connection kept for administrators is taken too (or the account lacks SUPER / "
                                 f"CONNECTION ADMIN); {EXTRA_PORT_HINT}")
        module.fail_json(msg=f"cannot connect to MariaDB using {where}: {exc}")


def listing(module, cur, criteria):
    try:
        found, performance_schema = sessions.read(cur)
    except db.pymysql.err.Error as exc:
        module.fail_json(msg=f"listing the server's sessions: {exc}")
    if "program_name_pattern" in criteria and not performance_schema:
        module.fail_json(msg="program_name_pattern needs performance_schema (performance_schema=ON in the server's "
                             "configuration): the connection attribute program_name is not visible without it")
    return sessions.select(found, criteria), performance_schema


def _matching(chosen):
    return "1 session matches" if len(chosen) == 1 else f"{len(chosen)} sessions match"


def dry_run(module, result, chosen, refusal):
    """kill=false or check mode: what a run would kill (nothing when over the bound)."""
    p = module.params
    would = [] if refusal else [s["id"] for s in chosen]
    why = "check mode" if module.check_mode and p["kill"] else "kill=false"
    # in check mode, changed says whether the run would kill something
    module.exit_json(**dict(result, changed=bool(p["kill"] and would), dry_run=True, would_kill=would,
                            msg=refusal or f"{_matching(chosen)}; dry run ({why}): nothing killed"))


def kill_run(module, cur, result, chosen, refusal):
    """Kill the chosen sessions (none when over the bound), wait for them to end, report each one."""
    p = module.params
    if refusal:
        module.fail_json(msg=refusal, dry_run=False, **result)
    killed, skipped, failed = sessions.kill(cur, chosen, p["kill_mode"], db.error_code)
    result.update(dry_run=False, changed=bool(killed), killed=killed, not_killed=skipped)
    try:
        result["still_running"] = sessions.wait_ended(cur, killed, p["wait"]) if p["wait"] and killed else []
    except db.pymysql.err.Error as exc:
        module.fail_json(msg=f"killed {[k['id'] for k in killed]}, then waiting for them to end: {exc}", **result)
    if failed:
        module.fail_json(msg=f"the server refused {len(failed)} of the KILLs: "
                             + "; ".join(f"{f['statement']} (user {f['user']}): {f['error']}" for f in failed)
                             + f"; killed {[k['id'] for k in killed]}", kill_errors=failed, **result)
    rolled_back = sum(k["rolled_back_rows"] or 0 for k in killed)
    msg = f"{_matching(chosen)}; killed {len(killed)} ({p['kill_mode']})"
    if p["kill_mode"] == "connection" and killed:
        msg += f", their transactions rolled back {rolled_back} modified rows"
    if skipped:
        msg += f"; not killed {len(skipped)} ({', '.join(sorted({n['reason'] for n in skipped}))})"
    if result["still_running"]:
        msg += f"; still running after {p['wait']} s: {result['still_running']}"
    module.exit_json(msg=msg, **result)


def main():
    argument_spec = db.connection_argument_spec()
    argument_spec.update(
        ids=dict(type="list", elements="int"),
        users=dict(type="list", elements="str"),
        min_time=dict(type="int"),
        command=dict(type="list", elements="str"),
        state_pattern=dict(type="str"),
        info_pattern=dict(type="str"),
        program_name_pattern=dict(type="str"),
        idle_in_transaction=dict(type="bool", default=False),
        min_transaction_time=dict(type="int"),
        blocking=dict(type="bool", default=False),
        kill=dict(type="bool", default=False),
        kill_mode=dict(type="str", choices=list(sessions.KILL_MODES), default="connection"),
        max_kills=dict(type="int", default=sessions.MAX_KILLS_DEFAULT),
        wait=dict(type="int", default=10),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    try:
        criteria = sessions.check_criteria(p)
    except sessions.SessionsError as exc:
        module.fail_json(msg=str(exc))
    if p["wait"] < 0:
        module.fail_json(msg=f"wait={p['wait']} must be a number of seconds >= 0")

    conn = connect(module)
    try:
        with conn.cursor() as cur:
            chosen, performance_schema = listing(module, cur, criteria)
            result = dict(changed=False, sessions=[sessions.shown(s) for s in chosen], matched=len(chosen),
                          performance_schema=performance_schema)
            refusal = sessions.over_bound(chosen, p["max_kills"])
            if not p["kill"] or module.check_mode:
                dry_run(module, result, chosen, refusal)
            kill_run(module, cur, result, chosen, refusal)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
