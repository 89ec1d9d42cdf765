"""Personal data: the reporting views' statements and the masks (module_utils/stockdb/privacy.py)."""

from stockdb import privacy

TABLES = {"users": ["user_id", "name", "email", "created_at"], "orders": ["order_id", "user_id"]}


def definition(table, columns, masked=True):
    """A view definition as MariaDB keeps it (columns fully qualified)."""
    masks = privacy.PERSONAL.get(table, {}) if masked else {}
    parts = [f"concat(...) AS `{c}`" if c in masks else f"`stockdb`.`{table}`.`{c}` AS `{c}`" for c in columns]
    return "select " + ",".join(parts) + f" from `stockdb`.`{table}`"


def test_a_view_per_table_with_the_personal_columns_masked():
    statements = privacy.view_statements("stockdb", TABLES, {}, {})
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS `stockdb_report`"
    users = next(s for s in statements if "VIEW `stockdb_report`.`users`" in s)
    assert "CONCAT('user', `user_id`, '@masked.invalid') AS `email`" in users
    assert "CONCAT('customer ', `user_id`) AS `name`" in users
    assert "`user_id`, " in users and "`created_at` FROM `stockdb`.`users`" in users
    orders = next(s for s in statements if "VIEW `stockdb_report`.`orders`" in s)
    assert orders.endswith("AS SELECT `order_id`, `user_id` FROM `stockdb`.`orders`")
    assert all("SQL SECURITY DEFINER" in s for s in statements[1:])


def test_views_in_line_need_no_statement():
    views = dict(TABLES)
    definitions = {t: definition(t, c) for t, c in TABLES.items()}
    assert privacy.view_statements("stockdb", TABLES, views, definitions) == []


def test_a_changed_table_a_gone_table_and_an_unmasked_view_are_set_right():
    tables = dict(TABLES, orders=["order_id", "user_id", "side"])  # a migration added a column
    views = dict(TABLES, old=["x"])                                 # and dropped a table
    definitions = {"users": definition("users", TABLES["users"], masked=False), "orders": definition("orders", TABLES["orders"])}
    assert privacy.unmasked("stockdb", "users", definitions["users"]) == ["name", "email"]
    statements = privacy.view_statements("stockdb", tables, views, definitions)
    assert "DROP VIEW `stockdb_report`.`old`" in statements
    assert {s.split(" AS ")[0].split(".")[-1] for s in statements if s.startswith("CREATE OR REPLACE")} == {"`orders`", "`users`"}


def test_the_masks_update_only_the_personal_tables_present_and_quote_names():
    assert privacy.mask_updates("stockdb", ["orders"]) == []
    (update,) = privacy.mask_updates("stock`db", ["orders", "users"])
    assert update.startswith("UPDATE `stock``db`.`users` SET `name` = CONCAT('customer ', `user_id`), `email` = ")
    assert privacy.report_database("stockdb") == "stockdb_report"
