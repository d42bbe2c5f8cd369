#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Ansible module l3.calico.host_audit: a host's routes and tunnel addresses against the IPAM result (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_audit
short_description: Check that a host's kernel routes and tunnel addresses agree with the IPAM (read-only)
version_added: "1.0.0"
description:
  - Reads the host's IPv4 main routing table and its addresses with one C(ip -json -batch) (C(route show table
    main), C(addr show)) and compares them with the IPAM result (C(calico_ipam_result)); changes nothing. Used by
    C(playbooks/audit.yml).
  - Every workload of the node has its route C(<ip> dev cali…); every C(/32) on a workload veth inside a pool is
    one of the node's workloads (otherwise a leftover, or an address two workloads use, named with the workload
    the IPAM gives it to).
  - With O(bgp) (the host runs BIRD), every block of the node (except C(/32) blocks) is blackholed.
  - "Every block of another node, and every address another node borrowed (a C(/32) inside a block not its own),
    has its route here, towards that node, as the pieces program it: for a VXLAN pool C(<prefix> via <its VTEP>
    dev vxlan.calico onlink) (C(CrossSubnet) in the same subnet: C(via <its address>)), whether BGP runs or not;
    for other pools, only when both nodes run BIRD (O(bgp), O(bgp_nodes)) and the pool is exported, learned by BGP:
    C(via <its address> dev tunl0 onlink) for IPIP C(Always) (C(CrossSubnet) across subnets), C(via <its
    address>) in the same subnet. A missing route and a route towards somewhere else (misdirected) are problems;
    more than five other nodes' blocks with no route at all, expected the same way, are one problem naming their
    count (the host's BIRD or tunnels are what is wrong, not each other node)."
  - "In the same subnet means: the other node's address inside this node's subnet (this node's address with its
    own prefix length), Calico's CrossSubnet rule; the expected routes are the ones the tunnels module programs
    and C(playbooks/verify.yml) expects (one answer, module_utils/ipam_result.py)."
  - The IPAM result is checked first; bad data fails naming the field and the value.
  - A route to a block-sized prefix inside a pool that no node holds is stale (for example a removed node's), and
    so is a C(/32) towards another host for an address no node borrowed.
  - "Tunnel addresses: C(tunl0) holds exactly the node's IPIP tunnel address of the IPAM and C(vxlan.calico) its
    VXLAN one, both up; a missing device, a missing or different address, or a pool address on a device the IPAM
    gives none is a problem."
  - Each problem comes with the command that fixes it.
options:
  node:
    description: This host's node name (its inventory host name).
    type: str
    required: true
  ipam:
    description:
      - The IPAM result (C(calico_ipam_result)), with its C(nodes) and C(pools).
      - Left out, the action plugin reads them on the controller from the host's C(calico_ipam_result), so the
        task's own arguments, which Ansible keeps for every host until the task ends, do not hold the whole fleet
        (C(playbooks/audit.yml) does that).
    type: dict
  veth_prefix:
    description: Prefix of the workloads' host-side veths.
    type: str
    default: cali
  bgp:
    description:
      - The host runs BIRD (the role P(l3.calico.calico_bgp#role)), so its own blocks must be blackholed and the
        routes of non-VXLAN pools are expected (learned by BGP). V(false) for a node set without BGP (VXLAN only).
    type: bool
    default: true
  bgp_nodes:
    description:
      - The nodes that run BIRD; routes of non-VXLAN pools are expected only from them.
      - Default, every node when O(bgp), none otherwise.
    type: list
    elements: str
extends_documentation_fragment:
  - l3.calico.attributes.read_only
author:
  - l3.calico maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Check the routes of this host against the IPAM
  l3.calico.host_audit:
    node: "{{ inventory_hostname }}"
    ipam: "{{ calico_ipam_result }}"
  register: audit
"""

RETURN = r"""
problems:
  description: Each disagreement and the command that fixes it.
  returned: success
  type: list
  elements: dict
  sample:
    - problem: "node-a: route to 172.17.9.0/26 (192.168.100.13 eth0 bird) but no node holds that block in the IPAM
        (a stale route, e.g. of a removed node)"
      fix: "ansible-playbook -i INVENTORY playbooks/site.yml --limit node-a   (or on node-a: ip route del 172.17.9.0/26)"
links:
  description: How many interfaces were read.
  returned: success
  type: int
  sample: 5
routes:
  description: How many routes were read.
  returned: success
  type: int
  sample: 12
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils import fleet_args, iproute
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.host_audit import audit_routes, audit_tunnels
from ansible_collections.l3.calico.plugins.module_utils.ipam_result import IpamResult


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            node=dict(type="str", required=True),
            ipam=dict(type="dict"),
            veth_prefix=dict(type="str", default="cali"),
            bgp=dict(type="bool", default=True),
            bgp_nodes=dict(type="list", elements="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    # Every node's data (ipam.nodes) summarised in the arguments returned (module_utils/fleet_args.py).
    invocation = fleet_args.invocation(p, ("ipam", "nodes"))
    if not isinstance(p["ipam"], dict) or not isinstance(p["ipam"].get("nodes"), dict) or not isinstance(p["ipam"].get("pools"), dict):
        module.fail_json(msg=f"{p['node']}: ipam={str(p['ipam'])[:200]!r}: not an IPAM result (needs nodes and pools)", invocation=invocation)
    try:
        # Read lazily, once for both audits: what they ask of the fleet, each value checked when read.
        ipam = IpamResult.from_dict(p["ipam"], lazy=True)
        ipam.full_node(p["node"])  # this host's own node read in full before anything else
    except L3CalicoError as exc:
        module.fail_json(msg=f"{p['node']}: {exc}", invocation=invocation)
    try:
        # `ip route` lists IPv4 unless told otherwise; `addr show` both families (filtered below).
        routes, links = iproute.ip_json_batch(iproute.subprocess_runner, ["route show table main", "addr show"])
    except L3CalicoError as exc:
        module.fail_json(msg=f"{p['node']}: cannot read the routes and addresses: {exc}", invocation=invocation)
    try:
        problems = audit_routes(p["node"], ipam, routes, p["veth_prefix"], p["bgp"], p["bgp_nodes"])
        problems += audit_tunnels(p["node"], ipam, links)
    except L3CalicoError as exc:
        module.fail_json(msg=f"{p['node']}: {exc}", invocation=invocation)
    module.exit_json(changed=False, problems=problems, routes=len(routes), links=len(links), invocation=invocation)


if __name__ == "__main__":
    main()
