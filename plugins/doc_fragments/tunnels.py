# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Options of the tunnels part (tunl0, vxlan.calico): modules tunnels and node; spec tunnels.ARGUMENT_SPEC."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  node:
    description: This node's name in O(nodes) (normally C(inventory_hostname)). Required with O(state=present).
    type: str
  nodes:
    description:
      - The IPAM result's C(nodes) (C(calico_ipam_result.nodes)), every node with C(ip), C(network), C(blocks),
        C(workloads), C(borrowed) and C(tunnels), or its routing view (C(calico_ipam_result.routing), the same
        without the workloads). Required with O(state=present).
      - Left out (with O(state=present)), the action plugin reads it on the controller from the host's
        C(calico_ipam_result) (its C(routing), else its C(nodes)), so the task's own arguments, which Ansible
        keeps for every host until the task ends, do not hold the whole fleet (P(l3.calico.calico_node#role) does
        that).
      - With O(state=absent), optional; when it holds O(node), that node's IPIP tunnel address is removed from
        C(tunl0) even without the alias.
    type: dict
  pools:
    description:
      - The IPAM result's C(pools) (C(calico_ipam_result.pools)), for C(ipip_mode) and C(vxlan_mode) (and, with
        M(l3.calico.node), C(cidr), C(nat_outgoing) and C(disabled) for the firewall). Required with O(state=present).
      - With O(state=absent), optional; routes with protocol 80 inside these pools are removed.
    type: dict
  pools_ipv6:
    description:
      - The IPAM result's C(pools_ipv6) (C(calico_ipam_result.pools_ipv6)), the IPv6 pools (dual stack). A node with
        an IPv6 address (C(nodes[node].ipv6)) and a C(vxlan_v6) tunnel address gets C(vxlan-v6.calico) and the routes
        of the IPv6 VXLAN pools. Absent or empty without IPv6 pools.
      - With O(state=absent), optional; IPv6 routes with protocol 80 inside these pools are removed.
    type: dict
  underlay_interface:
    description:
      - Interface carrying the node address; by default the interface that holds C(nodes[node].ip) (for
        C(vxlan-v6.calico) the one holding C(nodes[node].ipv6)).
    type: str
  underlay_mtu:
    description: MTU of the underlay; by default the MTU of O(underlay_interface).
    type: int
  vxlan_vni:
    description:
      - VXLAN network identifier of C(vxlan.calico) and C(vxlan-v6.calico) (Felix's C(VXLANVNI); Felix's IPv6 VXLAN
        device takes the same one).
    type: int
    default: 4096
  vxlan_port:
    description: VXLAN UDP port of C(vxlan.calico) and C(vxlan-v6.calico) (Felix's C(VXLANPort), the same for both).
    type: int
    default: 4789
  modprobe_dir:
    description:
      - Passed to C(modprobe -d) when loading C(ipip), for kernels whose modules are not under C(/lib/modules)
        (User-mode Linux keeps them under C(/usr/lib/uml/modules)).
    type: path
"""
