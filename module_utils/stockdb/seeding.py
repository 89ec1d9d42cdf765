"""Deterministic generation of the seed data set (pure Python, no database).

Given the users (names and e-mails made with Faker ko_KR on the controller), the KOSPI listing
and a seed value, builds every row the seed loads: accounts ACC-1001… with 1,000,000–10,000,000
KRW deposited, the stocks and their inventory (issued shares = market cap / price), initial
holdings taken from the inventory so both sides can trade, and optionally a history of filled
and cancelled orders with their trades. Balances and holdings are computed by applying that
history, so every invariant holds on the loaded data.
"""

import random
from datetime import datetime, timedelta

from .engine import round_to_tick

# Issued shares for the listings without a price or market cap.
DEFAULT_ISSUED = 1_000_000
# Initial holdings are drawn from this many most valuable listings (the simulator trades the top 20
# by default, so every holding can be sold from the start).
HOLDING_POOL = 20
HISTORY_START = datetime(2024, 12, 1, 9, 0, 0)
HISTORY_SPAN_S = 30 * 24 * 3600


def stocks_from_rows(rows):
    """(stocks rows, issued shares by stock_id) from the listing rows (dicts of the CSV's columns)."""
    stocks, issued = [], {}
    for stock_id, row in enumerate(sorted(rows, key=lambda r: r["symbol"]), 1):
        symbol = row["symbol"].strip()
        if len(symbol) != 6:
            raise ValueError(f"symbol {symbol!r} is not 6 characters")
        price = int(row["ref_close_krw"]) if str(row.get("ref_close_krw") or "").strip() else None
        cap = int(row["market_cap_krw"]) if str(row.get("market_cap_krw") or "").strip() else None
        stocks.append((stock_id, symbol, row["name"], row.get("sector") or None, row.get("market") or "KOSPI", price))
        issued[stock_id] = max(1, cap // price) if price and cap else DEFAULT_ISSUED
    return stocks, issued


def build(users, listing, accounts, seed, holdings_per_account=5, historical_orders=0):
    """All seed rows as a dict of table -> list of tuples (column order as in LOAD_ORDER)."""
    rng = random.Random(seed)
    stocks, issued = stocks_from_rows(listing)
    price = {s[0]: s[5] for s in stocks}
    available = dict(issued)
    priced = sorted((sid for sid in price if price[sid]), key=lambda sid: (-price[sid] * issued[sid], sid))
    pool = priced[:HOLDING_POOL]

    user_rows = [(uid, name, email) for uid, (name, email) in enumerate(users, 1)]
    balance, deposits, account_rows = {}, [], []
    for n in range(1, accounts + 1):
        amount = rng.randint(1_000_000, 10_000_000)
        account_rows.append([n, rng.randint(1, len(users)), f"ACC-{1000 + n}"])
        balance[n] = amount
        deposits.append((n, n, "DEPOSIT", amount))

    holdings, cost = {}, {}
    for n in range(1, accounts + 1):
        for sid in rng.sample(pool, min(holdings_per_account, len(pool))):
            qty = max(1, rng.randint(1_000_000, 5_000_000) // price[sid])
            qty = min(qty, available[sid])
            if qty <= 0:
                continue
            available[sid] -= qty
            holdings[(n, sid)] = holdings.get((n, sid), 0) + qty
            cost[(n, sid)] = cost.get((n, sid), 0) + qty * price[sid]

    orders, trades, last_price, traded = [], [], {}, {}
    if historical_orders:
        _history(rng, historical_orders, accounts, priced[:200], price, balance, holdings, cost, orders, trades,
                 last_price, traded)

    return {
        "users": user_rows,
        "accounts": [(a, u, number, balance[a], 0) for a, u, number in account_rows],
        "cash_movements": deposits,
        "stocks": stocks,
        "stocks_inventory": [(sid, issued[sid], available[sid], last_price.get(sid), traded.get(sid, 0))
                             for sid, *_ in stocks],
        "positions": [(a, sid, qty, 0, cost[(a, sid)]) for (a, sid), qty in sorted(holdings.items())],
        "orders": orders,
        "trades": trades,
    }


def _history(rng, count, accounts, symbols, price, balance, holdings, cost, orders, trades, last_price, traded):
    """Filled buy/sell pairs (with their trade) and cancelled orders, applied to balances and holdings."""
    holders = {}
    for (a, sid) in holdings:
        holders.setdefault(sid, []).append(a)
    tradeable = [sid for sid in symbols if sid in holders]
    step = HISTORY_SPAN_S / max(1, count)
    clock = 0.0
    while len(orders) < count:
        clock += step * 2
        when = HISTORY_START + timedelta(seconds=int(clock))
        sid = rng.choice(tradeable)
        ref = price[sid]
        p = round_to_tick(ref * (1 + rng.gauss(0, 0.01)))
        # A cancelled order now and then, and always as the last one when a pair would not fit.
        if rng.random() < 0.2 or len(orders) == count - 1:
            a = rng.randint(1, accounts)
            side = rng.choice(("BUY", "SELL"))
            orders.append((len(orders) + 1, a, sid, side, "LIMIT", p, max(1, 500_000 // ref), 0, 0, "CANCELLED", when))
            continue
        seller = rng.choice(holders[sid])
        buyer = rng.randint(1, accounts)
        have = holdings.get((seller, sid), 0)
        if buyer == seller or have <= 0:
            continue
        qty = min(have, max(1, rng.randint(100_000, 1_000_000) // ref))
        value = qty * p
        if balance[buyer] < value:
            continue
        basis = cost[(seller, sid)]
        moved_cost = round(basis * qty / have)
        holdings[(seller, sid)] = have - qty
        cost[(seller, sid)] = basis - moved_cost
        holdings[(buyer, sid)] = holdings.get((buyer, sid), 0) + qty
        cost[(buyer, sid)] = cost.get((buyer, sid), 0) + value
        if buyer not in holders[sid]:
            holders[sid].append(buyer)
        balance[buyer] -= value
        balance[seller] += value
        buy_id, sell_id = len(orders) + 1, len(orders) + 2
        orders.append((buy_id, buyer, sid, "BUY", "LIMIT", p, qty, qty, 0, "FILLED", when))
        orders.append((sell_id, seller, sid, "SELL", "LIMIT", p, qty, qty, 0, "FILLED", when))
        trades.append((len(trades) + 1, sid, buy_id, sell_id, buyer, seller, p, qty, when))
        last_price[sid] = p
        traded[sid] = traded.get(sid, 0) + qty


# Table -> columns, in load order (parents before children).
LOAD_ORDER = (
    ("users", ("user_id", "name", "email")),
    ("accounts", ("account_id", "user_id", "account_number", "balance", "reserved")),
    ("cash_movements", ("movement_id", "account_id", "kind", "amount")),
    ("stocks", ("stock_id", "symbol", "name", "sector", "market", "ref_price")),
    ("stocks_inventory", ("stock_id", "issued_qty", "available_qty", "last_price", "traded_qty")),
    ("positions", ("account_id", "stock_id", "qty", "reserved_qty", "cost_basis")),
    ("orders", ("order_id", "account_id", "stock_id", "side", "order_type", "price", "qty", "filled_qty",
                "reserved_amount", "status", "created_at")),
    ("trades", ("trade_id", "stock_id", "buy_order_id", "sell_order_id", "buy_account_id", "sell_account_id", "price",
                "qty", "executed_at")),
)
