"""The jobs of a stockdb host and the one wrapper they share.

Every job (backup, verify, health) runs through run_job(): lowered priority, the host lock (where
the job needs it), its JSON state, counters, textfile metrics, one line in <log_dir>/<job>.log and
FIRING/RESOLVED lines in the alert log. A failure of any kind (a tool, MariaDB, the disk) is
recorded the same way before the caller sees it.
"""

import os
import shutil
import socket
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Optional

from .. import health, report
from . import OpsError, archive, backup, catalogue, connection, host, rto, verification


@dataclass
class Job:
    name: str  # log file <name>.log, state <name>.json
    metrics_file: str  # textfile <metrics_file>.prom; the common metrics are named <metrics_file>_*
    alert: Optional[str]  # alert-log name of a failed run (None: the job writes its own alert lines)
    metrics: Callable  # (settings, state) -> job-specific metrics, written after every run
    locked: bool = True


@dataclass
class Outcome:
    ok: bool
    line: str = ""  # the log line of a run (without the time stamp)
    problem: str = ""  # why it failed
    value: object = None  # what the job returns to its caller
    alerts: list = field(default_factory=list)  # extra (status, severity, name, labels, summary)
    error: Optional[BaseException] = None
    skipped: bool = False  # not this host's to do (backup_source): neither a success nor a failure


def state_path(settings, job):
    return os.path.join(settings["state_dir"], job.name + ".json")


def run_job(settings, job, work, subject=""):
    """Run work(state) -> Outcome for a job and record the outcome; returns it (never raises for a failure).
    subject: words for the log and alert lines, or a function returning them once work has run (what work decided)."""
    host.lower_priority()
    state = report.load_state(state_path(settings, job))
    try:
        with host.lock(settings) if job.locked else nullcontext():
            outcome = work(state)
    except Exception as exc:  # noqa: BLE001 - any failure is recorded, then returned to the caller
        outcome = Outcome(ok=False, problem=str(exc) if isinstance(exc, OpsError) else f"{type(exc).__name__}: {exc}",
                          error=exc)
    record(settings, job, state, outcome, subject() if callable(subject) else subject)
    return outcome


def record(settings, job, state, outcome, subject=""):
    """State, metrics, log line and alert-log lines of one outcome."""
    failed_before = state.get("last_status", 1) == 0
    # A success ends every alert fired since the last one, by the labels each FIRING line carried: the success
    # may be of another subject (an intraday incremental after a failed full; a type decided after "auto").
    fired = state.pop("fired_labels", None) or []
    now = time.time()
    state.update(last_run=now, last_status=int(outcome.ok))
    if outcome.skipped:  # a failure before it is moot here; the last success stays what it was
        state.update(last_skipped=now, last_error=None)
    elif outcome.ok:
        state.update(last_success=now, last_error=None)
    else:
        fired_now = _subject_labels(subject)
        state.update(failures_total=state.get("failures_total", 0) + 1, last_error=outcome.problem,
                     fired_labels=fired + [fired_now] if fired_now not in fired else fired)
    report.save_state(state_path(settings, job), state)
    prefix = job.metrics_file
    try:
        specific = job.metrics(settings, state)
    except (OpsError, OSError) as exc:  # the common metrics, the log line and the alert line still go out
        specific = []
        outcome.problem = outcome.problem or f"metrics of the {job.name} job: {exc}"
    report.write_textfile(settings["metrics_dir"], job.metrics_file, [
        (f"{prefix}_last_status", f"1 when the last {job.name} run succeeded, 0 when it failed.", "gauge",
         [({}, state["last_status"])]),
        (f"{prefix}_failures_total", f"{job.name} runs that failed.", "counter", [({}, state.get("failures_total", 0))]),
        (f"{prefix}_last_run_timestamp_seconds", f"End of the last {job.name} run.", "gauge", [({}, now)]),
        *specific,
    ])
    what = f"{job.name} {subject}".strip()
    failed_line = "FAILED" + (f" {subject}" if subject else "") + f": {outcome.problem}"
    report.append_log(settings["log_dir"], job.name, outcome.line or failed_line)
    labels = dict(host=socket.gethostname())
    if job.alert and not outcome.ok:
        report.append_alert(settings["alert_log"], "FIRING", "critical", job.alert, dict(labels, **_subject_labels(subject)),
                            f"{what} failed: {outcome.problem[:400]}")
    elif job.alert and failed_before:
        for ended in fired or [_subject_labels(subject)]:  # (a state written before fired_labels: this run's)
            report.append_alert(settings["alert_log"], "RESOLVED", "critical", job.alert, dict(labels, **ended),
                                f"{what} skipped: {outcome.line}" if outcome.skipped else f"{what} succeeded")
    for status, severity, name, extra, summary in outcome.alerts:
        report.append_alert(settings["alert_log"], status, severity, name, dict(labels, **extra), summary)


def _subject_labels(subject):
    """'type=full' -> {'type': 'full'}: a subject's key=value words become alert labels."""
    return dict(word.split("=", 1) for word in subject.split() if "=" in word)


def raise_for(outcome):
    """The failure of an outcome as OpsError (as it was when it was an OpsError)."""
    if outcome.ok:
        return outcome.value
    if isinstance(outcome.error, OpsError):
        raise outcome.error
    raise OpsError(outcome.problem) from outcome.error


# --------------------------------------------------------------------------- backup


def backup_metrics(settings, state):
    backups = catalogue.list_backups(settings)
    last = state.get("last", {})

    def per_type(key):
        return [({"type": kind}, value[key]) for kind, value in sorted(last.items())]

    return [
        ("stockdb_backup_last_success_timestamp_seconds", "End of the last successful backup.", "gauge", per_type("finished")),
        ("stockdb_backup_last_duration_seconds", "Duration of the last successful backup.", "gauge", per_type("duration_s")),
        ("stockdb_backup_last_size_bytes", "Stored size of the last successful backup.", "gauge", per_type("size_bytes")),
        ("stockdb_backup_count", "Complete backups kept.", "gauge", [({}, len(backups))]),
        ("stockdb_backup_oldest_timestamp_seconds", "Consistent point of the oldest kept backup.", "gauge",
         [({}, catalogue.parse_utc(backups[0]["consistent_at"]).timestamp())] if backups else []),
    ]


BACKUP = Job("backup", "stockdb_backup", "StockdbBackupFailed", backup_metrics)


def remove_partials(settings):
    """Remove backups left half-written by a killed job; only call with the host lock held. Returns their names."""
    removed = []
    for path in catalogue.partials(settings):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(os.path.basename(path)[len(catalogue.PARTIAL):])
    return removed


def sweep_partials(settings):
    """From the health job: when no job holds the lock, a partial backup is a killed one. Remove it and
    record a failed backup (metrics, FIRING StockdbBackupFailed), so it alerts now, not when the newest
    backup grows too old. Returns the names removed."""
    if not catalogue.partials(settings):
        return []
    try:
        with host.lock(dict(settings, lock_timeout=0)):
            removed = remove_partials(settings)
            if removed:  # recorded under the lock: no backup can update the same state meanwhile
                record(settings, BACKUP, report.load_state(state_path(settings, BACKUP)),
                       Outcome(ok=False, problem=f"backup {', '.join(removed)} was interrupted (killed?) and left "
                                                 "unfinished; removed"), "type=" + removed[-1].rsplit("-", 1)[1])
    except OpsError:  # a job holds the lock: its partial is being written
        return []
    return removed


def not_source(settings):
    """Why this host is not the backup source now (settings["source"]), or None when it is."""
    ours, why = backup.source_check(settings)
    return None if ours else why


def backup_job(settings, kind="full", here=False, intraday=False):
    """A scheduled or requested backup (`intraday`: the intraday job's, backup.take): take it, prune by
    retention. Returns dict(manifest, pruned, skipped):
    skipped is why nothing was taken (this host is not the backup source; `here` takes it anyway), else None.
    Raises OpsError."""
    asked = kind

    def work(state):
        nonlocal kind
        # decided under the lock, a failure recorded: "auto" by the timeline's backups, an incremental as a full
        # when the chain would otherwise never age out
        overdue = backup.full_overdue(settings) if asked == "incremental" else None
        kind = "full" if overdue else backup.resolve_kind(settings, asked)
        why = None if here else not_source(settings)
        if why:  # retention still applies to what this host keeps: its archive, a former source's backups
            pruned = catalogue.prune(settings)
            return Outcome(ok=True, skipped=True, line=f"SKIPPED type={kind}: {why} pruned={len(pruned['backups'])}"
                                                       f"+{len(pruned['binlogs'])}",
                           value=dict(manifest=None, pruned=pruned, skipped=why))
        interrupted = remove_partials(settings)
        manifest = backup.take(settings, kind, intraday=intraday)
        pruned = catalogue.prune(settings)
        state.setdefault("last", {})[kind] = dict(name=manifest["name"], finished=time.time(),
                                                  duration_s=manifest["duration_s"], size_bytes=manifest["size_bytes"])
        line = (f"OK {manifest['name']} type={kind} size={manifest['size_bytes']} duration={manifest['duration_s']}s "
                f"binlog={manifest['binlog']['file']}:{manifest['binlog']['pos']} gtid={manifest['binlog']['gtid']} "
                f"pruned={len(pruned['backups'])}+{len(pruned['binlogs'])}")
        if interrupted:
            line += f" removed_interrupted={','.join(interrupted)}"
        if overdue:
            line += f" full_instead_of_incremental: {overdue}"
        return Outcome(ok=True, line=line, value=dict(manifest=manifest, pruned=pruned, skipped=None))

    return raise_for(run_job(settings, BACKUP, work, lambda: f"type={kind}"))


# --------------------------------------------------------------------------- verify


def verify_metrics(settings, state):
    return [
        ("stockdb_backup_verify_last_success_timestamp_seconds", "Last verification that passed.", "gauge",
         [({}, state["last_success"])] if state.get("last_success") else []),
        ("stockdb_backup_verify_restore_seconds",
         "Restore time (copy, decompress, prepare, start) of the last passed verification.", "gauge",
         [({}, state["restore_s"])] if "restore_s" in state else []),
    ]


VERIFY = Job("verify", "stockdb_backup_verify", "StockdbBackupVerifyFailed", verify_metrics)


def verify_job(settings, name=None, here=False):
    """verify() of a backup (default the newest); returns its result, whose problems are empty when it passed,
    or dict(skipped=why, problems=[]) when this host is not the backup source (`here` verifies anyway)."""
    def work(state):
        why = None if here else not_source(settings)
        if why:
            return Outcome(ok=True, skipped=True, line=f"SKIPPED: {why}", value=dict(backup=None, problems=[], skipped=why))
        with host.cpu_idle():
            result = verification.verify(settings, name)
        if result["problems"]:
            return Outcome(ok=False, problem=f"backup {result['backup']}: " + "; ".join(result["problems"]), value=result,
                           line=f"FAILED {result['backup']}: " + "; ".join(result["problems"]))
        state.update(backup=result["backup"], restore_s=result["restore_s"], total_s=result["total_s"])
        return Outcome(ok=True, value=result,
                       line=f"OK {result['backup']} restore={result['restore_s']}s replay={result.get('replay_s', 0)}s "
                            f"tables={result.get('tables', 0)} total={result['total_s']}s")

    outcome = run_job(settings, VERIFY, work)
    return outcome.value or dict(backup=name or "latest", problems=[f"verification could not run: {outcome.problem}"])


# --------------------------------------------------------------------------- health


def health_metrics(settings, state):
    result = state.get("result")
    if not result:
        return []
    return [m for m in health.metrics(result, report.utc_now()) if m[0] != "stockdb_health_last_run_timestamp_seconds"]


def archive_metrics(settings, status):
    """The archive's lag and size (status from archive.status())."""
    report.write_textfile(settings["metrics_dir"], "stockdb_binlog_archive", [
        ("stockdb_binlog_archive_lag_bytes", "Binlog bytes on the server not yet in the archive.", "gauge",
         [({}, status["lag_bytes"])]),
        ("stockdb_binlog_archive_files", "Archived binlog files in the current timeline.", "gauge", [({}, status["files"])]),
        ("stockdb_binlog_archive_bytes", "Archived binlog bytes in the current timeline.", "gauge", [({}, status["bytes"])]),
        ("stockdb_binlog_archive_last_write_timestamp_seconds", "Last write to an archived binlog file.", "gauge",
         [({}, status["last_write"])]),
        ("stockdb_binlog_archive_timeline", "Current binlog timeline (a restore starts a new one).", "gauge",
         [({}, status["timeline"])]),
    ])


def gap_metric(settings):
    """stockdb_binlog_archive_gap: 1 while a gap of the archive is not covered by a newer full backup."""
    gap = archive.open_gap(settings, catalogue.list_backups(settings))
    report.write_textfile(settings["metrics_dir"], "stockdb_binlog_archive_gap", [
        ("stockdb_binlog_archive_gap", "1 while the binlog archive has a gap no later full backup covers "
         "(point-in-time recovery cannot cross it): take a full backup.", "gauge", [({}, 1 if gap else 0)]),
    ])
    return gap


# A run that fails (not a breach it finds: a failure of the job itself) is StockdbHealthCheckFailed.
def archiver(settings):
    """The archiver's command for the current timeline; a gap found on the way is recorded (state,
    metric, archive.log) until a full backup covers it, a torn tail it moves past is logged."""
    timeline = archive.set_timeline(settings, archive.current_timeline(settings))
    on_server = [name for name, _ in archive.server_binlogs(settings)]
    archived = archive.archived_binlogs(settings, timeline)
    binlog_dir, archive_dir, torn = archive.server_binlog_dir(settings), archive.timeline_dir(settings, timeline), {}

    def torn_bytes(name):
        torn[name] = archive.torn_tail(os.path.join(binlog_dir, name), os.path.join(archive_dir, name))
        return torn[name]

    start, lost = archive.archiver_start(archived, on_server, torn_bytes if binlog_dir else None)
    for name, size in torn.items():
        if size:
            report.append_log(settings["log_dir"], "archive",
                              f"TORN timeline={timeline} file={name} tail={size} resumed_at={start}: the server's file ends "
                              "in bytes that are no whole event (a crash or a full disk stopped a write); the archive "
                              "holds all of it that can be read")
    if lost:
        gap = archive.record_gap(settings, timeline, lost, start)
        gap_metric(settings)
        report.append_log(settings["log_dir"], "archive",
                          f"GAP timeline={timeline} lost={lost} resumed_at={start} since={gap['at']}: purged from the "
                          "server before it was archived completely; take a full backup now")
    return archive.archiver_command(settings, timeline, start)


def source_metric(settings, state):
    """Whether this host is the backup source now, as stockdb_backup_source; returns why not (None: it is).

    When the server cannot answer, the last answer stands (state["source"])."""
    try:
        state["source"] = dict(why_not=not_source(settings))
    except OpsError:
        pass
    why_not = (state.get("source") or {}).get("why_not")
    report.write_textfile(settings["metrics_dir"], "stockdb_backup_source", [
        ("stockdb_backup_source", "1 when this host takes the scheduled backups now (backup_source), 0 when another "
         "host does.", "gauge", [({}, 0 if why_not else 1)]),
    ])
    return why_not


def recovery_time(settings, not_source_why=None):
    """The health check's `rto` entry (rto.check) and its parts as metrics; not measured on a host that is not
    the backup source (`not_source_why`): it keeps no backups to recover from."""
    if not_source_why:
        report.write_textfile(settings["metrics_dir"], "stockdb_backup_rto", [])
        return dict(ok=True, value=None, threshold=settings["rto_target_s"],
                    detail=f"not measured here: {not_source_why}")
    try:
        check, found = rto.check(settings, report.load_state(state_path(settings, VERIFY)))
    except (OpsError, OSError) as exc:
        return dict(ok=False, value=None, threshold=settings["rto_target_s"], detail=f"failed: {exc}")

    def sample(key):
        return [({}, found[key])] if found[key] is not None else []

    report.write_textfile(settings["metrics_dir"], "stockdb_backup_rto", [
        ("stockdb_backup_rto_seconds", "Estimated time of a point-in-time recovery to now: restore plus replay.",
         "gauge", sample("rto_s")),
        ("stockdb_backup_rto_target_seconds", "The recovery-time target (backup_rto_target_minutes).", "gauge",
         [({}, settings["rto_target_s"])]),
        ("stockdb_backup_rto_restore_seconds", "Restore time of the last passed verification.", "gauge",
         sample("restore_s")),
        ("stockdb_backup_rto_pending_bytes", "Archived binlog bytes since the newest backup (what a recovery "
         "to now replays).", "gauge", sample("pending_bytes")),
        ("stockdb_backup_rto_replay_bytes_per_second", "Slowest binlog replay rate of the recent measured replays.",
         "gauge", sample("replay_bytes_per_s")),
    ])
    return check


HEALTH = Job("health", "stockdb_health", "StockdbHealthCheckFailed", health_metrics, locked=False)


def health_job(settings):
    """The periodic health check; a server that cannot be reached is a finding (the server check), not a failure.

    The checks' state (what is breached) is saved only with the alert lines of its transitions: a run
    that fails halfway leaves it as it was, so the next run alerts what this one could not.
    """
    def work(state):
        now = report.utc_now()
        previous = state.get("checks", {})
        # the recovery time is read from files, whether the server answers or not; whether this host is the
        # backup source is asked of the server (its last answer stands while it does not answer)
        extra = dict(rto=recovery_time(settings, source_metric(settings, state)))
        try:
            with connection.cursor(settings["defaults_file"], "health check") as cur:
                result, checks = health.run(cur, settings["health"], previous, now, extra=extra)
            unreachable = None
        except OpsError as exc:
            unreachable = str(exc)
            result, checks = health.run(None, settings["health"], previous, now, unreachable=unreachable, extra=extra)
        notes = []
        if not unreachable:
            try:
                archive_metrics(settings, archive.status(settings))
            except (OpsError, OSError) as exc:
                notes.append(f"binlog archive status unavailable: {exc}")
        gap = gap_metric(settings)
        if gap:
            notes.append(f"binlog archive gap since {gap['at']} ({gap['lost']} lost): take a full backup")
        swept = sweep_partials(settings)
        if swept:
            notes.append(f"removed interrupted backups {swept}")
        state.update(checks=checks, result=result)
        line = health.log_line(result, now).split(" ", 1)[1] + "".join(f" :: {n}" for n in notes)
        return Outcome(ok=True, line=line, value=dict(result=result, notes=notes, server_down=bool(unreachable)),
                       alerts=health.alert_transitions(result, previous))

    return run_job(settings, HEALTH, work)
