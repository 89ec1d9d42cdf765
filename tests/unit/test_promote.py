"""module_utils/stockdb/replication.py: a replica is promoted only once it applied the position, in that order."""

from stockdb import replication

REPLICATING = [("", "10.0.0.11", "Yes", "Yes")]
COLUMNS = (("Connection_name",), ("Master_Host",), ("Slave_IO_Running",), ("Slave_SQL_Running",))
STATE = ["SELECT MASTER_GTID_WAIT(%s, %s)", "SELECT @@global.read_only, @@global.rpl_semi_sync_master_enabled",
         "SHOW ALL SLAVES STATUS"]


class Cursor:
    """Records statements; MASTER_GTID_WAIT answers `waited`, the state queries what the server is (`read_only`,
    `semi_sync`, `channels`), the clock query a fixed time."""

    def __init__(self, waited, read_only=1, semi_sync=0, channels=REPLICATING):
        self.waited, self.statements, self._row, self._rows = waited, [], None, []
        self.state, self.channels, self.description = (read_only, semi_sync), channels, None

    def execute(self, statement, args=None):
        self.statements.append(statement)
        self.description = None
        if "MASTER_GTID_WAIT" in statement:
            self._row = (self.waited,)
        elif "@@global.read_only" in statement:
            self._row = self.state
        elif statement == "SHOW ALL SLAVES STATUS":
            self.description, self._rows = COLUMNS, list(self.channels)
        else:
            self._row = ("1796377820.900619",)

    def fetchone(self):
        return self._row

    def fetchall(self):
        return self._rows


def test_a_caught_up_replica_stops_replicating_before_it_takes_writes():
    cur = Cursor(0)
    result, error = replication.promote(cur, "0-11-4026", 10, semi_sync=True)
    assert error is None and result["changed"] and result["promoted_at"] == 1796377820.900619
    assert not result["already_primary"]
    assert cur.statements == STATE + ["STOP ALL SLAVES", "RESET SLAVE ALL",
                                      "SET GLOBAL rpl_semi_sync_master_enabled = ON", "SET GLOBAL read_only = OFF",
                                      "SELECT UNIX_TIMESTAMP(NOW(6))"]


def test_a_replica_that_did_not_catch_up_is_left_replicating():
    cur = Cursor(-1)
    result, error = replication.promote(cur, "0-11-4026", 10, semi_sync=True)
    assert "did not apply 0-11-4026 within 10 s" in error and not result["changed"]
    assert "this module changed nothing; it is read-only and replicates from 10.0.0.11: I/O thread Yes" in error
    assert cur.statements == STATE


def test_a_timeout_after_the_io_thread_was_stopped_says_so():
    """failover.yml stops the I/O thread before it waits: the message must not claim it still replicates."""
    cur = Cursor(-1, channels=[("", "10.0.0.11", "No", "Yes")])
    result, error = replication.promote(cur, "0-11-4026", 60, semi_sync=True)
    assert "I/O thread No, SQL thread Yes" in error and "still replicates" not in error
    assert result["state"]["replication"][0]["io_running"] == "No" and not result["changed"]


def test_the_writable_primary_is_left_as_it_is_and_not_reported_changed():
    cur = Cursor(0, read_only=0, semi_sync=1, channels=[])
    result, error = replication.promote(cur, "0-11-4026", 10, semi_sync=True)
    assert error is None and not result["changed"] and result["already_primary"] and result["promoted_at"] is None
    assert cur.statements == STATE


def test_a_writable_host_still_replicating_is_promoted():
    cur = Cursor(0, read_only="OFF", semi_sync="ON")
    result, error = replication.promote(cur, "0-11-4026", 10, semi_sync=True)
    assert error is None and result["changed"] and "RESET SLAVE ALL" in cur.statements


def test_check_mode_only_waits():
    cur = Cursor(0)
    result, error = replication.promote(cur, "0-11-4026", 10, semi_sync=False, check_mode=True)
    assert error is None and not result["changed"] and len(cur.statements) == 1


def test_a_gtid_position_is_recognised():
    assert replication.GTID_POSITION.match("0-11-4026,1-12-7")
    assert not replication.GTID_POSITION.match("yesterday")
