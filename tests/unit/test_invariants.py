"""The ack-log reader and the failure summary of the invariant checks."""

import json
import re

import pytest
from stockdb import invariants
from stockdb.stats import percentile


def write_log(path, entries):
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


def test_ack_log_ids_final_statuses_and_cut_off(tmp_path):
    log = tmp_path / "ack.log"
    write_log(log, [
        {"kind": "order", "id": 1, "status": "FILLED", "committed_at": "2026-11-24 03:00:00.000001"},
        {"kind": "trade", "id": 7, "order_id": 1, "committed_at": "2026-11-24 03:00:00.000001"},
        {"kind": "order", "id": 2, "status": "NEW", "committed_at": "2026-11-24 03:00:01.000000"},
        {"kind": "cancel", "id": 2, "status": "CANCELLED", "committed_at": "2026-11-24 03:00:01.500000"},
        {"kind": "order", "id": 3, "status": "NEW", "committed_at": "2026-11-24 03:00:02.000000"},
    ])
    ack = invariants.read_ack_log(str(log))
    assert (ack["orders"], ack["trades"], ack["lines"], ack["after"]) == ({1, 2, 3}, {7}, 5, 0)
    assert ack["terminal"] == {1: "FILLED", 2: "CANCELLED"}
    early = invariants.read_ack_log(str(log), until="2026-11-24 03:00:01.200000")
    assert (early["orders"], early["terminal"], early["after"]) == ({1, 2}, {1: "FILLED"}, 2)


def test_in_doubt_acknowledgements_count_like_the_others(tmp_path):
    """An order or cancel confirmed after its connection was lost is acknowledged as present, and counted."""
    log = tmp_path / "ack.log"
    write_log(log, [
        {"kind": "order", "id": 1, "status": "NEW", "client_ref": "r-0-1", "latency_ms": 1.2,
         "committed_at": "2026-11-24 03:00:00.000001", "client": 0},
        {"kind": "order", "id": 2, "status": "FILLED", "client_ref": "r-0-2", "latency_ms": 5210.5, "in_doubt": True,
         "committed_at": "2026-11-24 03:00:09.000000", "client": 0},
        {"kind": "trade", "id": 9, "order_id": 2, "committed_at": "2026-11-24 03:00:09.000000", "client": 0},
        {"kind": "cancel", "id": 1, "status": "CANCELLED", "latency_ms": 3100.0, "in_doubt": True,
         "committed_at": "2026-11-24 03:00:10.000000", "client": 0},
    ])
    ack = invariants.read_ack_log(str(log))
    assert (ack["orders"], ack["trades"], ack["terminal"], ack["in_doubt"]) == ({1, 2}, {9}, {1: "CANCELLED", 2: "FILLED"}, 2)
    assert invariants.read_ack_log(str(log), until="2026-11-24 03:00:09.500000")["in_doubt"] == 1


def test_corrupt_ack_log_line_is_named(tmp_path):
    log = tmp_path / "ack.log"
    log.write_text('{"kind": "order", "id": 1, "committed_at": "x"}\n{broken\n')
    with pytest.raises(ValueError, match="ack.log:2: not JSON"):
        invariants.read_ack_log(str(log))


def test_summary_names_failed_checks_and_rows():
    results = {"cash_conservation": {"ok": True, "violations": 0, "sample": []},
               "filled_equals_trades": {"ok": False, "violations": 2,
                                        "sample": [{"order_id": 5, "filled_qty": 3, "traded": 2}]}}
    lines = invariants.summary(results)
    assert lines == ["filled_equals_trades: 2 violation(s), e.g. [{'order_id': 5, 'filled_qty': 3, 'traded': 2}]"]


def test_every_check_is_a_read_only_select():
    for name, sql in invariants.CHECKS:
        assert sql.lstrip().upper().startswith("SELECT"), name
        assert not any(word in sql.upper() for word in ("INSERT ", "UPDATE ", "DELETE ", "DROP ")), name


def test_tables_names_every_table_the_checks_read():
    # stockdb_check fails naming a missing table of invariants.TABLES instead of a driver error mid-check
    read = set()
    for _, sql in invariants.CHECKS:
        read |= set(re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", sql, flags=re.IGNORECASE))
    assert read == set(invariants.TABLES)


def test_nearest_rank_percentiles():
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (50, 99, 100)
    assert percentile([], 0.5) is None
