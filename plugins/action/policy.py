# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Action plugin l3.calico.policy: runs the module l3.calico.policy; its option ``program``, when the task leaves it
out (``state=present``), is this host's program of ``calico_policy_plan`` (the registered result of
l3.calico.policy_plan), read here: a program can be a megabyte per host at 1,000 hosts x 50 workloads x 50
policies, and a templated task argument stays on the controller for every host until the task ends
(plugin_utils/fleet_action.py)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleActionFail

from ansible_collections.l3.calico.plugins.plugin_utils.fleet_action import FleetAction


class ActionModule(FleetAction):
    MODULE = "l3.calico.policy"
    PATH = ("program",)

    def fleet(self, task_vars, host):
        """This host's program in the compiled plan."""
        plan = task_vars.get("calico_policy_plan")
        hosts = plan.get("hosts") if isinstance(plan, Mapping) else None
        if not isinstance(hosts, Mapping) or not isinstance(hosts.get(host), Mapping):
            what = type(plan).__name__ if plan is not None else "undefined"
            raise AnsibleActionFail(
                f"{host}: calico_policy_plan ({what}): the result of l3.calico.policy_plan is needed, with this host's "
                "program in its hosts (run it first, or give program)"
            )
        return hosts[host]
