#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: MIT

from __future__ import annotations

DOCUMENTATION = r"""
---
module: workloads
short_description: Converge Calico's per-workload data plane (netns, veth, /32, routes, proxy ARP) on a host
version_added: "1.0.0"
description:
  - Converges, for every workload of O(workloads), exactly the data plane Calico's CNI plugin and Felix build
    for a pod, with plain network namespaces instead of pods.
  - "A network namespace (O(netns_prefix) + the workload id); a veth pair whose host side is
    C(cali) + the first 11 hex digits of SHA-1 of the workload id, MAC C(ee:ee:ee:ee:ee:ee), up, without address,
    and whose other side is C(eth0) inside the namespace; one transmit and one receive queue on each end, as
    Calico's CNI plugin creates them (its C(num_queues) default)."
  - "Inside the namespace: C(lo) up, C(eth0) with C(IP/32) and MTU O(mtu), routes C(169.254.1.1 dev eth0 scope link)
    and C(default via 169.254.1.1 dev eth0), and C(net.ipv4.ip_forward=0) unless O(allow_ip_forwarding) (a new
    namespace copies the host's C(ip_forward=1) otherwise). The gateway is answered by proxy ARP on the host veth."
  - "On the host: route C(IP dev cali… scope link) and the per-interface sysctls C(proxy_arp=1),
    C(neigh.<if>.proxy_delay=0), C(forwarding=1), C(route_localnet=1), C(rp_filter=)O(rp_filter), and
    C(net.ipv6.conf.<if>.accept_ra=0) where the kernel has IPv6 (a workload's router advertisement must not give
    the host an address or a route)."
  - Reads the host with one C(ip -json -batch) (addresses, routes, namespaces) and each existing workload
    namespace with an in-process rtnetlink dump (what C(ip -json addr/route) shows, without a process per
    namespace; C(ip -n NS -json) is the fallback). Applies changes with one C(ip -batch) for the host (namespaces,
    veth pairs, host routes; when it creates many namespaces, those first, one C(ip -batch) per CPU in parallel),
    sysctls written directly to C(/proc/sys), and, inside each namespace that needs
    work, one in-process rtnetlink batch (the messages C(ip) would send, all in one send, every acknowledgement
    checked; C(ip -n NS -batch) where a netlink socket cannot be opened in the namespace). Nothing is done for
    workloads that are already right, so a no-op run over 250 workloads costs one C(ip) process.
  - A change the kernel refuses inside a namespace fails the task with a message naming the workload, the
    namespace, the change and the errno (for example C(EEXIST)); the other namespaces' changes are still
    applied, and the next run repairs what is missing.
  - One run at a time per O(state_file) (a lock next to it), so concurrent runs do not interleave.
  - Workloads the module created that are no longer listed are removed (veth, routes, namespace). The module
    recognises its own objects by the interface alias C(l3.calico:workload:<netns>) on the host veth and by the list of
    namespaces in O(state_file); it never touches interfaces, routes or namespaces it did not create, and fails
    before changing anything when a wanted name is taken by a foreign object.
  - "IPv6 (a workload with C(ipv6), when O(ipv6) is true), as Calico's CNI plugin does it: C(eth0) with C(IP/128)
    and C(default via fe80::ecee:eeff:feee:eeee dev eth0), the host veth's link-local address (the EUI-64 of its MAC
    C(ee:ee:ee:ee:ee:ee)), which the host veth carries and answers neighbour solicitations for; on the host
    C(IP/128 dev cali…) and the veth's C(disable_ipv6=0), C(proxy_ndp=1), C(forwarding=1), C(accept_dad=0); inside
    C(disable_ipv6=0) (all, default, lo), C(eth0)'s C(accept_dad=0) and C(conf.all.forwarding=0) unless
    O(allow_ip_forwarding). Duplicate address detection is off on both ends, so the addresses are usable at once.
    The host's IPv6 side is applied after its sysctls, in one in-process rtnetlink batch."
  - Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN for namespaces) and iproute2.
options:
  workloads:
    description:
      - The workloads this host must have, for example C(calico_ipam_result.nodes[inventory_hostname].workloads).
      - Left out of the task, the module's action plugin reads this host's list from its C(calico_ipam_result) (role
        P(l3.calico.calico_ipam#role)) in Python - an expression indexing C(calico_ipam_result.nodes) would make
        ansible-core copy the whole fleet's nodes on every host - and fails naming the host when there is none.
      - "Each item is a dict with C(ip) (IPv4, C(/32) implied) and/or C(ipv6) (IPv6, C(/128) implied; null or absent:
        none, as the IPAM result writes them) and either C(id) (C(<namespace>.<name>)) or C(name)
        with an optional C(namespace) (DNS labels, namespace C(default) when omitted). Other keys (C(pool),
        C(block), C(borrowed), C(pool_ipv6), C(block_ipv6), C(borrowed_ipv6) of the IPAM result) are ignored, so
        the IPAM result's list can be passed unchanged."
      - Duplicate ids or addresses are an error naming the item, before anything changes.
      - An empty list removes every workload the module created.
    type: list
    elements: dict
    required: true
  mtu:
    description:
      - MTU of both ends of every veth. Use the underlay MTU minus the encapsulation overhead of the pools in use
        (IPIP 20, VXLAN 50, VXLAN over IPv6 70) - the C(workload_mtu) that M(l3.calico.node) returns, which role
        P(l3.calico.calico_workloads#role) passes.
    type: int
    default: 1500
  rp_filter:
    description:
      - Value of C(net.ipv4.conf.<veth>.rp_filter). Calico sets strict reverse-path filtering (C(1)) so a workload
        cannot send with another source address; C(0) disables it (the firewall's anti-spoofing rule still applies).
    type: int
    choices: [0, 1, 2]
    default: 1
  allow_ip_forwarding:
    description:
      - Value of C(net.ipv4.ip_forward) (and, for a workload with an IPv6 address, C(net.ipv6.conf.all.forwarding))
        inside every workload namespace, as Calico's CNI option C(container_settings.allow_ip_forwarding). Off by
        default, so a workload is no router.
    type: bool
    default: false
  ipv6:
    description:
      - Plumb the workloads' IPv6 addresses. V(false) for a node without an IPv6 address (no C(calico_node_ipv6)),
        the items' C(ipv6) are then left out and the node gets nothing IPv6 (what an earlier run set up goes).
      - Left out of the task while the host's C(calico_ipam_result) holds it, the action plugin sets it to whether that
        result gives the node an IPv6 address.
    type: bool
    default: true
  netns_prefix:
    description:
      - Prefix of the workload namespaces' names (C(/run/netns) is global to the machine, so tests and labs that
        run several hosts on one kernel give each host its own prefix).
    type: str
    default: calico-
  veth_prefix:
    description: Prefix of the host-side veth names (at most 4 characters, C(cali) as in Calico).
    type: str
    default: cali
  state_file:
    description:
      - File recording the namespaces the module created (its ownership marker for namespaces). Lives under
        C(/run), so it disappears at boot together with the namespaces.
    type: path
    default: /run/l3-calico/workloads.json
extends_documentation_fragment:
  - l3.calico.attributes
notes:
  - Run it once per host with the complete list; it is not meant to be looped over workloads.
seealso:
  - module: l3.calico.ipam
  - name: Calico CNI data plane (dataplane_linux.go)
    description: The per-pod setup this module reproduces.
    link: https://github.com/projectcalico/calico/blob/master/cni-plugin/pkg/dataplane/linux/dataplane_linux.go
author:
  - l3.calico maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Converge the workloads the IPAM gave this host (workloads and ipv6 read from calico_ipam_result)
  l3.calico.workloads:
    mtu: 1430

- name: Two workloads written by hand, strict rp_filter, a private namespace prefix
  l3.calico.workloads:
    workloads:
      - {name: web-1, ip: 172.17.72.1}
      - {name: db-1, namespace: blue, ip: 172.18.9.1}
    netns_prefix: lab-a-
    state_file: /run/l3-calico/lab-a.json

- name: Remove every workload this module created on the host
  l3.calico.workloads:
    workloads: []
"""

RETURN = r"""
created:
  description: Ids of the workloads created.
  returned: always
  type: list
  elements: str
  sample: [default.web-1]
updated:
  description: Workloads repaired in place (or rebuilt), with what differed.
  returned: always
  type: dict
  sample: {default.web-2: ["eth0 mtu 1500 -> 1450", "sysctl net.ipv4.conf.cali1234567890a.proxy_arp 0 -> 1"]}
removed:
  description: Ids of the workloads removed (their namespace, veth and routes).
  returned: always
  type: list
  elements: str
  sample: [default.old-1]
workloads:
  description: The converged workloads with their names.
  returned: always
  type: list
  elements: dict
  sample: [{id: default.web-1, ip: 172.17.72.1, ipv6: "fd00:10:244::7", netns: calico-default.web-1, veth: cali3b0ae1c04a1, mtu: 1450}]
commands:
  description:
    - Number of batches the change needed (0 when nothing changed) — one C(ip -batch) for the host (when it
      creates many namespaces, those come first from one C(ip -batch) per CPU in parallel), one rtnetlink batch
      for the host's IPv6 side when it changes, plus one batch per namespace that needed work (rtnetlink, or
      C(ip -batch) where rtnetlink is unusable).
  returned: always
  type: int
  sample: 4
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils import workloads as wl
from ansible_collections.l3.calico.plugins.module_utils.errors import L3CalicoError


def build_module() -> AnsibleModule:
    return AnsibleModule(
        argument_spec=dict(
            workloads=dict(type="list", elements="dict", required=True),
            mtu=dict(type="int", default=wl.DEFAULT_MTU),
            rp_filter=dict(type="int", choices=[0, 1, 2], default=wl.DEFAULT_RP_FILTER),
            allow_ip_forwarding=dict(type="bool", default=False),
            ipv6=dict(type="bool", default=True),
            netns_prefix=dict(type="str", default="calico-"),
            veth_prefix=dict(type="str", default="cali"),
            state_file=dict(type="path", default=wl.DEFAULT_STATE_FILE),
        ),
        supports_check_mode=True,
    )


def main() -> None:
    module = build_module()
    params = module.params
    if module.get_bin_path("ip") is None:
        module.fail_json(msg="iproute2's `ip` command is missing: install the iproute2 package")
    try:
        the_plan = wl.converge(
            params["workloads"],
            mtu=params["mtu"],
            netns_prefix=params["netns_prefix"],
            veth_prefix=params["veth_prefix"],
            rp_filter=params["rp_filter"],
            allow_ip_forwarding=params["allow_ip_forwarding"],
            ipv6=params["ipv6"],
            state_file=params["state_file"],
            check_mode=module.check_mode,
        )
    except (L3CalicoError, OSError) as exc:
        module.fail_json(msg=str(exc))
    result = dict(
        changed=the_plan.changed,
        created=the_plan.create,
        updated=the_plan.update,
        removed=the_plan.remove,
        workloads=[dict(id=w.wid, ip=w.ip, ipv6=w.ipv6, netns=w.netns, veth=w.veth, mtu=w.mtu) for w in the_plan.workloads],
        commands=(
            sum(len(stage) for stage in wl.host_batches(the_plan.host_lines)) + bool(the_plan.host_ops6) + len(the_plan.ns_ops) if the_plan.changed else 0
        ),
    )
    if module._diff:
        result["diff"] = dict(
            before_header="workloads (before)",
            after_header="workloads (after)",
            before="".join(line + "\n" for line in sorted(the_plan.before)),
            after="".join(line + "\n" for line in sorted(the_plan.after)),
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
