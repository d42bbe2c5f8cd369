# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Action plugin l3.calico.host_audit: runs the module l3.calico.host_audit; its option ``ipam``, when the task leaves it
out, is read here from the host's ``calico_ipam_result`` (plugin_utils/fleet_action.py: the whole fleet stays out of the
task's arguments, which Ansible keeps for every host on the controller)."""

from __future__ import annotations

from ansible_collections.l3.calico.plugins.plugin_utils.fleet_action import FleetAction, ipam_of


class ActionModule(FleetAction):
    MODULE = "l3.calico.host_audit"
    PATH = ("ipam",)

    def fleet(self, task_vars, host):
        """The IPAM result's nodes (with their workloads) and pools: what the audit compares the host with."""
        ipam = ipam_of(task_vars, host)
        return {"nodes": ipam["nodes"], "pools": ipam["pools"]}
