"""The order engine (stored procedures place_order_ref, place_order and cancel_order) on a live server.

Runs in the scratch database `stockdb_scratch` that Molecule's side_effect seeds from
tests/data/awkward_listing.csv: stock 1 (00001A, reference 10,000 KRW, tick 10, limits 7,000 to
13,000), stock 2 (00002B), stock 3 (00003C, no price); accounts 1 to 3 hold stocks 1 and 2. The
book starts empty; the tests run in file order and build on each other.
"""

import shlex

import pytest
from stockdb.engine import TAKER_TRADES  # the project's package, on pytest's pythonpath (pyproject.toml)
from stockdb.invariants import CHECKS

DB = "stockdb_scratch"
ADMIN = "/etc/stockdb/admin.cnf"


def run(host, statements):
    """Run statements in one transaction as the admin account; return the CommandResult."""
    script = f"SET autocommit = 0; {statements}; COMMIT"
    return host.run(f"mariadb --defaults-extra-file={ADMIN} --batch --skip-column-names {DB} -e {shlex.quote(script)}")


def place(host, account, stock, side, kind, price, qty):
    price_sql = "NULL" if price is None else str(price)
    result = run(host, f"CALL place_order({account}, {stock}, '{side}', '{kind}', {price_sql}, {qty})")
    assert result.rc == 0, result.stderr
    order_id, status, filled, trades = result.stdout.strip().split("\t")
    return dict(order_id=int(order_id), status=status, filled=int(filled),
                trades=[] if trades == "NULL" else [int(t) for t in trades.split(",")])


def query(host, sql):
    result = run(host, sql)
    assert result.rc == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines()]


def trades_of(host, order_id):
    return query(host, f"SELECT buy_order_id, sell_order_id, price, qty FROM trades "
                       f"WHERE buy_order_id = {order_id} OR sell_order_id = {order_id} ORDER BY trade_id")


@pytest.fixture(scope="module")
def book(host):
    assert query(host, "SELECT COUNT(*) FROM orders") == [["0"]], "the scratch book must start empty"
    return {}


def test_orders_that_do_not_cross_rest(host, book):
    book["a1_ask_10000"] = place(host, 1, 1, "SELL", "LIMIT", 10_000, 10)
    book["a2_ask_9990"] = place(host, 2, 1, "SELL", "LIMIT", 9_990, 10)
    book["a1_ask_9990"] = place(host, 1, 1, "SELL", "LIMIT", 9_990, 5)
    assert [o["status"] for o in book.values()] == ["NEW", "NEW", "NEW"]


def test_a_buy_fills_best_price_first_then_oldest_and_is_refunded_the_difference(host, book):
    before = int(query(host, "SELECT balance FROM accounts WHERE account_id = 3")[0][0])
    order = place(host, 3, 1, "BUY", "LIMIT", 10_000, 12)
    assert (order["status"], order["filled"]) == ("FILLED", 12)
    assert trades_of(host, order["order_id"]) == [
        [str(order["order_id"]), str(book["a2_ask_9990"]["order_id"]), "9990", "10"],
        [str(order["order_id"]), str(book["a1_ask_9990"]["order_id"]), "9990", "2"],
    ]
    after = int(query(host, "SELECT balance FROM accounts WHERE account_id = 3")[0][0])
    assert before - after == 12 * 9_990  # held at 10,000, paid 9,990: the difference came back
    states = dict(query(host, f"SELECT order_id, CONCAT(status, ' ', filled_qty) FROM orders WHERE order_id IN "
                              f"({book['a2_ask_9990']['order_id']}, {book['a1_ask_9990']['order_id']})"))
    assert states == {str(book["a2_ask_9990"]["order_id"]): "FILLED 10",
                      str(book["a1_ask_9990"]["order_id"]): "PARTIAL 2"}


def test_own_orders_are_never_matched(host, book):
    order = place(host, 1, 1, "BUY", "LIMIT", 10_000, 3)
    assert (order["status"], order["filled"], order["trades"]) == ("NEW", 0, [])
    book["a1_bid"] = order


def test_market_order_takes_what_there_is_and_cancels_the_rest(host, book):
    order = place(host, 2, 1, "BUY", "MARKET", None, 100)
    assert (order["status"], order["filled"]) == ("CANCELLED", 13)
    assert [row[2:] for row in trades_of(host, order["order_id"])] == [["9990", "3"], ["10000", "10"]]
    assert query(host, f"SELECT reserved_amount FROM orders WHERE order_id = {order['order_id']}") == [["0"]]


def test_cancel_releases_the_reservation_once(host, book):
    bid = book["a1_bid"]["order_id"]
    reserved = query(host, "SELECT reserved FROM accounts WHERE account_id = 1")[0][0]
    assert reserved == "30000"
    assert run(host, f"CALL cancel_order({bid}, 1)").rc == 0
    assert query(host, "SELECT reserved FROM accounts WHERE account_id = 1") == [["0"]]
    again = run(host, f"CALL cancel_order({bid}, 1)")
    assert again.rc != 0 and "stockdb:not_open" in again.stderr


def test_a_sell_fills_the_highest_bid_and_both_sides_settle(host, book):
    bid_high = place(host, 2, 1, "BUY", "LIMIT", 10_050, 4)
    bid_low = place(host, 3, 1, "BUY", "LIMIT", 10_000, 4)
    cash = dict(query(host, "SELECT account_id, balance + reserved FROM accounts WHERE account_id IN (1, 2, 3)"))
    shares = dict(query(host, "SELECT account_id, qty + reserved_qty FROM positions WHERE stock_id = 1"))
    order = place(host, 1, 1, "SELL", "LIMIT", 10_000, 6)
    assert (order["status"], order["filled"]) == ("FILLED", 6)
    assert [row[:1] + row[2:] for row in trades_of(host, order["order_id"])] == [
        [str(bid_high["order_id"]), "10050", "4"], [str(bid_low["order_id"]), "10000", "2"]]
    now_cash = dict(query(host, "SELECT account_id, balance + reserved FROM accounts WHERE account_id IN (1, 2, 3)"))
    now_shares = dict(query(host, "SELECT account_id, qty + reserved_qty FROM positions WHERE stock_id = 1"))
    assert int(now_cash["1"]) - int(cash["1"]) == 4 * 10_050 + 2 * 10_000
    assert int(cash["2"]) - int(now_cash["2"]) == 4 * 10_050
    assert int(cash["3"]) - int(now_cash["3"]) == 2 * 10_000
    assert (int(shares["1"]) - int(now_shares["1"]), int(now_shares["2"]) - int(shares["2"]),
            int(now_shares["3"]) - int(shares["3"])) == (6, 4, 2)
    # The rest of the low bid still holds exactly its cash.
    assert query(host, f"SELECT status, reserved_amount FROM orders WHERE order_id = {bid_low['order_id']}") == [
        ["PARTIAL", str(2 * 10_000)]]
    assert run(host, f"CALL cancel_order({bid_low['order_id']}, 3)").rc == 0


def test_a_large_order_sweeps_every_crossing_order(host, book):
    """More crossing orders than any fixed depth: none may be left behind (the book never stays crossed)."""
    asks = [place(host, 1 + n % 2, 2, "SELL", "LIMIT", 2_345, 1)["order_id"] for n in range(40)]
    order = place(host, 3, 2, "BUY", "LIMIT", 2_345, 45)
    assert (order["status"], order["filled"], len(order["trades"])) == ("PARTIAL", 40, 40)
    assert query(host, f"SELECT COUNT(*) FROM orders WHERE order_id IN ({', '.join(map(str, asks))}) "
                       "AND status <> 'FILLED'") == [["0"]]
    assert run(host, f"CALL cancel_order({order['order_id']}, 3)").rc == 0


def test_an_order_carries_the_clients_reference(host, book):
    result = run(host, "CALL place_order_ref(2, 1, 'BUY', 'LIMIT', 9000, 1, 'it-ref-1')")
    assert result.rc == 0, result.stderr
    order_id = int(result.stdout.split("\t")[0])
    assert query(host, "SELECT order_id, status FROM orders WHERE client_ref = 'it-ref-1'") == [[str(order_id), "NEW"]]
    assert query(host, "SELECT COUNT(*) FROM orders WHERE client_ref IS NOT NULL") == [["1"]]  # place_order: NULL
    book["ref_bid"] = order_id


def test_an_order_found_by_its_reference_has_the_trades_it_made_when_placed(host, book):
    """What the simulator acknowledges for an in-doubt order it found: not the trades made later by newer orders."""
    ask = place(host, 1, 1, "SELL", "LIMIT", 9_500, 2)
    result = run(host, "CALL place_order_ref(3, 1, 'BUY', 'LIMIT', 9500, 3, 'it-ref-2')")
    assert result.rc == 0, result.stderr
    order_id, status, filled, trades = result.stdout.strip().split("\t")
    assert (status, filled) == ("PARTIAL", "2")
    later = place(host, 1, 1, "SELL", "LIMIT", 9_500, 1)  # takes the rest of the bid: a trade made later
    assert later["status"] == "FILLED" and trades_of(host, ask["order_id"])
    taker = query(host, TAKER_TRADES["BUY"].replace("%s", order_id))
    assert [row[0] for row in taker] == trades.split(",")
    assert len(trades_of(host, int(order_id))) == len(taker) + 1


@pytest.mark.parametrize(("call", "reason"), [
    ("CALL place_order_ref(2, 1, 'BUY', 'LIMIT', 9000, 1, 'it-ref-1')", "duplicate_client_ref"),
    ("CALL place_order(1, 1, 'BUY', 'LIMIT', 10000, 0)", "non_positive_qty"),
    ("CALL place_order(1, 1, 'BUY', 'LIMIT', 10000, -5)", "non_positive_qty"),
    ("CALL place_order(1, 1, 'BUY', 'LIMIT', 0, 5)", "non_positive_price"),
    ("CALL place_order(1, 1, 'BUY', 'LIMIT', 13010, 5)", "outside_price_limit"),
    ("CALL place_order(1, 1, 'BUY', 'LIMIT', 10001, 5)", "off_tick"),
    ("CALL place_order(1, 1, 'BUY', 'MARKET', 10000, 5)", "market_with_price"),
    ("CALL place_order(1, 1, 'HOLD', 'LIMIT', 10000, 5)", "bad_side"),
    ("CALL place_order(999, 1, 'BUY', 'LIMIT', 10000, 5)", "unknown_account"),
    ("CALL place_order(1, 999, 'BUY', 'LIMIT', 10000, 5)", "unknown_symbol"),
    ("CALL place_order(1, 3, 'BUY', 'MARKET', NULL, 5)", "not_tradeable"),
    ("CALL place_order(1, 1, 'BUY', 'LIMIT', 13000, 100000000)", "insufficient_funds"),
    ("CALL place_order(1, 1, 'SELL', 'LIMIT', 10000, 100000000)", "insufficient_shares"),
    ("CALL cancel_order(999999, NULL)", "unknown_order"),
])
def test_bad_requests_are_rejected_by_name_and_write_nothing(host, book, call, reason):
    state = ("SELECT (SELECT COUNT(*) FROM orders), (SELECT SUM(balance) FROM accounts), "
             "(SELECT SUM(reserved) FROM accounts), (SELECT SUM(qty) FROM positions), "
             "(SELECT SUM(reserved_qty) FROM positions), (SELECT COUNT(*) FROM trades)")
    before = query(host, state)
    result = run(host, call)
    assert result.rc != 0 and f"stockdb:{reason}" in result.stderr, result.stderr
    assert query(host, state) == before


def test_the_order_with_a_reference_cancels_like_any_other(host, book):
    assert run(host, f"CALL cancel_order({book['ref_bid']}, 2)").rc == 0


def test_cancelling_another_accounts_order_is_refused(host, book):
    resting = place(host, 2, 1, "SELL", "LIMIT", 10_100, 1)
    result = run(host, f"CALL cancel_order({resting['order_id']}, 1)")
    assert result.rc != 0 and "stockdb:not_owner" in result.stderr


@pytest.mark.parametrize(("name", "sql"), CHECKS, ids=[name for name, _ in CHECKS])
def test_invariants_hold_after_the_scenario(host, book, name, sql):
    assert query(host, sql) == [], f"{name} violated"
