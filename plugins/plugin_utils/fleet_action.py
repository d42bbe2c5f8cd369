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


def node_of(task_vars: Mapping, host: str) -> Mapping:
    """This host's own part of its ``calico_ipam_result`` (``nodes[host]``), checked. Read here, in Python: in a Jinja
    expression, ``calico_ipam_result['nodes'][inventory_hostname]`` wraps the whole fleet's ``nodes`` (ansible-core
    2.19 makes a lazy copy of the mapping, an entry per node) at every use on every host - measured at 1,000 nodes,
    the workloads role's four uses grew its two tasks by 15-20 ms per host (issue 15)."""
    node = ipam_of(task_vars, host)["nodes"].get(host)
    if not isinstance(node, Mapping):
        raise AnsibleActionFail(
            f"{host}: calico_ipam_result.nodes has no entry for this host: it was not in the IPAM's group when the role "
            "l3.calico.calico_ipam ran (or give the module's options)"
        )
    return node


class FleetAction(ActionBase):
    """Runs the module ``MODULE``. Unless the module's ``state`` is ``absent`` (a removal takes what it is given),
    options the task leaves out are read from the host's ``calico_ipam_result`` (:meth:`fill`): the option at
    ``PATH`` (a key, or keys into suboptions; only when its parent is given) by :meth:`fleet`; a subclass may fill
    others from this host's own node (:func:`node_of`)."""

    MODULE = ""
    PATH: tuple[str, ...] = ()
    _supports_check_mode = True
    _supports_async = False

    def fleet(self, task_vars: Mapping, host: str):
        """What the option takes, as data or as its JSON text (default: every node's routing data, from the host's
        IPAM result, as the IPAM serialised it once)."""
        return routing_text(ipam_of(task_vars, host))

    def fill(self, args: dict, task_vars: Mapping, host: str) -> None:
        """Put into ``args`` (the module's arguments, a copy of the task's) what the task left out."""
        parent = args if self.PATH else None
        for key in self.PATH[:-1]:
            if not isinstance(parent.get(key), Mapping):
                parent = None
                break
            parent[key] = dict(parent[key])
            parent = parent[key]
        if parent is not None and parent.get(self.PATH[-1]) is None:
            value = self.fleet(task_vars, host)
            parent[self.PATH[-1]] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # the module's run makes its own

        args = dict(self._task.args)
        if args.get("state") != "absent":
            self.fill(args, task_vars, task_vars.get("inventory_hostname", "?"))
        result.update(self._execute_module(module_name=self.MODULE, module_args=args, task_vars=task_vars))
        return result
