# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Action plugin l3.calico.node: runs the module l3.calico.node; its options ``nodes`` and ``workloads``, when the task
leaves them out, are read here from the host's ``calico_ipam_result`` - its routing view and this host's workloads
(``workloads`` only when there is an IPAM result: else the module's default, none)
(plugin_utils/fleet_action.py: the whole fleet stays out of the task's arguments, which Ansible keeps for every host on
the controller, and no Jinja expression indexes the fleet's nodes on every host)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.l3.calico.plugins.plugin_utils.fleet_action import FleetAction, node_of


class ActionModule(FleetAction):
    MODULE = "l3.calico.node"
    PATH = ("nodes",)

    def fill(self, args, task_vars, host):
        super().fill(args, task_vars, host)
        if args.get("workloads") is None and isinstance(task_vars.get("calico_ipam_result"), Mapping):
            args["workloads"] = node_of(task_vars, host)["workloads"]  # without an IPAM result: the module's default
