# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""The action plugins of the modules that take every node's routing data: read here, not templated into the task.

ansible-core sends every task's templated arguments back from the worker to the controller's main process
(the task's fields, beside its result) and keeps them until the task has run on every host. An argument
holding the whole fleet, templated on every host, is then hosts x nodes in the controller's memory: measured
at 1,000 hosts (issue 15), the node role's one module task grew the controller from 145 MB to 423 MB, and
every fork and task after it cost more (a skipped task 17 -> 31 ms per host). When the task leaves that
option out, these action plugins (in the worker, once per host) put the host's ``calico_ipam_result`` into
the module's arguments, as one JSON text the module reads as a mapping (an option of type ``dict``,
Ansible's ``check_type_dict``): the task's own arguments stay small and the module returns the data
summarised (``module_utils/fleet_args.py``). A task that gives the option runs the module as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


def ipam_of(task_vars: Mapping, host: str) -> Mapping:
    """The host's ``calico_ipam_result`` (role calico_ipam's), checked: a mapping with ``nodes`` and ``pools``."""
    ipam = task_vars.get("calico_ipam_result")
    if not isinstance(ipam, Mapping) or not isinstance(ipam.get("nodes"), Mapping) or "pools" not in ipam:
        what = type(ipam).__name__ if ipam is not None else "undefined"
        raise AnsibleActionFail(
            f"{host}: calico_ipam_result ({what}): the result of role l3.calico.calico_ipam is needed, a mapping with "
            "nodes and pools (run that role first), or give the module's fleet option"
        )
    return ipam


def routing_of(ipam: Mapping) -> Mapping:
    """Every node's routing data: the IPAM result's routing view (the nodes without their workloads), else its nodes."""
    return ipam["routing"] if isinstance(ipam.get("routing"), Mapping) else ipam["nodes"]


def routing_text(ipam: Mapping) -> str:
    """:func:`routing_of` as one JSON text: the IPAM action's ``routing_json`` (serialised once for the fleet, beside
    the ``routing`` it holds), else serialised here. At 1,000 nodes the view is ~250 kB of JSON, 10 ms to serialise
    in a worker busy beside 15 others: once per host and module, it grew site.yml with the fleet (issue 15)."""
    text = ipam.get("routing_json")
    if isinstance(text, str) and isinstance(ipam.get("routing"), Mapping):
        return text
    return json.dumps(routing_of(ipam), separators=(",", ":"))


class FleetAction(ActionBase):
    """Runs the module ``MODULE``; the option at ``PATH`` (a key, or keys into suboptions), when the task leaves
    it out while its parent is given (and the module's ``state`` is not ``absent``), is filled by :meth:`fleet`
    (from the host's ``calico_ipam_result``, unless a subclass reads something else)."""

    MODULE = ""
    PATH: tuple[str, ...] = ()
    _supports_check_mode = True
    _supports_async = False

    def fleet(self, task_vars: Mapping, host: str):
        """What the option takes, as data or as its JSON text (default: every node's routing data, from the host's
        IPAM result, as the IPAM serialised it once)."""
        return routing_text(ipam_of(task_vars, host))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # the module's run makes its own

        args = dict(self._task.args)
        parent = args if args.get("state") != "absent" else None  # a removal takes what it is given
        for key in self.PATH[:-1]:
            if parent is None or not isinstance(parent.get(key), Mapping):
                parent = None
                break
            parent[key] = dict(parent[key])
            parent = parent[key]
        if parent is not None and parent.get(self.PATH[-1]) is None:
            value = self.fleet(task_vars, task_vars.get("inventory_hostname", "?"))
            parent[self.PATH[-1]] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        result.update(self._execute_module(module_name=self.MODULE, module_args=args, task_vars=task_vars))
        return result
