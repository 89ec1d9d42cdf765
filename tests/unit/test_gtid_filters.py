"""filter_plugins/stockdb_gtid.py: ranking replicas by GTID and finding errant transactions."""

import importlib.util
import pathlib

import pytest
from ansible.errors import AnsibleFilterError

_spec = importlib.util.spec_from_file_location(
    "stockdb_gtid", pathlib.Path(__file__).parents[2] / "filter_plugins" / "stockdb_gtid.py")
gtid = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gtid)


def test_the_sequence_of_a_domain_is_read_from_a_position():
    assert gtid.stockdb_gtid_seq("0-106645571-42") == 42
    assert gtid.stockdb_gtid_seq("1-7-3,0-106645571-42", 1) == 3
    assert gtid.stockdb_gtid_seq("", 0) == 0  # a replica that received nothing yet
    assert gtid.stockdb_gtid_seq("1-7-3") == 0


def test_a_replica_that_only_applied_its_primary_has_no_errant_transaction():
    primary = "0-11-900"
    assert gtid.stockdb_gtid_errant("0-11-880", primary) == []  # behind, not errant
    assert gtid.stockdb_gtid_errant("0-11-900", primary) == []
    assert gtid.stockdb_gtid_errant("", primary) == []


def test_a_write_on_a_replica_or_a_lost_tail_of_an_old_primary_is_errant():
    # a replica (server 12) wrote one transaction of its own
    assert gtid.stockdb_gtid_errant("0-11-900,0-12-901", "0-11-900") == ["0-12-901"]
    # the old primary wrote 901..903 that no replica received before the new one (13) took over
    assert gtid.stockdb_gtid_errant("0-11-903", "0-11-900,0-13-950") == ["0-11-903"]
    # after a switchover the new primary's state holds both servers' GTIDs
    assert gtid.stockdb_gtid_errant("0-11-900,0-13-950", "0-11-900,0-13-960") == []


def test_a_malformed_position_is_refused_with_its_text():
    with pytest.raises(AnsibleFilterError, match="'0-1' in '0-1,0-2-3' is not a GTID"):
        gtid.stockdb_gtid_seq("0-1,0-2-3")
    with pytest.raises(AnsibleFilterError, match="is not a GTID list"):
        gtid.stockdb_gtid_errant(42, "")


def test_history_from_before_a_rebuilt_primary_was_copied_is_not_errant():
    # db1 was rebuilt from a copy at 0-13-42917: its binlog knows only server 13 from there on; a replica still
    # holds the last GTID server 12 wrote, long before (35720), which the copy contained
    rebuilt = "0-13-42930"
    assert gtid.stockdb_gtid_errant("0-11-38385,0-12-35720,0-13-42930", rebuilt) == []
    # ...but a GTID of an unknown server newer than what the reference holds is errant
    assert gtid.stockdb_gtid_errant("0-12-42931", rebuilt) == ["0-12-42931"]
    # a domain the reference never wrote in: everything in it is errant
    assert gtid.stockdb_gtid_errant("1-12-5", rebuilt) == ["1-12-5"]
