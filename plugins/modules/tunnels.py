#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tunnels
short_description: Converge a node's Calico tunnels (tunl0, vxlan.calico and its VXLAN peers) from the IPAM result
version_added: "1.0.0"
description:
  - "IPIP: when the IPAM result gives this node an IPIP tunnel address, the kernel's fallback device C(tunl0)
    (created by loading the C(ipip) module) is brought up with MTU underlay-20 and exactly that address as C(/32).
    Routes through it are programmed by BIRD (role P(l3.calico.calico_bgp#role))."
  - "When the kernel has no ipip driver the module fails before changing anything, with a message that says so
    and how to get it (C(modprobe -n) is used to find out, so check mode gives the same answer)."
  - "VXLAN: when the node has a VXLAN tunnel address, C(vxlan.calico) with VNI O(vxlan_vni), UDP port
    O(vxlan_port), C(local) = the node address, C(dev) = the underlay interface, learning off, MAC C(66:) + the
    first 5 bytes of SHA-1 of the node name, MTU underlay-50 and the tunnel address C(/32)."
  - "Because BIRD cannot program VXLAN routes, per remote node with a VTEP: a permanent neighbour entry
    (VTEP address -> VTEP MAC), an FDB entry (VTEP MAC -> node address) and
    C(<remote block> via <remote VTEP> dev vxlan.calico onlink) for the remote node's blocks and borrowed /32s
    in VXLAN pools; for C(CrossSubnet) pools only when the remote node's address is outside this node's subnet
    (this node's address with its own prefix length: Calico's rule, so two nodes with different prefix lengths
    may decide differently), the others get C(<block> via <node address> dev <underlay>) without encapsulation,
    as Felix programs them (BIRD leaves VXLAN pools alone). Routes carry protocol 80 (Felix's). Entries for
    nodes or blocks that are gone are removed."
  - "VXLAN for IPv6 pools (O(pools_ipv6)): on a node with an IPv6 address and a C(vxlan_v6) tunnel address,
    C(vxlan-v6.calico) over the IPv6 underlay as Felix makes it - the same VNI O(vxlan_vni) and port O(vxlan_port)
    (Felix's IPv6 VXLAN manager takes C(VXLANVNI) and C(VXLANPort) too), C(local) = the node's IPv6 address, MAC
    C(66:) + the first 5 bytes of SHA-1 of C(<node>-v6), MTU underlay-70, the tunnel address C(/128) - with the
    same neighbour, FDB entry and routes per remote IPv6 VTEP, for the IPv6 blocks the IPAM result's model expects
    (CrossSubnet: the nodes' IPv6 subnets). A node without an IPv6 address gets nothing IPv6."
  - "The IPAM result is checked first (a bad address, network, pool mode or pool name fails naming the field and
    the value, before anything changes)."
  - Reads the state with one C(ip -json -batch) (plus C(bridge -json fdb) when the device exists) and applies
    with one C(ip -batch) and one C(bridge -batch).
  - "C(vxlan.calico) carries the alias C(l3.calico:vxlan); a device of that name without it is an error.
    C(tunl0) is marked C(l3.calico:ipip) so its address can be removed when IPIP is no longer used."
  - "With O(state=absent) (a node leaving the cluster): C(vxlan.calico) is deleted when it carries our alias (with
    its neighbours, FDB entries and routes); C(tunl0), the kernel's fallback device of the C(ipip) module, is kept
    and the module not unloaded; the node's tunnel address goes (its IPIP address of O(nodes), and with our alias
    the C(/32)s inside O(pools)), other addresses stay; with our alias it is also set down and the alias cleared;
    routes with protocol 80 inside O(pools) go."
options:
  state:
    description: V(present) converges the tunnels; V(absent) removes what the module set up.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - l3.calico.tunnels
  - l3.calico.attributes
author:
  - l3.calico maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Converge tunl0 / vxlan.calico and the VXLAN peers of this node
  l3.calico.tunnels:
    node: "{{ inventory_hostname }}"
    nodes: "{{ calico_ipam_result.nodes }}"
    pools: "{{ calico_ipam_result.pools }}"

- name: Remove them from a node that leaves
  l3.calico.tunnels:
    state: absent
    node: "{{ inventory_hostname }}"
    nodes: "{{ calico_ipam_result.nodes }}"
    pools: "{{ calico_ipam_result.pools }}"
"""

RETURN = r"""
changes:
  description: What was (or in check mode would be) changed, one line each.
  returned: always
  type: list
  elements: str
  sample: ["vxlan.calico: created (vni 4096, port 4789, local 192.168.100.100, dev eth0)"]
underlay_interface:
  description: The underlay interface used.
  returned: when O(state=present)
  type: str
  sample: eth0
underlay_mtu:
  description: The underlay MTU used.
  returned: when O(state=present)
  type: int
  sample: 1500
ipip_mtu:
  description: MTU of tunl0 (null when IPIP is not used).
  returned: when O(state=present)
  type: int
  sample: 1480
vxlan_mtu:
  description: MTU of vxlan.calico (null when VXLAN is not used).
  returned: when O(state=present)
  type: int
  sample: 1450
vxlan_mac:
  description: MAC of vxlan.calico (null when VXLAN is not used).
  returned: when O(state=present)
  type: str
  sample: "66:35:f2:1d:94:8a"
vxlan_v6_mtu:
  description: MTU of vxlan-v6.calico (underlay MTU - 70; null when IPv6 VXLAN is not used).
  returned: when O(state=present)
  type: int
  sample: 1430
vxlan_v6_mac:
  description: MAC of vxlan-v6.calico (C(66) + SHA-1 of C(<node>-v6), as Felix; null when IPv6 VXLAN is not used).
  returned: when O(state=present)
  type: str
  sample: "66:d4:d5:51:3d:42"
kept:
  description: With O(state=absent), what was left alone because l3.calico did not create it.
  returned: when O(state=absent)
  type: list
  elements: str
  sample: ["vxlan.calico: not created by l3.calico (alias is not l3.calico:vxlan), left alone"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils import fleet_args, tunnels
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError
from ansible_collections.l3.calico.plugins.module_utils.plan import module_result


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(state=dict(type="str", choices=["present", "absent"], default="present"), **tunnels.ARGUMENT_SPEC),
        required_if=[("state", "present", ("node", "nodes", "pools"))],
        supports_check_mode=True,
    )
    p = module.params
    try:
        if p["state"] == "absent":
            ipip = tunnels.ipip_address(p["nodes"] or {}, p["node"])
            the_plan = tunnels.remove(p["pools"] or {}, ipip, module.check_mode, pools6=p["pools_ipv6"] or {})
        else:
            ipam = {"nodes": p["nodes"], "pools": p["pools"], "pools_ipv6": p["pools_ipv6"]}
            the_plan = tunnels.converge(p["node"], ipam, tunnels.Options.from_params(p), check_mode=module.check_mode)
    except (L3CalicoError, OSError) as exc:
        what = f"node {p['node'] or '(this host)'}: removal" if p["state"] == "absent" else f"node {p['node']}"
        module.fail_json(msg=f"{what}: {exc}", invocation=fleet_args.invocation(p, ("nodes",)))
    # every node's routing data summarised in the invocation
    module.exit_json(**module_result(the_plan, module._diff), invocation=fleet_args.invocation(p, ("nodes",)))


if __name__ == "__main__":
    main()
