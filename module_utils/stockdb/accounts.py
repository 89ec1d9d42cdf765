"""Which server accounts to keep, make and remove: the plan behind library/stockdb_accounts.py.

  wanted   the accounts to exist (user, host and what they hold) - each user@host once
  absent   accounts that must not exist (an optional account turned off)
  owned    users every host of which the caller owns: any of their accounts at a host it does not
           want (or keep) is removed - a changed application host, a replica gone from the set,
           root from anywhere but this host, the anonymous user ('')
  keep     accounts of an owned user that stay although not wanted (root@localhost)

Pure: rows in, a plan out, so it is tested without a server. The module applies it with
community.mysql's own account functions, in one connection.
"""


class AccountsError(ValueError):
    """A request that names an account twice or both wants and removes it."""


def key(user, host):
    """The account's name as the server prints it: 'user'@'host'."""
    return f"'{user}'@'{host}'"


def _keys(entries, what):
    seen = []
    for entry in entries:
        k = (entry["user"], entry["host"].lower())
        if k in seen:
            raise AccountsError(f"{what} names {key(*k)} more than once")
        seen.append(k)
    return seen


def check(wanted, absent=()):
    """The request's (user, host) keys, wanted and absent; an account named twice in `wanted` or `absent`,
    or in both, fails with its name (the module checks before it connects)."""
    want = _keys(wanted, "accounts")
    gone = _keys(absent, "absent")
    both = [k for k in want if k in gone]
    if both:
        raise AccountsError(f"{key(*both[0])} is both in accounts and in absent")
    return want, gone


def plan(existing, wanted, absent=(), owned=(), keep=()):
    """The accounts to remove, in the order found, from `existing` (user, host) rows; the request is
    checked first (check)."""
    want, gone = check(wanted, absent)
    stay = set(want) | {(e["user"], e["host"].lower()) for e in keep}
    owned = set(owned)
    remove = []
    for user, host in existing:
        k = (user, host.lower())
        if k in remove:
            continue
        if k in gone or (user in owned and k not in stay):
            remove.append(k)
    return remove
