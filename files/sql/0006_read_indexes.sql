-- Indexes for the front end's reads (module_utils/stockdb/reads.py), found by the query report
-- (playbooks/query_report.yml) and measured before and after by playbooks/index_compare.yml
-- (docs/tuning.md: latency, rows read per call, build time and orders/s while they were built).
--
-- - ix_orders_account_status: an account's working orders (open_orders) were found by reading all of
--   its orders newest first until 50 were open - thousands of rows for a few; now the two statuses
--   are two short ranges.
-- - ix_orders_account_stock: an account's orders in one symbol (symbol_orders) were read through all
--   of the account's orders; now they are one range, newest first.
-- - ix_trades_time: the daily VWAP report read every trade ever made through (stock_id, executed_at);
--   now it reads the day's trades only, from the index alone (it holds every column the report needs).
--
-- Built online (ALGORITHM=INPLACE, LOCK=NONE): trading goes on while they are built.

ALTER TABLE orders
  ADD INDEX ix_orders_account_status (account_id, status, created_at),
  ADD INDEX ix_orders_account_stock (account_id, stock_id, created_at),
  ALGORITHM=INPLACE, LOCK=NONE;

ALTER TABLE trades
  ADD INDEX ix_trades_time (executed_at, stock_id, price, qty),
  ALGORITHM=INPLACE, LOCK=NONE;
