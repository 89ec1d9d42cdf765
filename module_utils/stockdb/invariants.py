"""The trading invariants, as read-only SQL checks, and the acknowledgement-log check.

Each check returns the violating rows (empty = holds). Names and queries:
  cash_conservation       total cash incl. reservations = total deposits - withdrawals
  cash_reservations       each account's reserved cash = what its open buy orders hold
  share_conservation      per stock: issued = unheld inventory + every position's shares incl. reserved
  share_reservations      each position's reserved shares = its open sell orders' remaining quantity
  non_negative            no negative balance, reservation, holding or inventory
  filled_equals_trades    each order's filled_qty = the sum of its trades
  trades_agree_with_orders  a trade's price is within both orders' limits; both orders are of the trade's stock
                          and side, and of its buyer's and seller's accounts
  legal_statuses          status agrees with filled_qty; market orders never rest; closed orders hold no cash
"""

# The tables the checks read (stockdb_check fails naming those missing: no schema applied yet).
TABLES = ("accounts", "cash_movements", "orders", "positions", "stocks_inventory", "trades")

CHECKS = (
    ("cash_conservation",
     "SELECT a.total AS account_cash, m.total AS deposited FROM "
     "(SELECT COALESCE(SUM(balance + reserved), 0) AS total FROM accounts) a, "
     "(SELECT COALESCE(SUM(amount), 0) AS total FROM cash_movements) m WHERE a.total <> m.total"),
    ("cash_reservations",
     "SELECT a.account_id, a.reserved, COALESCE(o.held, 0) AS open_buy_orders_hold FROM accounts a "
     "LEFT JOIN (SELECT account_id, SUM(reserved_amount) AS held FROM orders WHERE is_open = 1 AND side = 'BUY' "
     "GROUP BY account_id) o USING (account_id) WHERE a.reserved <> COALESCE(o.held, 0)"),
    ("share_conservation",
     "SELECT i.stock_id, i.issued_qty, i.available_qty, COALESCE(p.held, 0) AS held_by_accounts FROM stocks_inventory i "
     "LEFT JOIN (SELECT stock_id, SUM(qty + reserved_qty) AS held FROM positions GROUP BY stock_id) p USING (stock_id) "
     "WHERE i.issued_qty <> i.available_qty + COALESCE(p.held, 0)"),
    ("share_reservations",
     "SELECT p.account_id, p.stock_id, p.reserved_qty, COALESCE(o.open_qty, 0) AS open_sell_orders FROM positions p "
     "LEFT JOIN (SELECT account_id, stock_id, SUM(qty - filled_qty) AS open_qty FROM orders "
     "WHERE is_open = 1 AND side = 'SELL' GROUP BY account_id, stock_id) o USING (account_id, stock_id) "
     "WHERE p.reserved_qty <> COALESCE(o.open_qty, 0)"),
    ("non_negative",
     "SELECT 'account' AS kind, account_id AS id, balance AS value FROM accounts WHERE balance < 0 OR reserved < 0 "
     "UNION ALL SELECT 'position', account_id, qty FROM positions WHERE qty < 0 OR reserved_qty < 0 "
     "UNION ALL SELECT 'inventory', stock_id, available_qty FROM stocks_inventory WHERE available_qty < 0"),
    ("filled_equals_trades",
     "SELECT o.order_id, o.filled_qty, COALESCE(t.traded, 0) AS traded FROM orders o LEFT JOIN "
     "(SELECT order_id, SUM(qty) AS traded FROM (SELECT buy_order_id AS order_id, qty FROM trades "
     "UNION ALL SELECT sell_order_id, qty FROM trades) x GROUP BY order_id) t USING (order_id) "
     "WHERE o.filled_qty <> COALESCE(t.traded, 0)"),
    ("trades_agree_with_orders",
     "SELECT t.trade_id, t.price, b.price AS buy_limit, s.price AS sell_limit, t.buy_account_id, "
     "b.account_id AS buy_order_account, t.sell_account_id, s.account_id AS sell_order_account FROM trades t "
     "JOIN orders b ON b.order_id = t.buy_order_id JOIN orders s ON s.order_id = t.sell_order_id "
     "WHERE b.side <> 'BUY' OR s.side <> 'SELL' OR b.stock_id <> t.stock_id OR s.stock_id <> t.stock_id "
     "OR (b.price IS NOT NULL AND t.price > b.price) OR (s.price IS NOT NULL AND t.price < s.price) "
     "OR t.buy_account_id <> b.account_id OR t.sell_account_id <> s.account_id"),
    ("legal_statuses",
     "SELECT order_id, status, order_type, qty, filled_qty, reserved_amount FROM orders WHERE "
     "(status = 'NEW' AND filled_qty <> 0) OR (status = 'PARTIAL' AND NOT (filled_qty > 0 AND filled_qty < qty)) "
     "OR (status = 'FILLED' AND filled_qty <> qty) OR (status = 'CANCELLED' AND filled_qty >= qty) "
     "OR (order_type = 'MARKET' AND is_open = 1) OR (is_open = 0 AND reserved_amount <> 0)"),
)

SAMPLE_ROWS = 10


def run_checks(cursor, names=None):
    """Run the checks; returns {name: {"ok": bool, "violations": n, "sample": [rows as dicts]}}."""
    results = {}
    for name, sql in CHECKS:
        if names and name not in names:
            continue
        cursor.execute(sql)
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        results[name] = dict(ok=not rows, violations=len(rows),
                             sample=[dict(zip(columns, (_plain(v) for v in row))) for row in rows[:SAMPLE_ROWS]])
    return results


def read_ack_log(path, until=None):
    """What an ack log acknowledged, optionally up to a time.

    Lines are JSON objects with kind (order, cancel, trade), id, status and committed_at
    ('YYYY-MM-DD HH:MM:SS.ffffff', UTC); the simulator adds client, latency_ms, an order's
    client_ref, and `"in_doubt": true` on an order or cancel acknowledged only after it was looked up
    (its connection was lost while it was committed; committed_at is then the time it was found).
    Returns a dict: order and trade ids, `terminal` {order_id: FILLED or CANCELLED} for orders
    acknowledged in a final state (a cancel acknowledges CANCELLED), the lines read, the lines
    after `until`, and the in-doubt acknowledgements among those up to `until`.
    """
    import json

    ack = dict(orders=set(), trades=set(), terminal={}, lines=0, after=0, in_doubt=0)
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from exc
            ack["lines"] += 1
            if until is not None and entry["committed_at"] > until:
                ack["after"] += 1
                continue
            if entry["kind"] in ("order", "cancel"):
                ack["orders"].add(int(entry["id"]))
                ack["in_doubt"] += entry.get("in_doubt") is True
                if entry.get("status") in ("FILLED", "CANCELLED"):
                    ack["terminal"][int(entry["id"])] = entry["status"]
            elif entry["kind"] == "trade":
                ack["trades"].add(int(entry["id"]))
    return ack


def _chunks(ids, size=5000):
    ids = sorted(ids)
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def status_mismatches(cursor, terminal):
    """Orders acknowledged as FILLED or CANCELLED that the database shows otherwise: [(id, acked, actual)]."""
    wrong = []
    for part in _chunks(terminal):
        cursor.execute(f"SELECT order_id, status FROM orders WHERE order_id IN ({', '.join(['%s'] * len(part))})",  # noqa: S608
                       part)
        wrong.extend((oid, terminal[oid], status) for oid, status in cursor.fetchall() if status != terminal[oid])
    return sorted(wrong)


def missing_ids(cursor, table, column, ids):
    """The ids of `ids` that are not in table.column."""
    found = set()
    for part in _chunks(ids):
        cursor.execute(f"SELECT {column} FROM {table} WHERE {column} IN ({', '.join(['%s'] * len(part))})",  # noqa: S608
                       part)
        found.update(row[0] for row in cursor.fetchall())
    return sorted(set(ids) - found)


def summary(results):
    """One line per failed check naming the first violating rows."""
    lines = []
    for name, result in results.items():
        if not result["ok"]:
            lines.append(f"{name}: {result['violations']} violation(s), e.g. {result['sample'][:3]}")
    return lines


def check_database(cursor, names=None, ack_log=None, ack_until=None):
    """Every invariant (or `names`) and, with an ack log, every acknowledged row, in the caller's transaction.

    Returns (results, failures, ack): per-check results, one line per failure (empty = all hold),
    and the ack-log summary (None without an ack log). Raises ValueError/KeyError for an unreadable ack log.
    """
    results = run_checks(cursor, names)
    failures = summary(results)
    if not ack_log:
        return results, failures, None
    acked = read_ack_log(ack_log, ack_until)
    missing_orders = missing_ids(cursor, "orders", "order_id", acked["orders"])
    missing_trades = missing_ids(cursor, "trades", "trade_id", acked["trades"])
    reverted = status_mismatches(cursor, acked["terminal"])
    ack = dict(lines=acked["lines"], lines_after_until=acked["after"], orders=len(acked["orders"]),
               trades=len(acked["trades"]), final_statuses=len(acked["terminal"]), in_doubt_confirmed=acked["in_doubt"],
               missing_orders=missing_orders[:100], missing_trades=missing_trades[:100],
               reverted_statuses=[list(r) for r in reverted[:100]],
               missing=len(missing_orders) + len(missing_trades) + len(reverted))
    if missing_orders or missing_trades:
        failures.append(f"acknowledged but missing: {len(missing_orders)} orders "
                        f"(e.g. {missing_orders[:5]}), {len(missing_trades)} trades (e.g. {missing_trades[:5]})")
    if reverted:
        failures.append(f"acknowledged as filled or cancelled but not so now: {len(reverted)} orders "
                        f"(order, acknowledged, now: {reverted[:5]})")
    return results, failures, ack


def _plain(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is not None and type(value).__name__ == "Decimal":
        return int(value) if value == int(value) else float(value)
    return value
