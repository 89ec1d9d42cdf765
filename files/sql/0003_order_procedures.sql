-- The order engine as stored procedures: one CALL books an order (or a cancel) completely.
-- The application calls them and commits; it needs EXECUTE and nothing else to trade, and the
-- statements inside are parsed once per connection, not once per order.
--
-- place_order: validate; lock the symbol's inventory row (orders and cancels of one symbol are
-- booked one at a time) with the taker's account and holding; reserve the cash (at the limit, or
-- at the daily upper limit for market orders) or the shares; insert the order; match it against
-- the opposite side by price, then time (skipping the taker's own orders); for each fill insert
-- the trade and settle the maker; settle the taker (refund what was held above the trade prices,
-- cancel the unfilled rest of a market order); update the tape. Returns one row: order_id,
-- status, filled_qty, trade_ids (comma-separated). Rejects with SQLSTATE 45000 and a message
-- 'stockdb:<reason>', having rolled the transaction back: nothing written, no lock kept.
--
-- Prices follow KRX rules: a limit price is a multiple of its band's tick, within +-30% of the
-- reference price.

DELIMITER //

CREATE FUNCTION krx_tick(p_price DECIMAL(12,0)) RETURNS DECIMAL(12,0)
  DETERMINISTIC NO SQL
  COMMENT 'KRX tick size for a price (KOSPI, 2023 bands)'
BEGIN
  RETURN CASE WHEN p_price < 2000 THEN 1 WHEN p_price < 5000 THEN 5 WHEN p_price < 20000 THEN 10
              WHEN p_price < 50000 THEN 50 WHEN p_price < 200000 THEN 100 WHEN p_price < 500000 THEN 500
              ELSE 1000 END;
END //

CREATE PROCEDURE place_order(
  IN p_account BIGINT UNSIGNED, IN p_stock INT UNSIGNED, IN p_side VARCHAR(8),
  IN p_type VARCHAR(8), IN p_price DECIMAL(12,0), IN p_qty BIGINT)
  MODIFIES SQL DATA
  COMMENT 'Book one order by price-time priority; see 0003_order_procedures.sql'
BEGIN
  DECLARE v_found INT UNSIGNED DEFAULT NULL;
  DECLARE v_ref, v_upper, v_lower, v_held_at, v_m_price, v_last DECIMAL(12,0) DEFAULT NULL;
  DECLARE v_status VARCHAR(16) DEFAULT NULL;
  DECLARE v_balance DECIMAL(18,0) DEFAULT NULL;
  DECLARE v_held, v_m_left, v_take BIGINT DEFAULT NULL;
  DECLARE v_left, v_filled BIGINT DEFAULT 0;
  DECLARE v_paid, v_value, v_released DECIMAL(20,0) DEFAULT 0;
  DECLARE v_order, v_m_order, v_m_account BIGINT UNSIGNED DEFAULT NULL;
  DECLARE v_trades TEXT DEFAULT NULL;
  DECLARE v_final VARCHAR(16);
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

  -- The symbol lock, with the taker's account and holding.
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
  SET v_upper = FLOOR(FLOOR(v_ref * 1.3) / krx_tick(FLOOR(v_ref * 1.3))) * krx_tick(FLOOR(v_ref * 1.3));
  SET v_lower = CEIL(FLOOR(v_ref * 0.7) / krx_tick(FLOOR(v_ref * 0.7))) * krx_tick(FLOOR(v_ref * 0.7));
  IF p_type = 'LIMIT' AND (p_price > v_upper OR p_price < v_lower) THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:outside_price_limit';
  END IF;
  IF p_type = 'LIMIT' AND MOD(p_price, krx_tick(p_price)) <> 0 THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:off_tick';
  END IF;
  IF v_status IS NULL THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:unknown_account';
  END IF;
  IF v_status <> 'ACTIVE' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:account_not_active';
  END IF;

  -- Reserve the cash or the shares.
  IF p_side = 'BUY' THEN
    SET v_held_at = COALESCE(p_price, v_upper);
    IF v_balance < v_held_at * p_qty THEN
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:insufficient_funds';
    END IF;
    UPDATE accounts SET balance = balance - v_held_at * p_qty, reserved = reserved + v_held_at * p_qty
      WHERE account_id = p_account;
  ELSE
    SET v_held_at = 0;
    IF COALESCE(v_held, 0) < p_qty THEN
      SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:insufficient_shares';
    END IF;
    UPDATE positions SET qty = qty - p_qty, reserved_qty = reserved_qty + p_qty
      WHERE account_id = p_account AND stock_id = p_stock;
  END IF;
  INSERT INTO orders (account_id, stock_id, side, order_type, price, qty, reserved_amount)
    VALUES (p_account, p_stock, p_side, p_type, p_price, p_qty, v_held_at * p_qty);
  SET v_order = LAST_INSERT_ID();

  -- Match by price, then time.
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
    IF p_side = 'BUY' THEN
      INSERT INTO trades (stock_id, buy_order_id, sell_order_id, price, qty)
        VALUES (p_stock, v_order, v_m_order, v_m_price, v_take);
    ELSE
      INSERT INTO trades (stock_id, buy_order_id, sell_order_id, price, qty)
        VALUES (p_stock, v_m_order, v_order, v_m_price, v_take);
    END IF;
    SET v_trades = CONCAT_WS(',', v_trades, LAST_INSERT_ID());
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

  -- Settle the taker; market orders never rest: the unfilled rest is cancelled (immediate-or-cancel).
  SET v_final = CASE WHEN v_filled = p_qty THEN 'FILLED' WHEN p_type = 'MARKET' THEN 'CANCELLED'
                     WHEN v_filled > 0 THEN 'PARTIAL' ELSE 'NEW' END;
  IF p_side = 'BUY' THEN
    SET v_released = v_held_at * v_filled + IF(p_type = 'MARKET', v_held_at * (p_qty - v_filled), 0);
    IF v_released > 0 THEN
      UPDATE accounts SET reserved = reserved - v_released, balance = balance + v_released - v_paid
        WHERE account_id = p_account;
    END IF;
    IF v_filled > 0 THEN
      INSERT INTO positions (account_id, stock_id, qty, cost_basis) VALUES (p_account, p_stock, v_filled, v_paid)
        ON DUPLICATE KEY UPDATE qty = qty + VALUES(qty), cost_basis = cost_basis + VALUES(cost_basis);
    END IF;
  ELSE
    IF v_filled > 0 THEN
      UPDATE positions SET cost_basis = cost_basis - ROUND(cost_basis * v_filled / (qty + reserved_qty)),
                           reserved_qty = reserved_qty - v_filled
        WHERE account_id = p_account AND stock_id = p_stock;
      UPDATE accounts SET balance = balance + v_paid WHERE account_id = p_account;
    END IF;
    IF p_type = 'MARKET' AND v_filled < p_qty THEN
      UPDATE positions SET reserved_qty = reserved_qty - (p_qty - v_filled), qty = qty + (p_qty - v_filled)
        WHERE account_id = p_account AND stock_id = p_stock;
    END IF;
  END IF;
  IF v_final <> 'NEW' THEN
    UPDATE orders SET filled_qty = v_filled, status = v_final,
                      reserved_amount = IF(v_final IN ('FILLED', 'CANCELLED'), 0, v_held_at * (p_qty - v_filled))
      WHERE order_id = v_order;
  END IF;
  IF v_filled > 0 THEN
    UPDATE stocks_inventory SET last_price = v_last, traded_qty = traded_qty + v_filled WHERE stock_id = p_stock;
  END IF;
  SELECT v_order AS order_id, v_final AS status, v_filled AS filled_qty, v_trades AS trade_ids;
END //

CREATE PROCEDURE cancel_order(IN p_order BIGINT UNSIGNED, IN p_account BIGINT UNSIGNED)
  MODIFIES SQL DATA
  COMMENT 'Cancel an open order and release what it holds; p_account NULL = any owner'
BEGIN
  DECLARE v_stock INT UNSIGNED DEFAULT NULL;
  DECLARE v_owner BIGINT UNSIGNED;
  DECLARE v_side VARCHAR(8);
  DECLARE v_left BIGINT;
  DECLARE v_reserved DECIMAL(18,0);
  DECLARE v_status VARCHAR(16);
  DECLARE v_locked INT UNSIGNED;
  DECLARE EXIT HANDLER FOR SQLSTATE '45000' BEGIN ROLLBACK; RESIGNAL; END;

  SELECT stock_id, status INTO v_stock, v_status FROM orders WHERE order_id = p_order;
  IF v_stock IS NULL THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:unknown_order';
  END IF;
  IF v_status NOT IN ('NEW', 'PARTIAL') THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:not_open';
  END IF;
  SELECT stock_id INTO v_locked FROM stocks_inventory WHERE stock_id = v_stock FOR UPDATE;
  SELECT account_id, side, qty - filled_qty, reserved_amount, status
    INTO v_owner, v_side, v_left, v_reserved, v_status
    FROM orders WHERE order_id = p_order FOR UPDATE;
  IF p_account IS NOT NULL AND v_owner <> p_account THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:not_owner';
  END IF;
  IF v_status NOT IN ('NEW', 'PARTIAL') THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'stockdb:not_open';
  END IF;
  IF v_side = 'BUY' THEN
    UPDATE accounts SET reserved = reserved - v_reserved, balance = balance + v_reserved WHERE account_id = v_owner;
  ELSE
    UPDATE positions SET reserved_qty = reserved_qty - v_left, qty = qty + v_left
      WHERE account_id = v_owner AND stock_id = v_stock;
  END IF;
  UPDATE orders SET status = 'CANCELLED', reserved_amount = 0 WHERE order_id = p_order;
  SELECT p_order AS order_id, 'CANCELLED' AS status;
END //

DELIMITER ;
