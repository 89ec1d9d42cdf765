"""The operations code of a stockdb host: backups, the binlog archive, restores, verification, jobs.

One module per concern; a function lives in the module its name suggests:
  settings      the defaults, the JSON settings file the backup role renders, their validation
  host          running tools, the job lock, CPU/IO priorities, systemd units, disk space
  connection    MariaDB connections; driver errors become OpsError here
  catalogue     backup names, listing, chains, the backup for a point, retention, stale partials
  archive       binlog timelines, the archiver, archive status and gaps, the files a replay needs
  integrity     file hashes against a manifest, table checksums, invariants on a restored server
  packing       compression and encryption of a backup's files, and the reverse
  mariabackup   the hot copy, prepare, applying a chain of backups
  scratch       a private mariadbd (own socket, no TCP) and binlog replay into it
  backup        taking one backup and writing its manifest
  verification  restoring a backup into a scratch server and comparing it with its manifest
  restore       planning, executing and rolling back a restore over the live datadir
  jobs          the one job wrapper (lock, state, metrics, log, alert log) and the backup,
                verify and health jobs
  cli           the stockdb-ops command the systemd units start

The package imports itself only relatively, so it runs the same as ansible.module_utils.stockdb
inside Ansible modules and as `stockdb` on a host (roles/backup installs the whole package).
Standard library and PyMySQL only; the MariaDB tools do the heavy lifting.
"""


class OpsError(Exception):
    """An operation refused or failed; the message says what and why."""
