"""What the server and the host did between two points, per transaction: SHOW GLOBAL STATUS counters and
CPU times (mariadbd's and the whole host's, from /proc). playbooks/benchmark.yml takes a snapshot around
each half's run (playbooks/tasks/work_snapshot.yml) and bench.engine_result() turns them into the work of
an order against a sysbench transaction; experiment.status() reads its own counters with status_values().

Everything works on plain values; no server is needed to test it. Standard library only.
"""

# Counters whose growth over a half is its work; the result gives each per transaction. Handler_write,
# _update and _delete count rows of the tables (Handler_tmp_* those of temporary tables), Rows_read the rows
# read from them; Innodb_row_lock_time is in ms, the byte counters in bytes. (MariaDB has no Innodb_rows_*.)
WORK_COUNTERS = ("Rows_read", "Handler_write", "Handler_update", "Handler_delete", "Handler_read_key",
                 "Handler_read_next", "Handler_read_rnd_next", "Handler_tmp_write", "Handler_commit",
                 "Innodb_row_lock_waits", "Innodb_row_lock_time", "Innodb_os_log_written", "Binlog_bytes_written",
                 "Binlog_group_commits", "Innodb_data_fsyncs", "Created_tmp_tables")
# /proc/stat's cpu line: user nice system idle iowait irq softirq steal; busy is all but idle and iowait.
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)


class WorkError(Exception):
    """Counters or CPU times that cannot be read or compared; the message names what is wrong."""


def status_values(rows, names):
    """SHOW GLOBAL STATUS rows (dicts of Variable_name, Value) as name -> float for `names`, every one of them."""
    values = {}
    for row in rows or []:
        name = row.get("Variable_name") if isinstance(row, dict) else None
        if name in names:
            try:
                values[name] = float(row.get("Value"))
            except (TypeError, ValueError):
                raise WorkError(f"status {name} is not a number: {row.get('Value')!r}") from None
    missing = [name for name in names if name not in values]
    if missing:
        raise WorkError(f"SHOW GLOBAL STATUS lacks {', '.join(missing)}")
    return values


def cpu_times(text):
    """CPU seconds from the text of `getconf CLK_TCK; head -n1 /proc/stat; cat /proc/<mariadbd>/stat`:
    dict(server (mariadbd's user + system), host_busy and host_total (every core of the host))."""
    lines = (text or "").strip().splitlines()
    try:
        tick = float(lines[0])
        cpu = [float(v) for v in lines[1].split()[1:9]]
        if not lines[1].startswith("cpu ") or len(cpu) < 8 or tick <= 0:
            raise ValueError
        # the command name in brackets may hold spaces: the fields after it are split
        rest = lines[2][lines[2].rindex(")") + 1:].split()
        server = (float(rest[11]) + float(rest[12])) / tick  # utime, stime: fields 14 and 15
    except (IndexError, ValueError):
        raise WorkError(f"cannot read CPU times from {text!r} (CLK_TCK, the cpu line of /proc/stat, "
                        "/proc/<pid>/stat of mariadbd)") from None
    busy = sum(cpu[i] for i in _BUSY_FIELDS)
    return dict(server=server, host_busy=busy / tick, host_total=(busy + cpu[3] + cpu[4]) / tick)


def snapshot(status_rows, cpu_text):
    """One point: the WORK_COUNTERS of SHOW GLOBAL STATUS and cpu_times()."""
    return dict(status=status_values(status_rows, WORK_COUNTERS), cpu=cpu_times(cpu_text))


def per_transaction(before, after, transactions):
    """What the server and the host did per transaction between two snapshot()s: each counter's growth,
    mariadbd's CPU ms and the rest of the host's busy CPU ms (the clients, mostly), and how busy the host
    was. When the host is CPU-bound, two workloads' rates stand in the inverse ratio of their host CPU
    per transaction."""
    try:
        n = float(transactions)
    except (TypeError, ValueError):
        raise WorkError(f"transactions={transactions!r} is not a number") from None
    if n <= 0:
        raise WorkError("no transaction between the snapshots: the work per transaction is not defined")
    grew = {name: after["status"][name] - before["status"][name] for name in WORK_COUNTERS}
    server = after["cpu"]["server"] - before["cpu"]["server"]
    busy = after["cpu"]["host_busy"] - before["cpu"]["host_busy"]
    total = after["cpu"]["host_total"] - before["cpu"]["host_total"]
    if min(list(grew.values()) + [server, busy]) < 0 or total <= 0:
        raise WorkError("a counter went back between the snapshots (was the server restarted?)")
    per = {name: round(value / n, 3) for name, value in grew.items()}
    return dict(
        transactions=int(n),
        per_transaction=per,
        rows_changed=round(per["Handler_write"] + per["Handler_update"] + per["Handler_delete"], 2),
        server_cpu_ms=round(1000 * server / n, 3),
        other_cpu_ms=round(1000 * (busy - server) / n, 3),
        host_cpu_ms=round(1000 * busy / n, 3),
        host_busy_pct=round(100 * busy / total, 1),
    )
