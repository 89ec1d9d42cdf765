-- Customers, their accounts and cash movements, and the listed stocks.
-- Money is KRW, which has no minor unit: DECIMAL(18,0) is exact and holds up to 10^18 KRW.

CREATE TABLE users (
  user_id     BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  name        VARCHAR(100)    NOT NULL,
  email       VARCHAR(255)    NOT NULL,
  created_at  DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (user_id),
  CONSTRAINT uq_users_email UNIQUE (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE accounts (
  account_id      BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  user_id         BIGINT UNSIGNED NOT NULL,
  account_number  VARCHAR(20)     NOT NULL,
  balance         DECIMAL(18,0)   NOT NULL DEFAULT 0 COMMENT 'cash available for new orders',
  reserved        DECIMAL(18,0)   NOT NULL DEFAULT 0 COMMENT 'cash held by open buy orders',
  status          ENUM('ACTIVE','FROZEN','CLOSED') NOT NULL DEFAULT 'ACTIVE',
  created_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at      DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (account_id),
  CONSTRAINT uq_accounts_number UNIQUE (account_number),
  CONSTRAINT fk_accounts_user FOREIGN KEY (user_id) REFERENCES users (user_id),
  CONSTRAINT chk_accounts_balance CHECK (balance >= 0),
  CONSTRAINT chk_accounts_reserved CHECK (reserved >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Every KRW that enters or leaves the system; trades only move cash between accounts.
CREATE TABLE cash_movements (
  movement_id  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  account_id   BIGINT UNSIGNED NOT NULL,
  kind         ENUM('DEPOSIT','WITHDRAWAL') NOT NULL,
  amount       DECIMAL(18,0)   NOT NULL COMMENT 'positive for deposits, negative for withdrawals',
  created_at   DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (movement_id),
  KEY ix_cash_movements_account (account_id),
  CONSTRAINT fk_cash_movements_account FOREIGN KEY (account_id) REFERENCES accounts (account_id),
  CONSTRAINT chk_cash_movements_sign CHECK ((kind = 'DEPOSIT' AND amount > 0) OR (kind = 'WITHDRAWAL' AND amount < 0))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE stocks (
  stock_id    INT UNSIGNED  NOT NULL AUTO_INCREMENT,
  symbol      CHAR(6) CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'KRX short code; may contain letters',
  name        VARCHAR(100)  NOT NULL,
  sector      VARCHAR(100)  NULL,
  market      ENUM('KOSPI','KOSDAQ','KONEX') NOT NULL DEFAULT 'KOSPI',
  ref_price   DECIMAL(12,0) NULL COMMENT 'reference close in KRW; NULL = not traded by the simulator',
  PRIMARY KEY (stock_id),
  CONSTRAINT uq_stocks_symbol UNIQUE (symbol),
  CONSTRAINT chk_stocks_ref_price CHECK (ref_price IS NULL OR ref_price > 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per stock: shares issued, shares not held by any account, and the tape.
-- Share conservation: issued_qty = available_qty + all positions' qty + reserved_qty.
CREATE TABLE stocks_inventory (
  stock_id       INT UNSIGNED  NOT NULL,
  issued_qty     BIGINT        NOT NULL,
  available_qty  BIGINT        NOT NULL COMMENT 'issued shares held by no account',
  last_price     DECIMAL(12,0) NULL,
  traded_qty     BIGINT        NOT NULL DEFAULT 0,
  updated_at     DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (stock_id),
  CONSTRAINT fk_stocks_inventory_stock FOREIGN KEY (stock_id) REFERENCES stocks (stock_id),
  CONSTRAINT chk_inventory_issued CHECK (issued_qty > 0),
  CONSTRAINT chk_inventory_available CHECK (available_qty >= 0 AND available_qty <= issued_qty),
  CONSTRAINT chk_inventory_traded CHECK (traded_qty >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
