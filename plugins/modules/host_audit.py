#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Ansible module l3.calico.host_audit: a host's routes against the IPAM result (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_audit
short_description: Check that a host's kernel routes agree with the IPAM (read-only)
version_added: "1.0.0"
description:
  - Reads the host's IPv4 main routing table with one C(ip -json -4 route show table main) and compares it with
    the IPAM result (C(calico_ipam_result)); changes nothing. Used by C(playbooks/audit.yml).
  - Every workload of the node has its route C(<ip> dev cali…); every C(/32) on a workload veth inside a pool is
    one of the node's workloads (otherwise a leftover, or an address two workloads use, named with the workload
    the IPAM gives it to).
  - With O(bgp), every block of the node is blackholed and every block of another node whose routes reach this
    node (an exported pool, or a VXLAN pool) has a route.
  - A route to a block-sized prefix inside a pool that no node holds is stale (for example a removed node's).
  - Each problem comes with the command that fixes it.
options:
  node:
    description: This host's node name (its inventory host name).
    type: str
    required: true
  ipam:
    description: The IPAM result (C(calico_ipam_result)), with its C(nodes) and C(pools).
    type: dict
    required: true
  veth_prefix:
    description: Prefix of the workloads' host-side veths.
    type: str
    default: cali
  bgp:
    description: The host runs BIRD (the role P(l3.calico.calico_bgp#role)), so block routes are checked too.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: linux
author:
  - l3.calico maintainers
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
routes:
  description: How many routes were read.
  returned: success
  type: int
  sample: 12
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils import iproute
from ansible_collections.l3.calico.plugins.module_utils.host_audit import audit_routes


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            node=dict(type="str", required=True),
            ipam=dict(type="dict", required=True),
            veth_prefix=dict(type="str", default="cali"),
            bgp=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not isinstance(p["ipam"].get("nodes"), dict) or not isinstance(p["ipam"].get("pools"), dict):
        module.fail_json(msg=f"{p['node']}: ipam={str(p['ipam'])[:200]!r}: not an IPAM result (needs nodes and pools)")
    try:
        routes = iproute.ip_json(iproute.subprocess_runner, ["-4", "route", "show", "table", "main"])
    except iproute.CommandError as exc:
        module.fail_json(msg=f"{p['node']}: cannot read the routes: {exc}")
    problems = audit_routes(p["node"], p["ipam"], routes, p["veth_prefix"], p["bgp"])
    module.exit_json(changed=False, problems=problems, routes=len(routes))


if __name__ == "__main__":
    main()
