"""The trade simulator: N client processes placing orders and cancels through the engine.

Each client has its own connection, random stream (seed + client number) and share of the accounts;
it places limit and market buy/sell orders around the reference prices of the most valuable
listings, within its accounts' buying power and holdings as it last read them, cancels some of its
open orders, and sends a small share of deliberately bad orders (unknown account or symbol, zero
quantity, non-positive price) that must be rejected. Deadlocks and lock-wait timeouts are retried a bounded
number of times. After each commit, the client appends the order and trade ids with the commit
time to the acknowledgement log, so a later drill can prove nothing acknowledged was lost.
"""

import math
import multiprocessing
import os
import random
import time
from datetime import datetime, timezone

from . import db
from .engine import Engine, Rejected, round_to_tick

MAX_RETRIES = 5
# placed: orders committed; cancels: cancel requests committed; cancelled: orders that ended cancelled
# (by a cancel request, or the unfilled rest of a market order).
COUNTERS = dict(placed=0, filled=0, partially_filled=0, resting=0, cancelled=0, cancels=0, rejected=0, trades=0,
                retries=0)


def percentile(sorted_values, share):
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class Universe:
    """What clients trade: the accounts and the active symbols with their reference prices."""

    def __init__(self, account_ids, symbols):
        self.account_ids = account_ids          # [account_id]
        self.symbols = symbols                  # [(stock_id, ref_price)]
        self.prices = dict(symbols)

    @classmethod
    def load(cls, conn, symbol_count):
        with conn.cursor() as cur:
            cur.execute("SELECT account_id FROM accounts WHERE status = 'ACTIVE' ORDER BY account_id")
            accounts = [row[0] for row in cur.fetchall()]
            cur.execute("SELECT s.stock_id, s.ref_price FROM stocks s JOIN stocks_inventory i USING (stock_id) "
                        "WHERE s.ref_price IS NOT NULL ORDER BY s.ref_price * i.issued_qty DESC, s.stock_id LIMIT %s",
                        (symbol_count,))
            symbols = [(row[0], int(row[1])) for row in cur.fetchall()]
        conn.commit()
        if not accounts or not symbols:
            raise ValueError("no accounts or no priced stocks: run playbooks/seed.yml first")
        return cls(accounts, symbols)


class Client:
    """One simulated client: a broker session for its own share of the accounts.

    It knows its accounts' buying power and holdings (read every REFRESH_S seconds, and lowered by
    its own orders in between), so it mostly sends orders that can succeed, as a trading front end
    would; the engine still checks everything, and a share of orders is malformed on purpose.
    """

    REFRESH_S = 1.0

    def __init__(self, number, conn, universe, accounts, rng, ack_fd, invalid_share, cancel_share, market_share):
        self.number = number
        self.conn = conn
        self.engine = Engine(conn)
        self.universe = universe
        self.accounts = accounts
        self.rng = rng
        self.ack_fd = ack_fd
        self.invalid_share = invalid_share
        self.cancel_share = cancel_share
        self.market_share = market_share
        self.open_orders = []
        self.cash = {}
        self.shares = {}
        self.refreshed = 0.0
        self.stats = dict(COUNTERS, rejections={}, errors={}, latencies=[])

    def refresh(self):
        """Re-read the buying power and holdings of this client's accounts (plain reads, no locks)."""
        marks = ", ".join(["%s"] * len(self.accounts))
        active = [sid for sid, _ in self.universe.symbols]
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT account_id, balance FROM accounts WHERE account_id IN ({marks})", self.accounts)  # noqa: S608
            self.cash = {a: int(b) for a, b in cur.fetchall()}
            cur.execute(f"SELECT account_id, stock_id, qty FROM positions WHERE qty > 0 AND account_id IN ({marks}) "  # noqa: S608
                        f"AND stock_id IN ({', '.join(['%s'] * len(active))})", self.accounts + active)
            self.shares = {}
            for account_id, stock_id, qty in cur.fetchall():
                self.shares.setdefault(account_id, {})[stock_id] = qty
        self.conn.commit()
        self.refreshed = time.monotonic()

    def next_request(self):
        rng, u = self.rng, self.universe
        if time.monotonic() - self.refreshed > self.REFRESH_S:
            self.refresh()
        if self.open_orders and rng.random() < self.cancel_share:
            # The oldest open order first, as a client whose order went stale would.
            order_id, account_id = self.open_orders.pop(0)
            return ("cancel", order_id, account_id)
        account_id = rng.choice(self.accounts)
        held = self.shares.get(account_id)
        order_type = "MARKET" if rng.random() < self.market_share else "LIMIT"
        if held and rng.random() < 0.5:
            side = "SELL"
            stock_id = rng.choice(sorted(held))
            ref = u.prices[stock_id]
            qty = min(held[stock_id], max(1, rng.randint(100_000, 1_000_000) // ref))
        else:
            side = "BUY"
            stock_id, ref = rng.choice(u.symbols)
            per_share = ref * 1.3 if order_type == "MARKET" else ref * 1.02
            affordable = int(self.cash.get(account_id, 0) // per_share)
            qty = min(affordable, max(1, rng.randint(100_000, 1_000_000) // ref))
            if qty < 1:  # no buying power left: try to sell something instead, else pick again next time
                return self.next_request() if held else ("skip",)
        price = None
        if order_type == "LIMIT":
            # Buyers bid a little above the reference, sellers ask a little below: most orders cross.
            drift = rng.gauss(0, 0.005) + (0.003 if side == "BUY" else -0.003)
            price = round_to_tick(ref * (1 + drift))
        if rng.random() < self.invalid_share:
            kind = rng.choice(("qty", "account", "symbol", "price"))
            if kind == "qty":
                qty = rng.choice((0, -qty))
            elif kind == "account":
                account_id = max(u.account_ids) + 1 + rng.randrange(1000)
            elif kind == "symbol":
                stock_id = 10_000_000 + rng.randrange(1000)
            else:
                order_type, price = "LIMIT", rng.choice((0, -ref))
        return ("order", account_id, stock_id, side, order_type, price, qty)

    def _after_order(self, request, result):
        """Lower this client's view of the account by what the order took."""
        _, account_id, stock_id, side, order_type, price, qty = request
        if account_id not in self.cash:
            return
        if side == "BUY":
            per_share = price if price is not None else self.universe.prices[stock_id] * 1.3
            self.cash[account_id] -= int(per_share * qty)
        else:
            held = self.shares.get(account_id, {})
            left = held.get(stock_id, 0) - qty
            if left > 0:
                held[stock_id] = left
            else:
                held.pop(stock_id, None)

    def _ack(self, kind, ident, trade_ids, status):
        """Append the committed request to the ack log: one JSON object per order, cancel and trade."""
        if self.ack_fd is None:
            return
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        tail = f'"committed_at": "{now}", "client": {self.number}}}\n'
        text = f'{{"kind": "{kind}", "id": {ident}, "status": "{status}", ' + tail
        text += "".join(f'{{"kind": "trade", "id": {t}, "order_id": {ident}, ' + tail for t in trade_ids)
        os.write(self.ack_fd, text.encode())

    def _count(self, bucket, key):
        self.stats[bucket][key] = self.stats[bucket].get(key, 0) + 1

    def run_one(self):
        request = self.next_request()
        if request[0] == "skip":
            return
        started = time.monotonic()
        for attempt in range(MAX_RETRIES + 1):
            try:
                if request[0] == "cancel":
                    result = self.engine.cancel(request[1], account_id=request[2])
                else:
                    result = self.engine.place(*request[1:])
                break
            except Rejected as rejected:  # the procedure rolled back already
                if request[0] == "cancel":  # filled or cancelled meanwhile: nothing to do
                    self._count("rejections", "cancel_" + rejected.reason)
                else:
                    self.stats["rejected"] += 1
                    self._count("rejections", rejected.reason)
                return
            except Exception as exc:  # noqa: BLE001 - classified below
                try:
                    self.conn.rollback()
                except Exception:  # noqa: BLE001,S110 - the connection may be gone
                    pass
                code = db.error_code(exc)
                if code in db.RETRYABLE_ERRORS and attempt < MAX_RETRIES:
                    self.stats["retries"] += 1
                    time.sleep(0.001 * (2 ** attempt) * (1 + self.rng.random()))
                    continue
                self._count("errors", f"{code or type(exc).__name__}")
                if code == db.ER_CONSTRAINT_FAILED or code is None:
                    raise
                return
        self.stats["latencies"].append((time.monotonic() - started) * 1000.0)
        if request[0] == "cancel":
            self.stats["cancels"] += 1
            self.stats["cancelled"] += 1
            self._ack("cancel", request[1], [], "CANCELLED")
            return
        self._after_order(request, result)
        self.stats["placed"] += 1
        self.stats["trades"] += len(result.trade_ids)
        if result.status == "FILLED":
            self.stats["filled"] += 1
        elif result.status == "PARTIAL":
            self.stats["partially_filled"] += 1
        elif result.status == "CANCELLED":
            self.stats["cancelled"] += 1
        if result.status in ("NEW", "PARTIAL"):
            self.stats["resting"] += 1
            self.open_orders.append((result.order_id, request[1]))
            del self.open_orders[:-200]
        self._ack("order", result.order_id, result.trade_ids, result.status)


def client_main(number, params, universe, deadline, quota, queue):
    """Entry point of one client process: run until the deadline or the quota, report stats."""
    stats = None
    try:
        conn = db.connect_fast(params, autocommit=False, multi_statements=True)
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        ack_fd = None
        if params.get("ack_log"):
            ack_fd = os.open(params["ack_log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        accounts = universe.account_ids[number::params["clients"]]
        client = Client(number, conn, universe, accounts, random.Random(params["seed"] * 1000 + number), ack_fd,
                        params["invalid_share"], params["cancel_share"], params["market_share"])
        stats = client.stats
        done = 0
        while time.monotonic() < deadline and (quota is None or done < quota):
            client.run_one()
            done += 1
        conn.close()
        if ack_fd is not None:
            os.close(ack_fd)
        queue.put((number, stats, None))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        queue.put((number, stats, f"{type(exc).__name__}: {exc}"))


def merge(all_stats):
    total = dict(COUNTERS, rejections={}, errors={})
    latencies = []
    for stats in all_stats:
        for key in COUNTERS:
            total[key] += stats[key]
        for bucket in ("rejections", "errors"):
            for k, v in stats[bucket].items():
                total[bucket][k] = total[bucket].get(k, 0) + v
        latencies.extend(stats["latencies"])
    latencies.sort()
    return total, latencies


def run(params):
    """Run the simulation; returns the result dict of the module."""
    conn = db.connect(params)
    try:
        universe = Universe.load(conn, params["symbols"])
    finally:
        conn.close()
    clients = params["clients"]
    quota = None
    if params.get("orders"):
        quota = -(-params["orders"] // clients)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    started = time.monotonic()
    deadline = started + params["duration"]
    processes = [ctx.Process(target=client_main, args=(n, params, universe, deadline, quota, queue), daemon=True)
                 for n in range(clients)]
    for p in processes:
        p.start()
    results, failures = [], []
    for _ in processes:
        number, stats, failure = queue.get(timeout=params["duration"] + 120)
        if stats is not None:
            results.append(stats)
        if failure:
            failures.append(f"client {number}: {failure}")
    for p in processes:
        p.join(timeout=10)
    elapsed = time.monotonic() - started
    total, latencies = merge(results)
    committed = total["placed"] + total["cancels"]
    return dict(
        clients=clients,
        duration_s=round(elapsed, 3),
        orders=dict(placed=total["placed"], filled=total["filled"], partially_filled=total["partially_filled"],
                    resting=total["resting"], cancelled=total["cancelled"], rejected=total["rejected"]),
        trades=total["trades"],
        orders_per_s=round(total["placed"] / elapsed, 1) if elapsed else 0.0,
        transactions_per_s=round(committed / elapsed, 1) if elapsed else 0.0,
        latency_ms=dict(p50=_round(percentile(latencies, 0.50)), p95=_round(percentile(latencies, 0.95)),
                        p99=_round(percentile(latencies, 0.99)), max=_round(latencies[-1] if latencies else None)),
        rejections=total["rejections"],
        errors=total["errors"],
        retries=total["retries"],
        failures=failures,
    )


def _round(value):
    return None if value is None else round(value, 3)
