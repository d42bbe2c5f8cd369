# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Action plugin l3.calico.tunnels: runs the module l3.calico.tunnels; its option ``nodes``, when the task leaves it
out, is read here from the host's ``calico_ipam_result`` (plugin_utils/fleet_action.py: the whole fleet stays out of the
task's arguments, which Ansible keeps for every host on the controller)."""

from __future__ import annotations

from ansible_collections.l3.calico.plugins.plugin_utils.fleet_action import FleetAction


class ActionModule(FleetAction):
    MODULE = "l3.calico.tunnels"
    PATH = ("nodes",)
