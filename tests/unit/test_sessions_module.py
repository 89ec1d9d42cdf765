"""library/stockdb_sessions.py through Ansible itself on the controller, against a stand-in PyMySQL (first on
PYTHONPATH) that answers the listing from a JSON file and records every statement: refusals naming the
parameter, the dry run by default, check mode, each kind of kill, the bound, and a server at max_connections.

The same kills against a real MariaDB were run on a lab host (see the module's description of them).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

BIN = Path(sys.executable).parent

FAKE_PYMYSQL = '''
import json, os

from . import err


def _state():
    with open(os.environ["FAKE_MARIADB"]) as handle:
        return json.load(handle)


def connect(**kwargs):
    state = _state()
    if state.get("refuse"):
        raise err.OperationalError(state["refuse"], "Too many connections")
    return Connection()


class Connection:
    def cursor(self):
        return Cursor()

    def close(self):
        pass


class Cursor:
    description, rows = None, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def _answer(self, names, rows):
        self.description = [(n,) for n in names]
        self.rows = [tuple(r) for r in rows]

    def execute(self, sql, args=None):
        state = _state()
        with open(os.environ["FAKE_MARIADB"] + ".log", "a") as log:
            log.write(sql + "\\n")
        sessions = state["processlist"]
        if sql.startswith("KILL"):
            thread = int(sql.split()[-1])
            if sql.startswith("KILL QUERY ID"):
                thread = [s["ID"] for s in sessions if s["QUERY_ID"] == thread][0]
            if thread in state.get("not_owner", []):
                raise err.OperationalError(1095, f"You are not owner of thread {thread}")
            state["processlist"] = [s for s in sessions if s["ID"] != thread]
            with open(os.environ["FAKE_MARIADB"], "w") as handle:
                json.dump(state, handle)
        elif sql.startswith("SELECT CONNECTION_ID()"):
            self._answer(["a", "b"], [(99, state.get("performance_schema", 1))])
        elif "FROM information_schema.PROCESSLIST p" in sql:
            self._answer(list(sessions[0]), [list(s.values()) for s in sessions])
        elif "INNODB_LOCK_WAITS" in sql:
            self._answer(["WAITING", "BLOCKING"], state.get("waits", []))
        elif "INNODB_TRX" in sql:
            trx = state.get("trx", [])
            self._answer(list(trx[0]) if trx else [], [list(t.values()) for t in trx])
        elif sql.startswith("SELECT ID, QUERY_ID, COMMAND"):
            self._answer(["ID", "QUERY_ID", "COMMAND"], [])

    def fetchone(self):
        return self.rows[0]

    def fetchall(self):
        return self.rows
'''
FAKE_ERR = '''
class Error(Exception):
    pass


class OperationalError(Error):
    pass
'''


def row(thread, user, command, time, state="", info=None, query_id=None, tag=None):
    return dict(ID=thread, USER=user, HOST="localhost", DB="stockdb", COMMAND=command, TIME=time, STATE=state, INFO=info,
                QUERY_ID=query_id if query_id is not None else 1000 + thread, TAG=tag)


SERVER = dict(
    processlist=[
        row(1, "system user", "Daemon", 900, "InnoDB purge coordinator"),
        row(2, "event_scheduler", "Daemon", 900, "Waiting on empty queue"),
        row(3, "stockdb_backup", "Binlog Dump", 900, "Master has sent all binlog to slave", tag="mariadb-binlog"),
        row(10, "stockdb_chaos", "Query", 95, "Sending data", "SELECT ... FROM orders o JOIN trades t",
            tag="stockdb-chaos:query_storm"),
        row(11, "stockdb_chaos", "Query", 80, "Sending data", "SELECT ... FROM trades", tag="stockdb-chaos:query_storm"),
        row(12, "stockdb_chaos", "Query", 2, "Sending data", "SELECT ... FROM trades", tag="stockdb-chaos:query_storm"),
        row(20, "stockdb_chaos", "Sleep", 30, tag="stockdb-chaos:lock_storm"),
        row(30, "stockdb_app", "Query", 4, "Updating",
            "UPDATE stocks_inventory SET traded_qty = traded_qty + 1 WHERE stock_id = 7"),
    ],
    trx=[dict(THREAD=20, TRX_ID=9001, TRX_STATE="RUNNING", TRX_STARTED="2026-12-02 03:00:00", TRX_AGE=30,
              TRX_ROWS_MODIFIED=10, TRX_ROWS_LOCKED=10),
         dict(THREAD=30, TRX_ID=9002, TRX_STATE="LOCK WAIT", TRX_STARTED="2026-12-02 03:00:26", TRX_AGE=4,
              TRX_ROWS_MODIFIED=0, TRX_ROWS_LOCKED=1)],
    waits=[[30, 20]],
)


@pytest.fixture
def server(tmp_path):
    """The stand-in PyMySQL, its server state and an option file; returns the tmp path."""
    package = tmp_path / "fake" / "pymysql"
    (package / "constants").mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_PYMYSQL)
    (package / "err.py").write_text(FAKE_ERR)
    (package / "constants" / "__init__.py").write_text("")
    (package / "constants" / "CLIENT.py").write_text("MULTI_STATEMENTS = 1 << 16\n")
    (tmp_path / "server.json").write_text(json.dumps(SERVER))
    (tmp_path / "admin.cnf").write_text("[client]\nuser=stockdb_admin\n")
    return tmp_path


def run(tmp_path, args, *extra, state=None):
    """Run stockdb_sessions on localhost; returns (task result, statements the server got)."""
    if state is not None:
        (tmp_path / "server.json").write_text(json.dumps(state))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_LOCALHOST_WARNING="false", HOME=str(tmp_path),
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", PYTHONPATH=str(tmp_path / "fake"),
               FAKE_MARIADB=str(tmp_path / "server.json"), PATH=f"{BIN}:/usr/bin:/bin")
    args = dict(args, login_defaults_file=str(tmp_path / "admin.cnf"))
    proc = subprocess.run([BIN / "ansible", "localhost", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
                           "-m", "stockdb_sessions", "-a", json.dumps(args), *extra],
                          capture_output=True, text=True, env=env, cwd=REPO)
    log = tmp_path / "server.json.log"
    statements = log.read_text().splitlines() if log.exists() else []
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"], statements


def kills(statements):
    return [s for s in statements if s.startswith("KILL")]


@pytest.mark.parametrize("args, message", [
    ({}, "no criterion given: name at least one of ids, users, min_time, command, state_pattern"),
    ({"kill": True, "blocking": False}, "no criterion given"),
    ({"users": ["stockdb_chaos"], "min_time": -1}, "min_time=-1 must be a number of seconds >= 0"),
    ({"info_pattern": "FROM (orders"}, "info_pattern='FROM (orders' is not a valid regular expression"),
    ({"blocking": True, "max_kills": 0}, "max_kills=0 must be an integer >= 1"),
    ({"blocking": True, "wait": -1}, "wait=-1 must be a number of seconds >= 0"),
    ({"idle_in_transaction": True, "kill_mode": "query"}, "kill_mode=query cannot end an idle transaction"),
    ({"blocking": True, "kill_mode": "hard"}, "value of kill_mode must be one of: connection, query, got: hard"),
])
def test_bad_input_is_refused_naming_the_parameter_before_connecting(server, args, message):
    result, statements = run(server, args)
    assert result.get("failed") and message in result["msg"], result
    assert statements == []


def test_the_default_is_a_dry_run_listing_what_would_be_killed(server):
    result, statements = run(server, {"users": ["stockdb_chaos"], "command": ["Query"], "min_time": 60})
    assert result["changed"] is False and result["dry_run"] is True and kills(statements) == [], result
    assert result["would_kill"] == [10, 11] and result["matched"] == 2
    assert [s["id"] for s in result["sessions"]] == [10, 11]
    assert result["sessions"][0]["program_name"] == "stockdb-chaos:query_storm"


def test_check_mode_kills_nothing_and_says_a_run_would(server):
    result, statements = run(server, {"users": ["stockdb_chaos"], "min_time": 60, "kill": True}, "--check")
    assert result["changed"] is True and result["dry_run"] is True and result["would_kill"] == [10, 11], result
    assert kills(statements) == []


def test_runaway_queries_are_killed_by_their_query_id(server):
    result, statements = run(server, {"users": ["stockdb_chaos"], "command": ["query"], "min_time": 60, "kill": True,
                                      "kill_mode": "query"})
    assert result["changed"] is True and result["dry_run"] is False, result
    assert kills(statements) == ["KILL QUERY ID 1010", "KILL QUERY ID 1011"]
    assert [(k["id"], k["kill_mode"], k["ended"]) for k in result["killed"]] == [(10, "query", True), (11, "query", True)]


def test_the_blocker_is_killed_and_the_rows_its_rollback_undid_are_reported(server):
    result, statements = run(server, {"blocking": True, "kill": True})
    assert kills(statements) == ["KILL CONNECTION 20"], result
    assert result["sessions"][0]["blocked_ids"] == [30] and result["sessions"][0]["trx_rows_modified"] == 10
    assert result["killed"] == [dict(id=20, user="stockdb_chaos", kill_mode="connection", statement="KILL CONNECTION 20",
                                     query_id=1020, trx_id="9001", rolled_back_rows=10, ended=True)]
    assert result["still_running"] == [] and "rolled back 10 modified rows" in result["msg"]


def test_a_kill_the_server_refuses_is_named_and_the_others_are_still_killed(server):
    result, statements = run(server, {"users": ["stockdb_chaos"], "min_time": 60, "kill": True},
                             state=dict(SERVER, not_owner=[10]))
    assert result.get("failed") and kills(statements) == ["KILL CONNECTION 10", "KILL CONNECTION 11"], result
    assert result["msg"] == ("the server refused 1 of the KILLs: KILL CONNECTION 10 (user stockdb_chaos): "
                             "(1095, 'You are not owner of thread 10'); killed [11]")
    assert [k["id"] for k in result["killed"]] == [11] and result["kill_errors"][0]["id"] == 10


def test_a_sleeping_session_is_not_killed_by_a_query_kill_and_says_why(server):
    result, statements = run(server, {"users": ["stockdb_chaos"], "min_time": 20, "kill": True, "kill_mode": "query"})
    assert kills(statements) == ["KILL QUERY ID 1010", "KILL QUERY ID 1011"] and "skipped" not in result, result
    assert result["not_killed"] == [dict(id=20, user="stockdb_chaos",
                                         reason="no query running (Sleep): kill_mode=connection ends the session")]
    assert result["msg"].endswith("; not killed 1 (no query running (Sleep): kill_mode=connection ends the session)")


def test_system_and_replication_threads_are_never_killed_whatever_the_criteria(server):
    result, statements = run(server, {"min_time": 0, "kill": True})
    assert [s["id"] for s in result["sessions"]] == [10, 11, 12, 20, 30], result
    assert kills(statements) == ["KILL CONNECTION 10", "KILL CONNECTION 11", "KILL CONNECTION 12", "KILL CONNECTION 20",
                                 "KILL CONNECTION 30"]


def test_more_matches_than_max_kills_kill_nothing_and_fail_naming_the_count(server):
    result, statements = run(server, {"users": ["stockdb_chaos"], "kill": True, "max_kills": 3})
    assert result.get("failed") and result["msg"].startswith("4 sessions match, more than max_kills=3: nothing killed"), result
    assert kills(statements) == [] and result["matched"] == 4
    dry, _ = run(server, {"users": ["stockdb_chaos"], "max_kills": 3})
    assert "failed" not in dry and dry["would_kill"] == [] and dry["msg"].startswith("4 sessions match, more than"), dry


def test_program_names_need_performance_schema(server):
    result, statements = run(server, {"program_name_pattern": "^stockdb-chaos:", "kill": True},
                             state=dict(SERVER, performance_schema=0))
    assert result.get("failed") and result["msg"].startswith("program_name_pattern needs performance_schema"), result
    assert kills(statements) == []


def test_a_server_at_max_connections_points_to_the_extra_port(server):
    result, _ = run(server, {"blocking": True, "kill": True}, state=dict(SERVER, refuse=1040))
    assert result.get("failed"), result
    assert "too many connections (error 1040)" in result["msg"]
    assert "login_defaults_file=/etc/stockdb/admin-extra.cnf" in result["msg"]
