"""Numbered SQL migrations: discovery, checksums, and the plan against what a database has applied.

A migration is a file `NNNN_name.sql` in the migrations directory. Statements end with `;` at
the end of a line; as in the mariadb client, a `DELIMITER xx` line changes that terminator (for
stored routines, whose bodies contain `;`). Applied migrations are recorded in `schema_migrations` with the file's
sha256; an applied file must never change (add a new migration instead).
"""

import hashlib
import os
import re

FILE_PATTERN = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

HISTORY_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version      INT UNSIGNED NOT NULL,
  name         VARCHAR(200) NOT NULL,
  checksum     CHAR(64)     NOT NULL,
  statements   INT UNSIGNED NOT NULL,
  applied_at   DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  execution_ms INT UNSIGNED NOT NULL,
  PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
""".strip()


class MigrationError(Exception):
    """The files and the database disagree in a way that must not be applied over."""


class Migration:
    def __init__(self, version, name, path, text):
        self.version = version
        self.name = name
        self.path = path
        self.text = text
        self._statements = None
        # Trailing white space does not count: a file read raw and one read by Ansible's file
        # lookup (which strips it) have the same checksum.
        self.checksum = hashlib.sha256(text.rstrip().encode("utf-8")).hexdigest()

    @property
    def filename(self):
        return os.path.basename(self.path)

    def statements(self):
        """The file's statements, split once."""
        if self._statements is None:
            self._statements = split_statements(self.text)
        return self._statements


def split_statements(text):
    """Split SQL into statements: the delimiter (`;`, or as set by `DELIMITER`) ends one at the end of a line.

    Lines that are only a `--` comment are dropped outside statements.
    """
    statements, current, delimiter = [], [], ";"
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("--")):
            continue
        if not current and stripped.upper().startswith("DELIMITER "):
            delimiter = stripped.split(None, 1)[1].strip()
            continue
        current.append(line.rstrip())
        if stripped.endswith(delimiter):
            statement = "\n".join(current).rstrip()[: -len(delimiter)].strip()
            if statement:
                statements.append(statement)
            current = []
    leftover = "\n".join(current).strip()
    if leftover:
        raise MigrationError(f"statement without a closing ';': {leftover[:80]!r}")
    return statements


def from_files(files, where):
    """Migrations from (filename, text) pairs, by version; fails on a misnamed file or a repeated version."""
    found = {}
    for filename, text in files:
        filename = os.path.basename(filename)
        match = FILE_PATTERN.match(filename)
        if not match:
            raise MigrationError(f"{filename}: migration files are named NNNN_lowercase_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{filename}: version {version} is also {found[version].filename}")
        found[version] = Migration(version, match.group(2), filename, text)
    if not found:
        raise MigrationError(f"no migrations (NNNN_name.sql) in {where}")
    return [found[v] for v in sorted(found)]


def discover(directory):
    """The migrations in a directory on this host."""
    if not os.path.isdir(directory):
        raise MigrationError(f"migrations directory {directory} does not exist")
    files = []
    for filename in sorted(os.listdir(directory)):
        if filename.endswith(".sql"):
            with open(os.path.join(directory, filename), encoding="utf-8") as handle:
                files.append((filename, handle.read()))
    return from_files(files, directory)


def plan(migrations, applied, target_version=None):
    """The migrations to apply, in order.

    applied: {version: (name, checksum)} from schema_migrations.
    Raises MigrationError when an applied file changed or the database is ahead of the files.
    """
    by_version = {m.version: m for m in migrations}
    ahead = sorted(set(applied) - set(by_version))
    if ahead:
        names = ", ".join(f"{v:04d}_{applied[v][0]}" for v in ahead)
        raise MigrationError(
            f"the database has applied migrations that are not in the files: {names}. "
            "The files are older than the database; deploy the newer files instead of applying old ones.")
    for version, (_name, checksum) in sorted(applied.items()):
        current = by_version[version]
        if current.checksum != checksum:
            raise MigrationError(
                f"{current.filename} was applied with checksum {checksum[:12]} but the file now has "
                f"{current.checksum[:12]}. An applied migration must not change: revert the file and add a new migration.")
    pending = [m for m in migrations if m.version not in applied]
    if target_version is not None:
        if target_version not in by_version:
            raise MigrationError(f"target_version {target_version} is not a migration in the files")
        if applied and max(applied) > target_version:
            raise MigrationError(
                f"target_version {target_version} is below the applied version {max(applied)}; migrations only go forward")
        pending = [m for m in pending if m.version <= target_version]
    gaps = [m.version for m in pending if applied and m.version < max(applied)]
    if gaps:
        raise MigrationError(
            f"migrations {gaps} are older than the applied version {max(applied)} but were never applied")
    return pending
