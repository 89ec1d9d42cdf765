"""The engine's Python side: KRX price rules and the mapping of the procedures' rejections.

Matching itself runs in the stored procedure place_order; tests/integration/test_engine.py drives it
through price-time priority, partial and market fills, self-trade prevention and every rejection.
"""

import re
from pathlib import Path

import pytest
from stockdb.engine import (
    TICKS,
    TOP_TICK,
    Rejected,
    lower_limit,
    rejection,
    reserve_price,
    round_to_tick,
    tick_size,
    upper_limit,
)


@pytest.mark.parametrize(("price", "tick"), [(1_999, 1), (2_000, 5), (19_990, 10), (20_000, 50), (199_900, 100),
                                             (200_000, 500), (499_500, 500), (500_000, 1_000), (1_234_000, 1_000)])
def test_krx_tick_sizes(price, tick):
    assert tick_size(price) == tick


SQL = Path(__file__).parents[2] / "files/sql"


@pytest.mark.parametrize("migration", ["0004_place_order_fewer_statements.sql", "0005_order_client_ref.sql"])
def test_the_procedure_uses_the_same_tick_bands(migration):
    """place_order(_ref) computes ticks inline as ELT(INTERVAL(x, bounds...) + 1, ticks...): same bands as TICKS."""
    uses = re.findall(r"ELT\(INTERVAL\(\w+, ([\d, ]+)\) \+ 1, ([\d, ]+)\)", (SQL / migration).read_text())
    assert len(uses) == 3
    for bounds, ticks in uses:
        assert [int(b) for b in bounds.split(",")] == [bound for bound, _ in TICKS]
        assert [int(t) for t in ticks.split(",")] == [tick for _, tick in TICKS] + [TOP_TICK]


def test_the_newest_place_order_is_the_old_one_with_a_client_reference():
    """0005 changes only the signature, the duplicate check and the INSERT; place_order keeps its six parameters."""
    def body(text, name):
        start = text.index(f"CREATE PROCEDURE {name}(")
        return text[start:text.index("END //", start)]

    old = body((SQL / "0004_place_order_fewer_statements.sql").read_text(), "place_order")
    new_text = (SQL / "0005_order_client_ref.sql").read_text()
    new = body(new_text, "place_order_ref")
    assert "IN p_client_ref VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin)" in new and "stockdb:duplicate_client_ref" in new
    assert "VALUES (p_client_ref, p_account" in new
    kept = [line for line in old.splitlines()[5:] if "INSERT INTO orders" not in line and "VALUES (p_account" not in line]
    assert all(line in new for line in kept)
    wrapper = body(new_text, "place_order")
    assert "IN p_qty BIGINT)" in wrapper
    assert "CALL place_order_ref(p_account, p_stock, p_side, p_type, p_price, p_qty, NULL)" in wrapper


def test_prices_round_to_a_valid_tick():
    assert round_to_tick(54_234) == 54_200
    assert round_to_tick(54_201, up=True) == 54_300
    assert round_to_tick(0) == 1
    assert all(round_to_tick(p) % tick_size(round_to_tick(p)) == 0 for p in range(1, 600_000, 997))


def test_daily_limits_are_thirty_percent_on_valid_ticks():
    assert upper_limit(54_200) == 70_400  # 70,460 rounded down to the 100 tick
    assert lower_limit(54_200) == 37_950  # 37,940 rounded up to the 50 tick
    assert reserve_price("MARKET", None, 54_200) == 70_400
    assert reserve_price("LIMIT", 55_000, 54_200) == 55_000


class FakeSignal(Exception):
    """Shaped like PyMySQL's error for a SIGNAL: (errno, message)."""


def test_procedure_signals_become_rejections_with_their_reason():
    rejected = rejection(FakeSignal(1644, "stockdb:insufficient_funds"))
    assert isinstance(rejected, Rejected) and rejected.reason == "insufficient_funds"
    assert rejection(FakeSignal(1644, "stockdb:outside_price_limit: 80000")).reason == "outside_price_limit"


def test_other_errors_are_not_rejections():
    assert rejection(FakeSignal(1213, "Deadlock found when trying to get lock")) is None
    assert rejection(FakeSignal(1644, "some other signal")) is None
    assert rejection(ValueError("x")) is None
