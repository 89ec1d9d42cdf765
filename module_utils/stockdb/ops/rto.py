"""Recovery time: what a point-in-time recovery to now would take, from what this host measured.

    rto = restore_s + pending_bytes / replay rate

restore_s      the last passed verification's restore (unpack, prepare the chain, start) of the newest
               backup it verified;
pending_bytes  archived binlog of the current timeline written since the newest backup's position:
               what a recovery to now would replay;
replay rate    binlog bytes per second of real replays on this host (verifications, restores): the
               slowest of the last REPLAY_SAMPLES that replayed at least MIN_SAMPLE_BYTES (a smaller
               replay is mostly start-up, not a rate).

The figure grows with trading between backups and drops at each backup: backups during trading
hours (roles/backup's backup_intraday_on_calendar) keep its worst case bounded. The health check
reports it as its `rto` check against rto_target_s.
"""

import os
import time

from .. import report
from . import OpsError, archive, catalogue

MIN_SAMPLE_BYTES = 1 << 20
REPLAY_SAMPLES = 5


def samples_path(settings):
    return os.path.join(settings["state_dir"], "replay-rate.json")


def replayed_bytes(files, start_pos, stop_pos=None):
    """Binlog bytes between start_pos in the first file and stop_pos in the last (its end when None)."""
    sizes = [os.path.getsize(f) for f in files]
    if not sizes:
        return 0
    if stop_pos is not None:
        sizes[-1] = min(sizes[-1], int(stop_pos))
    return max(0, sum(sizes) - int(start_pos))


def record_replay(settings, nbytes, seconds, source):
    """Keep a replay's rate for the estimate (the newest REPLAY_SAMPLES); a replay too small to be a rate is
    left out. Returns the sample kept, or None."""
    if nbytes < MIN_SAMPLE_BYTES or seconds <= 0:
        return None
    sample = dict(at=report.utc_now().strftime("%Y-%m-%dT%H:%M:%SZ"), source=source, bytes=int(nbytes),
                  seconds=round(seconds, 3), bytes_per_s=round(nbytes / seconds))
    kept = (report.load_state(samples_path(settings)).get("samples") or [])[-(REPLAY_SAMPLES - 1):] + [sample]
    report.save_state(samples_path(settings), dict(samples=kept))
    return sample


def pending_bytes(settings, manifest):
    """Archived binlog bytes written since the backup's position (0 when its files are not archived yet)."""
    try:
        files = archive.replay_files(settings, manifest)
    except OpsError:
        return 0  # its first file not archived yet: nothing written since that the archive holds
    return replayed_bytes(files, manifest["binlog"]["pos"])


def estimate(settings, verify_state):
    """{rto_s (None when unknown), restore_s, pending_bytes, replay_bytes_per_s, backup, detail}."""
    timeline = archive.current_timeline(settings)
    backups = [b for b in catalogue.list_backups(settings) if b["timeline"] == timeline]
    samples = report.load_state(samples_path(settings)).get("samples") or []
    rate = min((s["bytes_per_s"] for s in samples), default=None)
    result = dict(rto_s=None, restore_s=verify_state.get("restore_s"), pending_bytes=None, replay_bytes_per_s=rate,
                  backup=backups[-1]["name"] if backups else None)
    if not backups:
        result["detail"] = f"no backup in binlog timeline {timeline}: nothing to recover from; take a full backup"
        return result
    result["pending_bytes"] = pending_bytes(settings, backups[-1])
    age = time.time() - catalogue.parse_utc(backups[-1]["consistent_at"]).timestamp()
    missing = [what for what, value in (("a passed verification (its restore time)", result["restore_s"]),
                                        (f"a replay of at least {MIN_SAMPLE_BYTES >> 20} MiB (its rate)", rate))
               if value is None]
    if missing:
        result["detail"] = (f"unknown until this host has measured {' and '.join(missing)}: run stockdb-ops verify "
                            f"after trading; {result['pending_bytes'] / 2**20:.1f} MiB to replay since {result['backup']}")
        return result
    replay_s = result["pending_bytes"] / rate
    result["rto_s"] = round(result["restore_s"] + replay_s, 1)
    result["detail"] = (f"recovery to now: restore {result['restore_s']:.0f} s + replay "
                        f"{result['pending_bytes'] / 2**20:.1f} MiB at {rate / 2**20:.2f} MiB/s = {replay_s:.0f} s "
                        f"(newest backup {result['backup']}, {age / 60:.0f} min old)")
    return result


def check(settings, verify_state):
    """The health check's `rto` entry: breached above rto_target_s, or when there is no backup to recover from."""
    found = estimate(settings, verify_state)
    target = settings["rto_target_s"]
    if found["backup"] is None:
        return dict(ok=False, value=None, threshold=target, detail=found["detail"]), found
    if found["rto_s"] is None:
        return dict(ok=True, value=None, threshold=target, detail=found["detail"]), found
    return dict(ok=found["rto_s"] <= target, value=found["rto_s"], threshold=target, detail=found["detail"]), found

