"""stockdb-ops: the jobs of a stockdb host, for the systemd units of roles/backup and for operators.

  stockdb-ops backup [--type full|incremental|auto] [--here] [--intraday]
                                                      take a backup, prune by retention (only on the backup
                                                      source, backup_source; --here: on this host anyway;
                                                      --intraday: with the intraday job's settings)
  stockdb-ops verify [--backup NAME] [--here]         restore into a scratch server and compare (the same)
  stockdb-ops list                                    the backups kept, oldest first
  stockdb-ops archive-binlogs                         stream binlogs into the archive (the archiver service)
  stockdb-ops health                                  the periodic health check (recovery time included),
                                                      archive lag and gaps
  stockdb-ops purge-binlogs [--dry-run]               free the server's disk: PURGE BINARY LOGS, only of
                                                      files the binlog archive holds whole
  stockdb-ops new-timeline                            archive the server's binlogs into a new timeline, after
                                                      they restarted (a replica rebuilt by replica_provision.yml)
  stockdb-ops dump --output FILE [--backup NAME] [--no-mask]
                                                      a logical dump of a backup for test environments,
                                                      customers' names and e-mails masked
Settings: /etc/stockdb/ops.json (rendered by roles/backup), or --config FILE.
Exit status: 0 done, 1 failed (the job's log, metrics and alert log say why), 2 bad usage.
"""

import argparse
import json
import os
import signal
import sys

from .. import report
from . import OpsError, archive, catalogue, dump, jobs, settings


def cmd_backup(s, args):
    taken = jobs.backup_job(s, args.type, here=args.here, intraday=args.intraday)
    manifest = taken["manifest"]
    if manifest is None:
        print(json.dumps(dict(backup=None, skipped=taken["skipped"])))
        return 0
    print(json.dumps(dict(backup=manifest["name"], type=manifest["type"], size_bytes=manifest["size_bytes"],
                          duration_s=manifest["duration_s"], phases=manifest["phases"], binlog=manifest["binlog"],
                          pruned=taken["pruned"])))
    return 0


def cmd_verify(s, args):
    result = jobs.verify_job(s, args.backup, here=args.here)
    print(json.dumps(result))
    return 0 if not result["problems"] else 1


def cmd_list(s, args):
    for b in catalogue.list_backups(s):
        print(f"{b['name']}  timeline={b['timeline']}  consistent_at={b['consistent_at']}  size={b['size_bytes']}  "
              f"gtid={b['binlog']['gtid']}  chain={','.join(b['chain'])}")
    return 0


def cmd_archive(s, args):
    """Exec mariadb-binlog streaming into the current timeline (systemd supervises it and restarts it)."""
    cmd = jobs.archiver(s)
    print("exec " + " ".join(cmd), flush=True)
    os.execvp(cmd[0], cmd)  # noqa: S606 - systemd supervises mariadb-binlog itself


def cmd_health(s, args):
    outcome = jobs.health_job(s)
    print(report.utc_stamp() + " " + (outcome.line or f"health FAILED: {outcome.problem}"))
    return 0 if outcome.ok and not outcome.value["server_down"] else 1


def cmd_purge(s, args):
    print(json.dumps(archive.purge_binlogs(s, catalogue.list_backups(s), dry_run=args.dry_run)))
    return 0


def cmd_new_timeline(s, args):
    print(json.dumps(dict(timeline=archive.start_new_timeline(s))))
    return 0


def cmd_dump(s, args):
    print(json.dumps(dump.dump(s, args.output, args.backup, mask=not args.no_mask)))
    return 0


def parser():
    p = argparse.ArgumentParser(prog="stockdb-ops", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--config", default=settings.CONFIG, help=f"JSON settings (default {settings.CONFIG})")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("backup", help="take a backup, prune by retention")
    b.add_argument("--type", choices=catalogue.KINDS + ("auto",), default="full",
                   help="auto: incremental, or full when the current binlog timeline has no backup yet")
    b.add_argument("--intraday", action="store_true",
                   help="the intraday job's backup, during trading: no table checksums unless intraday_table_checksums, "
                        "uncompressed unless intraday_compress")
    b.set_defaults(func=cmd_backup)
    v = sub.add_parser("verify", help="restore the newest (or a named) backup into a scratch server and compare")
    v.add_argument("--backup", default=None, help="backup name (default: the newest)")
    for command in (b, v):
        command.add_argument("--here", action="store_true",
                             help="run on this host even when it is not the backup source (prints skipped otherwise)")
    v.set_defaults(func=cmd_verify)
    sub.add_parser("list", help="the backups kept, oldest first").set_defaults(func=cmd_list)
    sub.add_parser("archive-binlogs", help="stream binlogs into the archive").set_defaults(func=cmd_archive)
    sub.add_parser("health", help="the periodic health check").set_defaults(func=cmd_health)
    u = sub.add_parser("purge-binlogs", help="PURGE BINARY LOGS up to what the binlog archive holds whole")
    u.add_argument("--dry-run", action="store_true", help="say what would be purged, purge nothing")
    u.set_defaults(func=cmd_purge)
    sub.add_parser("new-timeline", help="archive the server's binlogs into a new timeline (they restarted)"
                   ).set_defaults(func=cmd_new_timeline)
    d = sub.add_parser("dump", help="a logical dump of a backup (restored into a scratch server), personal data masked")
    d.add_argument("--output", required=True, help="the dump file to write (must not exist)")
    d.add_argument("--backup", default=None, help="backup name (default: the newest)")
    d.add_argument("--no-mask", action="store_true", help="keep customers' names and e-mails (not for test environments)")
    d.set_defaults(func=cmd_dump)
    return p


def stop_on_sigterm(signum, frame):
    """systemd stops a job with SIGTERM (its TimeoutStartSec passed, or systemctl stop). Python would die at
    once; raising instead lets the job remove its half-written backup or scratch server, kill the tool it
    waits for (subprocess.run kills its child when interrupted), record the failure and release the lock."""
    raise OpsError(f"stopped by {signal.Signals(signum).name} (the unit's TimeoutStartSec passed, or systemctl stop)")


def main(argv=None):
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        return args.func(settings.load(args.config), args)
    except OpsError as exc:
        print(f"stockdb-ops {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
