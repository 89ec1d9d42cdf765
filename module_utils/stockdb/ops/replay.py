"""Binlog replay in parallel: archived binlogs handed to a private server as its relay log, applied by
MariaDB's own parallel replication (slave_parallel_threads, optimistic mode) instead of one
`mariadb-binlog | mariadb` stream.

How, on the private server of a restore or a verification (scratch.PrivateServer):
  1. stop_point() walks the event headers from the backup's position: where the replay must end (a
     point in time, a position, or the last whole transaction) and the GTID of each domain there;
  2. the files are copied next to the datadir as relay logs - the last one cut at that point, so the
     SQL thread cannot apply past it - and listed in a relay-log index the server was started with;
  3. CHANGE MASTER TO a host that is never contacted, at the backup's position in the first copy;
     START SLAVE SQL_THREAD; MASTER_GTID_WAIT for the GTIDs of step 1;
  4. STOP SLAVE, RESET SLAVE ALL, the server id and gtid_slave_pos put back, the copies removed.
The data equals a single-stream replay to the same point (tests/integration/test_ops.py compares table
checksums). A replay the walk cannot plan (encrypted binlog events, a GTID target) uses the single
stream (scratch.replay) and says why.
"""

import mmap
import os
import shutil
import time

from . import OpsError, archive, host, scratch

RELAY_BASE = "stockdb-replay-relay"
FORMAT_DESCRIPTION, QUERY, XID, GTID, START_ENCRYPTION = 15, 2, 16, 162, 164
GTID_STANDALONE = 0x01  # a GTID event's flag: its group is one statement (DDL), no COMMIT follows


class Unplannable(Exception):
    """The walk cannot tell where to stop: the single stream replays instead (the message says why)."""


def stop_point(files, start_pos, moment=None, stop_pos=None):
    """Where a replay from start_pos in files[0] ends: before the first transaction with an event at or after
    `moment` (Unix seconds), at `stop_pos` in the last file, or after the last whole transaction.

    Returns {file (index), offset, gtids {domain: "d-s-n"} of the last transaction applied in each domain,
    transactions, server_ids}.
    """
    done = dict(gtids={}, transactions=0, server_ids=set())
    group = None  # the open transaction: {file, offset, gtid, domain, standalone, events}
    for index, path in enumerate(files):
        size = os.path.getsize(path)
        if size <= archive.BINLOG_MAGIC_BYTES:
            continue
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            offset = int(start_pos) if index == 0 else archive.BINLOG_MAGIC_BYTES
            end = size if (stop_pos is None or index < len(files) - 1) else min(size, int(stop_pos))
            while offset + archive.EVENT_HEADER_BYTES <= end:
                when = int.from_bytes(data[offset:offset + 4], "little")
                kind = data[offset + 4]
                length = int.from_bytes(data[offset + 9:offset + 13], "little")
                if length < archive.EVENT_HEADER_BYTES or offset + length > size:
                    break  # a torn tail: nothing after it can be read
                if kind == START_ENCRYPTION:  # streamed by the archiver: what follows came decrypted (prepare checked)
                    offset += length
                    continue
                if moment is not None and when >= moment:
                    return _point((group["file"], group["offset"]) if group else (index, offset), done)
                if kind == GTID:
                    if group:  # a new transaction began: the open one was whole after all
                        _close(group, done)
                    body = offset + archive.EVENT_HEADER_BYTES
                    server_id = int.from_bytes(data[offset + 5:offset + 9], "little")
                    domain = int.from_bytes(data[body + 8:body + 12], "little")
                    group = dict(file=index, offset=offset, domain=domain, standalone=bool(data[body + 12] & GTID_STANDALONE),
                                 gtid=f"{domain}-{server_id}-{int.from_bytes(data[body:body + 8], 'little')}")
                    done["server_ids"].add(server_id)
                elif group and (kind == XID or (kind == QUERY and (group["standalone"] or
                                                                   b"COMMIT" in data[offset + length - 16:offset + length]))):
                    _close(group, done)  # its last event: XID (InnoDB), COMMIT, or its one statement
                    group = None
                offset += length
    if group:  # the archive ends inside a transaction (the archiver streams what the server writes)
        return _point((group["file"], group["offset"]), done)
    last = len(files) - 1
    return _point((last, _end(files[last], stop_pos)) if files else (0, int(start_pos)), done)


def _close(group, done):
    done["gtids"][group["domain"]] = group["gtid"]
    done["transactions"] += 1


def _end(path, stop_pos):
    end = archive.whole_events_end(path)
    return end if stop_pos is None else min(end, int(stop_pos))


def _point(cut, done):
    return dict(file=cut[0], offset=cut[1], gtids=done["gtids"], transactions=done["transactions"],
                server_ids=sorted(done["server_ids"]))


def relay_copies(files, point, start_pos, directory):
    """Copy files[0..point.file] into directory as relay logs, the last one cut at point.offset; write the index.
    Returns the first copy's path (where the SQL thread starts, at start_pos)."""
    if point["file"] == 0 and point["offset"] < int(start_pos):
        raise OpsError(f"the replay's stop point {point['offset']} is before its start {start_pos}")
    os.makedirs(directory, mode=0o750, exist_ok=True)
    copies = []
    for number, path in enumerate(files[:point["file"] + 1], 1):
        copy = os.path.join(directory, f"{RELAY_BASE}.{number:06d}")
        if number - 1 == point["file"]:
            with open(path, "rb") as source, open(copy, "wb") as target:
                _copy_bytes(source, target, point["offset"])
        else:
            shutil.copyfile(path, copy)
        copies.append(copy)
    with open(index_path(directory), "w", encoding="utf-8") as handle:
        handle.write("".join(c + "\n" for c in copies))
    for path in (directory, index_path(directory), *copies):
        shutil.chown(path, "mysql", "mysql")
    return copies[0]


def _copy_bytes(source, target, count, chunk=1 << 20):
    while count > 0:
        block = source.read(min(chunk, count))
        if not block:
            break
        target.write(block)
        count -= len(block)


def index_path(directory):
    return os.path.join(directory, RELAY_BASE + ".index")


def server_args(directory, log_updates):
    """Start options of the private server that will replay from `directory` (relay_copies)."""
    args = [f"--relay-log={os.path.join(directory, RELAY_BASE)}", f"--relay-log-index={index_path(directory)}",
            "--relay-log-recovery=0", "--slave-parallel-mode=optimistic"]
    return args + (["--log-slave-updates"] if log_updates else [])


def apply(server, first_copy, start_pos, point, threads, master_file, timeout=None):
    """Run the SQL thread from first_copy:start_pos until every domain reaches point['gtids']; always undoes
    the replication settings. Returns the seconds it took."""
    if not point["gtids"]:
        return 0.0
    target = ",".join(point["gtids"][d] for d in sorted(point["gtids"]))
    original_id = server.sql("SELECT @@server_id")
    own_id = max([int(original_id), *point["server_ids"]]) + 1  # the SQL thread skips events of its own id
    t0 = time.monotonic()
    try:
        server.sql(f"SET GLOBAL server_id = {own_id}; SET GLOBAL slave_parallel_threads = {int(threads)}; "
                   f"SET GLOBAL gtid_slave_pos = ''; "
                   f"CHANGE MASTER TO MASTER_HOST = 'replay.invalid', MASTER_USE_GTID = no, "
                   f"MASTER_LOG_FILE = '{master_file}', MASTER_LOG_POS = {int(start_pos)}, "
                   f"RELAY_LOG_FILE = '{os.path.basename(first_copy)}', RELAY_LOG_POS = {int(start_pos)}; "
                   "START SLAVE SQL_THREAD")
        deadline = None if timeout is None else time.monotonic() + timeout
        while server.sql(f"SELECT MASTER_GTID_WAIT('{target}', 2)") != "0":
            status = _slave_status(server)
            if status.get("Slave_SQL_Running") != "Yes":
                raise OpsError(f"the parallel replay stopped: {status.get('Last_SQL_Error') or status}")
            if deadline and time.monotonic() > deadline:
                raise OpsError(f"the parallel replay did not reach {target} within {timeout} s "
                               f"(at {server.sql('SELECT @@gtid_slave_pos')})")
        return time.monotonic() - t0
    finally:
        server.sql(f"STOP SLAVE; RESET SLAVE ALL; SET GLOBAL gtid_slave_pos = ''; SET GLOBAL server_id = {original_id}")


def _slave_status(server):
    """SHOW SLAVE STATUS as a dict (the client's vertical output: one 'Name: value' per line)."""
    out = host.run(server.client("--column-names", "--vertical", "-e", "SHOW SLAVE STATUS")).stdout.decode()
    fields = (line.partition(": ") for line in out.splitlines())
    return {name.strip(): value.strip() for name, colon, value in fields if colon}


def prepare(threads, files, start_pos, directory, moment=None, stop_pos=None, gtid_target=False, log_updates=False):
    """How a replay will run, decided before its private server starts (the relay log is a start option):
    {method: "parallel", threads, point, first_copy, args} with the relay copies made in directory, or
    {method: "single stream", why, args: []}."""
    encrypted = [os.path.basename(f) for f in files if archive.is_encrypted(f)]
    if encrypted:  # neither the walk nor mariadb-binlog reads them: the replay would miss every transaction
        raise OpsError(f"binlog files {encrypted} are encrypted; the archive must hold them as the server sends them")
    why = None
    if int(threads) <= 0:
        why = "replay_parallel_threads is 0"
    elif gtid_target:
        why = "a GTID target: mariadb-binlog stops exactly at it"
    else:
        try:
            point = stop_point(files, start_pos, moment=moment, stop_pos=stop_pos)
        except Unplannable as exc:
            why = str(exc)
    if why is None:
        need = sum(os.path.getsize(f) for f in files[:point["file"] + 1])
        parent = directory if os.path.isdir(directory) else os.path.dirname(directory.rstrip("/"))
        free = shutil.disk_usage(parent).free
        if free < 2 * need:
            why = f"{free >> 20} MiB free next to the datadir for {need >> 20} MiB of relay-log copies (twice needed)"
    if why:
        return dict(method="single stream", why=why, args=[])
    first = relay_copies(files, point, start_pos, directory)
    return dict(method="parallel", threads=int(threads), point=point, first_copy=first,
                args=server_args(directory, log_updates))


def run(server, how, files, start_pos, **where):
    """The replay prepare() chose, into the started server; returns the seconds it took."""
    if how["method"] == "parallel":
        return apply(server, how["first_copy"], start_pos, how["point"], how["threads"], os.path.basename(files[0]))
    return scratch.replay(server, files, start_pos=start_pos, **where)


def summary(how):
    """What a result reports of the replay: method, and threads and transactions, or why not in parallel."""
    if how["method"] == "parallel":
        return dict(method="parallel", threads=how["threads"], transactions=how["point"]["transactions"],
                    gtids=how["point"]["gtids"])
    return dict(method="single stream", why=how["why"])
