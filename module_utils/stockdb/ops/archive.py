"""The binlog archive: timelines, the archiver, archive status and gaps, the files a replay needs.

Layout under <backup_dir>/binlog/:
  CURRENT               the current timeline (a number)
  <timeline>/binlog.N   binlogs streamed by the archiver as the server writes them
A timeline is the binlog history of one lineage of the data: after a restore the server's binlog
restarts, so its files go to a new timeline directory and never overwrite the old ones.
A gap (a binlog purged from the server before it was archived) is recorded in <state_dir>/archive-gap.json
until a full backup taken after it makes point-in-time recovery whole again.
"""

import os
import re
import shutil

from .. import report
from . import OpsError, connection

BINLOG_FILE = re.compile(r"^(?P<base>.+)\.(?P<num>\d{6,})$")


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


def archiver_start(archived, on_server):
    """Where the archiver starts: (file, gap) from the archived [(name, number, size)] and the server's names.

    The newest archived file is fetched again whole when the server still has it; else archiving
    resumes at the server's next file and `gap` names the file that was purged before it was archived.
    """
    if not on_server:
        raise OpsError("the server lists no binary logs (log_bin is off?)")
    if not archived:
        return on_server[0], None
    last_name, last_number, _ = archived[-1]
    if last_name in on_server:
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


def record_gap(settings, timeline, lost, resumed_at):
    """Remember a gap of the archive until a full backup covers it; returns the record."""
    gap = dict(timeline=timeline, lost=lost, resumed_at=resumed_at, at=report.utc_stamp())
    report.save_state(gap_path(settings), gap)
    return gap


def open_gap(settings, backups):
    """The recorded gap, or None when there is none, a full backup of its timeline was taken after it,
    or a restore started a new timeline (recovery in the current lineage no longer crosses it)."""
    gap = report.load_state(gap_path(settings))
    if not gap or gap["timeline"] != current_timeline(settings):
        return None
    covered = any(b["type"] == "full" and b["timeline"] == gap["timeline"] and b["consistent_at"] > gap["at"]
                  for b in backups)
    return None if covered else gap


def complete_archive(settings, timeline, datadir):
    """Copy binlogs of a stopped server's datadir that the archive lacks or holds shorter.

    The archiver streams with a lag of up to a few events; when the old datadir survived (a bad
    DELETE, not a lost disk), its own binlogs are complete, so nothing committed is left out.
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
        if os.path.getsize(os.path.join(datadir, name)) > archived.get(name, 0):
            shutil.copy2(os.path.join(datadir, name), os.path.join(directory, name))
            copied.append(name)
    return copied


def status(settings):
    """Bytes the server has written that the archive of the current timeline does not have yet."""
    timeline = current_timeline(settings)
    archived = {name: size for name, _, size in archived_binlogs(settings, timeline)}
    lag = sum(max(0, size - archived.get(name, 0)) for name, size in server_binlogs(settings))
    directory = timeline_dir(settings, timeline)
    newest = max((os.path.getmtime(os.path.join(directory, name)) for name in archived), default=0.0)
    return dict(timeline=timeline, lag_bytes=lag, files=len(archived), bytes=sum(archived.values()), last_write=newest)


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
