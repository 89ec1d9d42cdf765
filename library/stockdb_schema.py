#!/usr/bin/python
"""Ansible module stockdb_schema: apply the numbered SQL migrations of the trading schema."""

DOCUMENTATION = r"""
---
module: stockdb_schema
short_description: Apply numbered SQL migrations to the stockdb database
description:
  - Takes C(NNNN_name.sql) migrations from O(migrations) (file contents sent from the controller,
    so check mode needs nothing on the host) or from O(migrations_dir) on the host, compares them with the
    C(schema_migrations) table and applies the pending ones in order, recording each with its
    sha256 checksum and execution time.
  - Refuses, changing nothing, when an applied migration's file has changed or when the database
    has applied a migration that is not among the files (the files are older than the database).
  - Supports check mode (returns the plan and the statements it would run) and diff mode.
  - MariaDB commits DDL implicitly; if a statement fails, the migration is not recorded and the
    error names the file and the statement.
options:
  migrations:
    description:
      - The migrations as a mapping of file name (C(NNNN_lowercase_name.sql)) to SQL text, for
        example read on the controller with the C(fileglob) and C(file) lookups. Statements end
        with C(;) at the end of a line. Mutually exclusive with O(migrations_dir).
    type: dict
  migrations_dir:
    description: Directory on the managed host holding the migration files. Mutually exclusive with O(migrations).
    type: path
  target_version:
    description: Apply migrations up to and including this version only. Default is all.
    type: int
  report_views:
    description:
      - After the migrations, keep the reporting views in line with the tables - in the database
        C(<database>_report), one view per table with every column, the personal ones (C(users.name),
        C(users.email)) masked; a view whose table is gone is dropped. The mariadb role grants the reporting
        account SELECT on that database only, so it never reads the tables themselves. Views are made again
        only when a table's columns changed or a personal column would show unmasked.
    type: bool
    default: true
extends_documentation_fragment:
  - stockdb_connection
author: stockdb
"""

EXAMPLES = r"""
- name: Ensure the trading schema is at the newest migration in files/sql
  vars:
    sql_files: "{{ query('ansible.builtin.fileglob', 'files/sql/*.sql') | sort }}"
  stockdb_schema:
    migrations: "{{ dict(sql_files | map('basename') | zip(query('ansible.builtin.file', *sql_files))) }}"

- name: The same from a directory on the host
  stockdb_schema:
    migrations_dir: /usr/local/share/stockdb/sql

- name: Apply migrations up to 0001 only
  stockdb_schema:
    migrations_dir: /usr/local/share/stockdb/sql
    target_version: 1
"""

RETURN = r"""
applied:
  description: Migrations applied by this run (or that would be, in check mode).
  returned: always
  type: list
  elements: dict
  sample: [{"version": 1, "name": "reference_tables", "checksum": "3f2a...", "statements": 5, "execution_ms": 120}]
statements:
  description: The SQL statements run (or that would be run, in check mode), in order.
  returned: always
  type: list
  elements: str
version:
  description: The schema version after this run (before, in check mode).
  returned: always
  type: int
  sample: 2
report_views:
  description: The statements that brought the reporting views in line (or would), empty when they were.
  returned: always
  type: list
  elements: str
pending:
  description: Versions still to apply after this run (non-empty only in check mode or with target_version).
  returned: always
  type: list
  elements: int
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import db, migrations, privacy


def read_applied(cursor):
    cursor.execute("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
    return {int(v): (name, checksum) for v, name, checksum in cursor.fetchall()}


def history_table_exists(cursor, database):
    cursor.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                   (database, "schema_migrations"))
    return cursor.fetchone()[0] == 1


def report_views(cursor, database, check_mode):
    """Bring the reporting views (privacy.report_database) in line with the tables; returns the statements run
    (or that would be). In check mode they are computed from the tables as they are before pending migrations."""
    report_db = privacy.report_database(database)
    statements = privacy.view_statements(database, privacy.columns(cursor, database),
                                         privacy.columns(cursor, report_db, "VIEW"), privacy.definitions(cursor, report_db))
    if not check_mode:
        for statement in statements:
            cursor.execute(statement)
    return statements


def apply_migration(cursor, migration):
    started = time.monotonic()
    statements = migration.statements()
    for number, statement in enumerate(statements, 1):
        try:
            cursor.execute(statement)
        except Exception as exc:  # noqa: BLE001 - reported with the statement that failed
            raise migrations.MigrationError(
                f"{migration.filename}, statement {number} of {len(statements)} failed: {exc}. "
                f"Statement: {statement[:200]}") from exc
    elapsed_ms = int((time.monotonic() - started) * 1000)
    cursor.execute(
        "INSERT INTO schema_migrations (version, name, checksum, statements, execution_ms) VALUES (%s, %s, %s, %s, %s)",
        (migration.version, migration.name, migration.checksum, len(statements), elapsed_ms))
    return dict(version=migration.version, name=migration.name, checksum=migration.checksum,
                statements=len(statements), execution_ms=elapsed_ms)


def run(module):
    params = module.params
    try:
        if params["migrations"] is not None:
            files = migrations.from_files(sorted(params["migrations"].items()), "migrations")
        else:
            files = migrations.discover(params["migrations_dir"])
        for migration in files:
            migration.statements()  # a malformed file fails before anything runs
    except migrations.MigrationError as exc:
        module.fail_json(msg=f"cannot read migrations: {exc}")

    conn = db.connect_or_fail(module, autocommit=True)
    try:
        with conn.cursor() as cursor:
            has_history = history_table_exists(cursor, params["database"])
            applied = read_applied(cursor) if has_history else {}
            try:
                pending = migrations.plan(files, applied, params["target_version"])
            except migrations.MigrationError as exc:
                module.fail_json(msg=f"refusing to migrate {params['database']}: {exc}",
                                 version=max(applied) if applied else 0)

            before = max(applied) if applied else 0
            statements = [] if has_history or not pending else [migrations.HISTORY_TABLE_DDL]
            for migration in pending:
                statements.extend(migration.statements())
            result = dict(
                changed=bool(pending),
                statements=statements,
                applied=[dict(version=m.version, name=m.name, checksum=m.checksum,
                              statements=len(m.statements()), execution_ms=0) for m in pending],
                version=before,
                pending=[m.version for m in pending],
                report_views=[],
                diff=dict(before=f"schema version {before}\n",
                          after=f"schema version {pending[-1].version if pending else before}\n"),
            )
            if pending and not module.check_mode:
                if not has_history:
                    cursor.execute(migrations.HISTORY_TABLE_DDL)
                done = []
                for migration in pending:
                    try:
                        done.append(apply_migration(cursor, migration))
                    except migrations.MigrationError as exc:
                        module.fail_json(msg=str(exc), applied=done,
                                         version=done[-1]["version"] if done else before)
                result.update(applied=done, version=done[-1]["version"], pending=[])
            if params["report_views"]:
                views = report_views(cursor, params["database"], module.check_mode)
                result.update(report_views=views, statements=result["statements"] + views,
                              changed=result["changed"] or bool(views))
            module.exit_json(**result)
    finally:
        conn.close()


def main():
    argument_spec = db.connection_argument_spec()
    argument_spec.update(
        migrations=dict(type="dict"),
        migrations_dir=dict(type="path"),
        target_version=dict(type="int"),
        report_views=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[("migrations", "migrations_dir")],
                           required_one_of=[("migrations", "migrations_dir")])
    run(module)


if __name__ == "__main__":
    main()
