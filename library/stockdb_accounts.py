#!/usr/bin/python
"""Ansible module stockdb_accounts: every account of a role in one run, with community.mysql's own account code."""

DOCUMENTATION = r"""
---
module: stockdb_accounts
short_description: The server's accounts - made, brought to their privileges and removed - in one run on the host
description:
  - Ensures each entry of O(accounts) exists with its authentication plugin and hash, privileges, resource
    limits and TLS requirement; removes each entry of O(absent); and removes every account of a user of
    O(owned_users) at a host neither wanted nor in O(keep).
  - Each account is compared and changed by community.mysql's own functions (those of
    community.mysql.mysql_user, with update_password always and column_case_sensitive false), so an
    account ends as that module would leave it. What differs is the cost - one module run and one
    connection for all of them, where mysql_user in a loop runs a module per account (the mariadb role's
    rerun spent about 4 s there).
  - The request is checked before anything is read or changed - an account named twice, or both wanted
    and absent, fails with its name.
  - Supports check mode (reports what would change).
  - Returns the server's databases too, so the play can skip creating or dropping one that is already
    as wanted without another run on the host.
options:
  accounts:
    description: The accounts to exist.
    type: list
    elements: dict
    default: []
    suboptions:
      user:
        description: User name.
        type: str
        required: true
      host:
        description: Host pattern (C(localhost), C(127.0.0.1), C(10.0.1.%)).
        type: str
        required: true
      plugin:
        description: Authentication plugin (C(ed25519), C(mysql_native_password)).
        type: str
        required: true
      plugin_hash_string:
        description: The plugin's hash of the password (the role's filter stockdb_auth_string makes it).
        type: str
        required: true
      priv:
        description: Privileges in community.mysql.mysql_user's form (C(db.*:SELECT,INSERT/other.*:SELECT)).
        type: str
        required: true
      resource_limits:
        description: C(MAX_USER_CONNECTIONS), C(MAX_STATEMENT_TIME) and the others mysql_user takes.
        type: dict
      tls_requires:
        description: What the account must log in with (C({SSL - null})); not given, the requirement is left as it is.
        type: dict
  absent:
    description: Accounts that must not exist (an optional account turned off).
    type: list
    elements: dict
    default: []
    suboptions:
      user:
        description: User name.
        type: str
        required: true
      host:
        description: Host pattern.
        type: str
        required: true
  owned_users:
    description:
      - Users whose every account the caller owns - any of them at a host not in O(accounts) or O(keep)
        is removed (a changed application host, a replica gone from the set; C(root) anywhere but this
        host; C('') the anonymous accounts).
    type: list
    elements: str
    default: []
  keep:
    description: Accounts of an owned user that stay although not in O(accounts) (C(root@localhost)).
    type: list
    elements: dict
    default: []
    suboptions:
      user:
        description: User name.
        type: str
        required: true
      host:
        description: Host pattern.
        type: str
        required: true
  session_vars:
    description: Session variables set first (C(sql_log_bin - 0) keeps account changes out of the binary log).
    type: dict
    default: {}
  login_unix_socket:
    description: The server's socket; root logs in by it.
    type: str
    required: true
author: stockdb
"""

EXAMPLES = r"""
- name: Ensure the accounts exist, and no other host of the owned users
  stockdb_accounts:
    login_unix_socket: /run/mysqld/mysqld.sock
    accounts:
      - {user: stockdb_app, host: localhost, plugin: ed25519, plugin_hash_string: "{{ app_hash }}",
         priv: "stockdb.*:SELECT,INSERT,UPDATE,DELETE,EXECUTE"}
    absent:
      - {user: stockdb_chaos, host: localhost}
    owned_users: [root, "", stockdb_app]
    keep:
      - {user: root, host: localhost}
"""

RETURN = r"""
created:
  description: Accounts made (or that would be, in check mode), as 'user'@'host'.
  type: list
  returned: always
  sample: ["'stockdb_app'@'localhost'"]
updated:
  description: Accounts whose plugin, hash, privileges, limits or TLS requirement changed.
  type: list
  returned: always
removed:
  description: Accounts removed.
  type: list
  returned: always
  sample: ["'root'@'127.0.0.1'"]
databases:
  description: The server's databases, after the run.
  type: list
  returned: always
  sample: [information_schema, mysql, stockdb]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.stockdb import accounts as plan
from ansible_collections.community.mysql.plugins.module_utils.database import SQLParseError
from ansible_collections.community.mysql.plugins.module_utils.mysql import (
    mysql_connect,
    mysql_driver,
    mysql_driver_fail_msg,
    set_session_vars,
)
from ansible_collections.community.mysql.plugins.module_utils.user import (
    InvalidPrivsError,
    get_mode,
    limit_resources,
    privileges_unpack,
    sanitize_requires,
    user_add,
    user_delete,
    user_exists,
    user_mod,
)

ACCOUNT = dict(user=dict(type="str", required=True), host=dict(type="str", required=True))


def ensure(module, cursor, mode, account):
    """One wanted account, as community.mysql.mysql_user ensures it: True when it was made, False when it
    existed, None when nothing changed."""
    user, host = account["user"], account["host"].lower()
    priv = privileges_unpack(account["priv"], mode, False)
    tls = sanitize_requires(account["tls_requires"])
    common = dict(password=None, encrypted=False, plugin=account["plugin"], plugin_hash_string=account["plugin_hash_string"],
                  plugin_auth_string=None, salt=None, new_priv=priv, attributes=None, tls_requires=tls, module=module,
                  password_expire=None, password_expire_interval=None)
    if user_exists(cursor, user, host, False):
        changed = user_mod(cursor, user, host, False, append_privs=False, subtract_privs=False, **common)["changed"]
        made = False
    else:
        changed = user_add(cursor, user, host, False, reuse_existing_password=False, **common)["changed"]
        made = True
    if account["resource_limits"]:
        changed = limit_resources(module, cursor, user, host, account["resource_limits"], module.check_mode) or changed
    return made if changed else None


def main():
    spec = dict(
        accounts=dict(type="list", elements="dict", default=[], options=dict(
            ACCOUNT, plugin=dict(type="str", required=True), plugin_hash_string=dict(type="str", required=True, no_log=True),
            priv=dict(type="str", required=True), resource_limits=dict(type="dict"), tls_requires=dict(type="dict"))),
        absent=dict(type="list", elements="dict", default=[], options=dict(ACCOUNT)),
        owned_users=dict(type="list", elements="str", default=[]),
        keep=dict(type="list", elements="dict", default=[], options=dict(ACCOUNT)),
        session_vars=dict(type="dict", default={}),
        login_unix_socket=dict(type="str", required=True),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    try:
        plan.check(p["accounts"], p["absent"])
    except plan.AccountsError as exc:
        module.fail_json(msg=str(exc))
    if mysql_driver is None:
        module.fail_json(msg=mysql_driver_fail_msg)
    try:
        cursor, conn = mysql_connect(module, config_file="", autocommit=True)
    except Exception as exc:  # the driver's errors have no common base the collection exports
        module.fail_json(msg=f"cannot log in by {p['login_unix_socket']}: {exc}")
    result = dict(created=[], updated=[], removed=[])
    current = None
    try:
        set_session_vars(module, cursor, p["session_vars"])
        mode = get_mode(cursor)
        for account in p["accounts"]:
            current = plan.key(account["user"], account["host"].lower())
            made = ensure(module, cursor, mode, account)
            if made is not None:
                result["created" if made else "updated"].append(current)
        cursor.execute("SELECT User, Host FROM mysql.user")
        for user, host in plan.plan(cursor.fetchall(), p["accounts"], p["absent"], p["owned_users"], p["keep"]):
            current = plan.key(user, host)
            user_delete(cursor, user, host, False, module.check_mode)
            result["removed"].append(current)
        current = None
        cursor.execute("SHOW DATABASES")
        result["databases"] = sorted(row[0] for row in cursor.fetchall())
    except (SQLParseError, InvalidPrivsError, mysql_driver.Error) as exc:
        module.fail_json(msg=f"{current or 'reading the accounts'}: {exc}", **result)
    finally:
        conn.close()
    module.exit_json(changed=bool(result["created"] or result["updated"] or result["removed"]), **result)


if __name__ == "__main__":
    main()
