"""Personal data: which columns hold it, how they are masked, and the reporting views that show them masked.

Customers' names and e-mail addresses (`users.name`, `users.email`) are personal data. Reporting tools and
analysts read the trading data through views in a database of their own (`<database>_report`): one view
per table, every column as it is, except the personal columns, which show masked. The reporting account
is granted SELECT on that database only (the mariadb role), so it never reads the tables themselves. A dump
for test environments applies the same masks (ops/dump.py).

Each mask is a SQL expression over the row that is unique per row (the e-mail column has a unique index,
so a masked dump loads as it is) and holds nothing of the original value.
"""

# table -> column -> SQL expression that replaces the column.
PERSONAL = {
    "users": {
        "name": "CONCAT('customer ', `user_id`)",
        "email": "CONCAT('user', `user_id`, '@masked.invalid')",
    },
}


def quote(name):
    return "`" + str(name).replace("`", "``") + "`"


def report_database(database):
    """The database of the reporting views of `database` (the mariadb role grants the reporting account on it)."""
    return f"{database}_report"


def view_select(database, table, columns):
    """SELECT of every column of a table, personal ones masked (under their own names)."""
    masks = PERSONAL.get(table, {})
    parts = [f"{masks[c]} AS {quote(c)}" if c in masks else quote(c) for c in columns]
    return f"SELECT {', '.join(parts)} FROM {quote(database)}.{quote(table)}"  # noqa: S608 - identifiers quoted


def mask_updates(database, tables):
    """UPDATE statements that mask the personal columns of those tables present (for a copy, never the server)."""
    return [f"UPDATE {quote(database)}.{quote(table)} SET "  # noqa: S608 - identifiers quoted, masks are constants
            + ", ".join(f"{quote(column)} = {expression}" for column, expression in PERSONAL[table].items())
            for table in sorted(PERSONAL) if table in tables]


def columns(cursor, database, kind="BASE TABLE"):
    """{table: [columns in order]} of the base tables (or with kind="VIEW", the views) of a database."""
    cursor.execute("SELECT c.TABLE_NAME, c.COLUMN_NAME FROM information_schema.COLUMNS c "
                   "JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME "
                   "WHERE c.TABLE_SCHEMA = %s AND t.TABLE_TYPE = %s ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION",
                   (database, kind))
    found = {}
    for table, column in cursor.fetchall():
        found.setdefault(table, []).append(column)
    return found


def definitions(cursor, report_db):
    """{view: its definition as the server keeps it} in the reporting database."""
    cursor.execute("SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s",
                   (report_db,))
    return dict(cursor.fetchall())


def unmasked(database, table, definition):
    """The personal columns a view's definition passes through as they are (the server writes a plain column
    as `db`.`table`.`column` AS `column`)."""
    return [c for c in PERSONAL.get(table, {}) if f"{quote(database)}.{quote(table)}.{quote(c)} AS {quote(c)}" in definition]


def view_statements(database, tables, views, view_definitions):
    """The statements that bring the reporting database in line with the tables (none when it is): the
    database, a view per table with its columns (personal ones masked), and no view without its table."""
    report_db = report_database(database)
    stale = sorted(t for t, cols in tables.items()
                   if views.get(t) != cols or unmasked(database, t, view_definitions.get(t, "")))
    gone = sorted(set(views) - set(tables))
    if not stale and not gone:
        return []
    statements = [f"CREATE DATABASE IF NOT EXISTS {quote(report_db)}"]
    statements += [f"DROP VIEW {quote(report_db)}.{quote(view)}" for view in gone]
    statements += [f"CREATE OR REPLACE SQL SECURITY DEFINER VIEW {quote(report_db)}.{quote(table)} AS "
                   + view_select(database, table, tables[table]) for table in stale]
    return statements
