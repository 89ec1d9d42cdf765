"""Filters over MariaDB GTID positions and states, for the replication playbooks.

A GTID is ``domain-server-sequence``; a position (``@@gtid_binlog_pos``, ``Gtid_IO_Pos``) holds the last
GTID of each domain, a state (``@@gtid_binlog_state``) the last GTID of each (domain, server) pair. With
``gtid_strict_mode`` the sequence numbers of a domain only grow, whoever wrote them.

- ``stockdb_gtid_seq(position, domain=0)``: the sequence number a position holds for a domain (0 = none):
  failover.yml ranks the replicas by how much of the old primary's domain they received.
- ``stockdb_gtid_errant(state, reference)``: the GTIDs of ``state`` that ``reference`` does not hold, as a
  list of ``domain-server-sequence``: transactions a host wrote that its primary never had (a write on a
  replica, or what a failed primary wrote after the others stopped hearing it). Empty = none found.

  A state holds one GTID per server that wrote in a domain, and only since the host's binlog began: a host
  built from a copy knows nothing of the servers that wrote before the copy. So a GTID whose server the
  reference does not know counts as errant only when it is newer than the oldest GTID the reference holds in
  that domain; an older one is taken as history from before the reference's copy. That can miss a
  transaction written on a failed primary before the reference was copied; MariaDB itself then refuses to
  replicate it (gtid_strict_mode: error 1236, the GTID is not in the primary's binlog), which
  replicate_from.yml reports.
"""

import re

from ansible.errors import AnsibleFilterError

_GTID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def parse(text):
    """'0-1-5,1-2-9' -> [(0, 1, 5), (1, 2, 9)]; '' -> []."""
    if text is None:
        return []
    if not isinstance(text, str):
        raise AnsibleFilterError(f"stockdb_gtid: {text!r} is not a GTID list (domain-server-sequence, ...)")
    gtids = []
    for part in filter(None, (p.strip() for p in text.replace("\n", ",").split(","))):
        match = _GTID.match(part)
        if not match:
            raise AnsibleFilterError(f"stockdb_gtid: {part!r} in {text!r} is not a GTID (domain-server-sequence)")
        gtids.append(tuple(int(n) for n in match.groups()))
    return gtids


def stockdb_gtid_seq(position, domain=0):
    return max((seq for d, _, seq in parse(position) if d == int(domain)), default=0)


def stockdb_gtid_errant(state, reference):
    held, oldest = {}, {}
    for domain, server, seq in parse(reference):
        held[(domain, server)] = max(seq, held.get((domain, server), 0))
        oldest[domain] = min(seq, oldest.get(domain, seq))
    errant = []
    for d, s, n in parse(state):
        if (d, s) in held:
            if n > held[(d, s)]:
                errant.append(f"{d}-{s}-{n}")
        elif d not in oldest or n > oldest[d]:
            errant.append(f"{d}-{s}-{n}")
    return errant


class FilterModule:
    def filters(self):
        return {"stockdb_gtid_seq": stockdb_gtid_seq, "stockdb_gtid_errant": stockdb_gtid_errant}
