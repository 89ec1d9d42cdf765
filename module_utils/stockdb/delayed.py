"""Where a delayed replica must stop: the last transaction before a bad one, read from the primary's binlog.

A delayed replica (CHANGE MASTER TO MASTER_DELAY) holds the primary's recent past unapplied in its relay log.
To recover from a bad statement (a DROP TABLE, a DELETE without WHERE) it is rolled forward to just before that
statement with START SLAVE UNTIL master_gtid_pos = <the GTID of the transaction before it>. MariaDB 10.11 stops
there only on that exact GTID (domain, server id and sequence number), so this finds it: the primary's binlog
is read through the server (mariadb-binlog --read-from-remote-server, so encrypted binlogs read as plain),
from the file that holds the replica's applied position on, and each transaction's GTID and time are taken
from the event headers.
"""

import datetime
import math
import re
import subprocess

# A GTID event's header line as mariadb-binlog prints it (times in the TZ it runs with: UTC here):
#   #261204 19:14:14 server id 106645571  end_log_pos 1026 CRC32 0x9aaba716 	GTID 0-106645571-267190 trans
HEADER = re.compile(r"^#(\d{6}) +(\d{1,2}:\d{2}:\d{2}) +server id \d+ .*\bGTID (\d+-\d+-\d+)\b")
GTID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


class DelayedError(ValueError):
    """The stop point cannot be found, or must not be used; the message says why and what to do."""


def parse_gtid(text):
    """'0-1-100' -> (0, 1, 100); DelayedError naming the text when it is not one GTID."""
    match = GTID.match((text or "").strip())
    if not match:
        raise DelayedError(f"{text!r} is not a GTID such as 0-1-100 (domain-server_id-sequence)")
    return tuple(int(part) for part in match.groups())


def parse_position(text):
    """A GTID position ('0-1-100,1-2-7', '' = none) -> {domain: (domain, server_id, seq)}."""
    position = {}
    for part in (text or "").replace(" ", "").split(","):
        if part:
            gtid = parse_gtid(part)
            position[gtid[0]] = gtid
    return position


def parse_time(text):
    """An ISO 8601 time with its UTC offset ('2026-12-04T15:00:00+09:00', '...Z') -> whole Unix seconds.

    A fraction of a second is dropped (floored): the binlog's event times are whole seconds, so a statement
    logged at 15:02:00 may have run at 15:02:00.7, and a stop at '15:02:00.700' must still be before it. The
    stop is then before the first transaction logged in that second or later.
    """
    try:
        moment = datetime.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise DelayedError(f"before_time {text!r} is not an ISO 8601 time such as 2026-12-04T15:00:00+09:00") from None
    if moment.tzinfo is None:
        raise DelayedError(f"before_time {text!r} has no UTC offset: say which time zone it is in, e.g. {text}+09:00")
    return math.floor(moment.timestamp())


def gtid_events(lines):
    """(Unix seconds, (domain, server_id, seq)) of each transaction in mariadb-binlog's output (run with TZ=UTC)."""
    for line in lines:
        match = HEADER.match(line)
        if match:
            day, clock, gtid = match.groups()
            when = datetime.datetime.strptime(f"{day} {clock}", "%y%m%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)
            yield when.timestamp(), parse_gtid(gtid)


def first_file(files, domain, seq):
    """The newest binlog whose start position ({domain: gtid} per file, oldest first) is at or before seq.

    files: [(name, start position text)]. DelayedError when even the oldest starts after it (purged).
    """
    for name, start in reversed(files):
        begun = parse_position(start).get(domain)
        if begun is None or begun[2] <= seq:
            return name
    raise DelayedError(
        f"the primary's oldest binlog ({files[0][0] if files else 'none'}) starts after the delayed replica's position "
        f"(sequence {seq} in domain {domain}): the binlogs it would need were purged. Recover by point-in-time "
        "restore instead (docs/runbooks/restore.md).")


def _name(gtid):
    return "-".join(str(part) for part in gtid)


def plan(events, applied, before_gtid=None, before_time=None):
    """Where to stop: the last transaction before the bad one (given by GTID, or as the first at or after a time).

    A time's fraction of a second is dropped (parse_time): the bad one is the first transaction logged in its
    second or later.

    events: [(seconds, gtid)] in binlog order from at or before the applied position; applied: the delayed
    replica's gtid_slave_pos as parse_position() gives it. Returns {bad_gtid, bad_at, stop_gtid, transactions}:
    stop_gtid is what START SLAVE UNTIL master_gtid_pos needs, transactions how many it will apply.
    """
    if before_gtid is not None:
        wanted = parse_gtid(before_gtid)
        domain = wanted[0]
    else:
        moment = parse_time(before_time)
        domains = {gtid[0] for gtid in applied.values()} | {gtid[0] for _, gtid in events}
        if len(domains) != 1:
            raise DelayedError(f"the binlog holds GTID domains {sorted(domains)}: with more than one, give before_gtid")
        domain = domains.pop()
    if domain not in applied:
        raise DelayedError(f"the delayed replica has applied nothing in GTID domain {domain} (its position: "
                           f"{', '.join(_name(g) for g in applied.values()) or 'empty'}): is it replicating this primary?")
    done = applied[domain][2]
    later = [(when, gtid) for when, gtid in events if gtid[2] > applied.get(gtid[0], (0, 0, -1))[2]]
    others = sorted({gtid[0] for _, gtid in later if gtid[0] != domain})
    if others:
        raise DelayedError(f"transactions of GTID domains {others} are also waiting to be applied: a stop in domain "
                           f"{domain} alone would leave them behind; this recovery handles one domain")
    if before_gtid is not None:
        if wanted[2] <= done:
            raise DelayedError(f"the delayed replica already applied {before_gtid} (it is at {_name(applied[domain])}): "
                               "it holds the damage too. Recover by point-in-time restore (docs/runbooks/restore.md).")
        found = [i for i, (_, gtid) in enumerate(later) if gtid == wanted]
        if not found:
            raise DelayedError(f"{before_gtid} is not in the primary's binlog after the delayed replica's position "
                               f"{_name(applied[domain])}: check the GTID (mariadb-binlog on the primary shows them)")
        index = found[0]
    else:
        # The first transaction at or after the moment may be one it applied already, with later ones waiting.
        before = [when for when, gtid in events if gtid[0] == domain and gtid[2] <= done and when >= moment]
        if before:
            raise DelayedError(f"the delayed replica already applied transactions from {before_time} on (it is at "
                               f"{_name(applied[domain])}): it holds the damage too. Recover by point-in-time restore "
                               "(or, if the bad one is a later transaction of that second, give its GTID as before_gtid).")
        found = [i for i, (when, _) in enumerate(later) if when >= moment]
        if not found:
            raise DelayedError(f"no transaction in the primary's binlog at or after {before_time}: nothing to stop before")
        index = found[0]
    bad_at, bad = later[index]
    stop = later[index - 1][1] if index > 0 else applied[domain]
    return {
        "bad_gtid": _name(bad),
        "bad_at": datetime.datetime.fromtimestamp(bad_at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "stop_gtid": _name(stop),
        "transactions": index,
    }


def _sql(socket, query):
    out = subprocess.run(["mariadb", f"--socket={socket}", "--batch", "--skip-column-names", "-e", query],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise DelayedError(f"the primary's server refused {query!r}: {out.stderr.strip()}")
    return [line.split("\t") for line in out.stdout.splitlines()]


def find_stop(socket, applied_text, before_gtid=None, before_time=None):
    """plan() on the primary this runs on: reads its binlogs through its server. Adds the files read."""
    applied = parse_position(applied_text)
    if before_gtid is not None:
        domain = parse_gtid(before_gtid)[0]
    elif len(applied) == 1:
        domain = next(iter(applied))
    else:
        raise DelayedError(f"the delayed replica's position {applied_text!r} has {len(applied)} GTID domains: "
                           "give before_gtid")
    if before_time is not None:
        parse_time(before_time)  # a bad time fails before anything is read
    if domain not in applied:
        raise DelayedError(f"the delayed replica's position {applied_text!r} has nothing in GTID domain {domain}")
    names = [row[0] for row in _sql(socket, "SHOW BINARY LOGS")]
    if not names:
        raise DelayedError("the primary writes no binlog: there is nothing to find a stop point in")
    starts = _sql(socket, "SELECT " + ", ".join(f"BINLOG_GTID_POS('{n}', 4)" for n in names))[0]
    start = first_file(list(zip(names, ["" if s == "NULL" else s for s in starts])), domain, applied[domain][2])
    # Streamed: an hour of trading is a million lines, of which only the GTID headers are kept.
    with subprocess.Popen(
            ["mariadb-binlog", "--read-from-remote-server", f"--socket={socket}", "--user=root", "--to-last-log",
             "--base64-output=decode-rows", start],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
            env={"TZ": "UTC", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}) as read:
        events = list(gtid_events(read.stdout))
        error = read.stderr.read()
    if read.returncode != 0:
        raise DelayedError(f"mariadb-binlog could not read the primary's binlog from {start}: {error.strip()[-500:]}")
    result = plan(events, applied, before_gtid=before_gtid, before_time=before_time)
    result["binlogs_read"] = names[names.index(start):]
    return result
