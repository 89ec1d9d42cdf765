"""Promoting a replica (stockdb_promote): wait until it applied a GTID position, then make it the primary."""

import re
import time

GTID_POSITION = re.compile(r"^(\d+-\d+-\d+)(,\s*\d+-\d+-\d+)*$")
PROMOTE = ("STOP ALL SLAVES", "RESET SLAVE ALL")


def _on(value):
    """A server variable's boolean value (1/0, ON/OFF) as a bool."""
    return str(value).strip().upper() not in ("0", "OFF", "")


def channels(cursor):
    """SHOW ALL SLAVES STATUS: one dict per replication connection, by column name ([]: replicates from no host)."""
    cursor.execute("SHOW ALL SLAVES STATUS")
    names = [column[0] for column in cursor.description or ()]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def read_state(cursor):
    """What the server is: read_only, semi-sync's primary side, and each replication connection
    (connection name, source, I/O and SQL thread states), as SHOW ALL SLAVES STATUS shows them."""
    cursor.execute("SELECT @@global.read_only, @@global.rpl_semi_sync_master_enabled")
    read_only, semi_sync = cursor.fetchone()
    return dict(read_only=_on(read_only), semi_sync=_on(semi_sync),
                replication=[dict(connection=c.get("Connection_name", ""), source=c.get("Master_Host", ""),
                                  io_running=c.get("Slave_IO_Running", ""), sql_running=c.get("Slave_SQL_Running", ""))
                             for c in channels(cursor)])


def describe(state):
    """The state in words, for a message."""
    where = "read-only" if state["read_only"] else "writable"
    if not state["replication"]:
        return f"it is {where} and replicates from no host"
    threads = "; ".join(f"from {c['source'] or '?'}: I/O thread {c['io_running'] or '?'}, SQL thread "
                        f"{c['sql_running'] or '?'}" for c in state["replication"])
    return f"it is {where} and replicates {threads}"


def promote(cursor, wait_gtid, timeout, semi_sync, check_mode=False, clock=time.monotonic):
    """Wait for the position, then promote. Returns (result dict, error message or None)."""
    started = clock()
    cursor.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (wait_gtid, timeout))
    waited = cursor.fetchone()[0]
    result = dict(changed=False, waited_s=round(clock() - started, 3), promoted_at=None, already_primary=False)
    if waited != 0:
        # This module changed nothing, but the caller may have (failover.yml stops the I/O thread first): say
        # what the server really is.
        state = read_state(cursor)
        result.update(state=state)
        return result, (f"the replica did not apply {wait_gtid} within {timeout} s (MASTER_GTID_WAIT = {waited}): "
                        f"this module changed nothing; {describe(state)}")
    if check_mode:
        return result, None
    state = read_state(cursor)
    result.update(state=state)
    if not state["read_only"] and not state["replication"] and state["semi_sync"] == bool(semi_sync):
        # Already the primary (writable, replicating from no host): nothing to do, and no time of promotion.
        result.update(already_primary=True)
        return result, None
    for statement in PROMOTE:
        cursor.execute(statement)
    cursor.execute(f"SET GLOBAL rpl_semi_sync_master_enabled = {'ON' if semi_sync else 'OFF'}")
    cursor.execute("SET GLOBAL read_only = OFF")
    cursor.execute("SELECT UNIX_TIMESTAMP(NOW(6))")
    result.update(changed=True, promoted_at=float(cursor.fetchone()[0]))
    return result, None
