#!/usr/bin/python
"""Ansible module stockdb_seed: load the deterministic seed data set into the trading database."""

DOCUMENTATION = r"""
---
module: stockdb_seed
short_description: Seed users, accounts, the KOSPI listing, holdings and optional order history
description:
  - Loads the data set built by the stockdb seeding code from O(seed), O(accounts),
    O(holdings_per_account) and O(historical_orders), with the users and the listing that the
    action plugin of the same name prepares on the controller (Faker C(ko_KR) names, the listing of
    O(stocks_csv)). Everything is loaded in one transaction, and committed, through
    C(LOAD DATA LOCAL INFILE) of tab-separated files written to a private temporary directory (or
    multi-row INSERTs where the server has C(local_infile) off).
  - Idempotent. The parameters' fingerprint is recorded in C(seed_runs); a rerun with the same
    parameters changes nothing. A database seeded with other parameters, or holding data that this
    module did not load, is refused unless O(reset=true), which deletes every trading row first.
  - Supports check mode.
options:
  users:
    description: How many users (set by the action plugin, which makes their names).
    type: int
    default: 50
  accounts:
    description: How many accounts (C(ACC-1001) upward), each owned by a random user.
    type: int
    default: 100
  holdings_per_account:
    description: Listings each account starts holding (from the 20 most valuable, 1-5 million KRW each), taken from the inventory.
    type: int
    default: 5
  historical_orders:
    description: Past orders to load (filled buy/sell pairs with their trades, and cancelled orders). 0 for none.
    type: int
    default: 0
  seed:
    description: Seed of the generator; the same seed and parameters give the same rows.
    type: int
    default: 42
  reset:
    description:
      - Delete every row of the trading tables before loading, when the database holds data seeded
        with other parameters (or not by this module). Required to reseed; a database already
        seeded with these parameters is left as it is.
    type: bool
    default: false
  stocks_csv:
    description:
      - The listing file, read on the controller by the action plugin, which passes its rows on as
        O(stock_rows); the host needs no copy of it. A CSV with the columns C(symbol), C(name),
        C(sector), C(market), C(ref_close_krw) and C(market_cap_krw), as in the bundled file or as
        C(tools/refresh_kospi.py) writes it. A relative path is taken from the directory
        C(ansible-playbook) runs in.
      - Default, when unset or empty, the bundled C(files/data/kospi_2025.csv).
      - The listing is part of the seed's fingerprint, so a database seeded from another listing is
        refused unless O(reset=true).
    type: path
  user_rows:
    description: Names and e-mails of the users, as C([name, email]) pairs. Set by the action plugin.
    type: list
    elements: list
    required: true
  stock_rows:
    description:
      - The listing, as dicts with C(symbol), C(name), C(sector), C(market), C(ref_close_krw) and
        C(market_cap_krw). Set by the action plugin.
    type: list
    elements: dict
    required: true
  compare_load_data:
    description:
      - After loading, write the same rows to tab-separated files and time C(LOAD DATA LOCAL INFILE)
        of them into empty copies of the tables in a scratch database C(<database>_loadcmp), dropped
        afterwards. Returns both rates and their ratio. For benchmarks; needs the CREATE and DROP privileges.
    type: bool
    default: false
  batch_rows:
    description: Rows per multi-row INSERT statement (when the server does not allow LOAD DATA LOCAL).
    type: int
    default: 2000
requirements:
  - Faker on the controller (the action plugin makes the names)
extends_documentation_fragment:
  - stockdb_connection
author: stockdb
"""

EXAMPLES = r"""
- name: Seed the default data set (50 users, 100 accounts, 961 KOSPI stocks)
  stockdb_seed: {}

- name: Seed at scale (100,000 accounts, 1,000,000 past orders), replacing what is there
  stockdb_seed:
    users: 50000
    accounts: 100000
    historical_orders: 1000000
    reset: true

- name: Seed from a refreshed listing (tools/refresh_kospi.py), replacing what is there
  stockdb_seed:
    stocks_csv: files/data/kospi_20250102.csv
    reset: true
"""

RETURN = r"""
rows:
  description: Rows loaded per table (empty when nothing changed).
  returned: always
  type: dict
  sample: {"users": 50, "accounts": 100, "stocks": 961}
rows_per_s:
  description: Rows loaded per second (all tables, including the commit).
  returned: when loaded
  type: float
load_s:
  description: Seconds spent loading and committing.
  returned: when loaded
  type: float
fingerprint:
  description: sha256 of the seed parameters, as recorded in seed_runs.
  returned: always
  type: str
bulk_path:
  description: How the rows were loaded, load_data_local or insert.
  returned: when loaded
  type: str
load_data:
  description: With compare_load_data, LOAD DATA LOCAL INFILE of the same rows, its rows/s, and seed rows/s divided by it.
  returned: when compare_load_data and loaded
  type: dict
  sample: {"rows": 1500000, "load_s": 9.8, "rows_per_s": 153000.0, "seed_ratio": 0.71}
"""

import hashlib
import json
import os
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import db, seeding
from ansible.module_utils.stockdb.ops.connection import identifier as q

TRADING_TABLES_CHILD_FIRST = ("trades", "orders", "positions", "cash_movements", "accounts", "users",
                              "stocks_inventory", "stocks", "seed_runs")


def fingerprint(params):
    material = {k: params[k] for k in ("users", "accounts", "holdings_per_account", "historical_orders", "seed")}
    material["user_rows"] = hashlib.sha256(json.dumps(params["user_rows"], ensure_ascii=False).encode()).hexdigest()
    material["stock_rows"] = hashlib.sha256(
        json.dumps(params["stock_rows"], ensure_ascii=False, sort_keys=True).encode()).hexdigest()
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest(), material


def current_state(cur):
    cur.execute("SELECT fingerprint, parameters FROM seed_runs ORDER BY seed_run_id DESC LIMIT 1")
    run = cur.fetchone()
    counts = {}
    for table in ("users", "accounts", "stocks", "orders"):
        cur.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")  # noqa: S608 - fixed table names
        counts[table] = cur.fetchone()[0]
    return run, any(counts.values())


def insert_rows(cur, table, columns, rows, batch):
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {placeholders}"  # noqa: S608 - fixed names
    for start in range(0, len(rows), batch):
        cur.executemany(sql, rows[start:start + batch])


def tsv_value(value):
    if value is None:
        return "\\N"
    text = value.isoformat(sep=" ") if hasattr(value, "isoformat") else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def write_tsv(path, rows):
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines("\t".join(tsv_value(v) for v in row) + "\n" for row in rows)


def load_tsv(cur, database, table, columns, path):
    cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE {q(database)}.{q(table)} CHARACTER SET utf8mb4 "
                f"({', '.join(columns)})", (path,))


class Loader:
    """Loads rows the fastest way the server allows: LOAD DATA LOCAL INFILE of tab-separated files
    written to a private temporary directory, or multi-row INSERTs where local_infile is off."""

    def __init__(self, cur, batch):
        self.cur = cur
        self.batch = batch
        cur.execute("SELECT @@local_infile")
        self.path = "load_data_local" if cur.fetchone()[0] else "insert"
        self.workdir = tempfile.mkdtemp(prefix="stockdb-seed-") if self.path == "load_data_local" else None

    def load(self, database, table, columns, rows):
        if self.path == "insert":
            insert_rows(self.cur, table, columns, rows, self.batch)
            return
        path = os.path.join(self.workdir, f"{table}.tsv")
        write_tsv(path, rows)
        try:
            load_tsv(self.cur, database, table, columns, path)
        finally:
            os.unlink(path)

    def close(self):
        if self.workdir:
            os.rmdir(self.workdir)


def time_load_data(module, data, counts):
    """Time LOAD DATA LOCAL INFILE of the same rows into a scratch copy of the tables."""
    p = module.params
    scratch = f"{p['database']}_loadcmp"
    workdir = tempfile.mkdtemp(prefix="stockdb-loadcmp-")
    files = {}
    try:
        for table, _columns in seeding.LOAD_ORDER:
            files[table] = os.path.join(workdir, f"{table}.tsv")
            write_tsv(files[table], data[table])
        conn = db.connect(p, local_infile=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {q(scratch)}")
                cur.execute(f"CREATE DATABASE {q(scratch)}")
                for table, _columns in seeding.LOAD_ORDER:
                    cur.execute(f"CREATE TABLE {q(scratch)}.{q(table)} LIKE {q(p['database'])}.{q(table)}")
                cur.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
                started = time.monotonic()
                for table, columns in seeding.LOAD_ORDER:
                    load_tsv(cur, scratch, table, columns, files[table])
                conn.commit()
                elapsed = time.monotonic() - started
                cur.execute(f"DROP DATABASE {q(scratch)}")
        finally:
            conn.close()
    finally:
        for path in files.values():
            os.unlink(path)
        os.rmdir(workdir)
    total = sum(counts.values())
    return dict(rows=total, load_s=round(elapsed, 3), rows_per_s=round(total / elapsed, 1) if elapsed else None)


def main():
    argument_spec = db.connection_argument_spec()
    argument_spec.update(
        users=dict(type="int", default=50),
        accounts=dict(type="int", default=100),
        holdings_per_account=dict(type="int", default=5),
        historical_orders=dict(type="int", default=0),
        seed=dict(type="int", default=42),
        reset=dict(type="bool", default=False),
        user_rows=dict(type="list", elements="list", required=True),
        stock_rows=dict(type="list", elements="dict", required=True),
        batch_rows=dict(type="int", default=2000),
        compare_load_data=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    p = module.params
    for name, low, high in (("users", 1, 10_000_000), ("accounts", 1, 10_000_000), ("holdings_per_account", 0, 50),
                            ("historical_orders", 0, 100_000_000), ("batch_rows", 1, 100_000)):
        if not low <= p[name] <= high:
            module.fail_json(msg=f"{name}={p[name]} is outside {low}..{high}")
    if len(p["user_rows"]) != p["users"]:
        module.fail_json(msg=f"user_rows has {len(p['user_rows'])} users but users={p['users']}")
    if not p["stock_rows"]:
        module.fail_json(msg="stock_rows is empty: the listing file had no rows")

    digest, material = fingerprint(p)
    conn = db.connect_or_fail(module, local_infile=True)
    try:
        with conn.cursor() as cur:
            db.require_tables(module, cur, TRADING_TABLES_CHILD_FIRST)
            run, has_data = current_state(cur)
            if run and run[0] == digest:
                module.exit_json(changed=False, rows={}, fingerprint=digest)
            if has_data and not p["reset"]:
                what = f"seeded with other parameters {run[1]}" if run else "holding rows that stockdb_seed did not load"
                module.fail_json(msg=f"refusing to seed database {p['database']}: it is {what}. "
                                     "Set reset=true to delete every trading row and seed again.")
            try:
                data = seeding.build(p["user_rows"], p["stock_rows"], p["accounts"], p["seed"],
                                     p["holdings_per_account"], p["historical_orders"])
            except (ValueError, KeyError) as exc:
                module.fail_json(msg=f"cannot build the seed data: {exc}")
            counts = {table: len(data[table]) for table, _ in seeding.LOAD_ORDER}
            if module.check_mode:
                module.exit_json(changed=True, rows=counts, fingerprint=digest)

            started = time.monotonic()
            loader = Loader(cur, p["batch_rows"])
            try:
                cur.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
                if p["reset"]:
                    for table in TRADING_TABLES_CHILD_FIRST:
                        cur.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
                for table, columns in seeding.LOAD_ORDER:
                    loader.load(p["database"], table, columns, data[table])
                cur.execute("INSERT INTO seed_runs (fingerprint, parameters, row_counts) VALUES (%s, %s, %s)",
                            (digest, json.dumps(material, sort_keys=True), json.dumps(counts, sort_keys=True)))
                conn.commit()
            except Exception as exc:  # noqa: BLE001 - rolled back and reported
                conn.rollback()
                module.fail_json(msg=f"seeding failed and was rolled back: {exc}")
            finally:
                loader.close()
                cur.execute("SET SESSION foreign_key_checks = 1, unique_checks = 1")
            elapsed = time.monotonic() - started
            total = sum(counts.values())
            result = dict(changed=True, rows=counts, fingerprint=digest, load_s=round(elapsed, 3),
                          rows_per_s=round(total / elapsed, 1) if elapsed else None, bulk_path=loader.path)
            if p["compare_load_data"]:
                try:
                    result["load_data"] = time_load_data(module, data, counts)
                except Exception as exc:  # noqa: BLE001 - the seed itself succeeded
                    module.fail_json(msg=f"seeded, but timing LOAD DATA failed: {exc}", **result)
                if result["load_data"]["rows_per_s"] and result["rows_per_s"]:
                    result["load_data"]["seed_ratio"] = round(result["rows_per_s"] / result["load_data"]["rows_per_s"], 3)
            module.exit_json(**result)
    finally:
        conn.close()


if __name__ == "__main__":
    main()
