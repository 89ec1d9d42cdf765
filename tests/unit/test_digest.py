"""Unit tests of module_utils/stockdb/digest.py: the window of two digest snapshots, merging and ranking, the
slow log through pt-query-digest's JSON, matching a digest to its slow-log class, plan summaries, findings
and what is worth acting on, and the Markdown report.

The plans and the pt-query-digest class are shaped as MariaDB 10.11 and percona-toolkit 3.2.1 printed them
on the lab host for the simulator's trade history read (`playbooks/query_report.yml`, 2026-12-03).
"""

import json

import pytest
from stockdb import digest

TRADE_HISTORY_DIGEST = ("SELECT `t` . `trade_id` , `t` . `executed_at` FROM `orders` `o` JOIN `trades` `t` ON `t` . "
                        "`buy_order_id` = `o` . `order_id` OR `t` . `sell_order_id` = `o` . `order_id` WHERE `o` . "
                        "`account_id` = ? AND `t` . `executed_at` >= NOW ( ) - INTERVAL ? SQL_TSI_DAY "
                        "ORDER BY `t` . `executed_at` DESC LIMIT ?")
TRADE_HISTORY_SQL = ("SELECT t.trade_id, t.executed_at\n FROM orders o\n JOIN trades t ON t.buy_order_id = o.order_id "
                     "OR t.sell_order_id = o.order_id\n WHERE o.account_id = 93 AND t.executed_at >= NOW() - INTERVAL 1 DAY"
                     "\n ORDER BY t.executed_at DESC\n LIMIT 100")
TRADE_HISTORY_PLAN = {"query_block": {"select_id": 1, "filesort": {"sort_key": "t.executed_at desc", "temporary_table": {
    "nested_loop": [
        {"table": {"table_name": "o", "access_type": "ref", "key": "ix_orders_account", "rows": 10738, "filtered": 100}},
        {"range-checked-for-each-record": {"keys": ["ix_trades_buy_order", "ix_trades_sell_order"], "table": {
            "table_name": "t", "access_type": "ALL", "rows": 360584, "filtered": 100}}}]}}}}
OPEN_ORDERS_ANALYZE = {"query_optimization": {"r_total_time_ms": 0.1}, "query_block": {
    "select_id": 1, "r_loops": 1, "r_total_time_ms": 22.57, "nested_loop": [{"table": {
        "table_name": "orders", "access_type": "ref", "key": "ix_orders_account", "rows": 10678, "r_rows": 5521,
        "filtered": 100, "r_filtered": 0.23}}]}}
PT_CLASS = {"attribute": "fingerprint", "checksum": "5DEA17E7090F1B3B76C223366FE155AC",
            "example": {"Query_time": "1.802041", "query": TRADE_HISTORY_SQL},
            "fingerprint": "select t.trade_id, t.executed_at from orders o join trades t on t.buy_order_id = o.order_id "
                           "or t.sell_order_id = o.order_id where o.account_id = ? and t.executed_at >= now() ? interval ? "
                           "day order by t.executed_at desc limit ?",
            "metrics": {"Filesort": {"yes": "166"}, "Full_join": {"yes": "0"}, "Full_scan": {"yes": "0"},
                        "Query_time": {"avg": "1.066463", "max": "1.802041", "pct_95": "1.396036", "sum": "177.032831"},
                        "Rows_examined": {"sum": "3452054"}, "Rows_sent": {"sum": "16600"},
                        "Tmp_table": {"yes": "166"}, "Tmp_table_on_disk": {"yes": "0"}, "db": {"value": "stockdb"}},
            "query_count": 166}


def row(digest_id, text, schema="stockdb", **counters):
    out = dict(SCHEMA_NAME=schema, DIGEST=digest_id, DIGEST_TEXT=text)
    out.update({c: 0 for c in digest.PS_COUNTERS})
    out.update(counters)
    return out


def test_the_window_is_the_difference_of_two_snapshots_and_leaves_out_what_did_nothing():
    before = digest.snapshot([row("a", "SELECT 1", COUNT_STAR=10, SUM_TIMER_WAIT=2 * 10**12, SUM_ROWS_EXAMINED=100),
                              row("idle", "SELECT 2", COUNT_STAR=5, SUM_TIMER_WAIT=10**12),
                              row("reset", "SELECT 3", COUNT_STAR=50, SUM_TIMER_WAIT=9 * 10**12)])
    after = digest.snapshot([row("a", "SELECT 1", COUNT_STAR=14, SUM_TIMER_WAIT=3 * 10**12, SUM_ROWS_EXAMINED=180),
                             row("idle", "SELECT 2", COUNT_STAR=5, SUM_TIMER_WAIT=10**12),
                             row("reset", "SELECT 3", COUNT_STAR=3, SUM_TIMER_WAIT=6 * 10**11),
                             row("new", "SELECT 4", COUNT_STAR=2, SUM_TIMER_WAIT=10**11, SUM_SELECT_SCAN=2)])
    got = {e["digest"]: e for e in digest.window(before, after)}
    assert sorted(got) == ["a", "new", "reset"]
    assert (got["a"]["calls"], got["a"]["total_s"], got["a"]["avg_ms"], got["a"]["rows_examined"]) == (4, 1.0, 250.0, 80)
    # Counted again from zero (truncated or evicted): the second snapshot whole, never a negative figure.
    assert (got["reset"]["calls"], got["reset"]["total_s"]) == (3, 0.6)
    assert got["new"]["full_scans"] == 2


def test_digests_of_the_same_text_are_added_up_and_ranked_by_total_time_with_their_share():
    entries = digest.window({}, digest.snapshot([
        row("c1", "CALL `place_order_ref` (...)", COUNT_STAR=300, SUM_TIMER_WAIT=2 * 10**12),
        row("c2", "CALL `place_order_ref` (...)", COUNT_STAR=100, SUM_TIMER_WAIT=10**12),
        row("t", TRADE_HISTORY_DIGEST, COUNT_STAR=10, SUM_TIMER_WAIT=6 * 10**12),
        row("x", "COMMIT", COUNT_STAR=400, SUM_TIMER_WAIT=10**12)]))
    merged = digest.merge_same_text(entries)
    call = next(e for e in merged if e["text"].startswith("CALL"))
    assert (call["calls"], call["total_s"], call["avg_ms"], sorted(call["digests"])) == (400, 3.0, 7.5, ["c1", "c2"])
    top = digest.rank(merged, top=2)
    assert [(e["rank"], e["digest"], e["share"]) for e in top] == [(1, "t", 0.6), (2, "c1", 0.3)]


def test_an_example_text_cut_at_the_history_length_is_not_kept():
    examples = digest.keep_example({}, [dict(DIGEST="a", CURRENT_SCHEMA="stockdb", SQL_TEXT="SELECT 1"),
                                        dict(DIGEST="b", CURRENT_SCHEMA="stockdb", SQL_TEXT="x" * 1024)], 1024)
    assert examples == {"a": {"schema": "stockdb", "sql": "SELECT 1"}}


def test_pt_query_digest_json_becomes_entries_with_percentiles():
    text = "\n" + json.dumps({"classes": [PT_CLASS], "global": {}})
    [c] = digest.parse_pt_query_digest(text)
    assert (c["calls"], c["total_s"], c["avg_ms"], c["p95_ms"], c["max_ms"]) == (166, 177.032831, 1066.463, 1396.036, 1802.041)
    assert (c["rows_examined"], c["rows_sent"], c["filesorts"], c["tmp_tables"], c["schema"]) == (3452054, 16600, 166, 166,
                                                                                                    "stockdb")
    assert c["example"] == TRADE_HISTORY_SQL
    assert digest.parse_pt_query_digest("  \n") == []
    with pytest.raises(digest.DigestError, match="did not print its JSON"):
        digest.parse_pt_query_digest("Can't open /var/log/mysql/x.log")


def test_a_digest_gets_the_figures_of_its_slow_log_class_by_the_words_of_its_text():
    classes = digest.parse_pt_query_digest(json.dumps({"classes": [PT_CLASS]}))
    entries = [dict(text=TRADE_HISTORY_DIGEST), dict(text="SELECT `x` FROM `orders` WHERE `account_id` = ?"),
               dict(text="SELECT `t` . `trade_id` , `t` . `executed_at` FROM `orders` `o` JOIN ..."),
               dict(text="SELECT ?", example=TRADE_HISTORY_SQL.replace("93", "7"))]
    digest.match_slow(entries, classes)
    assert entries[0]["slow"]["p95_ms"] == 1396.036 and entries[0]["example"] == TRADE_HISTORY_SQL
    assert "slow" not in entries[1]
    assert entries[2]["slow"]["calls"] == 166  # a digest text cut short ("...") matches on what it kept
    assert entries[3]["slow"]["calls"] == 166  # matched by its example text when the digest's words differ
    assert digest.shape("INTERVAL ? SQL_TSI_DAY 'a literal' `t`.x") == ("interval", "day", "t", "x")


@pytest.mark.parametrize("size_now, offset, cut", [(500, 200, 200), (500, 500, 500), (100, 200, 0)])
def test_the_window_of_the_slow_log_starts_at_the_offset_seen_or_at_zero_after_a_rotation(size_now, offset, cut):
    assert digest.slow_log_cut(size_now, offset) == cut


@pytest.mark.parametrize("sql, kind", [
    ("SELECT 1", "read"), ("  (SELECT 'BUY') UNION ALL (SELECT 'SELL')", "read"), ("/* report */ select 1", "read"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "read"), ("SELECT * FROM orders WHERE order_id = 1 FOR UPDATE", "write"),
    ("select * from orders lock in share mode", "write"), ("SELECT 1 INTO @x", "write"),
    ("UPDATE orders SET qty = 1", "write"), ("insert into t values (1)", "write"), ("CALL place_order_ref(1)", None),
    ("COMMIT", None), ("SET autocommit = 1", None), ("", None),
    ("SET STATEMENT max_statement_time=14 FOR SELECT o.account_id FROM orders o", "read"),
    ("set statement max_statement_time = 3, sort_buffer_size = 1 for update orders set qty = 1", "write")])
def test_only_plain_selects_may_be_analyzed_and_only_dml_explained(sql, kind):
    assert digest.statement_kind(sql) == kind


def test_a_set_statement_prefix_is_taken_off_before_explain():
    assert digest.explainable("/* r */ SET STATEMENT max_statement_time=14 FOR SELECT 1 FROM t") == "SELECT 1 FROM t"
    assert digest.explainable("SELECT 'SET STATEMENT x=1 FOR' FROM t") == "SELECT 'SET STATEMENT x=1 FOR' FROM t"


def test_the_plan_summary_finds_the_join_checked_for_each_record_the_scan_and_the_sort():
    summary = digest.plan_summary(json.dumps(TRADE_HISTORY_PLAN))
    assert [(t["table"], t["access"], t["key"], t["range_checked"]) for t in summary["tables"]] == [
        ("o", "ref", "ix_orders_account", False), ("t", "ALL", None, True)]
    assert summary["range_checked"] == ["t"] and summary["full_scans"] == ["t"]
    assert summary["filesort"] and summary["temporary"] and summary["r_total_time_ms"] is None
    analyzed = digest.plan_summary(OPEN_ORDERS_ANALYZE)
    assert analyzed["r_total_time_ms"] == 22.57 and analyzed["tables"][0]["r_rows"] == 5521
    assert not (analyzed["filesort"] or analyzed["range_checked"] or analyzed["full_scans"])


def entry(text, calls, total_s, examined, sent, share, **more):
    return dict(dict(text=text, calls=calls, total_s=total_s, rows_examined=examined, rows_sent=sent, share=share,
                     rows_affected=0, no_index_used=0, range_checks=0, tmp_disk_tables=0), **more)


def test_findings_name_what_costs_and_a_statement_with_much_of_the_time_is_worth_acting_on():
    trades = entry(TRADE_HISTORY_DIGEST, 100, 80.0, 2_000_000, 10_000, 0.84)
    trades["findings"] = digest.findings(trades, digest.plan_summary(TRADE_HISTORY_PLAN))
    text = " | ".join(trades["findings"])
    assert "no single index serves the join on t" in text and "range checked for each record" in text
    assert "reads whole tables or indexes: t (360584 rows, ALL)" in text
    assert "examines 200 rows for each row it returns (20000 per call)" in text and "filesort through a temporary table" in text
    assert digest.worth_acting(trades)

    # The same faults in a statement that holds 1 % of the time: reported, not worth acting on.
    rare = dict(trades, share=0.01)
    assert not digest.worth_acting(rare)

    # An indexed read that returns what it reads: nothing to say.
    positions = entry("SELECT ...", 200, 0.3, 4_000, 4_000, 0.2)
    assert digest.findings(positions, digest.plan_summary({"query_block": {"nested_loop": [{"table": {
        "table_name": "p", "access_type": "ref", "key": "PRIMARY", "rows": 20}}]}})) == []

    # A procedure: said why there is no plan, never "worth acting on" for that alone.
    call = entry("CALL `place_order_ref` (...)", 500, 3.0, 0, 0, 0.3)
    call["findings"] = digest.findings(call)
    assert "events_statements_summary_by_program" in call["findings"][0] and not digest.worth_acting(call)

    # Without a plan, the counters still speak: unindexed reads, joins re-planned per row, temporary tables on disk.
    counted = entry("SELECT ...", 10, 1.0, 50_000, 10, 0.5, no_index_used=10, range_checks=10, tmp_disk_tables=3)
    text = " | ".join(digest.findings(counted))
    assert "10 of 10 calls used no index" in text and "10 joins re-planned" in text and "3 temporary tables went to disk" in text
    # With a plan, the plan speaks: a UNION's result read back counts as "no index used", yet every table has its index.
    union = digest.plan_summary({"query_block": {"union_result": {"query_specifications": [{"query_block": {"nested_loop": [
        {"table": {"table_name": "o", "access_type": "ref", "key": "ix_orders_account", "rows": 500}}]}}]}}})
    assert not any("used no index" in f for f in digest.findings(counted, union))


def test_the_markdown_report_puts_what_to_act_on_first_and_says_why_a_source_is_missing():
    top = [dict(entry(TRADE_HISTORY_DIGEST, 100, 80.0, 2_000_000, 10_000, 0.84), rank=1, avg_ms=800.0, full_scans=0,
                tmp_tables=100, sort_rows=10_000, plan=digest.plan_summary(OPEN_ORDERS_ANALYZE), analyzed=True,
                slow={"p95_ms": 1396.0}, findings=["reads whole tables"], act=True),
           dict(entry("COMMIT", 900, 0.1, 0, 0, 0.001), rank=2, avg_ms=0.1, full_scans=0, tmp_tables=0, sort_rows=0,
                plan_error="not a statement EXPLAIN takes", findings=[], act=False)]
    report = dict(host="db1", window=dict(start="s", end="e", seconds=60), schemas=["stockdb"], act_share=0.05,
                  totals=dict(calls=1000, total_s=80.1), top=top,
                  slow_log=dict(long_query_time=0.5, classes=[], error="pt-query-digest is not installed"))
    md = digest.render_markdown(report)
    assert md.index("## Worth acting on") < md.index("## Top statements")
    assert "- **#1** (84.0 % of the time, 100 calls, avg 800.0 ms)" in md and "  - reads whole tables" in md
    assert "| 1 | 84.0 % | 100 | 80.00 | 800.0 | 1396.0 |" in md
    assert "ANALYZE (run for real), 22.6 ms" in md and "| orders | ref | ix_orders_account | 10678 | 5521 |  |" in md
    assert "No plan: not a statement EXPLAIN takes." in md
    assert "Not read: pt-query-digest is not installed." in md


def test_the_digest_query_reads_every_counter_the_window_uses():
    listed = digest.PS_DIGESTS.split(" FROM ")[0].replace("SELECT ", "").split(", ")
    assert listed[3:] == list(digest.PS_COUNTERS)
