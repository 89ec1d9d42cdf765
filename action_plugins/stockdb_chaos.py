"""Controller side of stockdb_chaos: tell the module which inventory groups its host is in.

A module sees no inventory, and a parameter the playbook passes (`groups: "{{ group_names }}"`) could
be forgotten or typed by hand (`groups=chaos_targets` on any host). This plugin runs for every call of
the module and sets `inventory_groups` and `inventory_hostname` from the inventory itself; a task that
sets them is refused. The module does every check (its parameters first, then confirm and the group
chaos_targets), so a bad parameter is named as such on any host.

Like any variable, group_names yields to extra vars (-e): the check, like confirm, guards against the
wrong inventory or --limit, not against an operator who could as well edit the inventory.
"""

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

FROM_INVENTORY = ("inventory_groups", "inventory_hostname")


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        given = [name for name in FROM_INVENTORY if name in args]
        if given:
            raise AnsibleActionFail(f"stockdb_chaos takes {', '.join(given)} from the inventory, not from the task")
        if self._task.delegate_to:
            # the groups checked are the inventory host's: they must be those of the host the fault hits
            raise AnsibleActionFail("stockdb_chaos does not run delegated: the fault hits the host whose groups are checked")
        args["inventory_groups"] = list(task_vars.get("group_names") or [])
        args["inventory_hostname"] = str(task_vars.get("inventory_hostname") or "")
        result.update(self._execute_module(module_name="stockdb_chaos", module_args=args, task_vars=task_vars))
        return result
