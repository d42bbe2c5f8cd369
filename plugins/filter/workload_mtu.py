# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Filter l3.calico.workload_mtu: the workloads' veth MTU, by the node module's rule."""

from __future__ import annotations

DOCUMENTATION = r"""
name: workload_mtu
author: l3.calico maintainers
version_added: "1.0.0"
short_description: The MTU of the workload veths for the pools of the IPAM result
description:
  - The underlay MTU minus the largest encapsulation overhead of the enabled pools - 70 when an IPv6 pool uses VXLAN
    (VXLAN over the IPv6 underlay, C(vxlan-v6.calico)), else 50 when an IPv4 pool uses VXLAN, else 20 when one uses
    IPIP, else 0 - as Felix picks it (one MTU for every workload veth, the smallest the enabled encapsulations
    allow). The same rule (and code) as the C(workload_mtu) that module
    P(l3.calico.node#module) returns, for a play that does not run it (role P(l3.calico.calico_workloads#role)
    with C(calico_workloads_mtu=auto) and no role P(l3.calico.calico_node#role)).
options:
  _input:
    description: The pools of the IPAM result (C(calico_ipam_result.pools)), name to settings.
    type: dict
    required: true
  underlay_mtu:
    description: The underlay MTU.
    type: int
    default: 1500
  pools_ipv6:
    description: The IPv6 pools of the IPAM result (C(calico_ipam_result.pools_ipv6)), name to settings.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: The workloads' MTU over a 9000-byte underlay
  ansible.builtin.debug:
    msg: "{{ calico_ipam_result['pools'] | l3.calico.workload_mtu(9000) }}"
  # => 8950 with a VXLAN pool

- name: Dual stack - the IPv6 pools count too
  ansible.builtin.debug:
    msg: "{{ calico_ipam_result['pools'] | l3.calico.workload_mtu(1500, pools_ipv6=calico_ipam_result['pools_ipv6']) }}"
  # => 1430 with an IPv6 pool using VXLAN (1480 with only an IPIP pool)
"""

RETURN = r"""
_value:
  description: The MTU.
  type: int
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.l3.calico.plugins.plugin_utils.filter_args import validate

# The code behind the filter is imported when it is called: to find any filter of this collection, Ansible
# imports every filter file of it, in every worker (a host's task) whose templates name one.


def workload_mtu(*args, **kwargs) -> int:
    from ansible_collections.l3.calico.plugins.module_utils import node

    params = validate(DOCUMENTATION, "workload_mtu", args, kwargs)
    pools, underlay_mtu, pools6 = params["_input"], params["underlay_mtu"], params["pools_ipv6"] or {}
    bad = [name for name, pool in pools.items() if not isinstance(pool, dict)]
    if bad:
        raise AnsibleFilterError(f"workload_mtu: pools {bad} are not mappings (the input is calico_ipam_result.pools)")
    bad6 = [name for name, pool in pools6.items() if not isinstance(pool, dict)]
    if bad6:
        raise AnsibleFilterError(f"workload_mtu: pools_ipv6 {bad6} are not mappings (calico_ipam_result.pools_ipv6)")
    both = [name for name in pools6 if name in pools]
    if both:
        raise AnsibleFilterError(f"workload_mtu: pools {both} are in both pools and pools_ipv6 (one name, one pool)")
    return node.workload_mtu(underlay_mtu, {**pools, **pools6})


class FilterModule:
    def filters(self):
        return {"workload_mtu": workload_mtu}
