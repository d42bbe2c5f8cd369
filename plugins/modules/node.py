#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node
short_description: Converge a node's tunnels, sysctls and firewall in one module run
version_added: "1.0.0"
description:
  - What M(l3.calico.tunnels), M(l3.calico.sysctls) and M(l3.calico.firewall) do, in that order, in one module run
    (a task costs a module start per host; a node whose state is right costs one).
  - With O(packages), first finds out with C(dpkg-query) which of them are not installed. When some are missing,
    nothing is changed; the tunnels are planned in check mode (a kernel without the C(ipip) driver fails now,
    before any package is installed) and the missing packages are returned in RV(missing_packages), for the
    package manager; run the module again afterwards.
  - A kernel without the C(ipip) driver, when an IPIP pool selects the node, fails before anything changes.
  - "With O(state=absent) (a node leaving the cluster) it takes away what it set up, and nothing else:
    C(vxlan.calico) when it carries the alias C(l3.calico:vxlan) (its neighbours, FDB entries and routes go
    with it); on C(tunl0), the kernel's fallback device of the C(ipip) module, which is kept and whose module
    is not unloaded, the node's tunnel address (its IPIP address of O(nodes), and with the alias
    C(l3.calico:ipip) the C(/32)s inside O(pools); then it is also set down and the alias cleared), other
    addresses stay; routes with protocol 80 inside
    O(pools) on other devices; the file O(sysctl_file) (refused when it was not written by l3.calico); the
    nftables table C(ip l3calico), the iptables-legacy chains C(L3CALICO-*) and their jumps, and
    O(firewall_state_file). Sysctl values applied at run time are not restored (the earlier values are not
    known, and C(net.ipv4.ip_forward) may serve other things on the host); without the file they are not set
    again at the next boot. O(packages) are not removed."
options:
  state:
    description:
      - V(present) converges the node; V(absent) removes what the module set up (a node leaving the cluster).
    type: str
    choices: [present, absent]
    default: present
  packages:
    description: Debian packages the node needs; empty to skip the check.
    type: list
    elements: str
    default: []
  workloads:
    description:
      - This host's workloads (C(calico_ipam_result.nodes[node].workloads)), for the anti-spoofing rules.
      - Left out of the task, the module's action plugin reads them from the host's C(calico_ipam_result) when it has
        one (none without).
    type: list
    elements: dict
    default: []
  sysctls:
    description: Sysctl keys (dotted) and their values (M(l3.calico.sysctls)); none by default.
    default: {}
extends_documentation_fragment:
  - l3.calico.tunnels
  - l3.calico.sysctls
  - l3.calico.firewall
  - l3.calico.attributes
seealso:
  - module: l3.calico.tunnels
  - module: l3.calico.sysctls
  - module: l3.calico.firewall
author:
  - l3.calico maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Remove the tunnels, the sysctl file and the firewall rules of a node that leaves
  l3.calico.node:
    state: absent
    node: "{{ inventory_hostname }}"
    nodes: "{{ calico_ipam_result.nodes }}"
    pools: "{{ calico_ipam_result.pools }}"

- name: Converge the node unless packages are missing (nodes and workloads read from calico_ipam_result)
  l3.calico.node:
    packages: [iproute2, bird2, nftables, iptables, kmod, procps]
    node: "{{ inventory_hostname }}"
    pools: "{{ calico_ipam_result.pools }}"
    sysctls: {net.ipv4.ip_forward: 1}
  register: node

- name: Install what is missing
  ansible.builtin.apt:
    name: "{{ node.missing_packages }}"
  when: node.missing_packages | length > 0
"""

RETURN = r"""
missing_packages:
  description: Packages of O(packages) not installed (when not empty, nothing was converged).
  returned: always
  type: list
  elements: str
  sample: []
changes:
  description: What was (or in check mode would be) changed, one line each, prefixed by the part.
  returned: always
  type: list
  elements: str
  sample: ["sysctls: net.ipv4.ip_forward 0 -> 1", "firewall: nftables table l3calico created"]
kept:
  description: With O(state=absent), what was left alone because l3.calico did not create it.
  returned: always
  type: list
  elements: str
  sample: ["vxlan.calico: not created by l3.calico (alias is not l3.calico:vxlan), left alone"]
tunnels:
  description:
    - The result of the tunnels part, as M(l3.calico.tunnels) returns it (null when packages are missing).
    - With O(state=absent), C(changes) and C(kept).
  returned: always
  type: dict
  sample: {underlay_interface: eth0, underlay_mtu: 1500, ipip_mtu: 1480, vxlan_mtu: 1450, vxlan_mac: "66:35:f2:1d:94:8a"}
sysctls:
  description: The sysctls part's C(changes), as M(l3.calico.sysctls) returns them (null when packages are missing).
  returned: always
  type: dict
  sample: {changes: ["net.ipv4.ip_forward 0 -> 1", "file rewritten"]}
workload_mtu:
  description:
    - The MTU of this node's workload veths - the underlay MTU (1500 when unknown) minus the largest encapsulation
      overhead of the enabled pools (VXLAN over IPv6 70 for an IPv6 pool, VXLAN 50, else IPIP 20, else 0), as Felix
      picks it. Role
      P(l3.calico.calico_workloads#role) uses it for C(calico_workloads_mtu=auto).
    - Null when packages are missing, and with O(state=absent).
  returned: always
  type: int
  sample: 1450
firewall:
  description: The firewall part's C(backend) and C(changes) (null when packages are missing).
  returned: always
  type: dict
  sample: {backend: iptables, changes: []}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils import firewall, fleet_args, iproute, node, sysctls, tunnels
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError

ERRORS = (L3CalicoError, OSError)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            packages=dict(type="list", elements="str", default=[]),
            workloads=dict(type="list", elements="dict", default=[]),
            **tunnels.ARGUMENT_SPEC,
            **dict(sysctls.ARGUMENT_SPEC, sysctls=dict(sysctls.ARGUMENT_SPEC["sysctls"], default={})),
            **firewall.ARGUMENT_SPEC,
        ),
        required_if=[("state", "present", ("node", "nodes", "pools"))],
        supports_check_mode=True,
    )
    p = module.params
    if p["state"] == "absent":
        remove(module)  # exits
        return
    try:
        done = node.converge(
            iproute.module_runner(module),
            packages=p["packages"],
            node=p["node"],
            nodes=p["nodes"],
            pools=p["pools"],
            pools_ipv6=p["pools_ipv6"],
            workloads=p["workloads"],
            tunnel_options=tunnels.Options.from_params(p),
            sysctl_options=sysctls.Options.from_params(p),
            firewall_options=firewall.Options.from_params(p),
            check_mode=module.check_mode,
        )
    except ERRORS as exc:
        module.fail_json(msg=f"node {p['node']}: {exc}", invocation=_invocation(p))
    result = dict(
        changed=False,
        changes=[],
        diff=[],
        kept=[],
        missing_packages=done["missing_packages"],
        tunnels=None,
        sysctls=None,
        firewall=None,
        workload_mtu=done["workload_mtu"],
    )
    if not done["missing_packages"]:
        result.update(node.result({part: done[part] for part in ("tunnels", "sysctls", "firewall")}))
    _exit(module, result)


def remove(module: AnsibleModule) -> None:
    p = module.params
    try:
        done = node.remove(
            pools=p["pools"] or {},
            pools_ipv6=p["pools_ipv6"] or {},
            ipip_address=tunnels.ipip_address(p["nodes"] or {}, p["node"]),
            sysctl_file=p["sysctl_file"],
            firewall_state_file=p["firewall_state_file"],
            check_mode=module.check_mode,
        )
    except ERRORS as exc:
        module.fail_json(msg=f"node {p['node'] or '(this host)'}: removal: {exc}", invocation=_invocation(p))
    result = dict(missing_packages=[], workload_mtu=None, kept=done["tunnels"].kept, **node.result(done))
    _exit(module, result)


def _exit(module: AnsibleModule, result: dict) -> None:
    diff = result.pop("diff")
    if module._diff and diff:
        result["diff"] = diff
    module.exit_json(**result, invocation=_invocation(module.params))


def _invocation(params: dict) -> dict:
    """The arguments returned: every node's routing data (option nodes) summarised (module_utils/fleet_args.py)."""
    return fleet_args.invocation(params, ("nodes",))


if __name__ == "__main__":
    main()
