"""The order engine's Python side: KRX price rules, and the calls of the engine's stored procedures.

The engine itself is `place_order_ref` (files/sql/0005_order_client_ref.sql; `place_order` is the
same without a client reference) and `cancel_order` (files/sql/0003_order_procedures.sql): one CALL
books an order completely (validation, the symbol lock, funds or shares, price-time matching,
trades, settlement of both sides, the tape), so an order is one round trip and one transaction.
`Engine` calls them and commits in the same round trip; a rejection (SQLSTATE 45000, message
`stockdb:<reason>`) becomes `Rejected`, with nothing written.

A client whose connection was lost during that round trip does not know whether the order was
committed. It finds out on a new connection: `find_order` looks the order up by the reference the
client gave it, `order_status` reads a cancelled order's status. Both first take a shared lock on
the row the lost transaction would hold (the symbol's inventory row, the order), so while that
transaction is still being committed or rolled back the answer waits for its outcome.

The price helpers mirror the procedure's rules for clients that need them (the simulator prices
its orders and estimates buying power with them; the seed prices its history).
"""

from collections import namedtuple

# KRX tick sizes (KOSPI, 2023 rules): (upper bound exclusive, tick). Same bands as place_order_ref's ELT/INTERVAL
# in files/sql/0005 (tests/unit/test_engine.py compares them).
TICKS = ((2_000, 1), (5_000, 5), (20_000, 10), (50_000, 50), (200_000, 100), (500_000, 500))
TOP_TICK = 1_000
# KRX daily price limit: ±30% of the reference price. Market buys reserve cash at the upper limit.
PRICE_LIMIT = 0.30
ER_SIGNAL_EXCEPTION = 1644
REJECTION_PREFIX = "stockdb:"

OrderResult = namedtuple("OrderResult", "order_id status filled_qty trade_ids")
# The trades an order made when it was placed: against orders that rested before it (smaller ids).
TAKER_TRADES = {
    "BUY": "SELECT trade_id FROM trades WHERE buy_order_id = %s AND sell_order_id < %s ORDER BY trade_id",
    "SELL": "SELECT trade_id FROM trades WHERE sell_order_id = %s AND buy_order_id < %s ORDER BY trade_id",
}


class Rejected(Exception):
    """A request refused with nothing written; `reason` is a short counter name."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def tick_size(price):
    for bound, tick in TICKS:
        if price < bound:
            return tick
    return TOP_TICK


def round_to_tick(price, up=False):
    """A valid KRX price: a multiple of its tick, at least one tick."""
    price = max(1, int(price))
    tick = tick_size(price)
    steps = -(-price // tick) if up else price // tick
    return max(tick, steps * tick)


def upper_limit(ref_price):
    return round_to_tick(int(ref_price) * (1 + PRICE_LIMIT), up=False)


def lower_limit(ref_price):
    return round_to_tick(int(ref_price) * (1 - PRICE_LIMIT), up=True)


def reserve_price(order_type, limit_price, ref_price):
    """Price per share a buy order holds cash at: its limit, or the daily upper limit for market orders."""
    return int(limit_price) if order_type == "LIMIT" else upper_limit(ref_price)


def rejection(exc):
    """The Rejected for a procedure's SIGNAL, or None for any other error."""
    args = getattr(exc, "args", ())
    if len(args) >= 2 and args[0] == ER_SIGNAL_EXCEPTION and str(args[1]).startswith(REJECTION_PREFIX):
        reason, _, detail = str(args[1])[len(REJECTION_PREFIX):].partition(":")
        return Rejected(reason, detail.strip())
    return None


class Engine:
    """Calls the engine's procedures on one DB-API connection (mysqlclient or PyMySQL) with multi-statements on."""

    def __init__(self, conn):
        self.conn = conn

    def _call(self, sql, args):
        """CALL and COMMIT in one round trip; return the procedure's row. Rejected on a SIGNAL."""
        with self.conn.cursor() as cur:
            try:
                cur.execute(sql + "; COMMIT", args)
                row = cur.fetchone()
                while cur.nextset():
                    pass
            except Exception as exc:
                rejected = rejection(exc)
                if rejected is not None:
                    raise rejected from exc
                raise
        return row

    def place(self, account_id, stock_id, side, order_type, price, qty, client_ref=None):
        """Book and commit one order, with the client's unique reference when given."""
        order_id, status, filled, trades = self._call("CALL place_order_ref(%s, %s, %s, %s, %s, %s, %s)",
                                                      (account_id, stock_id, side, order_type, price, qty, client_ref))
        return OrderResult(int(order_id), status, int(filled), [int(t) for t in trades.split(",")] if trades else [])

    def cancel(self, order_id, account_id=None):
        """Cancel an open order (of that account, when given) and commit."""
        self._call("CALL cancel_order(%s, %s)", (order_id, account_id))
        return OrderResult(order_id, "CANCELLED", None, [])

    def find_order(self, client_ref, stock_id):
        """The committed order placed with client_ref, or None; commits.

        The result has the order's status and filled quantity as they are now, and the trades it made
        when it was placed (those with an older order: later ones were made by newer orders taking it).
        The shared lock on the symbol's inventory row waits for a place_order of that symbol still in progress.
        """
        with self.conn.cursor() as cur:
            cur.execute("SELECT stock_id FROM stocks_inventory WHERE stock_id = %s LOCK IN SHARE MODE", (stock_id,))
            cur.fetchall()
            cur.execute("SELECT order_id, status, filled_qty, side FROM orders WHERE client_ref = %s", (client_ref,))
            row = cur.fetchone()
            trades = []
            if row is not None:
                cur.execute(TAKER_TRADES[row[3]], (row[0], row[0]))
                trades = [int(r[0]) for r in cur.fetchall()]
        self.conn.commit()
        return None if row is None else OrderResult(int(row[0]), row[1], int(row[2]), trades)

    def order_status(self, order_id):
        """The committed status of an order (None when there is none); commits.

        The shared lock on the order's row waits for a cancel_order of it still in progress.
        """
        with self.conn.cursor() as cur:
            cur.execute("SELECT status FROM orders WHERE order_id = %s LOCK IN SHARE MODE", (order_id,))
            row = cur.fetchone()
        self.conn.commit()
        return None if row is None else row[0]
