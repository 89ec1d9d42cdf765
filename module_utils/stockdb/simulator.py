"""The trade simulator: N client processes placing orders and cancels through the engine.

Each client has its own connection, random stream (seed + client number) and share of the accounts;
it places limit and market buy/sell orders around the reference prices of the most valuable
listings, within its accounts' buying power and holdings as it last read them, cancels some of its
open orders, and sends a small share of deliberately bad orders (unknown account or symbol, zero
quantity, non-positive price) that must be rejected. Deadlocks and lock-wait timeouts are retried a bounded
number of times. After each commit, the client appends the order and trade ids with the commit
time and the request's latency to the acknowledgement log, so a later drill can prove nothing
acknowledged was lost and measure orders/s and latency from the log alone. Between orders, a share of
the requests (read_share) are a brokerage front end's reads (reads.py), timed apart from the orders.

Clients trade through faults until their deadline. Every error is counted by kind
(db.error_kind); a client whose connection is lost connects again with bounded exponential backoff
and jitter. A request whose connection was lost during the call that commits it is *in doubt*: it
may or may not have been committed. The client never acknowledges it on the spot; on its next
connection it looks the order up by the reference it gave it (orders.client_ref; a cancel by the
order's status) and acknowledges it only when it is there. Orders carry references
`<run id>-<client>-<sequence>`.
"""

import errno
import math
import multiprocessing
import os
import queue as queues
import random
import secrets
import time
from collections import namedtuple
from datetime import datetime, timezone

from . import db, reads
from .engine import Engine, Rejected, round_to_tick
from .stats import percentile

MAX_RETRIES = 5
RETRYABLE_KINDS = ("lock_wait_timeout", "deadlock")
# Reconnection: the wait before attempt n (from 0) is drawn from [c/2, c], c = min(max_backoff, BASE * 2**n).
BACKOFF_BASE_S = 0.05
# How long past the deadline a call may wait for the server's answer (the connection's read timeout).
READ_GRACE_S = 10
# How long past the deadline the parent waits for the clients' reports.
REPORT_GRACE_S = 120
# How often a client looks for the stop file, and how long it may go on looking up what is in doubt
# after the run ended (never past the deadline).
STOP_CHECK_S = 0.25
SETTLE_S = 10
# placed: orders committed; cancels: cancel requests committed; cancelled: orders that ended cancelled
# (by a cancel request, or the unfilled rest of a market order). in_doubt: requests whose commit
# outcome was unknown; found / not_found: of those, committed or not as looked up afterwards;
# unresolved: still in doubt at the deadline.
COUNTERS = dict(placed=0, filled=0, partially_filled=0, resting=0, cancelled=0, cancels=0, rejected=0, trades=0,
                retries=0, reconnects=0, in_doubt=0, found=0, not_found=0, unresolved=0)

# A request whose commit outcome is unknown, with what the client needs to look it up.
InDoubt = namedtuple("InDoubt", "request client_ref started")


class ConnectionGone(Exception):
    """The connection was lost and the client does not reconnect (reconnect off)."""


def backoff(attempt, max_backoff, rng):
    """Seconds to wait before reconnection attempt `attempt` (0, 1, ...): exponential up to max_backoff, jittered.

    The ceiling doubles from BACKOFF_BASE_S and stops at max_backoff; the wait is drawn from the
    upper half of it, so clients that lost the server together do not all come back together.
    """
    ceiling = min(max_backoff, BACKOFF_BASE_S * 2 ** min(attempt, 32))
    return ceiling / 2 + rng.random() * ceiling / 2


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

    `open_connection(seconds_left)` returns a new connection (READ COMMITTED, multi-statements on);
    the client calls it again whenever its connection is lost, until `deadline` (time.monotonic())
    or until `stop_file` exists.
    """

    REFRESH_S = 1.0

    def __init__(self, number, universe, accounts, rng, ack_fd, deadline, open_connection, run_id="",
                 invalid_share=0.0, cancel_share=0.0, market_share=0.0, reconnect=True, max_backoff=2.0,
                 stop_file=None, read_share=0.0):
        self.number = number
        self.universe = universe
        self.accounts = accounts
        self.rng = rng
        self.ack_fd = ack_fd
        self.deadline = deadline
        self.open_connection = open_connection
        self.run_id = run_id
        self.invalid_share = invalid_share
        self.cancel_share = cancel_share
        self.market_share = market_share
        self.read_share = read_share
        self.stock_ids = [sid for sid, _ in universe.symbols]
        self.reported = time.monotonic()  # the first daily report comes REPORT_EVERY_S after the start
        self.writes = 0  # order and cancel requests tried (the orders quota counts them, not the reads)
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.stop_file = stop_file
        self.stop_checked = 0.0
        self.stopped = False
        self.conn = None
        self.engine = None
        self.connected_before = False
        self.sequence = 0
        self.in_doubt = []
        self.open_orders = []
        self.cash = {}
        self.shares = {}
        self.refreshed = 0.0
        self.stats = dict(COUNTERS, rejections={}, errors={}, latencies=[], reads={}, read_latencies={})

    def over(self):
        """The deadline passed, or the stop file appeared (looked for at most every STOP_CHECK_S)."""
        now = time.monotonic()
        if now >= self.deadline:
            return True
        if self.stop_file and not self.stopped and now - self.stop_checked >= STOP_CHECK_S:
            self.stop_checked = now
            self.stopped = os.path.exists(self.stop_file)
        return self.stopped

    def settle(self, seconds=SETTLE_S):
        """After the run: look up what is still in doubt, for at most `seconds` and never past the deadline."""
        self.deadline = min(self.deadline, time.monotonic() + seconds)
        self.stop_file, self.stopped = None, False
        while self.in_doubt and time.monotonic() < self.deadline:
            self.step(resolve_only=True)

    # --- the connection ---------------------------------------------------------------------------

    def connect(self):
        """Connect (again), retrying with backoff until the run is over; False when it ended first."""
        attempt = 0
        while True:
            if self.over():
                return False
            left = self.deadline - time.monotonic()
            try:
                conn = self.open_connection(left)
                break
            except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
                kind = db.error_kind(exc)
                self._count("errors", kind)
                if not self.reconnect:
                    raise ConnectionGone(f"cannot connect ({kind}: {exc})") from exc
                time.sleep(min(backoff(attempt, self.max_backoff, self.rng), max(0.0, self.deadline - time.monotonic())))
                attempt += 1
        if self.connected_before:
            self.stats["reconnects"] += 1
        self.connected_before = True
        self.conn, self.engine = conn, Engine(conn)
        self.refreshed = 0.0  # the account view is read again on the new connection
        return True

    def close(self):
        conn, self.conn, self.engine = self.conn, None, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001,S110 - the connection may be gone already
                pass

    def _rollback(self):
        """Roll back the open transaction; False when the connection is not usable any more."""
        try:
            self.conn.rollback()
            return True
        except Exception:  # noqa: BLE001 - a broken connection is replaced by the caller
            return False

    def _fault(self, exc):
        """Count an error by kind; drop the connection when it is lost (or cannot even roll back)."""
        kind = db.error_kind(exc)
        self._count("errors", kind)
        if kind not in db.CONNECTION_KINDS and self.conn is not None and self._rollback():
            return
        self.close()
        if not self.reconnect:
            raise ConnectionGone(f"connection lost ({kind}: {exc})") from exc

    def step(self, resolve_only=False):
        """Connect if needed, settle what is in doubt, then one request (unless resolve_only).

        Returns False only when the run ended (deadline, stop file) while connecting. Faults are counted, never
        raised; with reconnect off, a lost connection raises ConnectionGone.
        """
        try:
            if self.conn is None and not self.connect():
                return False
            if self.in_doubt:
                self.resolve()
            if not resolve_only:
                if self.read_share and self.rng.random() < self.read_share:
                    self.read_one()
                else:
                    self.writes += 1
                    self.run_one()
        except ConnectionGone:
            raise
        except Exception as exc:  # noqa: BLE001 - classified and counted
            self._fault(exc)
        return True

    # --- the requests -----------------------------------------------------------------------------

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

    def _ack(self, kind, ident, trade_ids, status, latency_ms, client_ref=None, in_doubt=False):
        """Append a committed request to the ack log: one JSON object per order, cancel and trade.

        Order and cancel lines carry the request's latency (for an in-doubt request: until it was
        confirmed, and `"in_doubt": true`); order lines carry the client's reference.
        """
        if self.ack_fd is None:
            return
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        tail = f'"committed_at": "{now}", "client": {self.number}}}\n'
        fields = f'"client_ref": "{client_ref}", ' if client_ref else ""
        fields += f'"latency_ms": {latency_ms:.3f}, ' + ('"in_doubt": true, ' if in_doubt else "")
        text = f'{{"kind": "{kind}", "id": {ident}, "status": "{status}", {fields}' + tail
        text += "".join(f'{{"kind": "trade", "id": {t}, "order_id": {ident}, ' + tail for t in trade_ids)
        try:
            os.write(self.ack_fd, text.encode())
        except OSError as exc:  # e.g. its disk is full: committed, but not acknowledged (which is safe)
            self._count("errors", f"ack_log:{errno.errorcode.get(exc.errno, exc.errno)}")

    def _count(self, bucket, key):
        self.stats[bucket][key] = self.stats[bucket].get(key, 0) + 1

    def run_one(self):
        request = self.next_request()
        if request[0] == "skip":
            return
        client_ref = None
        if request[0] == "order":
            self.sequence += 1
            client_ref = f"{self.run_id}-{self.number}-{self.sequence}"
        started = time.monotonic()
        for attempt in range(MAX_RETRIES + 1):
            try:
                if request[0] == "cancel":
                    result = self.engine.cancel(request[1], account_id=request[2])
                else:
                    result = self.engine.place(*request[1:], client_ref=client_ref)
                break
            except Rejected as rejected:  # the procedure rolled back already
                if request[0] == "cancel":  # filled or cancelled meanwhile: nothing to do
                    self._count("rejections", "cancel_" + rejected.reason)
                else:
                    self.stats["rejected"] += 1
                    self._count("rejections", rejected.reason)
                return
            except Exception as exc:  # noqa: BLE001 - classified below
                kind = db.error_kind(exc)
                if kind in db.CONNECTION_KINDS or db.error_code(exc) is None:
                    # Lost during the call that commits (or failed in a way the server did not
                    # report): committed or not, nobody knows yet. Looked up on the next connection.
                    self.stats["in_doubt"] += 1
                    self.in_doubt.append(InDoubt(request, client_ref, started))
                    raise
                if kind not in RETRYABLE_KINDS or attempt == MAX_RETRIES or self.over():
                    raise  # the server refused it: not committed; counted by step()
                self._count("errors", kind)
                self.conn.rollback()
                self.stats["retries"] += 1
                time.sleep(0.001 * (2 ** attempt) * (1 + self.rng.random()))
        if request[0] == "cancel":
            self._cancelled(request, started)
        else:
            self._placed(request, result, started, client_ref)

    def read_one(self):
        """One read transaction of the front end (reads.READS): the daily report when it is due, else one by share."""
        now = time.monotonic()
        if now - self.reported >= reads.REPORT_EVERY_S:
            name, self.reported = reads.REPORT, now
        else:
            name = reads.draw(self.rng)
        reads.run(self.conn, name, reads.arguments(self.rng, self.accounts, self.stock_ids))
        self._count("reads", name)
        self.stats["read_latencies"].setdefault(name, []).append((time.monotonic() - now) * 1000.0)

    def _placed(self, request, result, started, client_ref, in_doubt=False):
        latency = (time.monotonic() - started) * 1000.0
        self.stats["latencies"].append(latency)
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
        self._ack("order", result.order_id, result.trade_ids, result.status, latency, client_ref, in_doubt)

    def _cancelled(self, request, started, in_doubt=False):
        latency = (time.monotonic() - started) * 1000.0
        self.stats["latencies"].append(latency)
        self.stats["cancels"] += 1
        self.stats["cancelled"] += 1
        self._ack("cancel", request[1], [], "CANCELLED", latency, in_doubt=in_doubt)

    def resolve(self):
        """Look up every in-doubt request: acknowledge what was committed, count what was not.

        An order is found by its reference; a cancel took effect when its order is CANCELLED (only
        this client cancels its accounts' orders), otherwise the order is open again for it.
        A lookup that fails leaves the request (and those after it) in doubt for the next step.
        """
        while self.in_doubt:
            request, client_ref, started = self.in_doubt[0]
            if request[0] == "order":
                found = self.engine.find_order(client_ref, request[2])
                if found is not None:
                    self._placed(request, found, started, client_ref, in_doubt=True)
            else:
                status = self.engine.order_status(request[1])
                found = status == "CANCELLED"
                if found:
                    self._cancelled(request, started, in_doubt=True)
                elif status in ("NEW", "PARTIAL"):
                    self.open_orders.append((request[1], request[2]))
            self.stats["found" if found else "not_found"] += 1
            self.in_doubt.pop(0)


def open_client_connection(params, seconds_left):
    """A simulator client's connection: READ COMMITTED, multi-statements, timeouts within the deadline."""
    timeout = max(1, math.ceil(seconds_left))
    conn = db.connect_fast(params, autocommit=False, multi_statements=True,
                           connect_timeout=min(params.get("connect_timeout") or 10, timeout),
                           read_timeout=timeout + READ_GRACE_S, write_timeout=timeout + READ_GRACE_S)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    except Exception:
        conn.close()
        raise
    return conn


def client_main(number, params, universe, deadline, quota, queue, run_id):
    """Entry point of one client process: run until the deadline, the quota or the stop file, report stats."""
    stats, failure, client = None, None, None
    try:
        ack_fd = None
        if params.get("ack_log"):
            ack_fd = os.open(params["ack_log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        accounts = universe.account_ids[number::params["clients"]]
        client = Client(number, universe, accounts, random.Random(params["seed"] * 1000 + number), ack_fd, deadline,
                        lambda left: open_client_connection(params, left), run_id=run_id,
                        invalid_share=params["invalid_share"], cancel_share=params["cancel_share"],
                        market_share=params["market_share"], reconnect=params.get("reconnect", True),
                        max_backoff=params.get("max_backoff") or 2.0, stop_file=params.get("stop_file"),
                        read_share=params.get("read_share") or 0.0)
        stats = client.stats
        while not client.over() and (quota is None or client.writes < quota):
            client.step()
        client.settle()
        client.close()
        if ack_fd is not None:
            os.close(ack_fd)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        failure = f"{type(exc).__name__}: {exc}"
    if client is not None:
        stats["unresolved"] = len(client.in_doubt)
    queue.put((number, stats, failure))


def merge(all_stats):
    """The clients' counters added up, and the order latencies sorted; total["read_latencies"] sorted per read."""
    total = dict(COUNTERS, rejections={}, errors={}, reads={}, read_latencies={})
    latencies = []
    for stats in all_stats:
        for key in COUNTERS:
            total[key] += stats[key]
        for bucket in ("rejections", "errors", "reads"):
            for k, v in stats.get(bucket, {}).items():
                total[bucket][k] = total[bucket].get(k, 0) + v
        latencies.extend(stats["latencies"])
        for name, values in stats.get("read_latencies", {}).items():
            total["read_latencies"].setdefault(name, []).extend(values)
    latencies.sort()
    for values in total["read_latencies"].values():
        values.sort()
    return total, latencies


def latency_figures(sorted_ms):
    """p50 / p95 / p99 / max of ascending latencies in ms (nulls when there are none)."""
    return dict(p50=_round(percentile(sorted_ms, 0.50)), p95=_round(percentile(sorted_ms, 0.95)),
                p99=_round(percentile(sorted_ms, 0.99)), max=_round(sorted_ms[-1] if sorted_ms else None))


def read_figures(total, elapsed):
    """The reads of a run: how many, per second, latency of all of them and of each read by name."""
    every = sorted(v for values in total["read_latencies"].values() for v in values)
    count = sum(total["reads"].values())
    return dict(total=count, per_s=round(count / elapsed, 1) if elapsed else 0.0, latency_ms=latency_figures(every),
                by_name={name: dict(count=total["reads"].get(name, 0),
                                    **latency_figures(total["read_latencies"].get(name, [])))
                         for name in reads.KINDS if total["reads"].get(name)})


def new_run_id():
    """A run's id for the order references: UTC start time and a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S") + secrets.token_hex(3)


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
    run_id = new_run_id()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    started = time.monotonic()
    deadline = started + params["duration"]
    processes = [ctx.Process(target=client_main, args=(n, params, universe, deadline, quota, queue, run_id),
                             daemon=True)
                 for n in range(clients)]
    for p in processes:
        p.start()
    results, failures, reported = [], [], set()
    while len(reported) < clients:
        try:
            number, stats, failure = queue.get(timeout=max(1.0, deadline + REPORT_GRACE_S - time.monotonic()))
        except queues.Empty:
            break
        reported.add(number)
        if stats is not None:
            results.append(stats)
        if failure:
            failures.append(f"client {number}: {failure}")
    failures.extend(f"client {n}: no report {REPORT_GRACE_S} s after the deadline; stopped"
                    for n in range(clients) if n not in reported)
    for p in processes:
        p.join(timeout=10)
        if p.is_alive():
            p.terminate()
    elapsed = time.monotonic() - started
    stop_file = params.get("stop_file")
    total, latencies = merge(results)
    committed = total["placed"] + total["cancels"]
    return dict(
        clients=clients,
        run_id=run_id,
        duration_s=round(elapsed, 3),
        orders=dict(placed=total["placed"], filled=total["filled"], partially_filled=total["partially_filled"],
                    resting=total["resting"], cancelled=total["cancelled"], rejected=total["rejected"]),
        trades=total["trades"],
        orders_per_s=round(total["placed"] / elapsed, 1) if elapsed else 0.0,
        transactions_per_s=round(committed / elapsed, 1) if elapsed else 0.0,
        latency_ms=latency_figures(latencies),
        reads=read_figures(total, elapsed),
        rejections=total["rejections"],
        errors=total["errors"],
        retries=total["retries"],
        reconnects=total["reconnects"],
        in_doubt=total["in_doubt"],
        resolved=dict(found=total["found"], not_found=total["not_found"]),
        unresolved=total["unresolved"],
        stopped_early=bool(stop_file) and os.path.exists(stop_file) and elapsed < params["duration"],
        failures=failures,
    )


def _round(value):
    return None if value is None else round(value, 3)
