#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Ansible module l3.calico.probe: observe a node's Calico data plane (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: probe
short_description: Observe a node's BGP sessions, routes and workloads, and ping between workloads
version_added: "1.0.0"
description:
  - Reads, in a handful of processes, what C(playbooks/verify.yml) judges on a node - the BGP
    protocols of BIRD (C(birdc show protocols all)), the main routing table, the device holding
    the node's underlay address, and for each local workload its addresses, routes and neighbours
    inside its network namespace.
  - Pings every target from every local workload, all at once, and returns the matrix row of this node;
    on a dual-stack node (O(node_ip6)) over each family, IPv6 workloads pinging each other's IPv6 addresses.
  - Changes nothing. The judgement (what is expected, what failed) is the filter
    P(l3.calico.verify_report#filter)'s, on the controller.
options:
  node_ip:
    description: The node's underlay address (without prefix length).
    type: str
    required: true
  node_ip6:
    description:
      - The node's IPv6 underlay address (without prefix length), on a dual-stack node. Given, the probe
        also observes the IPv6 side - RV(underlay_device6), RV(routes6), RV(pings6) and RV(tcp6) between the
        workloads' C(ipv6) addresses, each workload's IPv6 addresses, routes and C(ip6_forward) - and
        waits for the O(bgp_neighbors6) sessions.
    type: str
  workloads:
    description: This node's workloads, as in C(calico_ipam_result.nodes[node].workloads).
    type: list
    elements: dict
    default: []
  targets:
    description: Every workload to ping from each local workload (C(id), C(ip) and, with O(node_ip6), C(ipv6) are read; a
      workload without an address of a family is left out of that family's matrices).
    type: list
    elements: dict
    default: []
  ping:
    description: Whether to ping at all.
    type: bool
    default: true
  ping_count:
    description: Echo requests per pair; a pair passes when one reply arrives.
    type: int
    default: 2
  ping_timeout:
    description: Seconds to wait for the last reply of a pair.
    type: int
    default: 2
  tcp_port:
    description:
      - A TCP port to connect to from every local workload to every target, all at once (0 = no TCP
        matrix). Every target needs a listener on it (M(l3.calico.probe_listener), started on every
        node before any node probes).
    type: int
    default: 0
  tcp_timeout:
    description: Seconds to wait for the handshakes of one workload's connections (the kernel resends a lost SYN after 1 s).
    type: int
    default: 3
  bird_socket:
    description: BIRD's control socket.
    type: path
    default: /run/bird/bird.ctl
  netns_prefix:
    description: Prefix of the workloads' network namespace names (as the workloads role's).
    type: str
    default: calico-
  veth_prefix:
    description: Prefix of the workloads' host-side veth names (as the workloads role's).
    type: str
    default: cali
  allow_ip_forwarding:
    description:
      - Whether the workloads may forward (the workloads role's C(calico_workloads_allow_ip_forwarding)); the probe
        reports it with each workload's observed C(net.ipv4.ip_forward) so verify can judge it.
    type: bool
    default: false
  bgp_neighbors:
    description: Addresses whose BGP sessions should be Established; the probe waits up to O(bgp_wait) for them.
    type: list
    elements: str
    default: []
  bgp_neighbors6:
    description:
      - IPv6 addresses whose BGP sessions should be Established too (sessions between the nodes' IPv6
        addresses); waited for with O(bgp_neighbors). Only with O(node_ip6).
    type: list
    elements: str
    default: []
  bgp_wait:
    description: Seconds to wait for the O(bgp_neighbors) sessions before observing the rest.
    type: int
    default: 0
extends_documentation_fragment:
  - l3.calico.attributes.read_only
notes:
  - Needs C(ip) (iproute2), C(nsenter), C(ping) and C(birdc) on the node.
author:
  - l3.calico maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Observe the node and ping every workload from its workloads
  l3.calico.probe:
    node_ip: "{{ calico_ipam_result.nodes[inventory_hostname].ip }}"
    workloads: "{{ calico_ipam_result.nodes[inventory_hostname].workloads }}"
    targets: "{{ calico_ipam_result.nodes.values() | map(attribute='workloads') | flatten }}"
    bgp_neighbors: "{{ calico_ipam_result.nodes.values() | map(attribute='ip') | reject('==', calico_ipam_result.nodes[inventory_hostname].ip) }}"
    bgp_wait: 30
  register: verify_probe
"""

RETURN = r"""
node_ip:
  description: O(node_ip), as given.
  returned: always
  type: str
veth_prefix:
  description: O(veth_prefix), as given (the judge derives the veth names from it).
  returned: always
  type: str
underlay_device:
  description: The interface holding O(node_ip).
  returned: always
  type: str
  sample: eth0
routes:
  description: The main routing table (dst, type, gateway, dev, protocol, scope, onlink).
  returned: always
  type: list
  elements: dict
  sample: [{dst: 172.17.72.0/26, type: unicast, gateway: 192.168.200.101, dev: tunl0, protocol: bird, scope: global, onlink: true}]
bgp:
  description: BIRD's BGP protocols.
  returned: always
  type: list
  elements: dict
  sample: [{name: node_b, state: up, bgp_state: Established, neighbor: 192.168.100.101, info: Established}]
bgp_expected:
  description: The O(bgp_neighbors) the node was expected to peer with.
  returned: always
  type: list
  elements: str
bird_error:
  description: Why BIRD could not be asked ('' when it answered).
  returned: always
  type: str
workloads:
  description: Per local workload id, its namespace, veth, addresses, interfaces, routes, neighbours and
    C(ip_forward) (its C(net.ipv4.ip_forward), null when unreadable).
  returned: always
  type: dict
pings:
  description: Per local workload id, per target id, C(ok) and the average C(rtt_ms).
  returned: always
  type: dict
  sample: {default.web-1: {default.web-3: {ok: true, rtt_ms: 0.41}}}
pings6:
  description: RV(pings) over IPv6, between the workloads that have an IPv6 address.
  returned: when O(node_ip6) is given
  type: dict
tcp6:
  description: RV(tcp) over IPv6, between the workloads that have an IPv6 address.
  returned: when O(node_ip6) is given and O(tcp_port) is not 0
  type: dict
routes6:
  description: The main IPv6 routing table, as RV(routes).
  returned: when O(node_ip6) is given
  type: list
  elements: dict
underlay_device6:
  description: The interface holding O(node_ip6).
  returned: when O(node_ip6) is given
  type: str
bgp_expected6:
  description: The O(bgp_neighbors6) the node was expected to peer with.
  returned: when O(node_ip6) is given
  type: list
  elements: str
tcp_port:
  description: O(tcp_port), as given (the port the judge's expected verdicts are computed for).
  returned: when O(tcp_port) is not 0
  type: int
tcp:
  description: With O(tcp_port), per local workload id, per target id, C(ok) (the handshake completed) and
    C(outcome) (C(open), C(refused), C(unreachable), C(timeout)).
  returned: when O(tcp_port) is not 0
  type: dict
  sample: {default.web-1: {default.web-3: {ok: false, outcome: timeout}}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils import iproute, probe


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "node_ip": {"type": "str", "required": True},
            "node_ip6": {"type": "str"},
            "bgp_neighbors6": {"type": "list", "elements": "str", "default": []},
            "workloads": {"type": "list", "elements": "dict", "default": []},
            "targets": {"type": "list", "elements": "dict", "default": []},
            "ping": {"type": "bool", "default": True},
            "ping_count": {"type": "int", "default": 2},
            "ping_timeout": {"type": "int", "default": 2},
            "tcp_port": {"type": "int", "default": 0},
            "tcp_timeout": {"type": "int", "default": 3},
            "bird_socket": {"type": "path", "default": "/run/bird/bird.ctl"},
            "netns_prefix": {"type": "str", "default": "calico-"},
            "veth_prefix": {"type": "str", "default": "cali"},
            "bgp_neighbors": {"type": "list", "elements": "str", "default": []},
            "bgp_wait": {"type": "int", "default": 0},
            "allow_ip_forwarding": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    if not 0 <= params["tcp_port"] <= 65535:
        module.fail_json(msg=f"tcp_port={params['tcp_port']!r}: must be a TCP port (1-65535) or 0 for no TCP matrix")
    for field in ("workloads", "targets"):
        for item in params[field]:
            addresses = [item.get(key) for key in ("ip", "ipv6") if item.get(key) is not None]
            if not isinstance(item.get("id"), str) or not addresses or not all(isinstance(a, str) for a in addresses):
                module.fail_json(msg=f"{field}: every item needs a string id and a string ip or ipv6 (or both), got {item!r}")
    result = probe.probe(
        node_ip=params["node_ip"],
        workloads=params["workloads"],
        targets=params["targets"],
        bird_socket=params["bird_socket"],
        ping=params["ping"],
        ping_count=params["ping_count"],
        ping_timeout=params["ping_timeout"],
        tcp_port=params["tcp_port"],
        tcp_timeout=params["tcp_timeout"],
        bgp_neighbors=params["bgp_neighbors"],
        bgp_wait=params["bgp_wait"],
        netns_prefix=params["netns_prefix"],
        veth_prefix=params["veth_prefix"],
        allow_ip_forwarding=params["allow_ip_forwarding"],
        node_ip6=params["node_ip6"] or None,
        bgp_neighbors6=params["bgp_neighbors6"],
        run=iproute.module_runner(module),
    )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
