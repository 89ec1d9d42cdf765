-- Each trade names its buyer's and seller's account, indexed with the time, so an account's trades
-- over a period are two short index ranges (reads.py trade_history). Before, the read joined every
-- order the account ever placed to the trades (26,000 orders and 662 ms at the median for a heavy
-- account of the lab, 2026-12-05; docs/tuning.md "The trade history").
--
-- - trades.buy_account_id, trades.sell_account_id: the accounts of buy_order_id and sell_order_id,
--   written by place_order_ref with the trade (the procedure knows both: the taker's p_account, the
--   maker's from the book). No foreign keys: the orders' keys already tie a trade to its accounts, and
--   the invariant trades_agree_with_orders (module_utils/stockdb/invariants.py) checks the copies.
-- - ix_trades_buyer, ix_trades_seller: (account, executed_at).
-- - place_order_ref: as in 0005, the fills keep the maker's account for the trades' rows. It is
--   replaced in one statement (CREATE OR REPLACE): no call fails while it changes.
--
-- Online, in this order, while trading runs: the columns are added (instant; trades written by the
-- old procedure meanwhile have none), the procedure replaced, every trade without its accounts filled
-- in from its orders (in batches, below), then the columns made NOT NULL and indexed (INPLACE,
-- LOCK=NONE: the table is rebuilt, and stays writable). Every statement can run again: if a call of
-- the old procedure wrote a trade after the fill, the last ALTER fails on its NULL and schema.yml,
-- run again, fills it and finishes.

ALTER TABLE trades
  ADD COLUMN IF NOT EXISTS buy_account_id BIGINT UNSIGNED NULL COMMENT 'the account of buy_order_id'
    AFTER sell_order_id,
  ADD COLUMN IF NOT EXISTS sell_account_id BIGINT UNSIGNED NULL COMMENT 'the account of sell_order_id'
    AFTER buy_account_id,
  ALGORITHM=INSTANT;

DELIMITER //

CREATE OR REPLACE PROCEDURE place_order_ref(
  IN p_account BIGINT UNSIGNED, IN p_stock INT UNSIGNED, IN p_side VARCHAR(8),
  IN p_type VARCHAR(8), IN p_price DECIMAL(12,0), IN p_qty BIGINT,
  IN p_client_ref VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin)
  MODIFIES SQL DATA
  COMMENT 'Book one order by price-time priority, with the client''s reference; see 0005_order_client_ref.sql and 0007_trade_accounts.sql'
BEGIN
  DECLARE v_found INT UNSIGNED DEFAULT NULL;
  DECLARE v_ref, v_upper, v_lower, v_held_at, v_m_price, v_last, v_limit BIGINT DEFAULT NULL;
  DECLARE v_status VARCHAR(16) DEFAULT NULL;
  DECLARE v_balance BIGINT DEFAULT NULL;
  DECLARE v_held, v_m_left, v_take BIGINT DEFAULT NULL;
  DECLARE v_left, v_filled, v_rest BIGINT DEFAULT 0;
  DECLARE v_paid, v_value BIGINT DEFAULT 0;
  DECLARE v_order, v_m_order, v_m_account BIGINT UNSIGNED DEFAULT NULL;
  DECLARE v_trades, v_fills, v_fill TEXT DEFAULT NULL;
  DECLARE v_final VARCHAR(16);
  DECLARE v_tick INT;
  DECLARE v_done BOOL DEFAULT FALSE;
  -- The opposite side of the book, best price first, then oldest; never the taker's own orders.
  -- Every resting order has at least one share left, so p_qty of them always suffice.
  DECLARE asks CURSOR FOR
    SELECT order_id, account_id, price, qty - filled_qty FROM orders
    WHERE stock_id = p_stock AND side = 'SELL' AND is_open = 1 AND price <= COALESCE(p_price, v_upper)
      AND account_id <> p_account
    ORDER BY price, order_id LIMIT p_qty;
  DECLARE bids CURSOR FOR
    SELECT order_id, account_id, price, qty - filled_qty FROM orders
    WHERE stock_id = p_stock AND side = 'BUY' AND is_open = 1 AND price >= COALESCE(p_price, v_lower)
      AND account_id <> p_account
    ORDER BY price DESC, order_id LIMIT p_qty;
  DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_done = TRUE;
  -- A rejection ends the transaction here, releasing the locks taken so far, so the caller has
  -- nothing to roll back.
  DECLARE EXIT HANDLER FOR SQLSTATE '45000' BEGIN ROLLBACK; RESIGNAL; END;

  -- The shape of the request.
  IF p_side IS NULL OR p_side NOT IN ('BUY', 'SELL') THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:bad_side';
  END IF;
  IF p_type IS NULL OR p_type NOT IN ('LIMIT', 'MARKET') THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:bad_type';
  END IF;
  IF p_qty IS NULL OR p_qty <= 0 THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:non_positive_qty';
  END IF;
  IF p_type = 'LIMIT' AND (p_price IS NULL OR p_price <= 0) THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:non_positive_price';
  END IF;
  IF p_type = 'MARKET' AND p_price IS NOT NULL THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:market_with_price';
  END IF;
  -- A reference already used is refused before anything is locked (the unique key still stops a
  -- concurrent twin at the INSERT).
  IF p_client_ref IS NOT NULL AND EXISTS (SELECT 1 FROM orders WHERE client_ref = p_client_ref) THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:duplicate_client_ref';
  END IF;

  -- The symbol lock, with the taker's account and holding (locked too: settled at the end).
  SELECT i.stock_id, s.ref_price, a.status, a.balance, p.qty
    INTO v_found, v_ref, v_status, v_balance, v_held
    FROM stocks_inventory i JOIN stocks s ON s.stock_id = i.stock_id
    LEFT JOIN accounts a ON a.account_id = p_account
    LEFT JOIN positions p ON p.account_id = a.account_id AND p.stock_id = i.stock_id
    WHERE i.stock_id = p_stock FOR UPDATE;
  IF v_found IS NULL THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:unknown_symbol';
  END IF;
  IF v_ref IS NULL THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:not_tradeable';
  END IF;
  -- The daily price band: +-30% of the reference price, on the tick of each bound. KRX tick
  -- bands (KOSPI, 2023): below 2,000 KRW 1; 5,000 5; 20,000 10; 50,000 50; 200,000 100;
  -- 500,000 500; above 1,000 (engine.TICKS in Python).
  SET v_limit = FLOOR(v_ref * 1.3);
  SET v_tick = ELT(INTERVAL(v_limit, 2000, 5000, 20000, 50000, 200000, 500000) + 1, 1, 5, 10, 50, 100, 500, 1000);
  SET v_upper = FLOOR(v_limit / v_tick) * v_tick;
  SET v_limit = FLOOR(v_ref * 0.7);
  SET v_tick = ELT(INTERVAL(v_limit, 2000, 5000, 20000, 50000, 200000, 500000) + 1, 1, 5, 10, 50, 100, 500, 1000);
  SET v_lower = CEIL(v_limit / v_tick) * v_tick;
  IF p_type = 'LIMIT' AND (p_price > v_upper OR p_price < v_lower) THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:outside_price_limit';
  END IF;
  SET v_tick = ELT(INTERVAL(p_price, 2000, 5000, 20000, 50000, 200000, 500000) + 1, 1, 5, 10, 50, 100, 500, 1000);
  IF p_type = 'LIMIT' AND MOD(p_price, v_tick) <> 0 THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:off_tick';
  END IF;
  IF v_status IS NULL THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:unknown_account';
  END IF;
  IF v_status <> 'ACTIVE' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:account_not_active';
  END IF;

  -- The cash or the shares the order needs (held at the limit, or at the upper limit for market buys).
  IF p_side = 'BUY' THEN
    SET v_held_at = COALESCE(p_price, v_upper);
    IF v_balance < v_held_at * p_qty THEN
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:insufficient_funds';
    END IF;
  ELSE
    SET v_held_at = 0;
    IF COALESCE(v_held, 0) < p_qty THEN
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:insufficient_shares';
    END IF;
  END IF;

  -- Match by price, then time; settle each maker; keep the fills for the trades.
  SET v_left = p_qty;
  IF p_side = 'BUY' THEN OPEN asks; ELSE OPEN bids; END IF;
  fills: LOOP
    IF v_left = 0 THEN LEAVE fills; END IF;
    IF p_side = 'BUY' THEN
      FETCH asks INTO v_m_order, v_m_account, v_m_price, v_m_left;
    ELSE
      FETCH bids INTO v_m_order, v_m_account, v_m_price, v_m_left;
    END IF;
    IF v_done THEN LEAVE fills; END IF;
    SET v_take = LEAST(v_left, v_m_left), v_value = v_take * v_m_price;
    SET v_fills = CONCAT_WS(',', v_fills, CONCAT(v_m_order, ':', v_m_account, ':', v_m_price, ':', v_take));
    -- The maker: a resting buy holds cash at its own limit, which is the trade price.
    UPDATE orders SET filled_qty = filled_qty + v_take,
                      reserved_amount = reserved_amount - IF(p_side = 'SELL', v_value, 0),
                      status = IF(filled_qty = qty, 'FILLED', 'PARTIAL')
      WHERE order_id = v_m_order;
    IF p_side = 'BUY' THEN  -- the maker sold: deliver its reserved shares, credit its cash
      UPDATE positions SET cost_basis = cost_basis - ROUND(cost_basis * v_take / (qty + reserved_qty)),
                           reserved_qty = reserved_qty - v_take
        WHERE account_id = v_m_account AND stock_id = p_stock;
      UPDATE accounts SET balance = balance + v_value WHERE account_id = v_m_account;
    ELSE  -- the maker bought: pay from its reservation, credit its shares
      UPDATE accounts SET reserved = reserved - v_value WHERE account_id = v_m_account;
      INSERT INTO positions (account_id, stock_id, qty, cost_basis) VALUES (v_m_account, p_stock, v_take, v_value)
        ON DUPLICATE KEY UPDATE qty = qty + VALUES(qty), cost_basis = cost_basis + VALUES(cost_basis);
    END IF;
    SET v_left = v_left - v_take, v_filled = v_filled + v_take, v_paid = v_paid + v_value, v_last = v_m_price;
  END LOOP fills;
  IF p_side = 'BUY' THEN CLOSE asks; ELSE CLOSE bids; END IF;

  -- The taker's order with its outcome; market orders never rest: the unfilled rest is cancelled
  -- (immediate-or-cancel). v_rest: the shares a resting limit order still offers or bids for.
  SET v_final = CASE WHEN v_filled = p_qty THEN 'FILLED' WHEN p_type = 'MARKET' THEN 'CANCELLED'
                     WHEN v_filled > 0 THEN 'PARTIAL' ELSE 'NEW' END;
  SET v_rest = IF(v_final IN ('NEW', 'PARTIAL'), p_qty - v_filled, 0);
  INSERT INTO orders (client_ref, account_id, stock_id, side, order_type, price, qty, filled_qty, status,
                      reserved_amount)
    VALUES (p_client_ref, p_account, p_stock, p_side, p_type, p_price, p_qty, v_filled, v_final, v_held_at * v_rest);
  SET v_order = LAST_INSERT_ID();
  WHILE v_fills IS NOT NULL DO
    SET v_fill = SUBSTRING_INDEX(v_fills, ',', 1);
    SET v_fills = IF(LOCATE(',', v_fills) > 0, SUBSTRING(v_fills, LOCATE(',', v_fills) + 1), NULL);
    SET v_m_order = SUBSTRING_INDEX(v_fill, ':', 1),
        v_m_account = SUBSTRING_INDEX(SUBSTRING_INDEX(v_fill, ':', 2), ':', -1),
        v_m_price = SUBSTRING_INDEX(SUBSTRING_INDEX(v_fill, ':', 3), ':', -1),
        v_take = SUBSTRING_INDEX(v_fill, ':', -1);
    IF p_side = 'BUY' THEN
      INSERT INTO trades (stock_id, buy_order_id, sell_order_id, buy_account_id, sell_account_id, price, qty)
        VALUES (p_stock, v_order, v_m_order, p_account, v_m_account, v_m_price, v_take);
    ELSE
      INSERT INTO trades (stock_id, buy_order_id, sell_order_id, buy_account_id, sell_account_id, price, qty)
        VALUES (p_stock, v_m_order, v_order, v_m_account, p_account, v_m_price, v_take);
    END IF;
    SET v_trades = CONCAT_WS(',', v_trades, LAST_INSERT_ID());
  END WHILE;

  -- Settle the taker in one statement per row: what it paid or received, and what the rest holds.
  IF p_side = 'BUY' THEN
    IF v_filled > 0 OR v_rest > 0 THEN
      UPDATE accounts SET balance = balance - v_paid - v_held_at * v_rest, reserved = reserved + v_held_at * v_rest
        WHERE account_id = p_account;
    END IF;
    IF v_filled > 0 THEN
      INSERT INTO positions (account_id, stock_id, qty, cost_basis) VALUES (p_account, p_stock, v_filled, v_paid)
        ON DUPLICATE KEY UPDATE qty = qty + VALUES(qty), cost_basis = cost_basis + VALUES(cost_basis);
    END IF;
  ELSE
    IF v_filled > 0 OR v_rest > 0 THEN
      -- cost_basis first: it is computed from the holding before this order (qty + reserved_qty)
      UPDATE positions SET cost_basis = cost_basis - ROUND(cost_basis * v_filled / (qty + reserved_qty)),
                           qty = qty - v_filled - v_rest, reserved_qty = reserved_qty + v_rest
        WHERE account_id = p_account AND stock_id = p_stock;
    END IF;
    IF v_filled > 0 THEN
      UPDATE accounts SET balance = balance + v_paid WHERE account_id = p_account;
    END IF;
  END IF;
  IF v_filled > 0 THEN
    UPDATE stocks_inventory SET last_price = v_last, traded_qty = traded_qty + v_filled WHERE stock_id = p_stock;
  END IF;
  SELECT v_order AS order_id, v_final AS status, v_filled AS filled_qty, v_trades AS trade_ids;
END //

DELIMITER ;

-- The older trades, 5,000 at a time in trade_id order, each batch its own transaction: the rows of
-- orders it reads are share-locked only while one batch runs, so the engine (which updates resting
-- orders) waits milliseconds, not for the whole fill.
DELIMITER //

CREATE OR REPLACE PROCEDURE migration_0007_fill()
  MODIFIES SQL DATA
  COMMENT 'one-off: fills trades.buy_account_id and sell_account_id; dropped by 0007_trade_accounts.sql'
BEGIN
  DECLARE v_from, v_last BIGINT UNSIGNED DEFAULT 0;
  -- Up to the newest trade, then on while a trade past the last batch lacks its accounts: a call of
  -- the old procedure already running when it was replaced may have written its trade meanwhile.
  SELECT COALESCE(MAX(trade_id), 0) INTO v_last FROM trades;
  WHILE v_from < v_last DO
    UPDATE trades t
      JOIN orders b ON b.order_id = t.buy_order_id
      JOIN orders s ON s.order_id = t.sell_order_id
       SET t.buy_account_id = b.account_id, t.sell_account_id = s.account_id
     WHERE t.trade_id > v_from AND t.trade_id <= LEAST(v_from + 5000, v_last) AND t.buy_account_id IS NULL;
    SET v_from = LEAST(v_from + 5000, v_last);
    IF v_from = v_last THEN
      SELECT COALESCE(MAX(trade_id), 0) INTO v_last FROM trades WHERE trade_id > v_from AND buy_account_id IS NULL;
      SET v_last = GREATEST(v_last, v_from);
    END IF;
  END WHILE;
END //

DELIMITER ;

CALL migration_0007_fill();

DROP PROCEDURE migration_0007_fill;

ALTER TABLE trades
  MODIFY buy_account_id BIGINT UNSIGNED NOT NULL COMMENT 'the account of buy_order_id',
  MODIFY sell_account_id BIGINT UNSIGNED NOT NULL COMMENT 'the account of sell_order_id',
  ADD INDEX IF NOT EXISTS ix_trades_buyer (buy_account_id, executed_at),
  ADD INDEX IF NOT EXISTS ix_trades_seller (sell_account_id, executed_at),
  ALGORITHM=INPLACE, LOCK=NONE;
