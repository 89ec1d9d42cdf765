"""The binlog archive: timelines, the archiver, archive status and gaps, the files a replay needs.

Layout under <backup_dir>/binlog/:
  CURRENT               the current timeline (a number)
  <timeline>/binlog.N   binlogs streamed by the archiver as the server writes them
A timeline is the binlog history of one lineage of the data: after a restore the server's binlog
restarts, so its files go to a new timeline directory and never overwrite the old ones.
A gap (a binlog purged from the server before it was archived) is recorded in <state_dir>/archive-gap.json
(every gap, kept: a replay from an older backup still crosses it); it is open until a full backup taken after it
makes point-in-time recovery whole again.
purge_binlogs() frees the server's disk (disk full) by PURGE BINARY LOGS, but only of files the archive
holds whole (or that retention pruned from it: no kept backup needs them), so the archive never gets a gap from it.
"""

import itertools
import os
import re
import shutil

from .. import report
from . import OpsError, connection, host

BINLOG_FILE = re.compile(r"^(?P<base>.+)\.(?P<num>\d{6,})$")
# purge-binlogs waits this long for each answer of the server: SHOW and PURGE BINARY LOGS wait for the lock
# a binlog write holds while it waits for disk space (when binary logs fill the disk themselves).
PURGE_TIMEOUT_S = 30


def binlog_root(settings):
    return os.path.join(settings["backup_dir"], "binlog")


def timeline_dir(settings, timeline):
    return os.path.join(binlog_root(settings), str(timeline))


def binlog_number(name):
    match = BINLOG_FILE.match(name or "")
    if not match:
        raise OpsError(f"{name!r} is not a binlog file name")
    return int(match["num"])


# --------------------------------------------------------------------------- timelines


def current_timeline(settings):
    """The current timeline number (1 before anything was archived). Reads only."""
    try:
        with open(os.path.join(binlog_root(settings), "CURRENT"), encoding="utf-8") as handle:
            return int(handle.read().strip())
    except FileNotFoundError:
        return 1


def set_timeline(settings, timeline):
    """Make `timeline` the current one (its directory created)."""
    os.makedirs(timeline_dir(settings, timeline), mode=0o750, exist_ok=True)
    report.atomic_write(os.path.join(binlog_root(settings), "CURRENT"), f"{timeline}\n")
    return timeline


def start_new_timeline(settings):
    return set_timeline(settings, current_timeline(settings) + 1)


def archived_binlogs(settings, timeline):
    """[(name, number, size)] of the archived binlog files of a timeline, in order."""
    directory = timeline_dir(settings, timeline)
    files = []
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            match = BINLOG_FILE.match(name)
            if match:
                files.append((name, int(match["num"]), os.path.getsize(os.path.join(directory, name))))
    return sorted(files, key=lambda f: f[1])


# --------------------------------------------------------------------------- the archiver


def server_binlogs(settings):
    """[(name, size)] of the server's binary logs."""
    with connection.cursor(settings["defaults_file"], "listing the server's binary logs") as cur:
        cur.execute("SHOW BINARY LOGS")
        return [(row[0], int(row[1])) for row in cur.fetchall()]


def server_binlog_dir(settings):
    """The directory of the server's binary logs, or None where this host cannot read it."""
    with connection.cursor(settings["defaults_file"], "asking where the server writes its binary logs") as cur:
        cur.execute("SELECT @@log_bin_basename")
        basename = cur.fetchone()[0]
    directory = os.path.dirname(basename) if basename else None
    return directory if directory and os.access(directory, os.R_OK | os.X_OK) else None


def archiver_start(archived, on_server, torn=None):
    """Where the archiver starts: (file, gap) from the archived [(name, number, size)] and the server's names.

    The newest archived file is fetched again whole when the server still has it; else archiving
    resumes at the server's next file and `gap` names the file that was purged before it was archived.
    torn(name) -> the bytes of a torn tail (torn_tail()) of the newest archived file: when it has one, the
    archive holds all of it that can be read, and archiving resumes at the server's next file (no gap).
    """
    if not on_server:
        raise OpsError("the server lists no binary logs (log_bin is off?)")
    if not archived:
        return on_server[0], None
    last_name, last_number, _ = archived[-1]
    if last_name in on_server:
        if torn is not None and last_name != on_server[-1] and torn(last_name):
            return on_server[on_server.index(last_name) + 1], None
        return last_name, None
    newer = [n for n in on_server if binlog_number(n) > last_number]
    return (newer[0] if newer else on_server[-1]), last_name


def archiver_command(settings, timeline, start):
    """The mariadb-binlog command that streams the server's binlogs from `start` into a timeline."""
    return ["mariadb-binlog", f"--defaults-extra-file={settings['defaults_file']}", "--read-from-remote-server",
            "--raw", "--stop-never", f"--stop-never-slave-server-id={int(settings['archiver_server_id'])}",
            f"--result-file={timeline_dir(settings, timeline)}/", start]


def gap_path(settings):
    return os.path.join(settings["state_dir"], "archive-gap.json")


def recorded_gaps(settings):
    """Every recorded gap of the archive, oldest first (the state file of a release that kept one gap holds it alone)."""
    state = report.load_state(gap_path(settings))
    gaps = state.get("gaps", [state] if state.get("lost") else [])
    return [g for g in gaps if isinstance(g, dict) and g.get("lost")]


def record_gap(settings, timeline, lost, resumed_at):
    """Remember a gap of the archive (with the ones recorded before: an older one may still be open, and a replay
    from an older backup still crosses a covered one); returns its record. The same gap found again (the archiver
    restarted before it archived anything new) keeps its first record."""
    gaps = recorded_gaps(settings)
    for gap in gaps:
        if gap["timeline"] == timeline and gap["lost"] == lost:
            return gap
    gap = dict(timeline=timeline, lost=lost, resumed_at=resumed_at, at=report.utc_stamp())
    report.save_state(gap_path(settings), dict(gaps=gaps + [gap]))
    return gap


def covers(backup, gap):
    """Whether a backup starts after a gap: it is of the gap's timeline and its binlog position lies in the file
    where archiving resumed or a later one, so a replay from it never reads what was lost. Told by the position,
    not by times to the second: consistent_at is taken after the copy, so a backup consistent in the second the
    gap was recorded may start before or after the resume."""
    return (backup["timeline"] == gap["timeline"]
            and binlog_number(backup["binlog"]["file"]) >= binlog_number(gap["resumed_at"]))


def open_gap(settings, backups):
    """The oldest recorded gap of the current timeline that no full backup covers (covers()), or None: when there
    is none, or a restore started a new timeline (recovery in the current lineage no longer crosses its gaps)."""
    timeline = current_timeline(settings)
    for gap in recorded_gaps(settings):
        if gap["timeline"] == timeline and not any(b["type"] == "full" and covers(b, gap) for b in backups):
            return gap
    return None


def gap_crossed(settings, manifest, files, moment=None, stop_pos=None):
    """The first recorded gap that a replay of `files` (replay_files() of the backup `manifest`) would cross, or None.

    The archiver resumes after the lost file and keeps its partial copy, so the file numbers run on without
    a hole: only the record tells that the events after the end of that copy are missing. A replay from a
    backup whose binlog file is the lost one or an older one crosses the gap, unless a time target (`moment`,
    Unix seconds) stops it first, at an event at or after the moment up to the end of that copy, or the replay
    ends first: `files` end before the lost one, or a position (`stop_pos` in the last of `files`) stops it within
    that copy. Each recorded gap of the backup's timeline counts, the first one the replay meets is returned.
    Whether a full backup covers the gap (open_gap()) does not matter here: an older backup still replays across it.
    """
    if not files:
        return None
    gaps = sorted((g for g in recorded_gaps(settings) if g.get("timeline") == manifest["timeline"]),
                  key=lambda g: binlog_number(g["lost"]))
    last = binlog_number(os.path.basename(files[-1]))
    for gap in gaps:
        lost = binlog_number(gap["lost"])
        if binlog_number(manifest["binlog"]["file"]) > lost:
            continue
        if last < lost or (stop_pos is not None and last == lost and os.path.getsize(files[-1]) >= stop_pos):
            return None  # the replay ends before the end of the lost file's copy
        before = [path for path in files if binlog_number(os.path.basename(path)) <= lost]
        if moment is not None and reaches_moment(before, manifest["binlog"]["pos"], moment):
            return None
        return gap
    return None


def complete_archive(settings, timeline, datadir, fetched_from_server=False):
    """Copy binlogs of a stopped server's datadir that the archive lacks or holds shorter.

    The archiver streams with a lag of up to a few events; when the old datadir survived (a bad
    DELETE, not a lost disk), its own binlogs are complete, so nothing committed is left out. A file
    whose extra bytes are a torn tail is not copied: a replay would stop on them. An encrypted file (only
    the server reads it) is not copied either: after fetch_from_server() from the read-only server, its extra
    bytes are the server's shutdown, no transaction; without that fetch, it is refused.
    """
    directory = timeline_dir(settings, timeline)
    archived = {name: size for name, _, size in archived_binlogs(settings, timeline)}
    if not archived:
        return []
    base = BINLOG_FILE.match(next(iter(archived)))["base"]
    copied = []
    for name in sorted(os.listdir(datadir)):
        match = BINLOG_FILE.match(name)
        if not match or match["base"] != base or int(match["num"]) < min(binlog_number(n) for n in archived):
            continue
        if name in archived and torn_tail(os.path.join(datadir, name), os.path.join(directory, name)):
            continue  # the archive holds all of it that can be read
        if os.path.getsize(os.path.join(datadir, name)) > archived.get(name, 0):
            if is_encrypted(os.path.join(datadir, name)):
                # a raw copy would put encrypted events where every reader expects plain ones
                if fetched_from_server:
                    continue
                raise OpsError(f"{name} in {datadir} is encrypted and holds bytes the binlog archive lacks: only the "
                               "server can read them. Start MariaDB and restore again (the restore then fetches them "
                               "from it first), or restore to a point the archive holds.")
            shutil.copy2(os.path.join(datadir, name), os.path.join(directory, name))
            copied.append(name)
    return copied


def fetch_from_server(settings, timeline):
    """Bring the archive of a timeline level with the running server in one pass over the replication protocol
    (an encrypted binlog arrives decrypted, like the archiver's): each server binlog from the first one the
    archive lacks or holds shorter to the last one, fetched whole. Returns the names fetched."""
    archived = {name: size for name, _, size in archived_binlogs(settings, timeline)}
    newest = max((binlog_number(n) for n in archived), default=0)
    behind = [name for name, size in server_binlogs(settings)
              if size > archived.get(name, 0) and (name in archived or binlog_number(name) > newest)]
    if behind:
        host.run(["mariadb-binlog", f"--defaults-extra-file={settings['defaults_file']}", "--read-from-remote-server",
                  "--raw", "--to-last-log", f"--result-file={timeline_dir(settings, timeline)}/", behind[0]])
    return behind


def status(settings):
    """Bytes the server has written that the archive of the current timeline does not have yet."""
    timeline = current_timeline(settings)
    archived = {name: size for name, _, size in archived_binlogs(settings, timeline)}
    lag = sum(max(0, size - archived.get(name, 0)) for name, size in server_binlogs(settings))
    directory = timeline_dir(settings, timeline)
    newest = max((os.path.getmtime(os.path.join(directory, name)) for name in archived), default=0.0)
    return dict(timeline=timeline, lag_bytes=lag, files=len(archived), bytes=sum(archived.values()), last_write=newest)


# --------------------------------------------------------------------------- purging the server's binlogs


# A binlog file starts with 4 magic bytes, then its format description event, whose header carries 2 bytes of
# flags at offset 17: the flags' low byte is at file offset 21. Bit 0x01 (LOG_EVENT_BINLOG_IN_USE_F) is set
# while the server writes the file, cleared when it closes it cleanly - and left set by a crash (the server
# starts a new file). An archived copy keeps the bit of the moment it was streamed.
BINLOG_FLAGS_OFFSET = 21
BINLOG_IN_USE_FLAG = 0x01


def same_binlog(path_a, path_b, chunk=1 << 20, length=None):
    """Whether two binlog files hold the same events: equal bytes but the in-use flag of the format
    description event (a crash leaves it set in the server's file, the archive's copy may have it clear).
    length: compare only the first `length` bytes of each (both must have them)."""
    sizes = os.path.getsize(path_a), os.path.getsize(path_b)
    if (sizes[0] != sizes[1]) if length is None else (min(sizes) < length):
        return False
    left = sizes[0] if length is None else length
    with open(path_a, "rb") as a, open(path_b, "rb") as b:
        first = True
        while left > 0:
            block_a, block_b = bytearray(a.read(min(chunk, left))), bytearray(b.read(min(chunk, left)))
            if first and len(block_a) > BINLOG_FLAGS_OFFSET and len(block_b) > BINLOG_FLAGS_OFFSET:
                block_a[BINLOG_FLAGS_OFFSET] &= ~BINLOG_IN_USE_FLAG & 0xFF
                block_b[BINLOG_FLAGS_OFFSET] &= ~BINLOG_IN_USE_FLAG & 0xFF
            first = False
            if block_a != block_b or not block_a:
                return False
            left -= len(block_a)
        return True


# An event: a 19-byte header - bytes 0..3 its time (Unix seconds), 9..12 its whole length (both
# little-endian) - then its body.
BINLOG_MAGIC_BYTES = 4
EVENT_HEADER_BYTES = 19


def events(path, start=BINLOG_MAGIC_BYTES):
    """(offset, time, length) of each whole event of a binlog file from start on; stops at a torn or unreadable one."""
    size = os.path.getsize(path)
    offset = max(start, BINLOG_MAGIC_BYTES)
    with open(path, "rb") as handle:
        while offset + EVENT_HEADER_BYTES <= size:
            handle.seek(offset)
            header = handle.read(EVENT_HEADER_BYTES)
            length = int.from_bytes(header[9:13], "little")
            if length < EVENT_HEADER_BYTES or offset + length > size:
                return
            yield offset, int.from_bytes(header[0:4], "little"), length
            offset += length


# Event type codes: a file's first event describes the format; with encrypt_binlog the second one starts
# the encryption. In the server's own file every event after it is encrypted but for its length (bytes 9..12
# stay in clear: the events can be walked, not read); a file the archiver streamed (--read-from-remote-server
# --raw) keeps that event but the server sent the rest decrypted.
FORMAT_DESCRIPTION_EVENT, START_ENCRYPTION_EVENT = 15, 164


def is_encrypted(path):
    """Whether a binlog file holds encrypted events (only the server can read it): its second event starts the
    encryption and the third has no readable header (a plain header's end position is where the event ends)."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        offset, kinds = BINLOG_MAGIC_BYTES, []
        while len(kinds) < 3 and offset + EVENT_HEADER_BYTES <= size:
            handle.seek(offset)
            header = handle.read(EVENT_HEADER_BYTES)
            length, end = int.from_bytes(header[9:13], "little"), int.from_bytes(header[13:17], "little")
            readable = EVENT_HEADER_BYTES <= length <= size - offset and end in (0, offset + length)
            if not readable:
                return kinds == [FORMAT_DESCRIPTION_EVENT, START_ENCRYPTION_EVENT]
            kinds.append(header[4])
            offset += length
    return False


def whole_events_end(path):
    """The offset where the run of whole events of a binlog file ends (its size when it ends cleanly)."""
    end = BINLOG_MAGIC_BYTES
    for offset, _, length in events(path):
        end = offset + length
    return min(end, os.path.getsize(path))


def bytes_before(files, start_pos, moment):
    """Binlog bytes from start_pos in the first file up to the first event at or after moment (Unix seconds):
    what mariadb-binlog --stop-datetime replays of them."""
    total = 0
    for index, path in enumerate(files):
        start = int(start_pos) if index == 0 else BINLOG_MAGIC_BYTES
        for offset, when, _ in events(path, start):
            if when >= moment:
                return total + offset - start
        total += max(0, os.path.getsize(path) - start)
    return total


def reaches_moment(files, start_pos, moment):
    """Whether files, from start_pos in the first one, hold an event at or after moment (Unix seconds): where
    mariadb-binlog --stop-datetime stops. The newest files are read first."""
    for index in reversed(range(len(files))):
        start = int(start_pos) if index == 0 else BINLOG_MAGIC_BYTES
        if any(when >= moment for _, when, _ in events(files[index], start)):
            return True
    return False


def torn_tail(server_file, archived_file):
    """Bytes at the end of a server binlog that no reader can get, when the archived copy holds everything
    before them; else 0.

    A crash or a full disk can stop a binlog write midway: the server goes on in a new file, and the
    bytes left (no whole event) are read by nobody - not the archiver, a replica or a replay, and the
    server's own crash recovery did not count them as committed. The archived copy then ends where the
    whole events end; the archiver must resume at the next file instead of fetching this one forever.
    Checked on content: the archived copy is the server file's prefix (for an encrypted file, whose content
    only the server reads: the same run of event lengths, same_event_lengths()), and the server file's whole
    events end exactly there.
    """
    archived, size = os.path.getsize(archived_file), os.path.getsize(server_file)
    if archived >= size or whole_events_end(server_file) != archived:
        return 0
    if is_encrypted(server_file):
        same = same_event_lengths(server_file, archived_file)
    else:
        same = same_binlog(server_file, archived_file, length=archived)
    return size - archived if same else 0


def same_event_lengths(server_file, archived_file):
    """Whether an encrypted server binlog and its archived copy are the same run of whole events: equal lengths
    in the same order, the copy's last event ending at its end (the server file may go on in a torn tail).

    The content cannot be compared (the archiver got the events decrypted), but each event keeps its length in
    clear and decrypted events are as long as encrypted ones: a lab binlog that a full disk and a crash tore
    held 127,201 events, and its copy's lengths matched them all. Before this, an encrypted torn file kept
    the archiver fetching it again forever and blocked every purge after it.
    """
    end = BINLOG_MAGIC_BYTES
    for ours, theirs in itertools.zip_longest(events(archived_file), events(server_file)):
        if ours is None:
            break  # the server's file goes on: torn_tail() checked where its whole events end
        if theirs is None or (ours[0], ours[2]) != (theirs[0], theirs[2]):
            return False
        end = ours[0] + ours[2]
    return end == os.path.getsize(archived_file)


def purge_plan(on_server, archived, same=None, torn=None, pruned_below=None):
    """What PURGE BINARY LOGS TO may remove: the server's binlogs from its oldest one on, while each is held
    whole by the archive (or numbered below `pruned_below`), never the server's current binlog nor the
    archive's newest file.

    on_server: [(name, size)] as SHOW BINARY LOGS lists them, oldest first (the last one is being written);
    archived: [(name, number, size)] of the current timeline; same(name) -> whether the archived copy has
    the content of the server's file, None when it cannot be told (same itself None: sizes are compared
    only); torn(name) -> the bytes of a torn tail
    (torn_tail(): the archive holds all of the file that can be read); pruned_below: the number of the oldest
    binlog a kept backup of the timeline needs (catalogue.prune() removes the archived files before it, which
    no recovery needs: the server's copies of them go too). Returns dict(purge_to: the oldest file
    kept or None, files: [(name, size)] to purge, stopped_at, reason). OpsError when the archive holds
    nothing, or lacks the server's oldest binlog (nothing at all could be purged safely).
    """
    if not on_server:
        raise OpsError("the server lists no binary logs (log_bin is off?): nothing to purge")
    if not archived:
        raise OpsError("the binlog archive holds no file of the current timeline: nothing is known to be archived, "
                       "nothing purged (is the archiver running? systemctl status stockdb-binlog-archiver)")
    held = {name: size for name, _, size in archived}
    files, reason = [], None
    for index, (name, size) in enumerate(on_server):
        if index == len(on_server) - 1:
            reason = "the server's current binlog"
        elif name not in held:
            # older than the oldest binlog a kept backup needs: retention pruned it from the archive, not lost
            if pruned_below is None or binlog_number(name) >= pruned_below:
                reason = "not in the archive"
        elif held[name] != size and not (torn is not None and torn(name) == size - held[name]):
            reason = f"the archive holds {held[name]} of its {size} bytes (the archiver is behind)"
        elif name == archived[-1][0]:
            # archiver_start() resumes from the newest archived file; were it purged, it would record a gap
            reason = "the archive's newest file: the archiver resumes from it, so the server keeps it"
        elif held[name] == size and same is not None and same(name) is False:
            reason = "the archived copy differs from the server's file"
        if reason:
            break
        files.append((name, size))
    if not files and name not in held and name != on_server[-1][0]:
        raise OpsError(f"the server's oldest binary log {name} is not in the binlog archive (which holds "
                       f"{archived[0][0]}..{archived[-1][0]}): purging it could lose what was never archived; nothing purged")
    return dict(purge_to=name if files else None, files=files, stopped_at=name, reason=reason)


def binlog_disk(directory):
    """{'disk': path, used_pct, free_bytes} of the filesystem holding directory; {} without a directory."""
    if not directory:
        return {}
    usage = shutil.disk_usage(directory)
    return dict(disk=dict(path=directory, used_pct=round(100.0 * usage.used / usage.total, 1) if usage.total else 0.0,
                          free_bytes=usage.free))


def purge_binlogs(settings, backups, dry_run=False):
    """PURGE BINARY LOGS on the server up to what the archive of the current timeline holds whole.

    backups: the catalogue (a recorded gap counts until a full backup covers it; the server's binlogs older than
    the oldest one its backups of the timeline need go too, as retention pruned them from the archive). Refuses
    while the archive has a gap or holds nothing. Compares the archived copy byte for byte with the server's file where this
    host can read the binlog directory, else by size (a closed binlog and its archived copy are identical;
    only the file being written differs, in its in-use flag). dry_run: plan only. Returns what was (or would
    be) purged: purge_to (the oldest file kept), files, bytes, and after a purge bytes_freed and not_removed;
    where the binlog directory is readable, disk: how full its filesystem is afterwards (a caller that needs
    room learns whether it got it, and kept_because says why not).
    """
    timeline = current_timeline(settings)
    gap = open_gap(settings, backups)
    if gap:
        raise OpsError(f"the binlog archive has a gap: {gap['lost']} was purged before it was archived (timeline "
                       f"{gap['timeline']}, since {gap['at']}); take a full backup (stockdb-ops backup) before purging more")
    archived = archived_binlogs(settings, timeline)
    directory = timeline_dir(settings, timeline)
    action = (f"purging the server's binary logs (no answer within {PURGE_TIMEOUT_S} s means a binlog write waits for "
              f"disk space and holds the binlog lock: free other space on that disk first)")
    with connection.cursor(settings["admin_defaults_file"], action, read_timeout=PURGE_TIMEOUT_S) as cur:
        cur.execute("SELECT @@log_bin_basename")
        basename = cur.fetchone()[0]
        cur.execute("SHOW BINARY LOGS")
        on_server = [(row[0], int(row[1])) for row in cur.fetchall()]
        binlog_dir = os.path.dirname(basename) if basename else None
        readable = bool(binlog_dir) and os.access(binlog_dir, os.R_OK | os.X_OK)
        listed = [name for name, _ in on_server]
        gone = [name for name in listed if readable and not os.path.exists(os.path.join(binlog_dir, name))]
        if gone:
            after = listed[min(listed.index(gone[-1]) + 1, len(listed) - 1)]
            raise OpsError(f"the server lists binary logs that are not in {binlog_dir}: {', '.join(gone)} (removed by "
                           f"hand?); nothing purged. Once you know why, drop them from its list with PURGE BINARY LOGS "
                           f"TO '{after}' (which purges every binlog listed before it: check the archive holds them "
                           "whole first), then purge again")

        encrypted = set()

        def same(name):
            # An encrypted binlog (encrypt_binlog) differs byte for byte from its archived copy, which the
            # archiver received decrypted: only its size can be compared, as when the directory is unreadable.
            if is_encrypted(os.path.join(binlog_dir, name)):
                encrypted.add(name)
                return None
            return same_binlog(os.path.join(binlog_dir, name), os.path.join(directory, name))

        def torn(name):
            return torn_tail(os.path.join(binlog_dir, name), os.path.join(directory, name))

        plan = purge_plan(on_server, archived, *((same, torn) if readable else (None, None)), pruned_below=min(
            (binlog_number(b["binlog"]["file"]) for b in backups if b["timeline"] == timeline), default=None))
        result = dict(dry_run=bool(dry_run), timeline=timeline, purge_to=plan["purge_to"],
                      files=[name for name, _ in plan["files"]], bytes=sum(size for _, size in plan["files"]),
                      compared=("size (encrypted binlogs)" if encrypted else "content") if readable else "size",
                      kept_from=plan["stopped_at"], kept_because=plan["reason"])
        if dry_run:
            return dict(result, **binlog_disk(binlog_dir if readable else None))
        if not plan["files"]:
            return dict(result, not_removed=[], bytes_freed=0, **binlog_disk(binlog_dir if readable else None))
        cur.execute("PURGE BINARY LOGS TO %s", (plan["purge_to"],))
        cur.execute("SHOW BINARY LOGS")
        left = {row[0] for row in cur.fetchall()}
    result.update(binlog_disk(binlog_dir if readable else None))
    result["not_removed"] = [name for name in result["files"] if name in left]
    result["bytes_freed"] = sum(size for name, size in plan["files"] if name not in left)
    report.append_log(settings["log_dir"], "archive",
                      f"PURGED timeline={timeline} to={plan['purge_to']} files={len(result['files'])} "
                      f"bytes={result['bytes_freed']} compared={result['compared']}"
                      + (f" not_removed={','.join(result['not_removed'])}" if result["not_removed"] else ""))
    return result


# --------------------------------------------------------------------------- replay


def replay_files(settings, manifest, last_file=None):
    """Archived binlog paths from the backup's file on (to last_file), in order; refuses gaps."""
    timeline = manifest["timeline"]
    directory = timeline_dir(settings, timeline)
    first = binlog_number(manifest["binlog"]["file"])
    last = binlog_number(last_file) if last_file else None
    files = [(name, number) for name, number, _ in archived_binlogs(settings, timeline)
             if number >= first and (last is None or number <= last)]
    if not files or files[0][1] != first:
        raise OpsError(f"the binlog archive of timeline {timeline} ({directory}) lacks {manifest['binlog']['file']}, "
                       f"where backup {manifest['name']} ends")
    for (_, a), (name, b) in zip(files, files[1:]):
        if b != a + 1:
            raise OpsError(f"the binlog archive of timeline {timeline} has a gap before {name}")
    if last is not None and files[-1][1] != last:
        raise OpsError(f"the binlog archive of timeline {timeline} lacks {last_file}")
    return [os.path.join(directory, name) for name, _ in files]
