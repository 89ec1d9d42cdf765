"""Documentation of the connection options every stockdb module takes (module_utils/stockdb/db.py)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_defaults_file:
    description: MySQL option file ([client] group, mode 0600) with the account's credentials.
    type: path
    default: /etc/stockdb/admin.cnf
  login_unix_socket:
    description: Unix socket of the server; overrides the option file.
    type: path
  login_host:
    description: Server host; overrides the option file.
    type: str
  login_port:
    description: Server port; overrides the option file.
    type: int
  login_user:
    description: Account name; overrides the option file.
    type: str
  login_password:
    description: Password; overrides the option file. Prefer the option file.
    type: str
  database:
    description: The trading database.
    type: str
    default: stockdb
  connect_timeout:
    description: Seconds to wait for the connection.
    type: int
    default: 10
requirements:
  - PyMySQL (python3-pymysql) on the managed host
"""
