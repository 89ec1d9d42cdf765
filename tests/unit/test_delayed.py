"""module_utils/stockdb/delayed.py: where a delayed replica stops, from the primary's binlog headers."""

import pytest
from stockdb import delayed
from stockdb.delayed import DelayedError

# What mariadb-binlog --base64-output=decode-rows prints around GTID events (TZ=UTC), trimmed.
BINLOG = """\
# at 852
#261204 19:14:13 server id 11  end_log_pos 894 CRC32 0x1d3eb945 	GTID 0-11-100 trans
/*!100001 SET @@session.gtid_seq_no=100*//*!*/;
#261204 19:14:13 server id 11  end_log_pos 1026 CRC32 0x9aaba716 	Xid = 77
#261204 19:14:14 server id 11  end_log_pos 1070 CRC32 0x9aaba716 	GTID 0-11-101 trans
#261204 19:14:14 server id 11  end_log_pos 1100 CRC32 0x9aaba716 	Xid = 78
#261204 19:14:15 server id 12  end_log_pos 1150 CRC32 0x9aaba716 	GTID 0-12-102 trans
#261204 19:14:17 server id 12  end_log_pos 1200 CRC32 0x9aaba716 	GTID 0-12-103 ddl
#261204 19:14:18 server id 12  end_log_pos 1250 CRC32 0x9aaba716 	GTID 0-12-104 trans
"""
EVENTS = list(delayed.gtid_events(BINLOG.splitlines()))
T = EVENTS[0][0]  # 2026-12-04 19:14:13 UTC


def test_the_headers_give_each_transaction_its_gtid_and_utc_time():
    assert [gtid for _, gtid in EVENTS] == [(0, 11, 100), (0, 11, 101), (0, 12, 102), (0, 12, 103), (0, 12, 104)]
    assert [when - T for when, _ in EVENTS] == [0, 1, 2, 4, 5]
    assert T == delayed.parse_time("2026-12-04T19:14:13Z") == delayed.parse_time("2026-12-05T04:14:13+09:00")


def test_a_bad_gtid_stops_on_the_exact_gtid_before_it_whatever_server_wrote_it():
    # the stop is 0-12-102 (after a switchover its server id differs): START SLAVE UNTIL needs it exactly
    plan = delayed.plan(EVENTS, delayed.parse_position("0-11-100"), before_gtid="0-12-103")
    assert plan == {"bad_gtid": "0-12-103", "bad_at": "2026-12-04T19:14:17Z", "stop_gtid": "0-12-102", "transactions": 2}


def test_a_time_stops_before_the_first_transaction_at_or_after_it():
    plan = delayed.plan(EVENTS, delayed.parse_position("0-11-100"), before_time="2026-12-04T19:14:16+00:00")
    assert (plan["bad_gtid"], plan["stop_gtid"], plan["transactions"]) == ("0-12-103", "0-12-102", 2)
    plan = delayed.plan(EVENTS, delayed.parse_position("0-11-100"), before_time="2026-12-04T19:14:14Z")
    assert (plan["bad_gtid"], plan["stop_gtid"], plan["transactions"]) == ("0-11-101", "0-11-100", 0)



@pytest.mark.parametrize("before_time", ["2026-12-04T19:14:17.700Z", "2026-12-05T04:14:17.999999+09:00",
                                         "2026-12-04T19:14:17Z", "2026-12-04T19:14:16.001Z"])
def test_a_time_within_the_second_a_transaction_was_logged_in_stops_before_it(before_time):
    # the binlog logs 0-12-103 at 19:14:17 (whole seconds); it may have run at 19:14:17.7: the stop is before it
    plan = delayed.plan(EVENTS, delayed.parse_position("0-11-100"), before_time=before_time)
    assert (plan["bad_gtid"], plan["stop_gtid"], plan["transactions"]) == ("0-12-103", "0-12-102", 2)


def test_a_fraction_of_a_second_is_dropped_from_the_time():
    assert delayed.parse_time("2026-12-04T19:14:17.700+00:00") == delayed.parse_time("2026-12-04T19:14:17Z") == T + 4
    assert delayed.parse_time("2026-12-04T19:14:16.999Z") == T + 3
    # the next whole second is the next transaction's
    plan = delayed.plan(EVENTS, delayed.parse_position("0-11-100"), before_time="2026-12-04T19:14:18.000Z")
    assert (plan["bad_gtid"], plan["stop_gtid"]) == ("0-12-104", "0-12-103")


def test_a_time_within_the_second_of_a_transaction_already_applied_is_refused():
    # 0-12-103 (logged at 19:14:17) is applied: a bad statement at 19:14:17.5 may be it, the replica holds it
    with pytest.raises(DelayedError, match="already applied transactions from"):
        delayed.plan(EVENTS, delayed.parse_position("0-12-103"), before_time="2026-12-04T19:14:17.500Z")

def test_the_next_transaction_bad_means_nothing_to_apply():
    plan = delayed.plan(EVENTS, delayed.parse_position("0-12-102"), before_gtid="0-12-103")
    assert (plan["stop_gtid"], plan["transactions"]) == ("0-12-102", 0)


@pytest.mark.parametrize("kwargs, applied, message", [
    ({"before_gtid": "0-12-103"}, "0-12-103", "already applied 0-12-103"),
    ({"before_gtid": "0-12-103"}, "0-12-104", "already applied 0-12-103"),
    ({"before_time": "2026-12-04T19:14:16Z"}, "0-12-104", "already applied transactions from"),
    ({"before_gtid": "0-12-999"}, "0-11-100", "0-12-999 is not in the primary's binlog"),
    ({"before_gtid": "1-12-103"}, "0-11-100", "applied nothing in GTID domain 1"),
    ({"before_time": "2026-12-04T20:00:00Z"}, "0-11-100", "no transaction in the primary's binlog at or after"),
    ({"before_time": "2026-12-04 19:14:16"}, "0-11-100", "has no UTC offset"),
    ({"before_time": "yesterday"}, "0-11-100", "is not an ISO 8601 time"),
    ({"before_gtid": "0-12"}, "0-11-100", "is not a GTID"),
])
def test_what_cannot_or_must_not_be_recovered_is_refused_saying_why(kwargs, applied, message):
    with pytest.raises(DelayedError, match=message):
        delayed.plan(EVENTS, delayed.parse_position(applied), **kwargs)


def test_transactions_of_another_domain_waiting_too_are_refused():
    events = EVENTS + [(T + 6, (1, 12, 7))]
    with pytest.raises(DelayedError, match=r"domains \[1\] are also waiting"):
        delayed.plan(events, delayed.parse_position("0-11-100"), before_gtid="0-12-104")
    # applied already in that domain: nothing waits there
    plan = delayed.plan(events, delayed.parse_position("0-11-100,1-12-7"), before_gtid="0-12-104")
    assert plan["stop_gtid"] == "0-12-103"


def test_the_binlog_to_read_from_is_the_newest_that_starts_at_or_before_the_position():
    files = [("binlog.000001", ""), ("binlog.000002", "0-11-50"), ("binlog.000003", "0-12-120")]
    assert delayed.first_file(files, 0, 100) == "binlog.000002"
    assert delayed.first_file(files, 0, 120) == "binlog.000003"
    assert delayed.first_file(files, 0, 10) == "binlog.000001"  # the first file starts with nothing before it
    with pytest.raises(DelayedError, match="were purged"):
        delayed.first_file([("binlog.000007", "0-11-500")], 0, 100)


def test_positions_parse_per_domain():
    assert delayed.parse_position("0-11-100, 1-12-7") == {0: (0, 11, 100), 1: (1, 12, 7)}
    assert delayed.parse_position("") == {}
