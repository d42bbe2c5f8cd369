# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT
"""Filter l3.calico.bird_config: the BGP data of one node (thin adapter of module_utils/bgp.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: bird_config
author: l3.calico maintainers (!UNKNOWN)
version_added: 1.0.0
short_description: BGP peers and filter data of one node, for bird.conf
description:
  - Computes, from the IPAM result and the inventory, everything bird.conf holds for one node (the
    module M(l3.calico.bird) computes and prints the same on the host, option C(bgp)) - router id, AS,
    node-to-node mesh (one active side per pair), route reflector sessions, external
    peers, own blocks (blackholes), pools to import, export and program into the kernel.
  - Dual stack, as Calico's bird6 - C(ipv6) - the IPv6 sessions between the nodes' IPv6 addresses and the IPv6
    filter data, for a node with an IPv6 address when the result has IPv6 pools (C(pools_ipv6)); an external
    peer with an IPv6 address is an IPv6 session.
  - MD5 passwords are never returned. A peer with one names the BIRD constant it refers to
    (C(password_symbol)); C(secrets) maps each constant to where its password is read (the
    variable and the peer's index in it), so that bird.conf itself holds no secret.
  - Bad input fails with a message naming the host, the field and the value.
options:
  _input:
    description: The IPAM result, C(calico_ipam_result) (see docs/architecture.md); its C(nodes), C(pools) and C(pools_ipv6).
    type: dict
    required: true
  node:
    description: The node (inventory host name) to compute for.
    type: str
    required: true
  settings:
    description:
      - "Keys: C(as), C(default_as), C(node_as) (node -> AS), C(router_id) (C(address), C(hash) or an IPv4),
        C(node_mesh), C(mesh_password), C(route_reflectors) (node -> cluster id), C(peers), C(node_peers),
        C(import_default_route), C(graceful_restart) (bool), C(graceful_restart_time) (0..4095 s).
        Role C(l3.calico.calico_bgp) builds it from its variables."
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Compute the BGP data of this node
  ansible.builtin.set_fact:
    bgp: "{{ calico_ipam_result | l3.calico.bird_config(inventory_hostname, {'as': 64512, 'node_mesh': true}) }}"
"""

RETURN = r"""
_value:
  description: >-
    Mapping with C(node), C(router_id), C(as), C(address), C(network), C(route_reflector_cluster_id),
    C(own_blocks), C(blackholes), C(pools), C(export_pools), C(no_export_pools), C(ipip_always_pools),
    C(ipip_cross_subnet_pools), C(vxlan_pools), C(import_default_route), C(graceful_restart),
    C(graceful_restart_time), C(tunnel_device),
    C(workload_interfaces), C(peers) (name, kind, address, as, passive, rr_client, multihop, ttl_security,
    keep_next_hop, port, password_symbol, ibgp, import_default_route), C(secrets)
    (constant -> C(var), C(index): where its password is read, of both families' peers) and C(ipv6): null
    without IPv6 BGP on this node, else C(address), C(network), C(own_blocks), C(blackholes), C(pools),
    C(export_pools), C(no_export_pools), C(vxlan_pools) and C(peers) (as above) of the IPv6 side.
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

# The code behind the filter is imported when it is called: to find any filter of this collection, Ansible
# imports every filter file of it, in every worker (a host's task) whose templates name one.

_SPEC = {
    "_input": {"type": "dict", "required": True},
    "node": {"type": "str", "required": True},
    "settings": {"type": "dict", "default": {}},
}


def bird_config(ipam, node, settings=None):
    """Return node_config(ipam, node, settings) or fail with a clear message."""
    from ansible_collections.l3.calico.plugins.module_utils.bgp import BgpConfigError, node_config

    result = ArgumentSpecValidator(_SPEC).validate({"_input": ipam, "node": node, "settings": settings or {}})
    if result.error_messages:
        raise AnsibleFilterError("bird_config: " + "; ".join(result.error_messages))
    params = result.validated_parameters
    try:
        return node_config(params["_input"], params["node"], params["settings"])
    except BgpConfigError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """l3.calico BGP filters."""

    def filters(self):
        return {"bird_config": bird_config}
