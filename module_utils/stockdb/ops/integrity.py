"""Integrity: file hashes against a manifest, table checksums, invariants on a restored server.

Every consistent point is a binlog position. A backup records where its data ends and, with
table_checksums, the row count and checksum of every table at a second point (a consistent
snapshot taken right after the backup) with that snapshot's binlog position. Verification
restores the backup, replays the archived binlogs up to that point and compares: one check
proves the data files, the prepare, and the binlog archive together.
"""

import hashlib
import os

from .. import invariants
from . import connection


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_inventory(root, skip=("manifest.json",)):
    """{relative path: {size, sha256}} of every file under root."""
    inventory = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, root)
            if rel not in skip:
                inventory[rel] = dict(size=os.path.getsize(path), sha256=sha256_file(path))
    return inventory


def check_files(manifest):
    """Problems with a backup's files against its manifest: missing, changed or unexpected files."""
    root = manifest["path"]
    problems = []
    expected = manifest["files"]
    for rel, meta in sorted(expected.items()):
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            problems.append(f"{manifest['name']}/{rel}: missing")
        elif os.path.getsize(path) != meta["size"]:
            problems.append(f"{manifest['name']}/{rel}: size {os.path.getsize(path)} != {meta['size']} in the manifest")
        elif sha256_file(path) != meta["sha256"]:
            problems.append(f"{manifest['name']}/{rel}: sha256 differs from the manifest (corrupted)")
    for directory, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(directory, name), root)
            if rel != "manifest.json" and rel not in expected:
                problems.append(f"{manifest['name']}/{rel}: not in the manifest")
    return problems


# --------------------------------------------------------------------------- table checksums


def table_checksum_sql(columns, database, table):
    """SQL giving (rows, checksum) of a table, independent of row order and of the storage."""
    q = connection.identifier
    parts = ", ".join(f"COALESCE(CAST({q(c)} AS CHAR), '\\\\N')" for c in columns)
    return f"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', {parts}))), 0) FROM {q(database)}.{q(table)}"  # noqa: S608


def table_checksums(cursor, database):
    """{table: {rows, checksum}} of every base table of a database.

    Computed from the values, not with CHECKSUM TABLE (faster, docs/benchmarks.md#table-checksums, but it hashes the row buffer:
    in the ops drill it gave the restored copy of a backup point a different value than the
    snapshot of that point had, for the orders table; the cause was not pinned down).
    """
    cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                   "AND table_type = 'BASE TABLE' ORDER BY table_name", (database,))
    sums = {}
    for (table,) in cursor.fetchall():
        cursor.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                       "ORDER BY ordinal_position", (database, table))
        columns = [row[0] for row in cursor.fetchall()]
        cursor.execute(table_checksum_sql(columns, database, table))
        rows, checksum = cursor.fetchone()
        sums[table] = dict(rows=int(rows), checksum=int(checksum))
    return sums


def snapshot_checksums(settings):
    """Table checksums in one consistent snapshot, with the binlog position it corresponds to."""
    with connection.cursor(settings["admin_defaults_file"], "taking table checksums") as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
        status = dict(cur.fetchall())
        sums = table_checksums(cur, settings["database"])
        cur.execute("ROLLBACK")
    return dict(binlog_file=status["Binlog_snapshot_file"], binlog_pos=int(status["Binlog_snapshot_position"]),
                database=settings["database"], tables=sums)


def compare_checksums(expected, actual):
    problems = []
    for table, want in sorted(expected.items()):
        got = actual.get(table)
        if got is None:
            problems.append(f"table {table}: missing")
        elif got != want:
            problems.append(f"table {table}: {got['rows']} rows checksum {got['checksum']}, "
                            f"manifest {want['rows']} rows checksum {want['checksum']}")
    problems.extend(f"table {t}: not in the manifest" for t in sorted(set(actual) - set(expected)))
    return problems


# --------------------------------------------------------------------------- a restored server


def check_restored(settings, unix_socket=None, ack_log=None, ack_until=None):
    """Invariants (and acknowledged rows) in one snapshot, on a private server's socket or the running server."""
    with connection.cursor(settings["admin_defaults_file"], "checking the restored data",
                           database=settings["database"], unix_socket=unix_socket) as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        results, failures, ack = invariants.check_database(cur, None, ack_log, ack_until)
        cur.execute("ROLLBACK")
    return dict(ok=not failures, failures=failures, ack=ack, checks={name: r["ok"] for name, r in results.items()})
