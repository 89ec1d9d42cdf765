-- Orders, the trades that fill them, and the holdings they move.

CREATE TABLE orders (
  order_id     BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  account_id   BIGINT UNSIGNED NOT NULL,
  stock_id     INT UNSIGNED    NOT NULL,
  side         ENUM('BUY','SELL')       NOT NULL,
  order_type   ENUM('LIMIT','MARKET')   NOT NULL,
  price        DECIMAL(12,0)   NULL COMMENT 'limit price; NULL for market orders',
  qty          BIGINT          NOT NULL,
  filled_qty   BIGINT          NOT NULL DEFAULT 0,
  reserved_amount DECIMAL(18,0) NOT NULL DEFAULT 0 COMMENT 'cash still held by an open buy order',
  status       ENUM('NEW','PARTIAL','FILLED','CANCELLED') NOT NULL DEFAULT 'NEW',
  is_open      TINYINT AS (status IN ('NEW','PARTIAL')) VIRTUAL,
  created_at   DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at   DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (order_id),
  -- The order book: open orders of one symbol and side, by price then time (order_id).
  KEY ix_orders_book (stock_id, side, is_open, price, order_id),
  -- An account's orders, newest first.
  KEY ix_orders_account (account_id, created_at),
  CONSTRAINT fk_orders_account FOREIGN KEY (account_id) REFERENCES accounts (account_id),
  CONSTRAINT fk_orders_stock FOREIGN KEY (stock_id) REFERENCES stocks (stock_id),
  CONSTRAINT chk_orders_qty CHECK (qty > 0),
  CONSTRAINT chk_orders_filled CHECK (filled_qty >= 0 AND filled_qty <= qty),
  CONSTRAINT chk_orders_price CHECK ((order_type = 'LIMIT' AND price > 0) OR (order_type = 'MARKET' AND price IS NULL)),
  CONSTRAINT chk_orders_reserved CHECK (reserved_amount >= 0 AND (side = 'BUY' OR reserved_amount = 0)),
  CONSTRAINT chk_orders_status CHECK (
    (status = 'NEW' AND filled_qty = 0) OR
    (status = 'PARTIAL' AND filled_qty > 0 AND filled_qty < qty) OR
    (status = 'FILLED' AND filled_qty = qty) OR
    (status = 'CANCELLED' AND filled_qty < qty)),
  CONSTRAINT chk_orders_closed_release CHECK (status IN ('NEW','PARTIAL') OR reserved_amount = 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One execution between a buy and a sell order of the same stock.
CREATE TABLE trades (
  trade_id       BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stock_id       INT UNSIGNED    NOT NULL,
  buy_order_id   BIGINT UNSIGNED NOT NULL,
  sell_order_id  BIGINT UNSIGNED NOT NULL,
  price          DECIMAL(12,0)   NOT NULL,
  qty            BIGINT          NOT NULL,
  executed_at    DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (trade_id),
  KEY ix_trades_buy_order (buy_order_id),
  KEY ix_trades_sell_order (sell_order_id),
  KEY ix_trades_stock_time (stock_id, executed_at),
  CONSTRAINT fk_trades_stock FOREIGN KEY (stock_id) REFERENCES stocks (stock_id),
  CONSTRAINT fk_trades_buy_order FOREIGN KEY (buy_order_id) REFERENCES orders (order_id),
  CONSTRAINT fk_trades_sell_order FOREIGN KEY (sell_order_id) REFERENCES orders (order_id),
  CONSTRAINT chk_trades_price CHECK (price > 0),
  CONSTRAINT chk_trades_qty CHECK (qty > 0),
  CONSTRAINT chk_trades_two_orders CHECK (buy_order_id <> sell_order_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Holdings per account and stock: shares free to sell, and shares held by open sell orders.
CREATE TABLE positions (
  account_id    BIGINT UNSIGNED NOT NULL,
  stock_id      INT UNSIGNED    NOT NULL,
  qty           BIGINT          NOT NULL DEFAULT 0,
  reserved_qty  BIGINT          NOT NULL DEFAULT 0,
  cost_basis    DECIMAL(20,0)   NOT NULL DEFAULT 0 COMMENT 'KRW paid for the shares held (average cost x shares)',
  updated_at    DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (account_id, stock_id),
  KEY ix_positions_stock (stock_id),
  CONSTRAINT fk_positions_account FOREIGN KEY (account_id) REFERENCES accounts (account_id),
  CONSTRAINT fk_positions_stock FOREIGN KEY (stock_id) REFERENCES stocks (stock_id),
  CONSTRAINT chk_positions_qty CHECK (qty >= 0),
  CONSTRAINT chk_positions_reserved CHECK (reserved_qty >= 0),
  CONSTRAINT chk_positions_cost CHECK (cost_basis >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- What stockdb_seed loaded, so that a rerun with the same parameters changes nothing.
CREATE TABLE seed_runs (
  seed_run_id  INT UNSIGNED NOT NULL AUTO_INCREMENT,
  fingerprint  CHAR(64)     NOT NULL COMMENT 'sha256 of the seed parameters',
  parameters   JSON         NOT NULL,
  row_counts   JSON         NOT NULL,
  loaded_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (seed_run_id),
  CONSTRAINT chk_seed_runs_parameters CHECK (JSON_VALID(parameters)),
  CONSTRAINT chk_seed_runs_counts CHECK (JSON_VALID(row_counts))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
