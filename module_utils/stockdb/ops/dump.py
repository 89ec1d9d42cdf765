"""A logical dump for test environments: the trading database as of a backup, customers' data masked.

Never taken from the live server: the backup (seal and files checked first) is restored into a private
scratch server as verification does, the personal columns are masked there (privacy.mask_updates, the
masks the reporting views use), and mariadb-dump writes the result. The scratch copy is removed in every
case; the dump is written to a temporary name and renamed only when complete.
"""

import os

from .. import privacy
from . import OpsError, catalogue, connection, host, mariabackup, packing, verification


def dump(settings, output, name=None, mask=True):
    """Write the dump of backup `name` (default the newest) to `output`; returns what was written."""
    output = os.path.abspath(output)
    if os.path.lexists(output):
        raise OpsError(f"{output} exists: give a new file name (a dump never replaces a file)")
    if not os.path.isdir(os.path.dirname(output)):
        raise OpsError(f"the directory of {output} does not exist")
    manifest = catalogue.find_backup(settings, name)
    chain = catalogue.chain_of(settings, manifest)
    problems = packing.chain_problems(settings, chain)
    if problems:
        raise OpsError(f"backup {manifest['name']} fails its checks, no dump written: " + "; ".join(problems))
    database = settings["database"]
    partial = output + ".partial"
    with verification.workspace(settings, f"dump-{manifest['name']}", chain, "the dump") as work:
        prepared = mariabackup.materialize(settings, chain, work)
        with verification.copy_server(settings, prepared, work) as server:
            listed = server.sql(f"SHOW FULL TABLES FROM {connection.identifier(database)}").splitlines()
            tables = [line.split("\t")[0] for line in listed if line.endswith("\tBASE TABLE")]
            masked = {}
            if mask:
                for statement in privacy.mask_updates(database, tables):
                    server.sql(statement)
                masked = {table: sorted(privacy.PERSONAL[table]) for table in privacy.PERSONAL if table in tables}
            try:
                with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
                    host.run(["mariadb-dump", f"--socket={server.socket}", "--user=root", "--single-transaction",
                              "--routines", "--triggers", "--hex-blob", "--databases", database], stdout=out)
                os.rename(partial, output)
            finally:
                if os.path.exists(partial):
                    os.unlink(partial)
    return dict(backup=manifest["name"], consistent_at=manifest["consistent_at"], output=output,
                bytes=os.path.getsize(output), tables=len(tables), masked=masked)
