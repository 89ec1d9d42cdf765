"""module_utils/stockdb/replication.py: a replica is promoted only once it applied the position, in that order."""

from stockdb import replication


class Cursor:
    """Records statements; MASTER_GTID_WAIT answers `waited`, the clock query a fixed time."""

    def __init__(self, waited):
        self.waited, self.statements, self._row = waited, [], None

    def execute(self, statement, args=None):
        self.statements.append(statement)
        self._row = (self.waited,) if "MASTER_GTID_WAIT" in statement else ("1796377820.900619",)

    def fetchone(self):
        return self._row


def test_a_caught_up_replica_stops_replicating_before_it_takes_writes():
    cur = Cursor(0)
    result, error = replication.promote(cur, "0-11-4026", 10, semi_sync=True)
    assert error is None and result["changed"] and result["promoted_at"] == 1796377820.900619
    assert cur.statements == ["SELECT MASTER_GTID_WAIT(%s, %s)", "STOP ALL SLAVES", "RESET SLAVE ALL",
                              "SET GLOBAL rpl_semi_sync_master_enabled = ON", "SET GLOBAL read_only = OFF",
                              "SELECT UNIX_TIMESTAMP(NOW(6))"]


def test_a_replica_that_did_not_catch_up_is_left_replicating():
    cur = Cursor(-1)
    result, error = replication.promote(cur, "0-11-4026", 10, semi_sync=True)
    assert "did not apply 0-11-4026 within 10 s" in error and not result["changed"]
    assert cur.statements == ["SELECT MASTER_GTID_WAIT(%s, %s)"]


def test_check_mode_only_waits():
    cur = Cursor(0)
    result, error = replication.promote(cur, "0-11-4026", 10, semi_sync=False, check_mode=True)
    assert error is None and not result["changed"] and len(cur.statements) == 1


def test_a_gtid_position_is_recognised():
    assert replication.GTID_POSITION.match("0-11-4026,1-12-7")
    assert not replication.GTID_POSITION.match("yesterday")
