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
  node:
    description: This node's name in O(nodes). Required with O(state=present).
    type: str
  nodes:
    description:
      - The IPAM result's C(nodes) (C(calico_ipam_result.nodes)). Required with O(state=present).
      - With O(state=absent), optional; when it holds O(node), that node's IPIP tunnel address is removed from
        C(tunl0) even without the alias.
    type: dict
  pools:
    description:
      - The IPAM result's C(pools) (C(calico_ipam_result.pools)). Required with O(state=present).
      - With O(state=absent), optional; routes with protocol 80 inside these pools are removed.
    type: dict
  underlay_interface:
    description: The underlay interface; by default the one holding the node's address (M(l3.calico.tunnels)).
    type: str
  underlay_mtu:
    description: The underlay MTU; by default the interface's.
    type: int
  vxlan_vni:
    description: VNI of C(vxlan.calico).
    type: int
    default: 4096
  vxlan_port:
    description: UDP port of C(vxlan.calico).
    type: int
    default: 4789
  modprobe_dir:
    description: Passed to C(modprobe -d) when loading C(ipip) (M(l3.calico.tunnels)).
    type: path
  sysctls:
    description: Sysctl keys (dotted) and their values (M(l3.calico.sysctls)).
    type: dict
    default: {}
  sysctl_file:
    description: The sysctl file this module owns.
    type: path
    default: /etc/sysctl.d/60-l3-calico.conf
  workloads:
    description: This host's workloads (C(calico_ipam_result.nodes[node].workloads)), for the anti-spoofing rules.
    type: list
    elements: dict
    default: []
  firewall_backend:
    description: Firewall backend (M(l3.calico.firewall)).
    type: str
    choices: [auto, nftables, iptables]
    default: auto
  veth_prefix:
    description: Prefix of the workloads' host veths.
    type: str
    default: cali
  firewall_state_file:
    description: Where the nftables listing of the last apply is kept (under C(/run)).
    type: path
    default: /run/l3-calico/firewall.json
  host_tcp_ports:
    description:
      - TCP ports of the host itself that workloads may not reach (M(l3.calico.firewall) option O(l3.calico.firewall#module:host_tcp_ports)).
      - The default protects BIRD's BGP port; V([]) lets workloads reach it.
      - The same ports of every node of O(nodes) (its address and tunnel addresses) are closed to workloads on the
        forward path, and workload traffic to those addresses is never masqueraded
        (M(l3.calico.firewall) option O(l3.calico.firewall#module:node_addresses)).
    type: list
    elements: int
    default: [179]
extends_documentation_fragment:
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

- name: Converge the node unless packages are missing
  l3.calico.node:
    packages: [iproute2, bird2, nftables, iptables, kmod, procps]
    node: "{{ inventory_hostname }}"
    nodes: "{{ calico_ipam_result.nodes }}"
    pools: "{{ calico_ipam_result.pools }}"
    sysctls: {net.ipv4.ip_forward: 1}
    workloads: "{{ calico_ipam_result.nodes[inventory_hostname].workloads }}"
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
    - With O(state=absent), only C(changes).
  returned: always
  type: dict
  sample: {underlay_interface: eth0, underlay_mtu: 1500, ipip_mtu: 1480, vxlan_mtu: 1450, vxlan_mac: "66:35:f2:1d:94:8a"}
firewall:
  description: The firewall part's C(backend) and C(changes) (null when packages are missing).
  returned: always
  type: dict
  sample: {backend: iptables, changes: []}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.l3.calico.plugins.module_utils import firewall, iproute, node, sysctls, tunnels


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            packages=dict(type="list", elements="str", default=[]),
            node=dict(type="str"),
            nodes=dict(type="dict"),
            pools=dict(type="dict"),
            underlay_interface=dict(type="str"),
            underlay_mtu=dict(type="int"),
            vxlan_vni=dict(type="int", default=tunnels.DEFAULT_VNI),
            vxlan_port=dict(type="int", default=tunnels.DEFAULT_PORT),
            modprobe_dir=dict(type="path"),
            sysctls=dict(type="dict", default={}),
            sysctl_file=dict(type="path", default="/etc/sysctl.d/60-l3-calico.conf"),
            workloads=dict(type="list", elements="dict", default=[]),
            firewall_backend=dict(type="str", choices=list(firewall.BACKENDS), default="auto"),
            veth_prefix=dict(type="str", default="cali"),
            firewall_state_file=dict(type="path", default=firewall.DEFAULT_STATE_FILE),
            host_tcp_ports=dict(type="list", elements="int", default=list(firewall.DEFAULT_HOST_TCP_PORTS)),
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
            module.run_command,
            packages=p["packages"],
            node=p["node"],
            nodes=p["nodes"],
            pools=p["pools"],
            tunnel_args=dict(
                underlay_interface=p["underlay_interface"],
                underlay_mtu=p["underlay_mtu"],
                vni=p["vxlan_vni"],
                port=p["vxlan_port"],
                modprobe_dir=p["modprobe_dir"],
            ),
            sysctl_values=p["sysctls"],
            sysctl_file=p["sysctl_file"],
            workloads=p["workloads"],
            firewall_args=dict(
                backend=p["firewall_backend"],
                veth_prefix=p["veth_prefix"],
                state_file=p["firewall_state_file"],
                host_tcp_ports=p["host_tcp_ports"],
            ),
            check_mode=module.check_mode,
        )
    except (tunnels.TunnelError, sysctls.SysctlError, firewall.FirewallError, iproute.CommandError, OSError) as exc:
        module.fail_json(msg=f"node {p['node']}: {exc}")
    tun, sys_plan, fw = done["tunnels"], done["sysctls"], done["firewall"]
    result = dict(changed=False, changes=[], kept=[], missing_packages=done["missing_packages"], tunnels=None,
                  firewall=None)
    if tun is not None:
        result["changes"] = (
            [f"tunnels: {line}" for line in tun.changes]
            + [f"sysctls: {line}" for line in sys_plan.changes]
            + [f"firewall: {line}" for line in fw.changes]
        )
        result["changed"] = tun.changed or sys_plan.changed or fw.changed
        result["tunnels"] = dict(
            changes=tun.changes,
            underlay_interface=tun.underlay,
            underlay_mtu=tun.underlay_mtu,
            ipip_mtu=tun.ipip_mtu,
            vxlan_mtu=tun.vxlan_mtu,
            vxlan_mac=tun.vxlan_mac,
        )
        result["firewall"] = dict(backend=fw.backend, changes=fw.changes)
        if module._diff:
            diffs = []
            if tun.changed:
                diffs.append(dict(
                    before_header="tunnels (what differs)",
                    after_header="tunnels (ip -batch / bridge -batch to run)",
                    before="".join(line + "\n" for line in tun.changes),
                    after="".join(line + "\n" for line in tun.ip_lines + tun.bridge_lines),
                ))
            if sys_plan.changed:
                diffs.append(dict(before=sys_plan.before or "", after=sys_plan.content,
                                  before_header=p["sysctl_file"], after_header=p["sysctl_file"]))
            if fw.changed:
                diffs.append(dict(before="", after=fw.rendered, after_header=f"{fw.backend} rules"))
            result["diff"] = diffs
    module.exit_json(**result)


def remove(module: AnsibleModule) -> None:
    p = module.params
    me = (p["nodes"] or {}).get(p["node"]) or {}
    try:
        done = node.remove(
            pools=p["pools"] or {},
            ipip_address=(me.get("tunnels") or {}).get("ipip"),
            sysctl_file=p["sysctl_file"],
            firewall_state_file=p["firewall_state_file"],
            check_mode=module.check_mode,
        )
    except (tunnels.TunnelError, sysctls.SysctlError, firewall.FirewallError, iproute.CommandError, OSError) as exc:
        module.fail_json(msg=f"node {p['node'] or '(this host)'}: removal: {exc}")
    tun, sys_plan, fw = done["tunnels"], done["sysctls"], done["firewall"]
    result = dict(
        changed=tun.changed or sys_plan.changed or fw.changed,
        changes=[f"tunnels: {line}" for line in tun.changes]
        + [f"sysctls: {line}" for line in sys_plan.changes]
        + [f"firewall: {line}" for line in fw.changes],
        kept=tun.kept,
        missing_packages=[],
        tunnels=dict(changes=tun.changes),
        firewall=dict(backend=fw.backend, changes=fw.changes),
    )
    if module._diff:
        diffs = []
        if tun.changed:
            diffs.append(dict(before_header="tunnels (what goes)", after_header="tunnels (ip -batch to run)",
                              before="".join(line + "\n" for line in tun.changes),
                              after="".join(line + "\n" for line in tun.ip_lines)))
        if sys_plan.changed:
            diffs.append(dict(before=sys_plan.before or "", after="", before_header=p["sysctl_file"],
                              after_header=f"{p['sysctl_file']} (removed)"))
        if fw.changed:
            diffs.append(dict(before="".join(line + "\n" for line in fw.changes), after="",
                              before_header="firewall objects of l3.calico", after_header="(removed)"))
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
