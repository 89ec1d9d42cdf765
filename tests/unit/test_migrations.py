"""Migration discovery and planning: order, checksums, refusals."""

import pytest
from conftest import REPO
from stockdb import migrations
from stockdb.migrations import MigrationError

FILES = [("0001_first.sql", "CREATE TABLE a (id INT);\n"), ("0002_second.sql", "-- two\nCREATE TABLE b (\n id INT\n);\n")]


def applied_from(ms):
    return {m.version: (m.name, m.checksum) for m in ms}


def test_statements_split_at_line_end_semicolons_and_drop_comments():
    text = "-- c\nCREATE TABLE x (\n  a VARCHAR(3) DEFAULT ';'\n);\n\nINSERT INTO x VALUES ('a;b');\n"
    assert migrations.split_statements(text) == ["CREATE TABLE x (\n  a VARCHAR(3) DEFAULT ';'\n)",
                                                 "INSERT INTO x VALUES ('a;b')"]


def test_unterminated_statement_is_refused():
    with pytest.raises(MigrationError, match="without a closing"):
        migrations.split_statements("CREATE TABLE x (a INT)\n")


def test_fresh_database_gets_everything_in_order():
    ms = migrations.from_files(reversed(FILES), "test")
    assert [m.version for m in migrations.plan(ms, {})] == [1, 2]


def test_up_to_date_database_gets_nothing():
    ms = migrations.from_files(FILES, "test")
    assert migrations.plan(ms, applied_from(ms)) == []


def test_changed_applied_file_is_refused_naming_it():
    ms = migrations.from_files(FILES, "test")
    applied = applied_from(ms)
    edited = migrations.from_files([FILES[0], ("0002_second.sql", FILES[1][1] + "-- edit\n")], "test")
    with pytest.raises(MigrationError, match="0002_second.sql was applied with checksum"):
        migrations.plan(edited, applied)


def test_database_ahead_of_the_files_is_refused():
    ms = migrations.from_files(FILES, "test")
    with pytest.raises(MigrationError, match="not in the files: 0002_second"):
        migrations.plan(ms[:1], applied_from(ms))


def test_target_version_and_its_limits():
    ms = migrations.from_files(FILES, "test")
    assert [m.version for m in migrations.plan(ms, {}, target_version=1)] == [1]
    with pytest.raises(MigrationError, match="not a migration"):
        migrations.plan(ms, {}, target_version=7)
    with pytest.raises(MigrationError, match="only go forward"):
        migrations.plan(ms, applied_from(ms), target_version=1)


def test_gap_before_the_applied_version_is_refused():
    ms = migrations.from_files(FILES + [("0003_third.sql", "SELECT 1;\n")], "test")
    applied = {3: ("third", ms[2].checksum), 1: ("first", ms[0].checksum)}
    with pytest.raises(MigrationError, match=r"\[2\] are older"):
        migrations.plan(ms, applied)


@pytest.mark.parametrize("name", ["1_short.sql", "0001-dash.sql", "0001_Upper.sql"])
def test_misnamed_files_are_refused(name):
    with pytest.raises(MigrationError, match="NNNN_lowercase_name.sql"):
        migrations.from_files([(name, "SELECT 1;\n")], "test")


def test_repeated_version_is_refused():
    with pytest.raises(MigrationError, match="version 1 is also"):
        migrations.from_files([("0001_a.sql", "SELECT 1;\n"), ("0001_b.sql", "SELECT 1;\n")], "test")


def test_the_project_migrations_parse():
    ms = migrations.discover(str(REPO / "files/sql"))
    assert [m.version for m in ms] == list(range(1, len(ms) + 1))
    assert all(m.statements() for m in ms)


def test_the_client_reference_migration_adds_the_column_and_keeps_place_order():
    ms = {m.version: m for m in migrations.discover(str(REPO / "files/sql"))}
    statements = ms[5].statements()
    assert [s.split("(")[0].split("\n")[0].strip() for s in statements] == [
        "ALTER TABLE orders", "DROP PROCEDURE place_order", "CREATE PROCEDURE place_order_ref",
        "CREATE PROCEDURE place_order"]
    assert "ADD COLUMN client_ref VARCHAR(64)" in statements[0] and "UNIQUE (client_ref)" in statements[0]
    assert "NOT NULL" not in statements[0].split("COMMENT")[0]  # nullable: orders placed before have none
