"""The work per transaction (module_utils/stockdb/work.py): SHOW GLOBAL STATUS counters and /proc CPU times."""

import pytest
from stockdb import work


def status_rows(**values):
    """SHOW GLOBAL STATUS rows as community.mysql.mysql_query returns them: every work counter at 0 but those given."""
    rows = [dict(Variable_name=name, Value=str(values.get(name, 0))) for name in work.WORK_COUNTERS]
    return rows + [dict(Variable_name="Uptime", Value="100")]


def cpu_text(server_ticks, busy_ticks, idle_ticks, comm="mariadbd"):
    # CLK_TCK; /proc/stat's cpu line (user nice system idle iowait irq softirq steal guest guest_nice); the
    # process's stat, utime and stime being fields 14 and 15
    user = busy_ticks - 10
    return (f"100\ncpu  {user} 0 10 {idle_ticks} 0 0 0 0 0 0\n"
            f"387 ({comm}) S 1 387 387 0 -1 4194560 100 0 0 0 {server_ticks - 5} 5 0 0 20 0 30 0 1000 0 0\n")


def test_cpu_times_reads_the_server_and_the_host():
    assert work.cpu_times(cpu_text(1500, 4000, 1000)) == dict(server=15.0, host_busy=40.0, host_total=50.0)
    # a command name with a space and a bracket does not shift the fields
    assert work.cpu_times(cpu_text(1500, 4000, 1000, comm="my (d) b"))["server"] == 15.0
    with pytest.raises(work.WorkError, match="cannot read CPU times"):
        work.cpu_times("100\nintr 5\n")


def test_status_values_names_what_is_missing_or_not_a_number():
    rows = status_rows(Rows_read=7)
    assert work.status_values(rows, ("Rows_read", "Uptime")) == dict(Rows_read=7.0, Uptime=100.0)
    with pytest.raises(work.WorkError, match="lacks Handler_write, Nope"):
        work.status_values(rows[:1], ("Rows_read", "Handler_write", "Nope"))
    with pytest.raises(work.WorkError, match="status Rows_read is not a number: 'many'"):
        work.status_values([dict(Variable_name="Rows_read", Value="many")], ("Rows_read",))


def test_per_transaction_refuses_no_transactions_and_counters_that_went_back():
    point = work.snapshot(status_rows(Rows_read=10), cpu_text(100, 200, 50))
    later = work.snapshot(status_rows(Rows_read=30), cpu_text(150, 300, 60))
    assert work.per_transaction(point, later, 10)["per_transaction"]["Rows_read"] == 2.0
    with pytest.raises(work.WorkError, match="no transaction"):
        work.per_transaction(point, later, 0)
    with pytest.raises(work.WorkError, match="went back"):
        work.per_transaction(later, point, 10)
