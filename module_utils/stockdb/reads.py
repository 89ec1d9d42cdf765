"""The read transactions of a brokerage front end: what a client looks at between two orders.

Real brokerage traffic is mostly reads (in TPC-E about three quarters of the transactions are
read-only). Each read here is one named statement, run by the simulator through the application
account as its own READ COMMITTED transaction (plain SELECTs, no locks), with its latency measured
apart from the orders'. They are written the way an application would first write them, against the
schema as it is: some are served by an index the schema has, some are not, and finding those is the
job of the query analysis (a digest report, then an index built online and measured before/after).

Every read takes one dict of arguments (`args`, made by `arguments()`) and binds what it needs by name.
"""

# name -> (share of the reads, SQL). The shares add up to 100; the daily report is not drawn by share but
# run by each client every REPORT_EVERY_S seconds, as a dashboard refreshes.
READS = {
    # The account's holdings valued at the last traded price (the reference price before any trade).
    "positions": (20, """
        SELECT p.stock_id, s.symbol, p.qty, p.cost_basis, COALESCE(i.last_price, s.ref_price) AS price,
               p.qty * COALESCE(i.last_price, s.ref_price) AS market_value
          FROM positions p
          JOIN stocks s ON s.stock_id = p.stock_id
          JOIN stocks_inventory i ON i.stock_id = p.stock_id
         WHERE p.account_id = %(account_id)s AND p.qty > 0
         ORDER BY market_value DESC"""),
    # Order status: the account's last 50 orders, newest first.
    "recent_orders": (20, """
        SELECT order_id, stock_id, side, order_type, price, qty, filled_qty, status, created_at
          FROM orders
         WHERE account_id = %(account_id)s
         ORDER BY created_at DESC
         LIMIT 50"""),
    # The account's orders still working (new or partly filled), newest first.
    "open_orders": (15, """
        SELECT order_id, stock_id, side, order_type, price, qty, filled_qty, status, created_at
          FROM orders
         WHERE account_id = %(account_id)s AND status IN ('NEW', 'PARTIAL')
         ORDER BY created_at DESC
         LIMIT 50"""),
    # The account's orders in the symbol on screen (a stock's page), newest first.
    "symbol_orders": (10, """
        SELECT order_id, side, order_type, price, qty, filled_qty, status, created_at
          FROM orders
         WHERE account_id = %(account_id)s AND stock_id = %(stock_id)s
         ORDER BY created_at DESC
         LIMIT 20"""),
    # The account's executions over the period (both sides), newest first: each side one range of its index on
    # (account, time), limited, then merged. Each trade names its accounts since migration 0007; before, this
    # joined every order the account ever placed to the trades (before/after in docs/tuning.md).
    "trade_history": (10, """
        (SELECT trade_id, executed_at, stock_id, 'BUY' AS side, price, qty
           FROM trades
          WHERE buy_account_id = %(account_id)s AND executed_at >= NOW() - INTERVAL 1 DAY
          ORDER BY executed_at DESC
          LIMIT 100)
        UNION ALL
        (SELECT trade_id, executed_at, stock_id, 'SELL' AS side, price, qty
           FROM trades
          WHERE sell_account_id = %(account_id)s AND executed_at >= NOW() - INTERVAL 1 DAY
          ORDER BY executed_at DESC
          LIMIT 100)
        ORDER BY executed_at DESC
        LIMIT 100"""),
    # Market watch: last price, change against the reference and volume of the client's watch list.
    "market_watch": (15, """
        SELECT s.symbol, s.name, i.last_price, s.ref_price, i.last_price - s.ref_price AS change_krw, i.traded_qty
          FROM stocks s
          JOIN stocks_inventory i ON i.stock_id = s.stock_id
         WHERE s.stock_id IN %(watch)s
         ORDER BY s.symbol"""),
    # Order book depth of one symbol: the best 5 price levels on each side, with the quantity still open.
    "order_book": (10, """
        (SELECT 'BUY' AS side, price, SUM(qty - filled_qty) AS open_qty, COUNT(*) AS orders
           FROM orders
          WHERE stock_id = %(stock_id)s AND side = 'BUY' AND is_open = 1 AND order_type = 'LIMIT'
          GROUP BY price ORDER BY price DESC LIMIT 5)
        UNION ALL
        (SELECT 'SELL' AS side, price, SUM(qty - filled_qty) AS open_qty, COUNT(*) AS orders
           FROM orders
          WHERE stock_id = %(stock_id)s AND side = 'SELL' AND is_open = 1 AND order_type = 'LIMIT'
          GROUP BY price ORDER BY price ASC LIMIT 5)"""),
    # The daily report: volume and VWAP of every stock traded since the start of the day.
    "daily_report": (0, """
        SELECT stock_id, COUNT(*) AS trades, SUM(qty) AS volume, ROUND(SUM(price * qty) / SUM(qty)) AS vwap
          FROM trades
         WHERE executed_at >= CURDATE()
         GROUP BY stock_id
         ORDER BY volume DESC"""),
}
KINDS = tuple(READS)
DRAWN = tuple(name for name, (share, _) in READS.items() if share > 0)
SHARES = tuple(READS[name][0] for name in DRAWN)
REPORT = "daily_report"
REPORT_EVERY_S = 30
WATCH_LIST = 10


def draw(rng):
    """The name of the next read, by the shares of READS."""
    return rng.choices(DRAWN, weights=SHARES)[0]


def arguments(rng, accounts, stock_ids):
    """The arguments a read may bind: one of the client's accounts, a symbol on screen, a watch list."""
    watch = rng.sample(stock_ids, min(WATCH_LIST, len(stock_ids)))
    return dict(account_id=rng.choice(accounts), stock_id=rng.choice(stock_ids), watch=tuple(watch))


def run(conn, name, args):
    """Run read `name` in its own transaction; the number of rows it returned."""
    with conn.cursor() as cur:
        cur.execute(READS[name][1], args)
        rows = len(cur.fetchall())
    conn.commit()
    return rows
