"""Unit tests of module_utils/stockdb/sessions.py with stand-in rows and a stand-in cursor: what is a system
thread, the listing joined with InnoDB transactions and lock waits, the checks of a request, each criterion,
the bound, and the KILL statements.

Killing on a real server (a runaway query, the blocker of a lock wait rolled back) was run on a lab host;
the module's own wiring is tested through Ansible in test_sessions_module.py.
"""

import pytest
from stockdb import chaos, sessions

PROCESSLIST = [
    dict(ID=1, USER="system user", HOST="", DB=None, COMMAND="Daemon", TIME=900, STATE="InnoDB purge worker", INFO=None,
         QUERY_ID=0, TAG=None),
    dict(ID=2, USER="event_scheduler", HOST="localhost", DB=None, COMMAND="Daemon", TIME=900, STATE="Waiting on empty queue",
         INFO=None, QUERY_ID=0, TAG=None),
    dict(ID=3, USER="stockdb_backup", HOST="localhost", DB=None, COMMAND="Binlog Dump", TIME=900,
         STATE="Master has sent all binlog to slave", INFO=None, QUERY_ID=5, TAG="mariadb-binlog"),
    dict(ID=4, USER="system user", HOST="", DB=None, COMMAND="Slave_SQL", TIME=900, STATE="", INFO=None, QUERY_ID=0, TAG=None),
    dict(ID=10, USER="stockdb_report", HOST="localhost", DB="stockdb", COMMAND="Query", TIME=120, STATE="Sending data",
         INFO="SELECT o.account_id, COUNT(*) FROM orders o JOIN trades t ON 1", QUERY_ID=501, TAG="stockdb-chaos:query_storm"),
    dict(ID=11, USER="stockdb_report", HOST="localhost", DB="stockdb", COMMAND="Query", TIME=3, STATE="Sending data",
         INFO="SELECT 1", QUERY_ID=502, TAG="stockdb-chaos:query_storm"),
    dict(ID=12, USER="stockdb_chaos", HOST="localhost", DB="stockdb", COMMAND="Sleep", TIME=40, STATE="", INFO=None,
         QUERY_ID=503, TAG="stockdb-chaos:lock_storm"),
    dict(ID=13, USER="stockdb_app", HOST="localhost", DB="stockdb", COMMAND="Query", TIME=7, STATE="Updating",
         INFO="UPDATE stocks_inventory SET traded_qty = traded_qty + 5 WHERE stock_id = 7", QUERY_ID=504, TAG="simulator"),
    dict(ID=14, USER="stockdb_app", HOST="localhost", DB="stockdb", COMMAND="Query", TIME=6, STATE="Updating",
         INFO="UPDATE stocks_inventory SET traded_qty = traded_qty + 1 WHERE stock_id = 7", QUERY_ID=505, TAG="simulator"),
    dict(ID=15, USER="stockdb_app", HOST="localhost", DB="stockdb", COMMAND="Sleep", TIME=2, STATE="", INFO=None,
         QUERY_ID=506, TAG=None),
    dict(ID=99, USER="stockdb_admin", HOST="localhost", DB=None, COMMAND="Query", TIME=0, STATE="Filling schema table",
         INFO="SELECT ...", QUERY_ID=600, TAG=None),
]
TRANSACTIONS = [
    dict(THREAD=12, TRX_ID=7001, TRX_STATE="RUNNING", TRX_STARTED="2026-12-02 03:00:00", TRX_AGE=40,
         TRX_ROWS_MODIFIED=10, TRX_ROWS_LOCKED=10),
    dict(THREAD=13, TRX_ID=7002, TRX_STATE="LOCK WAIT", TRX_STARTED="2026-12-02 03:00:33", TRX_AGE=7,
         TRX_ROWS_MODIFIED=0, TRX_ROWS_LOCKED=1),
    dict(THREAD=14, TRX_ID=7003, TRX_STATE="LOCK WAIT", TRX_STARTED="2026-12-02 03:00:34", TRX_AGE=6,
         TRX_ROWS_MODIFIED=0, TRX_ROWS_LOCKED=1),
]
# 13 and 14 wait for 12's locks (twice for 13: two of its locks), 14 also for 13
WAITS = [dict(WAITING=13, BLOCKING=12), dict(WAITING=13, BLOCKING=12), dict(WAITING=14, BLOCKING=12),
         dict(WAITING=14, BLOCKING=13)]


def listed():
    return {s["id"]: s for s in sessions.describe_sessions(PROCESSLIST, TRANSACTIONS, WAITS, own_id=99)}


def chosen(**params):
    return [s["id"] for s in sessions.select(list(listed().values()), sessions.check_criteria(params))]


# ---------------------------------------------------------------- system threads and the listing
def test_system_replication_and_own_threads_are_never_listed():
    assert sorted(listed()) == [10, 11, 12, 13, 14, 15]
    assert chosen(min_time=0) == [10, 11, 12, 13, 14, 15]
    assert all(sessions.is_system(row) for row in PROCESSLIST[:4])
    assert sessions.is_system(dict(USER=None, COMMAND="Connect")) and sessions.is_system(dict(USER="x", COMMAND="Slave_IO"))
    assert not sessions.is_system(dict(USER="stockdb_app", COMMAND="Sleep"))


def test_each_session_carries_its_transaction_and_the_lock_waits_both_ways():
    s = listed()
    assert (s[12]["trx_id"], s[12]["trx_age"], s[12]["trx_rows_modified"], s[12]["trx_started"]) == (
        "7001", 40, 10, "2026-12-02 03:00:00")
    assert s[12]["blocked_ids"] == [13, 14] and s[12]["blocked_sessions"] == 2 and s[12]["waiting_for"] == []
    assert s[13]["waiting_for"] == [12] and s[13]["blocked_ids"] == [14] and s[14]["waiting_for"] == [12, 13]
    assert s[10]["trx_id"] is None and s[10]["trx_rows_modified"] is None and s[10]["blocked_sessions"] == 0
    assert s[10]["program_name"] == "stockdb-chaos:query_storm"


def test_chaos_finds_its_sessions_with_the_same_listing_and_system_threads():
    assert chaos.PROCESSLIST is sessions.PROCESSLIST and chaos.PROCESSLIST_PLAIN is sessions.PROCESSLIST_PLAIN
    assert chaos.chaos_threads(PROCESSLIST, "query_storm") == [10, 11]
    assert chaos.chaos_threads(PROCESSLIST) == [10, 11, 12]


# ---------------------------------------------------------------- criteria
@pytest.mark.parametrize("params, message", [
    ({}, "no criterion given: name at least one of ids, users, min_time"),
    (dict(idle_in_transaction=False, blocking=False, users=[]), "no criterion given"),
    (dict(min_time=-1), "min_time=-1 must be a number of seconds >= 0"),
    (dict(blocking=True, min_transaction_time=-5), "min_transaction_time=-5 must be a number of seconds >= 0"),
    (dict(info_pattern="SELECT (("), "info_pattern='SELECT ((' is not a valid regular expression: missing ), unterminated"),
    (dict(state_pattern="*x"), "state_pattern='*x' is not a valid regular expression: nothing to repeat"),
    (dict(users=["a"], max_kills=0), "max_kills=0 must be an integer >= 1"),
    (dict(ids=[0, 5]), "ids must be thread ids (integers >= 1), not [0]"),
    (dict(idle_in_transaction=True, kill_mode="query"), "kill_mode=query cannot end an idle transaction"),
])
def test_a_bad_request_is_refused_naming_the_parameter(params, message):
    with pytest.raises(sessions.SessionsError, match=None) as refused:
        sessions.check_criteria(params)
    assert message in str(refused.value)


def test_every_problem_of_a_request_is_named_at_once():
    with pytest.raises(sessions.SessionsError) as refused:
        sessions.check_criteria(dict(min_time=-1, info_pattern="(", max_kills=0))
    assert str(refused.value).count(";") == 2


@pytest.mark.parametrize("params, ids", [
    (dict(users=["stockdb_report"], command=["query"], min_time=60), [10]),  # a runaway report
    (dict(users=["stockdb_report"]), [10, 11]),
    (dict(command=["Sleep"]), [12, 15]),
    (dict(ids=[12, 99, 1]), [12]),  # never our own or a system thread, even by id
    (dict(state_pattern="^updating$"), [13, 14]),
    (dict(info_pattern=r"stocks_inventory .* \+ 5"), [13]),
    (dict(program_name_pattern="^stockdb-chaos:"), [10, 11, 12]),
    (dict(program_name_pattern="lock_storm"), [12]),
    (dict(idle_in_transaction=True), [12]),  # 15 sleeps without a transaction
    (dict(idle_in_transaction=True, min_transaction_time=41), []),
    (dict(min_transaction_time=6), [12, 13, 14]),
    (dict(blocking=True), [12, 13]),  # 13 waits itself, and blocks 14
    (dict(blocking=True, command=["Sleep"]), [12]),  # the idle blocker of a lock storm
    (dict(users=["nobody"]), []),
])
def test_criteria_combine_with_and(params, ids):
    assert chosen(**params) == ids


def test_a_long_query_is_cut_in_the_report_but_matched_whole():
    long = dict(PROCESSLIST[4], INFO="SELECT " + "x, " * 400 + "needle FROM t")
    found = sessions.describe_sessions([long])
    assert [s["id"] for s in sessions.select(found, sessions.check_criteria(dict(info_pattern="needle")))] == [10]
    shown = sessions.shown(found[0])
    assert len(shown["info"]) < 340 and shown["info"].endswith(f"... ({len(long['INFO'])} characters)")
    assert sessions.shown(listed()[13])["info"] == PROCESSLIST[7]["INFO"]


def test_more_matches_than_the_bound_are_refused_naming_the_count():
    assert sessions.over_bound([{}] * 3, 3) is None
    assert sessions.over_bound([{}] * 4, 3) == ("4 sessions match, more than max_kills=3: nothing killed; narrow the "
                                               "criteria or raise max_kills")


# ---------------------------------------------------------------- kill
class Refused(Exception):
    pass


class FakeCursor:
    """Answers the listing from the rows above and records KILLs; the ids in `gone` ended before their KILL."""

    def __init__(self, gone=(), fail=None, performance_schema=1, running_rounds=0):
        self.statements, self.gone, self.fail = [], set(gone), fail
        self.performance_schema, self.running_rounds = performance_schema, running_rounds
        self.description, self.result = None, []

    def execute(self, sql, args=None):
        self.statements.append(sql)
        if sql.startswith("KILL"):
            thread = int(sql.split()[-1])
            if thread in self.gone:
                raise Refused(1094, f"Unknown thread id: {thread}")
            if self.fail:
                raise Refused(self.fail, "something else")
            return
        if sql.startswith("SELECT CONNECTION_ID()"):
            self._answer(["CONNECTION_ID()", "@@performance_schema"], [(99, self.performance_schema)])
        elif sql in (sessions.PROCESSLIST, sessions.PROCESSLIST_PLAIN):
            tag = sql == sessions.PROCESSLIST
            self._answer(list(PROCESSLIST[0]), [tuple(dict(r, TAG=r["TAG"] if tag else None).values()) for r in PROCESSLIST])
        elif sql == sessions.TRANSACTIONS:
            self._answer(list(TRANSACTIONS[0]), [tuple(r.values()) for r in TRANSACTIONS])
        elif sql == sessions.LOCK_WAITS:
            self._answer(["WAITING", "BLOCKING"], [tuple(r.values()) for r in WAITS])
        elif sql.startswith("SELECT ID, QUERY_ID, COMMAND"):
            self.running_rounds -= 1
            rows = [(r["ID"], r["QUERY_ID"], "Killed") for r in PROCESSLIST if r["ID"] in (12, 10)]
            self._answer(["ID", "QUERY_ID", "COMMAND"], rows if self.running_rounds >= 0 else [])

    def _answer(self, names, rows):
        self.description = [(n,) for n in names]
        self.result = rows

    def fetchone(self):
        return self.result[0]

    def fetchall(self):
        return self.result


def code(exc):
    return exc.args[0]


def test_read_lists_sessions_with_program_names_only_when_performance_schema_is_on():
    found, on = sessions.read(FakeCursor())
    assert on is True and [s["id"] for s in found] == [10, 11, 12, 13, 14, 15] and found[0]["program_name"]
    cur = FakeCursor(performance_schema=0)
    found, on = sessions.read(cur)
    assert on is False and sessions.PROCESSLIST_PLAIN in cur.statements and found[0]["program_name"] is None


def test_killing_a_connection_reports_the_rows_its_rollback_undid():
    cur = FakeCursor()
    s = listed()
    killed, skipped, failed = sessions.kill(cur, [s[12], s[10]], "connection", code)
    assert cur.statements == ["KILL CONNECTION 12", "KILL CONNECTION 10"] and skipped == failed == []
    assert [(k["id"], k["rolled_back_rows"], k["trx_id"]) for k in killed] == [(12, 10, "7001"), (10, None, None)]


def test_killing_a_query_names_the_query_seen_and_skips_a_sleeping_session():
    cur = FakeCursor()
    s = listed()
    killed, skipped, _ = sessions.kill(cur, [s[10], s[12]], "query", code)
    assert cur.statements == ["KILL QUERY ID 501"]
    assert [(k["id"], k["kill_mode"], k["rolled_back_rows"]) for k in killed] == [(10, "query", None)]
    assert skipped == [dict(id=12, user="stockdb_chaos",
                            reason="no query running (Sleep): kill_mode=connection ends the session")]


def test_a_session_gone_before_its_kill_is_skipped_a_refused_kill_is_named_and_the_others_still_killed():
    s = listed()
    killed, skipped, failed = sessions.kill(FakeCursor(gone=[12]), [s[12], s[10]], "connection", code)
    assert [k["id"] for k in killed] == [10] and skipped == [dict(id=12, user="stockdb_chaos", reason="ended before the kill")]
    assert failed == []
    cur = FakeCursor(fail=1095)
    killed, skipped, failed = sessions.kill(cur, [s[12], s[10]], "connection", code)
    assert killed == [] and failed == [dict(id=12, user="stockdb_chaos", statement="KILL CONNECTION 12",
                                            error="(1095, 'something else')"), dict(id=10, user="stockdb_report",
                                            statement="KILL CONNECTION 10", error="(1095, 'something else')")]


def test_waiting_for_the_killed_to_end_marks_each_one():
    s = listed()
    cur = FakeCursor(running_rounds=2)
    killed, _, _ = sessions.kill(cur, [s[12]], "connection", code)
    clock = iter(range(100))
    assert sessions.wait_ended(cur, killed, 10, clock=lambda: next(clock), sleep=lambda _: None) == []
    assert killed[0]["ended"] is True and cur.statements.count("SELECT ID, QUERY_ID, COMMAND FROM information_schema."
                                                               "PROCESSLIST WHERE ID IN (12)") == 3
    cur = FakeCursor(running_rounds=50)
    killed, _, _ = sessions.kill(cur, [s[12], s[10]], "query", code)
    clock = iter(range(100))
    # 10's query (501) still runs; 12 was skipped (Sleep), so it is not waited for
    assert sessions.wait_ended(cur, killed, 3, clock=lambda: next(clock), sleep=lambda _: None) == [10]
    assert killed[0]["ended"] is False
