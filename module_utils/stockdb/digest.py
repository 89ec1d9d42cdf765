"""Query analysis: the statements that took the server's time over a window, with their plans and what
in them is worth acting on. library/stockdb_query_report.py wires it to a live server.

Two sources, the two a DBA uses:
  performance_schema  events_statements_summary_by_digest, live and complete: two snapshots, the
                      difference is the window (calls, time, rows examined and sent, scans, sorts,
                      temporary tables); example texts come from events_statements_history_long
  slow log            what pt-query-digest (percona-toolkit) makes of the part of the slow query log
                      written during the window: only statements above long_query_time, but with
                      their percentiles (p95) and examples
A digest is matched to its slow-log class by the words of its text (`shape`), so a top statement gets
its p95 when it was slow enough to be logged.

  plans     `plan_summary` reads EXPLAIN / ANALYZE FORMAT=JSON: each table's access, key and rows, a
            join re-planned for each row ("range checked for each record"), filesorts, temporary tables
  findings  `findings` names what is wrong with a statement and why it costs; `worth_acting` says
            whether the statement holds enough of the window's time for the fix to matter

Everything here works on rows and parsed JSON, so it is tested without a server. Standard library only.
"""

import json
import re

# Counters of events_statements_summary_by_digest this report reads (all sums over the digest's life).
PS_COUNTERS = ("COUNT_STAR", "SUM_TIMER_WAIT", "SUM_LOCK_TIME", "SUM_ROWS_EXAMINED", "SUM_ROWS_SENT",
               "SUM_ROWS_AFFECTED", "SUM_NO_INDEX_USED", "SUM_NO_GOOD_INDEX_USED", "SUM_SELECT_FULL_JOIN",
               "SUM_SELECT_RANGE_CHECK", "SUM_SELECT_SCAN", "SUM_SORT_ROWS", "SUM_CREATED_TMP_TABLES",
               "SUM_CREATED_TMP_DISK_TABLES")
PS_DIGESTS = ("SELECT SCHEMA_NAME, DIGEST, DIGEST_TEXT, COUNT_STAR, SUM_TIMER_WAIT, SUM_LOCK_TIME, SUM_ROWS_EXAMINED, "
              "SUM_ROWS_SENT, SUM_ROWS_AFFECTED, SUM_NO_INDEX_USED, SUM_NO_GOOD_INDEX_USED, SUM_SELECT_FULL_JOIN, "
              "SUM_SELECT_RANGE_CHECK, SUM_SELECT_SCAN, SUM_SORT_ROWS, SUM_CREATED_TMP_TABLES, SUM_CREATED_TMP_DISK_TABLES "
              "FROM performance_schema.events_statements_summary_by_digest WHERE DIGEST IS NOT NULL")
# Top-level statements only: those of stored procedures have no digest and are the procedure's (by_program).
PS_EXAMPLES = ("SELECT DIGEST, CURRENT_SCHEMA, SQL_TEXT FROM performance_schema.events_statements_history_long "
               "WHERE DIGEST IS NOT NULL AND NESTING_EVENT_ID IS NULL AND SQL_TEXT IS NOT NULL")
PS_CONSUMERS = ("events_statements_current", "events_statements_history_long")
PICO = 1e12

# A statement is worth acting on when it holds at least this share of the window's statement time.
ACT_SHARE = 0.05
# Rows examined per row sent above which a statement reads far more than it returns.
EXAMINED_PER_SENT = 100
# A scanned table smaller than this is not worth an index.
SCAN_ROWS = 1000

_WORDS = re.compile(r"[a-z_][a-z0-9_]*")
_LITERALS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_LEADING_COMMENTS = re.compile(r"^\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*|#[^\n]*\n\s*)*", re.DOTALL)
# SET STATEMENT var = value [, ...] FOR <statement>: per-statement settings (max_statement_time, ...).
_SET_STATEMENT = re.compile(r"^\s*SET\s+STATEMENT\s+.+?\s+FOR\s+", re.IGNORECASE | re.DOTALL)
_LOCKING_READ = re.compile(r"\bfor\s+update\b|\block\s+in\s+share\s+mode\b|\binto\s+(?:outfile|dumpfile|@)",
                           re.IGNORECASE)


class DigestError(Exception):
    """Input the report cannot use (a pt-query-digest output that is not its JSON)."""


# ---------------------------------------------------------------- performance_schema

def snapshot(rows):
    """Digest rows (dicts) -> {(schema, digest): row}."""
    return {(row["SCHEMA_NAME"], row["DIGEST"]): row for row in rows}


def window(before, after):
    """What each digest did between two snapshots: its counters' differences, digests that did nothing left out.

    A digest absent before, or whose count went down (the table was truncated, or the digest evicted and
    counted again), is taken whole from the second snapshot.
    """
    out = []
    for key, row in after.items():
        old = before.get(key)
        if old is None or int(row["COUNT_STAR"]) < int(old["COUNT_STAR"]):
            old = {}
        delta = {c: int(row[c] or 0) - int(old.get(c) or 0) for c in PS_COUNTERS}
        if delta["COUNT_STAR"] > 0:
            out.append(_ps_entry(row, delta))
    return out


SUMMED = ("calls", "total_s", "lock_s", "rows_examined", "rows_sent", "rows_affected", "no_index_used",
          "no_good_index_used", "full_scans", "full_joins", "range_checks", "sort_rows", "tmp_tables", "tmp_disk_tables")


def _ps_entry(row, d):
    calls = d["COUNT_STAR"]
    total_s = d["SUM_TIMER_WAIT"] / PICO
    return dict(source="performance_schema", schema=row["SCHEMA_NAME"], digest=row["DIGEST"],
                text=row["DIGEST_TEXT"] or "", calls=calls, total_s=round(total_s, 6),
                avg_ms=round(total_s * 1000 / calls, 3), lock_s=round(d["SUM_LOCK_TIME"] / PICO, 6),
                rows_examined=d["SUM_ROWS_EXAMINED"], rows_sent=d["SUM_ROWS_SENT"],
                rows_affected=d["SUM_ROWS_AFFECTED"], no_index_used=d["SUM_NO_INDEX_USED"],
                no_good_index_used=d["SUM_NO_GOOD_INDEX_USED"],
                full_scans=d["SUM_SELECT_SCAN"] + d["SUM_SELECT_FULL_JOIN"], full_joins=d["SUM_SELECT_FULL_JOIN"],
                range_checks=d["SUM_SELECT_RANGE_CHECK"], sort_rows=d["SUM_SORT_ROWS"],
                tmp_tables=d["SUM_CREATED_TMP_TABLES"], tmp_disk_tables=d["SUM_CREATED_TMP_DISK_TABLES"])


def merge_same_text(entries):
    """One entry per schema and text: digests that differ only in what the text does not show are added up."""
    merged = {}
    for e in entries:
        key = (e["schema"], e["text"])
        if key not in merged:
            merged[key] = dict(e, digests=[e["digest"]])
            continue
        m = merged[key]
        m["digests"].append(e["digest"])
        for k in SUMMED:
            m[k] += e[k]
        m["total_s"], m["lock_s"] = round(m["total_s"], 6), round(m["lock_s"], 6)
        m["avg_ms"] = round(m["total_s"] * 1000 / m["calls"], 3)
    return list(merged.values())


def rank(entries, top=10):
    """The `top` entries by total time, each with its share of the time of all of them."""
    total = sum(e["total_s"] for e in entries) or 1.0
    ranked = sorted(entries, key=lambda e: (-e["total_s"], -e["calls"]))[:top]
    return [dict(e, rank=i + 1, share=round(e["total_s"] / total, 4)) for i, e in enumerate(ranked)]


def keep_example(examples, rows, max_length):
    """Remember one complete example text per digest from history rows (a text cut at max_length is useless)."""
    for row in rows:
        text = row["SQL_TEXT"]
        if text and len(text) < max_length:
            examples[row["DIGEST"]] = dict(schema=row["CURRENT_SCHEMA"], sql=text)
    return examples


# ---------------------------------------------------------------- slow log (pt-query-digest)

def _num(metrics, name, field="sum", default=0.0):
    try:
        return float(metrics.get(name, {}).get(field, default))
    except (TypeError, ValueError):
        return default


def _yes(metrics, name):
    return int(_num(metrics, name, "yes", 0))


def parse_pt_query_digest(text):
    """pt-query-digest `--output json` -> one entry per class (fingerprint), same keys as the digest entries."""
    if not text.strip():
        return []
    start = text.find("{")
    try:
        doc = json.loads(text[start:]) if start >= 0 else None
    except ValueError as exc:
        raise DigestError(f"pt-query-digest did not print its JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise DigestError("pt-query-digest did not print its JSON")
    out = []
    for c in doc.get("classes") or []:
        m = c.get("metrics") or {}
        calls = int(c.get("query_count") or 0)
        total_s = _num(m, "Query_time")
        out.append(dict(source="slow_log", schema=(m.get("db") or {}).get("value"), digest=c.get("checksum"),
                        text=c.get("fingerprint") or "", calls=calls, total_s=round(total_s, 6),
                        avg_ms=round(_num(m, "Query_time", "avg") * 1000, 3),
                        p95_ms=round(_num(m, "Query_time", "pct_95") * 1000, 3),
                        max_ms=round(_num(m, "Query_time", "max") * 1000, 3),
                        rows_examined=int(_num(m, "Rows_examined")), rows_sent=int(_num(m, "Rows_sent")),
                        full_scans=_yes(m, "Full_scan") + _yes(m, "Full_join"), full_joins=_yes(m, "Full_join"),
                        filesorts=_yes(m, "Filesort"), tmp_tables=_yes(m, "Tmp_table"),
                        tmp_disk_tables=_yes(m, "Tmp_table_on_disk"),
                        example=((c.get("example") or {}).get("query") or "")))
    return out


def shape(text):
    """The words of a statement's text without its literals: equal for a digest, its slow-log fingerprint and examples.

    The digest spells interval units as the parser stores them (SQL_TSI_DAY for DAY); they are read back here.
    """
    words = _WORDS.findall(_LITERALS.sub("?", (text or "").lower().replace("`", "")))
    return tuple(w[8:] if w.startswith("sql_tsi_") else w for w in words)


def match_slow(entries, classes):
    """Give each digest entry the figures of its slow-log class (p95, slow calls, an example), when it has one."""
    by_shape = [(shape(c["text"]), shape(c["example"]), c) for c in classes]
    for entry in entries:
        words, example = shape(entry["text"]), shape(entry.get("example"))
        # A digest text longer than performance_schema_max_digest_length is cut: compare what it kept.
        cut = entry["text"].rstrip().endswith("...")
        found = next((c for s, e, c in by_shape
                      if s == words or (cut and s[:len(words)] == words) or (example and e == example)), None)
        if found:
            entry["slow"] = {k: found[k] for k in ("calls", "total_s", "avg_ms", "p95_ms", "max_ms")}
            entry.setdefault("example", found["example"])
    return entries


def slow_log_cut(size_now, offset):
    """Where the window's part of the slow log starts: the offset seen at its start, or 0 when the log was rotated."""
    return offset if 0 <= offset <= size_now else 0


# ---------------------------------------------------------------- plans

def explainable(sql):
    """The statement EXPLAIN and ANALYZE take: without leading comments and a SET STATEMENT ... FOR prefix."""
    return _SET_STATEMENT.sub("", _LEADING_COMMENTS.sub("", sql or ""), count=1)


def statement_kind(sql):
    """`read` (a plain SELECT: ANALYZE may run it), `write` (EXPLAIN only), or None (no plan: CALL, SET, ...)."""
    text = explainable(sql).lstrip("( \n\t").lower()
    verb = text.split(None, 1)[0] if text else ""
    if verb in ("select", "with"):
        return "write" if _LOCKING_READ.search(text) else "read"
    if verb in ("insert", "update", "delete", "replace"):
        return "write"
    return None


def _walk(node, found, within=()):
    if isinstance(node, dict):
        if "table" in node and isinstance(node["table"], dict) and "table_name" in node["table"]:
            t = node["table"]
            found["tables"].append(dict(table=t["table_name"], access=t.get("access_type"), key=t.get("key"),
                                        rows=t.get("rows"), r_rows=t.get("r_rows"), filtered=t.get("filtered"),
                                        r_filtered=t.get("r_filtered"),
                                        range_checked="range-checked-for-each-record" in within))
        for key, value in node.items():
            if key == "filesort":
                found["filesort"] = True
            elif key == "temporary_table":
                found["temporary"] = True
            _walk(value, found, within + (key,))
    elif isinstance(node, list):
        for value in node:
            _walk(value, found, within)


def plan_summary(plan):
    """EXPLAIN / ANALYZE FORMAT=JSON (text or parsed) -> its tables and what the plan does that costs."""
    doc = json.loads(plan) if isinstance(plan, str) else plan
    found = dict(tables=[], filesort=False, temporary=False)
    _walk(doc, found)
    block = doc.get("query_block") or {}
    found["r_total_time_ms"] = block.get("r_total_time_ms")
    found["range_checked"] = [t["table"] for t in found["tables"] if t["range_checked"]]
    found["full_scans"] = [t["table"] for t in found["tables"]
                           if t["access"] in ("ALL", "index") and (t["r_rows"] or t["rows"] or 0) >= SCAN_ROWS]
    return found


# ---------------------------------------------------------------- findings

def findings(entry, plan=None):
    """What in a statement costs and why, from its counters and (when there is one) its plan summary."""
    out = []
    calls = max(entry["calls"], 1)
    if entry["text"].lstrip().upper().startswith("CALL"):
        out.append("a stored procedure: its statements are timed in performance_schema.events_statements_summary_by_program, "
                   "and a CALL has no plan")
    if plan and plan["range_checked"]:
        out.append(f"no single index serves the join on {', '.join(plan['range_checked'])}: the server plans the access again "
                   "for every row of the outer table (\"range checked for each record\") and joins all of them before it "
                   "can sort and stop; an OR across two columns in the join condition does this, a UNION ALL of two "
                   "joins on one indexed column each does not")
    elif not plan and entry.get("range_checks"):
        out.append(f"{entry['range_checks']} joins re-planned for each row (\"range checked for each record\")")
    if plan and plan["full_scans"]:
        scans = ", ".join(f"{t['table']} ({t['r_rows'] if t['r_rows'] is not None else t['rows']} rows, {t['access']})"
                          for t in plan["tables"] if t["table"] in plan["full_scans"])
        out.append(f"reads whole tables or indexes: {scans}")
    elif not plan and entry.get("no_index_used") and entry["rows_examined"] / calls >= SCAN_ROWS:
        # Without a plan only (the scan of a UNION's or a derived table's result counts as "no index used" too).
        out.append(f"{entry['no_index_used']} of {entry['calls']} calls used no index "
                   f"({entry['rows_examined'] // calls} rows examined per call)")
    sent = max(entry["rows_sent"], entry.get("rows_affected") or 0, 1)
    if entry["rows_examined"] / calls >= SCAN_ROWS and entry["rows_examined"] / sent >= EXAMINED_PER_SENT:
        out.append(f"examines {entry['rows_examined'] // sent} rows for each row it returns "
                   f"({entry['rows_examined'] // calls} per call): an index on the columns of its WHERE and ORDER BY "
                   "would read only the rows it returns")
    if plan and plan["filesort"] and entry["rows_examined"] / calls >= SCAN_ROWS:
        out.append("sorts its rows (filesort" + (" through a temporary table" if plan["temporary"] else "")
                   + ") instead of reading them in order from an index")
    if entry.get("tmp_disk_tables"):
        out.append(f"{entry['tmp_disk_tables']} temporary tables went to disk (tmp_table_size / max_heap_table_size, "
                   "or a column type a memory table cannot hold)")
    return out


def worth_acting(entry, act_share=ACT_SHARE):
    """Whether a statement with findings holds enough of the window's time for a fix to matter."""
    fixable = [f for f in entry.get("findings", []) if not f.startswith("a stored procedure")]
    return bool(fixable) and entry["share"] >= act_share


# ---------------------------------------------------------------- the report for people

def _cell(text, width=110):
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= width else text[:width - 3] + "..."


def render_markdown(report):
    """The report as Markdown: the window, the top statements, what is worth acting on, the slow log's classes."""
    w = report["window"]
    lines = [f"# Query report: {report['host']}", "",
             f"Window: {w['start']} to {w['end']} ({w['seconds']} s); schemas {', '.join(report['schemas'])}; "
             f"{report['totals']['calls']} statements, {report['totals']['total_s']} s of statement time "
             "(performance_schema).", ""]
    act = [e for e in report["top"] if e["act"]]
    lines += ["## Worth acting on", ""]
    if act:
        for e in act:
            lines.append(f"- **#{e['rank']}** ({e['share'] * 100:.1f} % of the time, {e['calls']} calls, "
                         f"avg {e['avg_ms']} ms): `{_cell(e['text'], 90)}`")
            lines += [f"  - {f}" for f in e["findings"]]
    else:
        lines.append(f"Nothing: no statement with a finding holds {report['act_share'] * 100:.0f} % of the time.")
    lines += ["", "## Top statements by total time (performance_schema)", "",
              "| # | share | calls | total s | avg ms | p95 ms (slow log) | rows examined | rows sent | full scans "
              "| tmp (disk) | sort rows | statement |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in report["top"]:
        p95 = e["slow"]["p95_ms"] if e.get("slow") else ""
        lines.append(f"| {e['rank']} | {e['share'] * 100:.1f} % | {e['calls']} | {e['total_s']:.2f} | {e['avg_ms']} "
                     f"| {p95} | {e['rows_examined']} | {e['rows_sent']} | {e['full_scans']} "
                     f"| {e['tmp_tables']} ({e['tmp_disk_tables']}) | {e['sort_rows']} | `{_cell(e['text'])}` |")
    lines += ["", "## Plans", ""]
    for e in report["top"]:
        lines.append(f"### #{e['rank']} `{_cell(e['text'], 80)}`")
        lines.append("")
        if e.get("plan"):
            p = e["plan"]
            how = "ANALYZE (run for real)" if e.get("analyzed") else e.get("analyze_note") or "EXPLAIN"
            lines.append(f"{how}" + (f", {p['r_total_time_ms']:.1f} ms" if p.get("r_total_time_ms") else "")
                         + (", filesort" if p["filesort"] else "") + (", temporary table" if p["temporary"] else ""))
            lines.append("")
            lines += ["| table | access | key | rows (estimated) | rows (read) | range checked |", "|---|---|---|---|---|---|"]
            lines += [f"| {t['table']} | {t['access']} | {t['key'] or ''} | {t['rows']} | "
                      f"{'' if t['r_rows'] is None else round(t['r_rows'], 1)} | {'yes' if t['range_checked'] else ''} |"
                      for t in p["tables"]]
        else:
            lines.append(f"No plan: {e.get('plan_error') or 'not a statement EXPLAIN takes'}.")
            lines.append("")
        lines += [f"- {f}" for f in e["findings"]] or ["- nothing found"]
        lines.append("")
    slow = report["slow_log"]
    lines += ["## Slow log (pt-query-digest)", ""]
    if slow.get("error"):
        lines.append(f"Not read: {slow['error']}.")
    elif not slow["classes"]:
        lines.append(f"No statement above long_query_time ({slow.get('long_query_time')} s) in the window.")
    else:
        lines += [f"Statements above long_query_time ({slow.get('long_query_time')} s) in the window, by total time.", "",
                  "| calls | total s | avg ms | p95 ms | max ms | rows examined | rows sent | full scans | filesorts "
                  "| statement |", "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {c['calls']} | {c['total_s']:.2f} | {c['avg_ms']} | {c['p95_ms']} | {c['max_ms']} | "
                  f"{c['rows_examined']} | {c['rows_sent']} | {c['full_scans']} | {c['filesorts']} | `{_cell(c['text'])}` |"
                  for c in slow["classes"]]
    return "\n".join(lines) + "\n"
