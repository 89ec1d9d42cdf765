"""Controller side of stockdb_seed: make the users with Faker ko_KR and read the listing.

Faker runs on the controller (it is in requirements.txt, pinned, so a seed gives the same names
everywhere); the managed host needs only PyMySQL. The listing is read from `stocks_csv` on the
controller (default: the bundled files/data/kospi_2025.csv), so the host needs no copy of it.
"""

import csv
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

LISTING_COLUMNS = {"symbol", "name", "sector", "market", "ref_close_krw", "market_cap_krw"}
CONTROLLER_ONLY = ("stocks_csv",)


def make_users(count, seed):
    try:
        from faker import Faker
    except ImportError as exc:
        raise AnsibleActionFail("stockdb_seed needs Faker on the controller: pip install -r requirements.txt") from exc
    fake = Faker("ko_KR")
    fake.seed_instance(seed)
    users = []
    for n in range(1, count + 1):
        local, _, domain = fake.email().partition("@")
        users.append([fake.name(), f"{local}.{n}@{domain}"])  # the number keeps e-mails unique at any scale
    return users


def read_listing(path):
    if not os.path.isfile(path):
        raise AnsibleActionFail(f"stocks_csv {path} does not exist")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = LISTING_COLUMNS - set(reader.fieldnames or ())
        if missing:
            raise AnsibleActionFail(f"stocks_csv {path} lacks the columns {sorted(missing)}")
        rows = [{k: row[k] for k in LISTING_COLUMNS} for row in reader]
    if not rows:
        raise AnsibleActionFail(f"stocks_csv {path} has no rows")
    return rows


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        users = int(args.get("users", 50))
        seed = int(args.get("seed", 42))
        if users < 1:
            raise AnsibleActionFail(f"users={users} must be at least 1")
        default_csv = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                   "files", "data", "kospi_2025.csv")
        stocks_csv = args.pop("stocks_csv", None) or default_csv
        args["user_rows"] = make_users(users, seed)
        args["stock_rows"] = read_listing(stocks_csv)
        result.update(self._execute_module(module_name="stockdb_seed", module_args=args, task_vars=task_vars))
        result.pop("invocation", None)  # the generated rows are large; keep the output readable
        return result
