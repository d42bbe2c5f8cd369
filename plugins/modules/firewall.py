#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
---
module: firewall
short_description: natOutgoing and workload anti-spoofing rules of l3.calico (nftables or iptables-legacy)
version_added: "1.0.0"
description:
  - "natOutgoing, as Felix's C(cali-nat-outgoing): traffic whose source is in a pool with C(nat_outgoing) and whose
    destination is outside all pools is masqueraded (C(fully-random)); nothing else is NATed."
  - "Anti-spoofing, like Calico's reverse-path check: a packet that arrives from a workload's host veth with a
    source other than that workload's address is dropped (a workload cannot impersonate another)."
  - "Host protection: TCP from a workload's host veth to one of O(host_tcp_ports) of the host itself (by default
    BIRD's BGP port 179) is dropped, so a workload cannot open a BGP session with its host or probe BIRD
    (nftables chain C(host-protect) on the input hook; iptables-legacy chain C(L3CALICO-HOST-PROTECT) in table
    filter, jumped from INPUT). An empty list lets workloads reach them."
  - "Only objects of the project's own are written: the nftables table C(ip l3calico), replaced atomically in one
    transaction; or the iptables-legacy chains C(L3CALICO-ANTISPOOF) (table mangle, jumped from PREROUTING) and
    C(L3CALICO-NAT-OUTGOING) (table nat, jumped from POSTROUTING), written with one C(iptables-legacy-restore
    --noflush). Objects of the other backend left by an earlier run are removed."
  - "Backend C(auto) picks nftables when the kernel has the nftables C(ip) family (probed by adding and deleting
    an empty table in one transaction), else iptables-legacy, as Calico's C(FELIX_IPTABLESBACKEND=auto)."
  - "Idempotent: the current rules are read back (C(iptables-legacy-save), C(nft -s list table)) and compared;
    for nftables the listing seen after the last apply is kept in O(firewall_state_file) to detect drift."
  - "IPv6, while it is in use (an IPv6 pool in O(pools_ipv6), or a workload with an C(ipv6) address): the same parts
    for IPv6 - the nftables table C(ip6 l3calico), or the same chains in ip6tables-legacy (one
    C(ip6tables-legacy-restore --noflush)). natOutgoing of IPv6 pools with C(nat_outgoing) (the nat chain only while
    such a pool exists); anti-spoofing, where a workload veth may send from the workload's own IPv6 address, a
    link-local address (C(fe80::/10), neighbour discovery) and the unspecified address C(::) (duplicate address
    detection) - what Felix's IPv6 reverse-path check lets through - and nothing else; host and node protection for
    the nodes' IPv6 addresses. With the iptables-legacy backend and no C(ip6tables-legacy-restore) it fails before any
    change."
  - "With O(state=absent) (a node leaving the cluster) every object of the project's is removed, of both backends:
    the nftables tables C(ip l3calico) and C(ip6 l3calico), the iptables-legacy and ip6tables-legacy chains C(L3CALICO-*) with
    their one jump each, and
    O(firewall_state_file). Other tables, chains and rules are not touched."
options:
  state:
    description: V(present) converges the rules; V(absent) removes the project's objects.
    type: str
    choices: [present, absent]
    default: present
  pools:
    description:
      - The IPAM result's C(pools) (C(calico_ipam_result.pools)); uses C(cidr), C(nat_outgoing), C(disabled).
      - Required with O(state=present).
    type: dict
  pools_ipv6:
    description:
      - The IPAM result's C(pools_ipv6) (its IPv6 pools); uses C(cidr), C(nat_outgoing), C(disabled).
    type: dict
  workloads:
    description:
      - This host's workloads (C(calico_ipam_result.nodes[inventory_hostname].workloads)), each with C(ip) (and
        C(ipv6), dual stack; C(ip) null for an IPv6-only workload) and C(id) or C(name)/C(namespace); their host veth
        names are derived as the workloads module does.
      - Required with O(state=present).
    type: list
    elements: dict
  node_addresses:
    description:
      - Every node's addresses (underlay and tunnel addresses, IPv4 and IPv6; M(l3.calico.node) passes those of the
        IPAM result).
      - TCP to the O(host_tcp_ports) of any of them from a workload veth is dropped before routing (prerouting), so a
        workload can reach no node's BGP port, and workload traffic to them is never masqueraded (natOutgoing).
    type: list
    elements: str
    default: []
  firewall_backend:
    aliases: [backend]
  firewall_state_file:
    aliases: [state_file]
extends_documentation_fragment:
  - l3.calico.firewall
  - l3.calico.attributes
author:
  - l3.calico maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: NAT outgoing traffic of nat_outgoing pools and drop spoofed workload sources
  l3.calico.firewall:
    pools: "{{ calico_ipam_result.pools }}"
    workloads: "{{ calico_ipam_result.nodes[inventory_hostname].workloads }}"

- name: Force iptables-legacy
  l3.calico.firewall:
    pools: "{{ calico_ipam_result.pools }}"
    workloads: []
    backend: iptables

- name: Remove the rules of l3.calico (both backends)
  l3.calico.firewall:
    state: absent
"""

RETURN = r"""
backend:
  description: The backend used (with O(state=absent), the one whose objects were found, or C(none)).
  returned: always
  type: str
  sample: nftables
changes:
  description: What was (or would be) changed.
  returned: always
  type: list
  elements: str
  sample: ["nftables table ip l3calico created"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils import firewall
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.plan import module_result


def main() -> None:
    spec = dict(firewall.ARGUMENT_SPEC)
    spec["firewall_backend"] = dict(spec["firewall_backend"], aliases=["backend"])
    spec["firewall_state_file"] = dict(spec["firewall_state_file"], aliases=["state_file"])
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            pools=dict(type="dict"),
            pools_ipv6=dict(type="dict"),
            workloads=dict(type="list", elements="dict"),
            node_addresses=dict(type="list", elements="str", default=[]),
            **spec,
        ),
        required_if=[("state", "present", ("pools", "workloads"))],
        supports_check_mode=True,
    )
    p = module.params
    options = firewall.Options.from_params(p)
    try:
        if p["state"] == "absent":
            the_plan = firewall.remove(options.state_file, check_mode=module.check_mode)
        else:
            the_plan = firewall.converge(
                p["pools"], p["workloads"], options, node_addresses=p["node_addresses"], check_mode=module.check_mode, pools6=p["pools_ipv6"] or {}
            )
    except (L3CalicoError, OSError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**module_result(the_plan, module._diff))


if __name__ == "__main__":
    main()
