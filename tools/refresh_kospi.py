#!/usr/bin/env python3
"""Refresh files/data/kospi_2025.csv-style listings from KRX with pykrx (optional, online only).

The project never needs this: it seeds from the bundled snapshot. Where KRX is reachable and
pykrx is installed (`pip install pykrx`; recent versions need KRX_ID and KRX_PW in the
environment), this writes a listing in the bundled format for a trading day:

    python tools/refresh_kospi.py --date 20250102 --out files/data/kospi_20250102.csv

It fails with a message naming the cause (pykrx missing, KRX unreachable or refusing the login, an
empty answer) and writes nothing unless the whole listing was fetched. Point stockdb_seed at the
result with `stocks_csv`.
"""

import argparse
import csv
import os
import sys
import tempfile

COLUMNS = ["symbol", "name", "sector", "market", "ref_close_krw", "market_cap_krw"]


class RefreshError(Exception):
    pass


def load_pykrx():
    try:
        from pykrx import stock
    except ImportError as exc:
        raise RefreshError("pykrx is not installed (pip install pykrx); the bundled listing needs no refresh") from exc
    return stock


def fetch(stock, date, market):
    """Rows in the bundled format from pykrx's market-cap table of one day."""
    try:
        table = stock.get_market_cap(date, market=market)
    except Exception as exc:  # noqa: BLE001 - any network or parsing failure is reported as such
        raise RefreshError(f"KRX did not answer for {date} ({type(exc).__name__}: {exc}); "
                           "it needs network access to KRX and, in recent pykrx, KRX_ID/KRX_PW") from exc
    if table is None or len(table) == 0:
        raise RefreshError(f"KRX returned no {market} listing for {date} (not a trading day, or the login was refused)")
    rows = []
    try:
        for symbol, record in table.iterrows():
            close, cap = int(record["종가"]), int(record["시가총액"])
            rows.append({"symbol": str(symbol), "name": stock.get_market_ticker_name(symbol), "sector": "",
                         "market": market, "ref_close_krw": close or "", "market_cap_krw": cap if close else ""})
    except Exception as exc:  # noqa: BLE001 - a name lookup or an unexpected table shape
        raise RefreshError(f"KRX's answer for {date} could not be read ({type(exc).__name__}: {exc})") from exc
    return rows


def write(rows, out):
    """Write atomically: a partial file never replaces a good one."""
    directory = os.path.dirname(os.path.abspath(out))
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="", dir=directory, delete=False, suffix=".tmp")
    try:
        with handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(sorted(rows, key=lambda r: r["symbol"]))
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, out)
    except BaseException:
        os.unlink(handle.name)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(description="Refresh a KOSPI listing from KRX with pykrx (optional).")
    parser.add_argument("--date", required=True, help="trading day, YYYYMMDD")
    parser.add_argument("--market", default="KOSPI", choices=["KOSPI", "KOSDAQ", "KONEX"])
    parser.add_argument("--out", required=True, help="CSV file to write (bundled format)")
    args = parser.parse_args(argv)
    if not (len(args.date) == 8 and args.date.isdigit()):
        print(f"refresh_kospi: --date {args.date!r} is not YYYYMMDD", file=sys.stderr)
        return 2
    try:
        rows = fetch(load_pykrx(), args.date, args.market)
        write(rows, args.out)
    except RefreshError as exc:
        print(f"refresh_kospi: {exc}. Nothing was written; the bundled listing is still used.", file=sys.stderr)
        return 1
    print(f"refresh_kospi: wrote {len(rows)} {args.market} listings for {args.date} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
