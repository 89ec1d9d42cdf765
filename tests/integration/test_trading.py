"""The trading database after Molecule's side_effect (schema, seed, a short simulation).

Against the lab host, run playbooks/schema.yml, seed.yml and simulate.yml first.
"""

import csv
import sys

import pytest
from conftest import REPO, sql

sys.path.insert(0, str(REPO / "module_utils"))
from stockdb import reads  # noqa: E402 - after the path to the project's own code

ADMIN = "/etc/stockdb/admin.cnf"
LISTING = REPO / "files/data/kospi_2025.csv"
AWKWARD = REPO / "tests/data/awkward_listing.csv"


def rows(host, statement, database="stockdb"):
    result = host.run(f"mariadb --defaults-extra-file={ADMIN} --default-character-set=utf8mb4 --batch "
                      f"--skip-column-names --raw {database} -e \"{statement}\"")
    assert result.rc == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines()]


def test_schema_is_at_the_newest_migration(host):
    newest = max(int(p.name[:4]) for p in (REPO / "files/sql").glob("*.sql"))
    assert rows(host, "SELECT MAX(version) FROM schema_migrations") == [[str(newest)]]


def test_the_whole_kospi_listing_is_seeded_with_korean_names_intact(host):
    with LISTING.open(encoding="utf-8") as handle:
        listing = {r["symbol"]: r["name"] for r in csv.DictReader(handle)}
    stored = dict(rows(host, "SELECT symbol, name FROM stocks"))
    assert len(stored) == 961 == len(listing)
    assert stored == listing


def test_default_accounts_and_balances(host):
    numbers = [r[0] for r in rows(host, "SELECT account_number FROM accounts ORDER BY account_id")]
    assert numbers == [f"ACC-{n}" for n in range(1001, 1101)]
    low, high = rows(host, "SELECT MIN(amount), MAX(amount) FROM cash_movements WHERE kind = 'DEPOSIT'")[0]
    assert 1_000_000 <= int(low) <= int(high) <= 10_000_000


def test_simulation_left_every_kind_of_order(host):
    statuses = dict(rows(host, "SELECT status, COUNT(*) FROM orders GROUP BY status"))
    assert {"NEW", "FILLED", "CANCELLED"} <= set(statuses), statuses
    assert int(rows(host, "SELECT COUNT(*) FROM trades")[0][0]) > 0


@pytest.mark.parametrize("name", reads.KINDS)
def test_every_read_of_the_simulator_runs_through_the_application_account(host, name):
    account, stock = rows(host, "SELECT account_id, stock_id FROM orders GROUP BY account_id, stock_id "
                                "ORDER BY COUNT(*) DESC LIMIT 1")[0]
    watch = [r[0] for r in rows(host, "SELECT stock_id FROM stocks WHERE ref_price IS NOT NULL LIMIT 10")]
    statement = reads.READS[name][1] % dict(account_id=account, stock_id=stock, watch=f"({', '.join(watch)})")
    result = sql(host, f"USE stockdb; {statement}", defaults_file="/etc/stockdb/app.cnf")
    assert result.rc == 0, f"{name}: {result.stderr}"
    lines = result.stdout.splitlines()
    if name in ("recent_orders", "symbol_orders"):
        assert lines, f"{name} found no order of account {account} (stock {stock})"
    if name == "market_watch":
        assert len(lines) == len(watch), lines


@pytest.mark.parametrize("account", ["/etc/prometheus/mysqld-exporter.cnf"])
def test_monitoring_account_cannot_read_orders(host, account):
    denied = sql(host, "SELECT COUNT(*) FROM stockdb.orders", defaults_file=account)
    assert denied.rc != 0 and "denied" in denied.stderr


def test_application_account_cannot_change_the_schema(host):
    denied = sql(host, "ALTER TABLE stockdb.orders ADD COLUMN x INT", defaults_file="/etc/stockdb/app.cnf")
    assert denied.rc != 0 and "denied" in denied.stderr


def test_awkward_names_survive_the_seed_byte_for_byte(host):
    with AWKWARD.open(encoding="utf-8") as handle:
        expected = {r["symbol"]: (r["name"], r["sector"] or "NULL") for r in csv.DictReader(handle)}
    stored = {r[0]: (r[1], r[2]) for r in rows(host, "SELECT symbol, name, COALESCE(sector, 'NULL') FROM stocks",
                                               database="stockdb_scratch")}
    assert stored == expected
