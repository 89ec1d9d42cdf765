"""The seed data set: deterministic, and balanced by construction."""

import csv
from collections import defaultdict

import pytest
from conftest import REPO
from stockdb import seeding

with (REPO / "files/data/kospi_2025.csv").open(encoding="utf-8") as handle:
    LISTING = list(csv.DictReader(handle))
USERS = [[f"사용자{n}", f"user{n}@example.org"] for n in range(1, 21)]


@pytest.fixture(scope="module")
def history():
    return seeding.build(USERS, LISTING, accounts=60, seed=7, holdings_per_account=3, historical_orders=3000)


def test_same_seed_same_rows_other_seed_other_rows():
    a = seeding.build(USERS, LISTING, accounts=30, seed=1)
    assert a == seeding.build(USERS, LISTING, accounts=30, seed=1)
    assert a["accounts"] != seeding.build(USERS, LISTING, accounts=30, seed=2)["accounts"]


def test_listing_gives_961_stocks_with_issued_shares():
    data = seeding.build(USERS, LISTING, accounts=5, seed=1)
    assert len(data["stocks"]) == 961 and len(data["stocks_inventory"]) == 961
    samsung = next(s for s in data["stocks"] if s[1] == "005930")
    assert samsung[2] == "삼성전자" and samsung[5] == 54_200
    issued = {row[0]: row[1] for row in data["stocks_inventory"]}
    assert issued[samsung[0]] == 323_562_214_210_000 // 54_200
    assert sum(1 for s in data["stocks"] if s[5] is None) == 3


def test_accounts_numbers_and_deposits():
    data = seeding.build(USERS, LISTING, accounts=100, seed=3)
    assert [a[2] for a in data["accounts"]][:3] == ["ACC-1001", "ACC-1002", "ACC-1003"]
    assert all(1_000_000 <= m[3] <= 10_000_000 for m in data["cash_movements"])
    assert all(1 <= a[1] <= len(USERS) for a in data["accounts"])


def test_history_has_the_requested_orders_and_consistent_trades(history):
    assert len(history["orders"]) == 3000
    orders = {o[0]: o for o in history["orders"]}
    filled = defaultdict(int)
    for trade in history["trades"]:
        _, sid, buy, sell, buyer, seller, price, qty, _ = trade
        assert orders[buy][3] == "BUY" and orders[sell][3] == "SELL"
        assert (orders[buy][1], orders[sell][1]) == (buyer, seller) and buyer != seller
        assert orders[buy][2] == orders[sell][2] == sid
        assert orders[buy][5] >= price and orders[sell][5] <= price
        filled[buy] += qty
        filled[sell] += qty
    assert all(o[7] == filled.get(o[0], 0) for o in history["orders"])
    assert {o[9] for o in history["orders"]} == {"FILLED", "CANCELLED"}


def test_cash_is_conserved_by_the_history(history):
    deposited = sum(m[3] for m in history["cash_movements"])
    assert sum(a[3] + a[4] for a in history["accounts"]) == deposited
    assert all(a[3] >= 0 for a in history["accounts"])


def test_shares_are_conserved_by_the_history(history):
    held = defaultdict(int)
    for _account, sid, qty, reserved, cost in history["positions"]:
        assert qty >= 0 and reserved == 0 and cost >= 0
        held[sid] += qty + reserved
    for sid, issued, available, _last, _traded in history["stocks_inventory"]:
        assert issued == available + held[sid]


def test_bad_listing_row_is_named():
    with pytest.raises(ValueError, match="'12345'"):
        seeding.build(USERS, [dict(LISTING[0], symbol="12345")], accounts=1, seed=1)
