"""Unit tests of module_utils/stockdb/chaos.py: the checks of a request, the disk a disk_full may fill,
the systemd units and commands of every fault, which threads count as chaos sessions, injecting and
removing with a stand-in host, and the worker with a stand-in PyMySQL (no server, no disk filled).

The faults themselves run for real on a lab host (the drills at the end of the default scenario).
"""

import errno
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from stockdb import chaos
from stockdb.ops import OpsError

GOOD = dict(fault="query_storm", state="present", confirm=True, duration=30, max_duration=600,
            inventory_groups=["mariadb", "chaos_targets"])
TOOLS = dict(python="/usr/bin/python3", systemd_run="/usr/bin/systemd-run", systemctl="/usr/bin/systemctl",
             journalctl="/usr/bin/journalctl", stress_ng="/usr/bin/stress-ng", rm="/usr/bin/rm", sleep="/usr/bin/sleep")
SQL_OPTIONS = dict(login_defaults_file="/etc/stockdb/chaos.cnf", database="stockdb", service="mariadb",
                   exporter_service="prometheus-mysqld-exporter")


def request(**changes):
    return chaos.check_request(dict(GOOD, **changes), "db1")


# ---------------------------------------------------------------- request
def test_a_good_request_gets_the_defaults_of_its_fault():
    assert request() == dict(fault="query_storm", state="present", duration=30, options=dict(sessions=8))
    assert request(fault="lock_storm")["options"] == dict(lock_target="stocks", lock_rows=10)
    assert request(fault="disk_full")["options"] == dict(disk_target="datadir", path=None, max_fs_bytes=2**30)
    assert request(fault="cpu_hog", workers=2)["options"] == dict(workers=2, cpu_load=100)
    assert request(fault="crash")["options"] == {}


@pytest.mark.parametrize("changes, message", [
    (dict(fault="no_such_fault"), "fault='no_such_fault' is not one of query_storm, connection_flood"),
    (dict(confirm=False), "confirm=true is required to inject query_storm into db1"),
    (dict(confirm=None), "confirm=true is required"),
    (dict(inventory_groups=["mariadb"]), "host db1 is not in the inventory group chaos_targets (its groups: mariadb)"),
    (dict(inventory_groups=[]), "host db1 is not in the inventory group chaos_targets (its groups: none)"),
    (dict(inventory_groups=None), "the inventory groups of the host are unknown: stockdb_chaos runs through its action plugin"),
    (dict(duration=601), "duration=601 is over the cap max_duration=600"),
    (dict(duration=900, max_duration=800), "duration=900 is over the cap max_duration=800"),
    (dict(duration=0), "duration=0 must be >= 1"),
    (dict(max_duration=90000), "max_duration=90000 is outside 1..86400"),
    (dict(sessions=300), "sessions=300 is outside 1..256"),
    (dict(fault="connection_flood", sessions=6000), "sessions=6000 is outside 1..5000"),
    (dict(fault="lock_storm", lock_rows=0), "lock_rows=0 is outside 1..1000"),
    (dict(fault="cpu_hog", cpu_load=101), "cpu_load=101 is outside 1..100"),
    (dict(fault="io_hog", workers=0), "workers=0 is outside 1..64"),
    (dict(fault="disk_full", max_fs_bytes=10), "max_fs_bytes=10 must be >= 1048576"),
    (dict(fault="disk_full", path="relative/dir"), "path='relative/dir' must be an absolute path other than /"),
    (dict(fault="crash", sessions=3), "fault=crash does not take sessions"),
    (dict(lock_rows=3, path="/srv"), "fault=query_storm does not take lock_rows, path"),
    (dict(fault=None), "state=present needs a fault"),
])
def test_a_bad_request_is_refused_naming_the_problem_and_injecting_nothing(changes, message):
    with pytest.raises(chaos.ChaosError) as refused:
        request(**changes)
    assert message in str(refused.value)
    if not str(refused.value).startswith("state=present"):
        assert str(refused.value).endswith("nothing injected")


def test_every_problem_of_a_request_is_named_at_once():
    with pytest.raises(chaos.ChaosError) as refused:
        request(confirm=False, duration=700, inventory_groups=["web"])
    text = str(refused.value)
    assert "duration=700 is over the cap" in text and "confirm=true is required" in text and "chaos_targets" in text


def test_removal_needs_neither_confirm_nor_the_group_nor_a_fault():
    assert request(state="absent", confirm=False, inventory_groups=None)["state"] == "absent"
    everything = request(state="absent", fault=None, confirm=False, inventory_groups=None, path="/srv/chaos")
    assert everything["fault"] is None and everything["options"] == dict(path="/srv/chaos")


def test_a_chaos_error_is_an_ops_error():
    assert issubclass(chaos.ChaosError, OpsError)


# ---------------------------------------------------------------- disk
class FakeStat:
    def __init__(self, devices, directories=None):
        self.devices, self.directories = devices, directories

    def __call__(self, path):
        if path not in self.devices:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        is_dir = self.directories is None or path in self.directories
        return types.SimpleNamespace(st_dev=self.devices[path], st_mode=0o040755 if is_dir else 0o100644)


def vfs(size, free):
    return lambda path: types.SimpleNamespace(f_blocks=size // 4096, f_bfree=free // 4096, f_bavail=free // 4096, f_frsize=4096)


DEVICES = {"/": 1, "/srv": 1, "/srv/chaos": 7, "/srv/chaos/binlog": 7, "/var": 1, "/var/lib": 1, "/var/lib/mysql": 1}


def test_the_mount_point_is_the_top_directory_of_the_device():
    stat = FakeStat(DEVICES)
    assert chaos.mount_point("/srv/chaos/binlog", stat=stat) == "/srv/chaos"
    assert chaos.mount_point("/srv/chaos", stat=stat) == "/srv/chaos"
    assert chaos.mount_point("/var/lib/mysql", stat=stat) == "/"


def test_a_dedicated_small_volume_may_be_filled_with_the_filler_at_its_mount_point():
    found = chaos.fillable("/srv/chaos/binlog", 2**30, stat=FakeStat(DEVICES), statvfs=vfs(64 * 2**20, 60 * 2**20))
    assert found == dict(path="/srv/chaos/binlog", mount_point="/srv/chaos", device=7, size_bytes=64 * 2**20,
                         free_bytes=60 * 2**20, filler="/srv/chaos/stockdb-chaos.filler")


def test_the_root_filesystem_is_never_filled():
    with pytest.raises(chaos.ChaosError) as refused:
        chaos.fillable("/var/lib/mysql", 2**40, stat=FakeStat(DEVICES), statvfs=vfs(2**20, 2**20))
    assert "disk_full: /var/lib/mysql is on the root filesystem (device 1): refusing to fill it" in str(refused.value)
    assert str(refused.value).endswith("nothing injected")


def test_a_filesystem_over_the_cap_is_not_filled():
    with pytest.raises(chaos.ChaosError) as refused:
        chaos.fillable("/srv/chaos", 2**30, stat=FakeStat(DEVICES), statvfs=vfs(2 * 2**30, 2**30))
    assert "holds 2147483648 bytes, over the cap max_fs_bytes=1073741824: refusing to fill it" in str(refused.value)


def test_a_missing_path_or_a_file_is_refused():
    with pytest.raises(chaos.ChaosError, match="cannot use /nowhere"):
        chaos.fillable("/nowhere", 2**30, stat=FakeStat(DEVICES))
    with pytest.raises(chaos.ChaosError, match="/srv/chaos/binlog is not a directory"):
        chaos.fillable("/srv/chaos/binlog", 2**30, stat=FakeStat(DEVICES, directories={"/", "/srv", "/srv/chaos"}))


def test_the_real_root_filesystem_is_refused():
    with pytest.raises(chaos.ChaosError, match="is on the root filesystem"):
        chaos.fillable("/", 2**60)


def test_io_hog_needs_twice_what_it_writes(tmp_path):
    assert chaos.io_space(str(tmp_path), 2, 64, statvfs=vfs(2**30, 300 * 2**20)) == str(tmp_path / "stockdb-chaos-io")
    with pytest.raises(chaos.ChaosError, match="io_hog: 2 workers of 64 MiB need 256 MiB free"):
        chaos.io_space(str(tmp_path), 2, 64, statvfs=vfs(2**30, 200 * 2**20))


# ---------------------------------------------------------------- units
def test_every_fault_runs_in_a_transient_unit_that_ends_by_itself():
    argv = chaos.systemd_run("/usr/bin/systemd-run", "cpu_hog", 45, ["/usr/bin/stress-ng", "--cpu", "1"], ["LimitNOFILE=9"])
    assert argv[:2] == ["/usr/bin/systemd-run", "--unit=stockdb-chaos-cpu_hog.service"]
    assert f"--property=RuntimeMaxSec={45 + chaos.STOP_GRACE_S}" in argv and "--collect" in argv
    assert "--property=OOMScoreAdjust=1000" in argv and "--property=LimitNOFILE=9" in argv
    assert argv[argv.index("--") + 1:] == ["/usr/bin/stress-ng", "--cpu", "1"]


def test_the_sql_faults_run_the_worker_with_an_option_file_never_a_password(tmp_path):
    options = dict(SQL_OPTIONS, sessions=8)
    command, properties = chaos.fault_command("query_storm", 30, options, TOOLS, str(tmp_path))
    assert command == ["/usr/bin/python3", str(tmp_path / "worker.py"), "query_storm", "--status",
                       str(tmp_path / "query_storm.worker.json"), "--seconds", "30", "--defaults-file",
                       "/etc/stockdb/chaos.cnf", "--database", "stockdb", "--sessions", "8"]
    assert properties == []
    command, properties = chaos.fault_command("connection_flood", 30, dict(SQL_OPTIONS, sessions=5000), TOOLS, str(tmp_path))
    assert properties == ["LimitNOFILE=5256"]
    options = dict(SQL_OPTIONS, lock_target="accounts", lock_rows=3)
    command, _ = chaos.fault_command("lock_storm", 30, options, TOOLS, str(tmp_path))
    assert command[-4:] == ["--lock-target", "accounts", "--lock-rows", "3"]
    assert not any("password" in part for part in command)


def test_the_units_undo_their_fault_when_they_stop(tmp_path):
    command, properties = chaos.fault_command("disk_full", 20, {}, TOOLS, str(tmp_path), target="/srv/chaos/stockdb-chaos.filler")
    assert command[-2:] == ["--file", "/srv/chaos/stockdb-chaos.filler"]
    assert properties == ["ExecStopPost=/usr/bin/rm -f /srv/chaos/stockdb-chaos.filler"]
    command, properties = chaos.fault_command("exporter_down", 20, SQL_OPTIONS, TOOLS, str(tmp_path))
    assert command == ["/usr/bin/sleep", "20"]
    assert properties == ["ExecStartPre=/usr/bin/systemctl stop prometheus-mysqld-exporter",
                          "ExecStopPost=/usr/bin/systemctl start prometheus-mysqld-exporter"]


def test_the_noisy_neighbours_are_stress_ng_bounded_by_its_timeout(tmp_path):
    command, _ = chaos.fault_command("cpu_hog", 20, dict(workers=0, cpu_load=70), TOOLS, str(tmp_path))
    assert command == ["/usr/bin/stress-ng", "--cpu", "0", "--cpu-load", "70", "--timeout", "20s", "--metrics-brief"]
    command, properties = chaos.fault_command("io_hog", 20, dict(workers=2, io_size_mb=64), TOOLS, str(tmp_path),
                                              target="/srv/io/stockdb-chaos-io")
    assert command == ["/usr/bin/stress-ng", "--hdd", "2", "--hdd-bytes", "64m", "--temp-path",
                       "/srv/io/stockdb-chaos-io", "--timeout", "20s", "--metrics-brief"]
    assert properties == ["ExecStopPost=/usr/bin/rm -rf /srv/io/stockdb-chaos-io"]


def test_a_crash_is_a_sigkill_of_the_main_process():
    show, kill = chaos.crash_commands("/usr/bin/systemctl", "mariadb")
    assert show == ["/usr/bin/systemctl", "show", "--property=MainPID", "--value", "mariadb"]
    assert kill == ["/usr/bin/systemctl", "kill", "--kill-whom=main", "--signal=SIGKILL", "mariadb"]


# ---------------------------------------------------------------- sessions
ROWS = [
    dict(ID=1, USER="system user", COMMAND="Daemon", TAG=None),
    dict(ID=2, USER="repl", COMMAND="Binlog Dump GTID", TAG="stockdb-chaos:query_storm"),
    dict(ID=3, USER="stockdb_chaos", COMMAND="Query", TAG="stockdb-chaos:query_storm"),
    dict(ID=4, USER="stockdb_chaos", COMMAND="Sleep", TAG="stockdb-chaos:connection_flood"),
    dict(ID=5, USER="stockdb_app", COMMAND="Query", TAG="simulator"),
    dict(ID=6, USER="stockdb_chaos", COMMAND="Sleep", TAG=None),
    dict(ID=7, USER="stockdb_app", COMMAND="Sleep", TAG=None),
    dict(ID=8, USER="system user", COMMAND="Slave_SQL", TAG=None),
]


def test_the_chaos_sessions_are_the_tagged_ones_never_replication_or_system_threads():
    assert chaos.chaos_threads(ROWS, "query_storm") == [3]
    assert chaos.chaos_threads(ROWS, "connection_flood") == [4]
    assert chaos.chaos_threads(ROWS) == [3, 4]


def test_without_tags_the_ids_the_worker_recorded_count_only_for_its_account():
    recorded = dict(user="stockdb_chaos", sessions=[6, 7, 8, 1])
    assert chaos.chaos_threads(ROWS, "lock_storm", recorded) == [6]
    assert chaos.chaos_threads(ROWS, "lock_storm", dict(sessions=[6])) == []


# ---------------------------------------------------------------- inject and remove with a stand-in host
class FakeHost(chaos.Host):
    """Records every command; systemd-run marks its unit active and plays the worker (status ready)."""

    def __init__(self, state_dir, units=None, pid="4242", worker_state="ready", sql=None):
        self.calls, self.units = [], dict(units or {})
        self.pid, self.worker_state = pid, worker_state
        super().__init__(self.fake_run, TOOLS, str(state_dir), sql=sql, sleep=lambda s: None)

    def fake_run(self, argv):
        self.calls.append(argv)
        if argv[0] == TOOLS["systemd_run"]:
            unit = argv[1].split("=", 1)[1]
            self.units[unit] = "active"
            fault = unit[len("stockdb-chaos-"):-len(".service")]
            if fault in chaos.WORKER_FAULTS:
                status = chaos.paths(self.state_dir, fault)["status"]
                chaos.write_json(status, dict(fault=fault, state=self.worker_state, pid=1, sessions=[11, 12],
                                              user="stockdb_chaos", error="MariaDB error 1045: Access denied"))
            if "ExecStartPre=/usr/bin/systemctl stop prometheus-mysqld-exporter" in " ".join(argv):
                self.units["prometheus-mysqld-exporter"] = "inactive"
            return 0, "", ""
        if argv[:2] == [TOOLS["systemctl"], "is-active"]:
            state = self.units.get(argv[2], "inactive")
            return (0 if state == "active" else 3), state + "\n", ""
        if argv[:2] == [TOOLS["systemctl"], "stop"]:
            self.units[argv[2]] = "inactive"
            if argv[2] == "stockdb-chaos-exporter_down.service":
                self.units["prometheus-mysqld-exporter"] = "active"  # its ExecStopPost
        if argv[:2] == [TOOLS["systemctl"], "start"]:
            self.units[argv[2]] = "active"
        if argv[:2] == [TOOLS["systemctl"], "show"]:
            return 0, self.pid + "\n", ""
        return 0, "", ""


class FakeSql:
    def __init__(self, rows):
        self.rows, self.killed = rows, []

    def threads(self, fault, recorded):
        return chaos.chaos_threads(self.rows, fault, recorded)

    def kill(self, ids):
        self.killed += ids
        self.rows = [r for r in self.rows if r["ID"] not in ids]
        return ids


def test_a_worker_fault_is_injected_once_its_worker_is_ready_and_recorded(tmp_path):
    host = FakeHost(tmp_path / "state")
    record = chaos.inject(host, "lock_storm", 20, dict(SQL_OPTIONS, lock_target="stocks", lock_rows=2))
    assert record["unit"] == "stockdb-chaos-lock_storm.service" and record["details"]["sessions"] == [11, 12]
    assert record["injected_at"].endswith("Z") and record["duration"] == 20
    assert (tmp_path / "state" / "worker.py").read_text() == Path(chaos.__file__).read_text()
    assert json.loads((tmp_path / "state" / "lock_storm.json").read_text())["injected_at"] == record["injected_at"]
    started = [c for c in host.calls if c[0] == TOOLS["systemd_run"]]
    assert len(started) == 1 and "--property=RuntimeMaxSec=25" in started[0]


def test_a_worker_that_fails_leaves_nothing_and_its_error_is_named(tmp_path):
    host = FakeHost(tmp_path / "state", worker_state="failed")
    with pytest.raises(chaos.ChaosError) as failed:
        chaos.inject(host, "query_storm", 20, dict(SQL_OPTIONS, sessions=2))
    assert str(failed.value) == ("query_storm: the worker failed: MariaDB error 1045: Access denied; "
                                 "what it started was removed")
    assert [TOOLS["systemctl"], "stop", "stockdb-chaos-query_storm.service"] in host.calls
    assert not (tmp_path / "state").exists()


def test_exporter_down_stops_the_exporter_and_removal_starts_it(tmp_path):
    host = FakeHost(tmp_path / "state", units={"prometheus-mysqld-exporter": "active"})
    record = chaos.inject(host, "exporter_down", 30, SQL_OPTIONS)
    assert record["details"] == dict(service="prometheus-mysqld-exporter", service_state="inactive")
    changed, removed = chaos.remove(host, ["exporter_down"], SQL_OPTIONS, check_mode=True)
    assert changed and removed[0]["done"] == ["stop unit stockdb-chaos-exporter_down.service", "start prometheus-mysqld-exporter"]
    assert host.units["stockdb-chaos-exporter_down.service"] == "active"  # check mode changed nothing
    changed, removed = chaos.remove(host, ["exporter_down"], SQL_OPTIONS)
    assert changed and removed[0]["done"] == ["stopped unit stockdb-chaos-exporter_down.service"]
    assert host.units["prometheus-mysqld-exporter"] == "active"
    assert chaos.remove(host, ["exporter_down"], SQL_OPTIONS) == (False, [dict(fault="exporter_down", done=[], injected_at=None)])


def test_removal_stops_the_unit_then_kills_only_the_chaos_sessions_left(tmp_path):
    sql = FakeSql([dict(ID=3, USER="stockdb_chaos", COMMAND="Query", TAG="stockdb-chaos:query_storm"),
                   dict(ID=5, USER="stockdb_app", COMMAND="Query", TAG=None),
                   dict(ID=2, USER="system user", COMMAND="Slave_SQL", TAG="stockdb-chaos:query_storm")])
    host = FakeHost(tmp_path / "state", sql=sql)
    chaos.inject(host, "query_storm", 20, dict(SQL_OPTIONS, sessions=1))
    changed, removed = chaos.remove(host, list(chaos.FAULTS), SQL_OPTIONS)
    assert changed and sql.killed == [3]
    assert removed[0] == dict(fault="query_storm", done=["stopped unit stockdb-chaos-query_storm.service", "killed sessions [3]"],
                              injected_at=removed[0]["injected_at"])
    assert all(not item["done"] for item in removed[1:])
    assert not (tmp_path / "state").exists()


def test_removal_finds_a_filler_without_a_record(tmp_path):
    filler = tmp_path / "vol" / "stockdb-chaos.filler"
    filler.parent.mkdir()
    filler.write_bytes(b"x" * 10)
    host = FakeHost(tmp_path / "state")
    changed, removed = chaos.remove(host, ["disk_full"], {}, targets={"disk_full": str(filler)})
    assert changed and removed[0]["done"] == [f"removed filler {filler}"] and not filler.exists()


def test_a_crash_kills_the_main_process_and_returns_when(tmp_path):
    host = FakeHost(tmp_path / "state", pid="999999999")
    record = chaos.inject(host, "crash", 60, SQL_OPTIONS)
    assert record["details"] == dict(service="mariadb", killed_pid=999999999, gone=True) and record["unit"] is None
    assert [TOOLS["systemctl"], "kill", "--kill-whom=main", "--signal=SIGKILL", "mariadb"] in host.calls
    host = FakeHost(tmp_path / "state2", pid="0")
    with pytest.raises(chaos.ChaosError, match="crash: mariadb is not running"):
        chaos.inject(host, "crash", 60, SQL_OPTIONS)
    assert not any(c[1] == "kill" for c in host.calls)


# ---------------------------------------------------------------- the worker, with a stand-in PyMySQL
class FakeError(Exception):
    pass


class FakeCursor:
    def __init__(self, conn):
        self.conn, self.result = conn, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, args=None):
        self.conn.server.log.append((self.conn.id, sql, args))
        self.result = self.conn.server.answer(self.conn, sql)

    def fetchall(self):
        return self.result

    def fetchone(self):
        return self.result[0]


class FakeConn:
    def __init__(self, server, kwargs):
        self.server, self.kwargs, self.id, self.closed, self.rolled_back = server, kwargs, server.next_id, False, 0
        server.next_id += 1

    def cursor(self):
        return FakeCursor(self)

    def thread_id(self):
        return self.id

    def rollback(self):
        self.rolled_back += 1

    def commit(self):
        raise AssertionError("a chaos session never commits")

    def close(self):
        self.closed = True


class FakeServer:
    def __init__(self, max_connections=5, grants="GRANT SELECT ON `stockdb`.* TO `stockdb_chaos`@`localhost`"):
        self.next_id, self.log, self.conns = 100, [], []
        self.max_connections, self.grants = max_connections, grants

    def connect(self, **kwargs):
        if len(self.conns) >= self.max_connections:
            raise FakeError(1040, "Too many connections")
        conn = FakeConn(self, kwargs)
        self.conns.append(conn)
        return conn

    def answer(self, conn, sql):
        if "FOR SELECT" in sql:
            time.sleep(0.01)  # a report takes a while
            return []
        if sql.startswith("SELECT SUBSTRING_INDEX(CURRENT_USER()"):
            return [("stockdb_chaos",)]
        if sql == "SHOW GRANTS":
            return [("GRANT USAGE ON *.* TO `stockdb_chaos`@`localhost`",), (self.grants,)]
        if "FROM orders ORDER BY order_id DESC" in sql:
            return [(7,)]
        if "o.is_open = 1" in sql:  # the makers in the books of the busiest symbols
            return [(41,), (42,)]
        if "ref_price IS NOT NULL" in sql:
            return [(7,), (8,), (9,)]
        return []


@pytest.fixture(autouse=True)
def no_signal_handlers(monkeypatch):
    """The worker sets SIGTERM/SIGINT handlers; not in the test process."""
    monkeypatch.setattr(chaos.signal, "signal", lambda *args: None)


@pytest.fixture
def server(monkeypatch):
    fake = FakeServer()
    monkeypatch.setitem(sys.modules, "pymysql", types.SimpleNamespace(connect=fake.connect))
    return fake


def run_worker(tmp_path, *args, seconds=1):
    status = tmp_path / "status.json"
    assert chaos.worker_main([*args, "--status", str(status), "--seconds", str(seconds),
                              "--defaults-file", "/etc/stockdb/chaos.cnf"]) == 0
    return json.loads(status.read_text())


def test_the_lock_storm_updates_the_hottest_rows_and_always_rolls_back(tmp_path, server):
    status = run_worker(tmp_path, "lock_storm", "--lock-rows", "3")
    assert status["state"] == "ended" and status["rolled_back"] is True
    assert status["locked"] == dict(table="stocks_inventory", key="stock_id", ids=[7, 8, 9],
                                    uncommitted_change="traded_qty = traded_qty + 1")
    conn = server.conns[0]
    assert conn.kwargs["program_name"] == "stockdb-chaos:lock_storm" and conn.kwargs["autocommit"] is False
    assert conn.kwargs["read_default_file"] == "/etc/stockdb/chaos.cnf" and "password" not in conn.kwargs
    statements = [sql for _, sql, _ in server.log]
    assert statements[1].startswith("SET SESSION idle_transaction_timeout = ")
    assert "UPDATE stocks_inventory SET traded_qty = traded_qty + 1 WHERE stock_id IN (%s, %s, %s)" in statements
    assert conn.rolled_back >= 2 and conn.closed


def test_the_lock_storm_on_accounts_locks_the_makers_in_the_busiest_books(tmp_path, server):
    status = run_worker(tmp_path, "lock_storm", "--lock-target", "accounts", "--lock-rows", "2")
    assert status["locked"] == dict(table="accounts", key="account_id", ids=[41, 42],
                                    uncommitted_change="balance = balance + 1")
    book = [(sql, args) for _, sql, args in server.log if "o.is_open = 1" in sql]
    # the busiest symbols go in as constants, so the book's index is read by symbol, side and open
    assert len(book) == 1 and "o.stock_id IN (%s)" in book[0][0] and tuple(book[0][1]) == (7, 2)
    assert "UPDATE accounts SET balance = balance + 1 WHERE account_id IN (%s, %s)" in [sql for _, sql, _ in server.log]


def test_the_connection_flood_opens_connections_until_the_server_is_full(tmp_path, server):
    status = run_worker(tmp_path, "connection_flood", "--sessions", "50")
    assert status["opened"] == 5 and status["limit"] == "max_connections reached (MariaDB error 1040: Too many connections)"
    assert all(c.closed for c in server.conns)
    assert sum(1 for _, sql, _ in server.log if sql.startswith("SET SESSION wait_timeout = ")) == 5


def test_the_connection_flood_refuses_an_account_that_takes_the_administrators_connection(tmp_path, server):
    server.grants = "GRANT SUPER ON *.* TO `stockdb_chaos`@`localhost`"
    status = tmp_path / "status.json"
    assert chaos.worker_main(["connection_flood", "--status", str(status), "--seconds", "1", "--defaults-file", "x.cnf"]) == 1
    assert "has SUPER on *.*" in json.loads(status.read_text())["error"]
    assert len(server.conns) == 1 and server.conns[0].closed


def test_the_query_storm_bounds_each_query_and_kills_its_own_queries_at_the_end(tmp_path, server):
    status = run_worker(tmp_path, "query_storm", "--sessions", "2", seconds=2)
    assert status["state"] == "ended" and status["queries"] > 0 and len(status["sessions"]) == 3
    storm = [sql for _, sql, _ in server.log if "FOR SELECT" in sql]
    assert storm and all(sql.startswith("SET STATEMENT max_statement_time=") for sql in storm)
    control = server.conns[0]
    kills = [sql for conn_id, sql, _ in server.log if conn_id == control.id and sql.startswith("KILL QUERY")]
    assert kills == [f"KILL QUERY {c.id}" for c in server.conns[1:]]


def test_the_query_storm_runs_with_the_sessions_the_account_may_open(tmp_path, server):
    server.max_connections = 3  # e.g. a reporting account's MAX_USER_CONNECTIONS: the control connection and 2 more
    status = run_worker(tmp_path, "query_storm", "--sessions", "8", seconds=2)
    assert status["opened"] == 2 and status["limit"].startswith("max_connections reached")


def test_the_disk_filler_fills_until_no_space_and_is_removed_at_the_end(tmp_path, monkeypatch):
    calls = []

    def fallocate(fd, offset, length):  # no disk is filled: the filesystem is "full" after 3 chunks
        calls.append(length)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(chaos.os, "posix_fallocate", fallocate)
    filler = tmp_path / "stockdb-chaos.filler"
    status = run_worker(tmp_path, "disk_full", "--file", str(filler))
    assert status["state"] == "ended" and status["bytes"] == 3 * 64 * 2**20 and status["removed"] == str(filler)
    assert calls[-1] < 4096 * 2 and not filler.exists()


def test_the_worker_is_this_file_and_runs_as_a_script(tmp_path):
    source = chaos.worker_source()
    assert source == Path(chaos.__file__).read_text()
    script = tmp_path / "worker.py"
    script.write_text(source)
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"]})
    assert proc.returncode == 0 and "query_storm" in proc.stdout
    # an account whose server is not there: the worker reports the failure in its status file
    (tmp_path / "chaos.cnf").write_text(f"[client]\nuser = stockdb_chaos\nsocket = {tmp_path}/no-such.sock\n")
    proc = subprocess.run([sys.executable, str(script), "lock_storm", "--status", str(tmp_path / "s.json"), "--seconds", "1",
                           "--defaults-file", str(tmp_path / "chaos.cnf")], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"]})
    assert proc.returncode == 1 and json.loads((tmp_path / "s.json").read_text())["state"] == "failed"
