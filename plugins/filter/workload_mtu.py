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
  - The underlay MTU minus the largest encapsulation overhead of the enabled pools - 50 when one uses VXLAN, else 20
    when one uses IPIP, else 0 - as Felix picks it. The same rule (and code) as the C(workload_mtu) that module
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
"""

EXAMPLES = r"""
- name: The workloads' MTU over a 9000-byte underlay
  ansible.builtin.debug:
    msg: "{{ calico_ipam_result['pools'] | l3.calico.workload_mtu(9000) }}"
  # => 8950 with a VXLAN pool
"""

RETURN = r"""
_value:
  description: The MTU.
  type: int
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.l3.calico.plugins.module_utils import node
from ansible_collections.l3.calico.plugins.plugin_utils.filter_args import validate


def workload_mtu(*args, **kwargs) -> int:
    params = validate(DOCUMENTATION, "workload_mtu", args, kwargs)
    pools, underlay_mtu = params["_input"], params["underlay_mtu"]
    bad = [name for name, pool in pools.items() if not isinstance(pool, dict)]
    if bad:
        raise AnsibleFilterError(f"workload_mtu: pools {bad} are not mappings (the input is calico_ipam_result.pools)")
    return node.workload_mtu(underlay_mtu, pools)


class FilterModule:
    def filters(self):
        return {"workload_mtu": workload_mtu}
