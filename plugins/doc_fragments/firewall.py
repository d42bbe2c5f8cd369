# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Options of the firewall part (natOutgoing, anti-spoofing, host protection): modules firewall and node;
spec firewall.ARGUMENT_SPEC."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  firewall_backend:
    description:
      - Firewall backend; V(auto) picks nftables when the kernel has its C(ip) family, else iptables-legacy.
    type: str
    choices: [auto, nftables, iptables]
    default: auto
  veth_prefix:
    description: Prefix of the workloads' host veths (as given to M(l3.calico.workloads)).
    type: str
    default: cali
  firewall_state_file:
    description: Where the nftables listing of the last apply is kept (under C(/run)).
    type: path
    default: /run/l3-calico/firewall.json
  host_tcp_ports:
    description:
      - TCP ports of the host itself that workloads may not reach (dropped when they arrive from a workload veth).
      - The default protects BIRD's BGP port; V([]) allows workloads to reach it (role P(l3.calico.calico_node#role)
        variable C(calico_node_allow_workload_bgp)).
      - The same ports of every node address (underlay and tunnel addresses; M(l3.calico.node) takes them from
        O(l3.calico.node#module:nodes), M(l3.calico.firewall) from O(l3.calico.firewall#module:node_addresses)) are
        closed to workloads on the forward path, and workload traffic to those addresses is never masqueraded.
    type: list
    elements: int
    default: [179]
"""
