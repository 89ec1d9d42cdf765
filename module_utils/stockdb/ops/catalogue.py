"""The backup catalogue: names, listing, chains, the backup for a point in time, retention.

Layout under <backup_dir>/backups/:
  <YYYYMMDDTHHMMSSZ>-full/          one backup: manifest.json, data/ (mariabackup), logical/
  <YYYYMMDDTHHMMSSZ>-incremental/   on the newest backup of its timeline; its chain starts at a full
  .partial-<name>/                  a backup being taken; never looks valid
"""

import json
import os
import re
import shutil
from datetime import datetime, timedelta, timezone

from .. import report
from . import OpsError, archive

KINDS = ("full", "incremental")
BACKUP_NAME = re.compile(r"^\d{8}T\d{6}Z-(full|incremental)$")
GTID = re.compile(r"^\d+-\d+-\d+(,\d+-\d+-\d+)*$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
PARTIAL = ".partial-"


def backups_root(settings):
    return os.path.join(settings["backup_dir"], "backups")


def parse_utc(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def list_backups(settings):
    """Every complete backup (a directory with a manifest), oldest first."""
    root = backups_root(settings)
    found = []
    if os.path.isdir(root):
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name, "manifest.json")
            if BACKUP_NAME.match(name) and os.path.isfile(path):
                with open(path, encoding="utf-8") as handle:
                    try:
                        manifest = json.load(handle)
                    except ValueError as exc:
                        raise OpsError(f"the manifest {path} is not JSON ({exc}): move the backup aside or restore "
                                       "its manifest") from exc
                manifest["path"] = os.path.join(root, name)
                found.append(manifest)
    return found


def find_backup(settings, name=None):
    backups = list_backups(settings)
    if not backups:
        raise OpsError(f"no backups in {backups_root(settings)}")
    if name in (None, "", "latest"):
        return backups[-1]
    for manifest in backups:
        if manifest["name"] == name:
            return manifest
    raise OpsError(f"backup {name!r} not found in {backups_root(settings)}; "
                   f"have {[b['name'] for b in backups][-5:]} (newest last)")


def chain_of(settings, manifest):
    """The manifests to apply, full first: a full backup, then its incrementals up to this one."""
    by_name = {b["name"]: b for b in list_backups(settings)}
    missing = [name for name in manifest["chain"] if name not in by_name]
    if missing:
        raise OpsError(f"backup {manifest['name']} needs {missing}, which are gone")
    return [by_name[name] for name in manifest["chain"]]


def partials(settings):
    """Paths of backups being taken, or left behind by a job that was killed."""
    root = backups_root(settings)
    return sorted(os.path.join(root, n) for n in os.listdir(root) if n.startswith(PARTIAL)) if os.path.isdir(root) else []


# --------------------------------------------------------------------------- points in time


def check_gtid(text, what):
    """A GTID list as MariaDB prints it (domain-server-seq[,...]); OpsError naming `what` otherwise."""
    if not isinstance(text, str) or not GTID.match(text):
        raise OpsError(f"{what} {text!r} is not a GTID list like 0-1-1234")
    return text


def gtid_seqs(gtid_list):
    """{domain: seq} of a GTID list."""
    return {int(g.split("-")[0]): int(g.split("-")[2]) for g in gtid_list.split(",") if g}


def parse_target(restore_to):
    """None (the backup as it is), 'end' (every archived binlog), a GTID list, or a UTC timestamp."""
    if restore_to in (None, ""):
        return None
    if restore_to == "end":
        return dict(kind="end", text="end")
    if GTID.match(restore_to):
        return dict(kind="gtid", gtid=restore_to, seqs=gtid_seqs(restore_to), text=restore_to)
    if TIMESTAMP.match(restore_to):
        try:
            moment = datetime.strptime(restore_to, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
        except ValueError as exc:
            raise OpsError(f"restore_to={restore_to!r}: {exc}") from exc
        return dict(kind="time", moment=moment, text=restore_to)
    raise OpsError(f"restore_to={restore_to!r} is neither 'YYYY-MM-DD HH:MM:SS' (UTC), a GTID like 0-1-1234, nor 'end'")


def reaches(manifest, target):
    """True when `target` lies at or after the backup's consistent point (replay can reach it).

    consistent_at is taken after the copy, to the second: the backup may hold transactions of that very second,
    which a time target of that second leaves out (the replay stops at the first event at or after it)."""
    if target is None or target["kind"] == "end":
        return True
    if target["kind"] == "time":
        return parse_utc(manifest["consistent_at"]) < target["moment"]
    have = gtid_seqs(manifest["binlog"]["gtid"])
    return all(have.get(domain, 0) <= seq for domain, seq in target["seqs"].items())


def pick_backup(settings, name, target):
    """The named backup (refused when the target lies before it), or the newest one of the current
    timeline from which the target can be reached."""
    if name not in (None, "", "latest"):
        manifest = find_backup(settings, name)
        if not reaches(manifest, target):
            raise OpsError(f"backup {name} is consistent at {manifest['consistent_at']} (GTID {manifest['binlog']['gtid']}), "
                           f"not before restore_to={target['text']}: it cannot restore to an earlier point; name an older "
                           "backup or leave the backup to be chosen")
        return manifest
    if target is None:
        return find_backup(settings, name)
    timeline = archive.current_timeline(settings)
    candidates = [b for b in list_backups(settings) if b["timeline"] == timeline and reaches(b, target)]
    if not candidates:
        raise OpsError(f"no backup of the current binlog timeline {timeline} is older than restore_to={target['text']}; "
                       "a restore starts a new timeline, and point-in-time recovery needs a backup taken in it "
                       "(restore.yml takes one unless restore_backup_after=false); backups kept: "
                       f"{[(b['name'], b['timeline']) for b in list_backups(settings)][-5:]}")
    return candidates[-1]


# --------------------------------------------------------------------------- retention


def prune(settings, now=None):
    """Drop backup chains older than retention_days (keeping retention_min_full chains at least),
    then the archived binlogs no kept backup needs: PITR reaches any moment after the oldest kept backup.
    The current timeline with no backup (a host that is not the backup source) keeps retention_days of
    binlogs, by their last write, and always its newest file."""
    now = now or report.utc_now()
    backups = list_backups(settings)
    fulls = [b for b in backups if b["type"] == "full"]
    cutoff = now - timedelta(days=int(settings["retention_days"]))
    keep_from = max(0, len(fulls) - int(settings["retention_min_full"]))
    doomed_fulls = {b["name"] for b in fulls[:keep_from] if parse_utc(b["consistent_at"]) < cutoff}
    chains = {}
    for b in backups:
        chains.setdefault(b["chain"][0], []).append(b)
    removed = []
    for base in sorted(doomed_fulls):
        members = chains.get(base, [])
        if all(parse_utc(m["consistent_at"]) < cutoff for m in members):  # a chain goes only when all of it is old
            for member in members:
                shutil.rmtree(member["path"])
                removed.append(member["name"])
    kept = [b for b in backups if b["name"] not in removed]
    removed_binlogs = []
    current = archive.current_timeline(settings)
    root = archive.binlog_root(settings)
    for entry in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        if not entry.isdigit():
            continue
        timeline = int(entry)
        needed = [archive.binlog_number(b["binlog"]["file"]) for b in kept if b["timeline"] == timeline]
        if not needed and timeline != current:
            shutil.rmtree(os.path.join(root, entry))
            removed_binlogs.append(f"timeline {timeline}")
            continue
        if not needed:
            for name, _, _ in archive.archived_binlogs(settings, timeline)[:-1]:
                path = os.path.join(root, entry, name)
                if os.path.getmtime(path) < cutoff.timestamp():
                    os.unlink(path)
                    removed_binlogs.append(f"{timeline}/{name}")
            continue
        for name, number, _ in archive.archived_binlogs(settings, timeline):
            if number < min(needed):
                os.unlink(os.path.join(root, entry, name))
                removed_binlogs.append(f"{timeline}/{name}")
    return dict(backups=removed, binlogs=removed_binlogs)
