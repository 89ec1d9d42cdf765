"""The ack-log reader and the failure summary of the invariant checks."""

import json

import pytest
from stockdb import invariants
from stockdb.simulator import percentile


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


def test_nearest_rank_percentiles():
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (50, 99, 100)
    assert percentile([], 0.5) is None
