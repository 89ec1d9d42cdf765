"""Promoting a replica (stockdb_promote): wait until it applied a GTID position, then make it the primary."""

import re
import time

GTID_POSITION = re.compile(r"^(\d+-\d+-\d+)(,\s*\d+-\d+-\d+)*$")
PROMOTE = ("STOP ALL SLAVES", "RESET SLAVE ALL")


def promote(cursor, wait_gtid, timeout, semi_sync, check_mode=False, clock=time.monotonic):
    """Wait for the position, then promote. Returns (result dict, error message or None)."""
    started = clock()
    cursor.execute("SELECT MASTER_GTID_WAIT(%s, %s)", (wait_gtid, timeout))
    waited = cursor.fetchone()[0]
    result = dict(changed=False, waited_s=round(clock() - started, 3), promoted_at=None)
    if waited != 0:
        return result, (f"the replica did not apply {wait_gtid} within {timeout} s (MASTER_GTID_WAIT = {waited}): "
                        "nothing was changed, it still replicates")
    if check_mode:
        return result, None
    for statement in PROMOTE:
        cursor.execute(statement)
    cursor.execute(f"SET GLOBAL rpl_semi_sync_master_enabled = {'ON' if semi_sync else 'OFF'}")
    cursor.execute("SET GLOBAL read_only = OFF")
    cursor.execute("SELECT UNIX_TIMESTAMP(NOW(6))")
    result.update(changed=True, promoted_at=float(cursor.fetchone()[0]))
    return result, None
