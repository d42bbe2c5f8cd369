# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Action plugin l3.calico.workloads: runs the module l3.calico.workloads; its option ``workloads``, when the task
leaves it out, is this host's workloads in its ``calico_ipam_result`` (which is then needed), and ``ipv6``, when left
out, whether that result gives this node an IPv6 address (with no result holding the host: the module's default) -
read here in Python, not by a Jinja expression indexing the fleet's nodes on every host (plugin_utils/fleet_action.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible_collections.l3.calico.plugins.plugin_utils.fleet_action import FleetAction, node_of


class ActionModule(FleetAction):
    MODULE = "l3.calico.workloads"

    def fill(self, args, task_vars, host):
        if args.get("workloads") is None:
            args["workloads"] = node_of(task_vars, host)["workloads"]
        ipam = task_vars.get("calico_ipam_result")
        nodes = ipam.get("nodes") if isinstance(ipam, Mapping) else None
        if args.get("ipv6") is None and isinstance(nodes, Mapping) and isinstance(nodes.get(host), Mapping):
            args["ipv6"] = nodes[host].get("ipv6") is not None
